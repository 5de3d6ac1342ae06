//! Small filesystem helpers: whole-or-nothing writes and pid locks for the engine's own files,
//! and flushing a whole filesystem at once.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Writes `bytes` to `path` so that `path` holds either the old or the new content, never a
/// half-written file: temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Takes an exclusive `flock` on `path` (created if needed) and writes our pid into it, trying
/// for up to `wait`. `Ok(Err(pid))`: another process holds it; `pid` is what that process wrote.
pub fn lock_with_pid(path: &Path, wait: Duration) -> Result<std::result::Result<File, String>> {
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let deadline = Instant::now() + wait;
    let mut attempt = f.try_lock();
    while matches!(attempt, Err(std::fs::TryLockError::WouldBlock)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        attempt = f.try_lock();
    }
    match attempt {
        Ok(()) => {
            let io = |e| Error::io(path, e);
            f.set_len(0).map_err(io)?;
            f.rewind().map_err(io)?;
            writeln!(f, "{}", std::process::id()).map_err(io)?;
            Ok(Ok(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            Ok(Err(pid.trim().to_owned()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Flushes everything written to the filesystem holding `dir` (one journal commit for a whole
/// batch of copies, instead of one fsync per file).
/// Memory-backed filesystems (tmpfs, ramfs) are skipped: nothing there outlives a power cut, and
/// `syncfs` still walks every inode of the filesystem.
pub fn sync_fs(dir: &Path) -> std::io::Result<()> {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let f = File::open(dir)?;
    // SAFETY: `statfs` is plain old data, for which all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `f` is open for the call and `st` is a valid, writable statfs.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } == 0
        && matches!(st.f_type as i64, TMPFS_MAGIC | RAMFS_MAGIC)
    {
        return Ok(());
    }
    // SAFETY: `f` is an open descriptor for the whole call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
