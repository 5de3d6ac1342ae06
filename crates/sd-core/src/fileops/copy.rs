//! Copying one file so that its final path never holds a partial or unverified file. The copy is
//! made without a name (`O_TMPFILE`; where the filesystem or kernel has none, under a hidden
//! temporary name beside the destination): reflink where the filesystem clones, else the source
//! is read once into a buffer, hashed from that buffer and written (in-kernel `copy_file_range`
//! only on network filesystems, where it is a server-side copy); metadata is copied; the copy is
//! read back and hashed, and the two hashes compared. The caller syncs the filesystem (once per
//! batch of files) and only then gives the copy its name ([`place`]): `linkat` of the unnamed
//! file, or a rename of the temporary.
//!
//! What the read-back proves: it reads the copy's pages through the destination file, so it
//! checks every byte the filesystem will write back and any reader will see (our buffer handling,
//! the write path, short or lost writes, a size or a concurrent change) against the source's bytes
//! as read. It does not read the disk: a page cache that holds the right bytes while the device
//! stores wrong ones (a faulty disk or controller) is not caught here; a checksumming filesystem
//! (btrfs, ZFS) catches that when the file is next read.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

const CHUNK: usize = 1 << 20;

thread_local! {
    /// Each copy thread's buffer, allocated once (zeroing a fresh 1 MiB per file cost more than
    /// copying the small files).
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHUNK]);
}

/// Runs `f` with this thread's copy buffer.
fn with_buf<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUF.with(|b| f(&mut b.borrow_mut()))
}

/// A BLAKE3 hash and the number of bytes it covers.
type Digest = ([u8; 32], u64);

/// How the bytes were moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Same filesystem, move: one `rename(2)`, no bytes copied.
    Rename,
    /// Copy-on-write clone (btrfs, XFS): no bytes copied, blocks shared.
    Reflink,
    /// In-kernel copy (`copy_file_range(2)`).
    CopyFileRange,
    /// Read and write through a buffer (across filesystems the kernel will not copy between).
    Stream,
}

/// What one copy did.
#[derive(Debug, Clone)]
pub struct Copied {
    pub hash: [u8; 32],
    pub bytes: u64,
    pub strategy: Strategy,
}

/// Why one file could not be copied. `Exists` is a destination that appeared after planning.
#[derive(Debug)]
pub enum CopyError {
    Exists,
    /// The source changed while it was copied (twice in a row).
    Changed,
    /// Source and copy differ after the copy (never expected; reported, copy removed).
    Mismatch,
    /// Reading the source (or another path named here) failed.
    Io(PathBuf, std::io::Error),
    /// Writing the copy failed; the path is the final destination (never the temporary file).
    Write(PathBuf, std::io::Error),
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Exists => write!(f, "the destination appeared after the preview"),
            CopyError::Changed => write!(
                f,
                "the source kept changing while it was copied; not copied"
            ),
            CopyError::Mismatch => write!(
                f,
                "the copy did not match the source after writing (BLAKE3 differs); the copy was removed"
            ),
            CopyError::Io(p, e) | CopyError::Write(p, e)
                if e.raw_os_error() == Some(libc::ENOSPC) =>
            {
                write!(
                    f,
                    "{}: no space left on the destination (free some space, then copy again with --on-conflict skip)",
                    p.display()
                )
            }
            CopyError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CopyError::Write(p, e) => write!(f, "{}: {}", p.display(), write_failure(p, e)),
        }
    }
}

impl CopyError {
    /// Errors that stop the whole job rather than one item (the next file would fail the same way).
    pub fn is_fatal(&self) -> bool {
        matches!(self, CopyError::Io(_, e) | CopyError::Write(_, e) if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EROFS)))
    }
}

/// Why writing `dst` failed, naming the folder when the folder refused (the usual cause: a
/// read-only, immutable or someone else's folder), so the message points at what to fix.
pub fn write_failure(dst: &Path, e: &std::io::Error) -> String {
    let folder = dst.parent().unwrap_or(dst);
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => format!(
            "cannot write into {}: {e} (is the folder read-only, immutable (chattr +i) or not yours?)",
            folder.display()
        ),
        Some(libc::EROFS) => format!("cannot write into {}: {e}", folder.display()),
        Some(libc::ENOENT) => format!("its folder {} is missing: {e}", folder.display()),
        _ => format!("writing the copy failed: {e}"),
    }
}

fn write(dst: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |e| CopyError::Write(dst.to_path_buf(), e)
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> CopyError + '_ {
    move |e| CopyError::Io(p.to_path_buf(), e)
}

/// The temporary name a copy is written under: hidden, in the destination's directory, unique per
/// job and item so a resumed job finds (and replaces) its own leftovers.
pub fn temp_path(dst: &Path, job: i64, seq: i64) -> PathBuf {
    let name = dst.file_name().map(|n| n.as_bytes()).unwrap_or(b"file");
    // Keep the temporary name within NAME_MAX whatever the destination's name is.
    let keep = &name[..name.len().min(180)];
    let mut t = b".".to_vec();
    t.extend_from_slice(keep);
    t.extend_from_slice(format!(".sd-part-{job}-{seq}").as_bytes());
    dst.with_file_name(std::ffi::OsStr::from_bytes(&t))
}

/// What this job may use: reflink, `O_TMPFILE` + `linkat`; each is cleared after its first
/// refusal (another filesystem, an older kernel) so a job does not pay a failing syscall per file.
/// Which filesystems get an in-kernel copy is decided once per filesystem.
pub struct Capabilities {
    pub reflink: AtomicBool,
    pub copy_range: AtomicBool,
    /// Unnamed copies (`O_TMPFILE`, named by `linkat` once verified and synced).
    pub tmpfile: AtomicBool,
    /// Whether an unnamed file could be given a name here (tried once, on the first one).
    linkable: std::sync::OnceLock<bool>,
    /// Per destination device: whether `copy_file_range` is a server-side copy (network
    /// filesystems), worth it although the source is read again for its hash.
    offload: std::sync::Mutex<Vec<(u64, bool)>>,
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities {
            reflink: AtomicBool::new(true),
            copy_range: AtomicBool::new(true),
            tmpfile: AtomicBool::new(true),
            linkable: std::sync::OnceLock::new(),
            offload: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Capabilities {
    /// No reflink, no in-kernel copy, no unnamed files: the plainest path (tests).
    pub fn plain() -> Capabilities {
        let c = Capabilities::default();
        c.reflink.store(false, Ordering::Relaxed);
        c.copy_range.store(false, Ordering::Relaxed);
        c.tmpfile.store(false, Ordering::Relaxed);
        c
    }

    /// Whether to copy into `to` (on device `dev`) with `copy_file_range`.
    fn offloads(&self, to: &File, dev: u64) -> bool {
        if !self.copy_range.load(Ordering::Relaxed) {
            return false;
        }
        let mut known = self.offload.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&(_, o)) = known.iter().find(|(d, _)| *d == dev) {
            return o;
        }
        let o = network_fs(to);
        known.push((dev, o));
        o
    }
}

/// Whether `f` is on a network filesystem (NFS, SMB/CIFS, Ceph), where `copy_file_range` asks
/// the server to copy instead of sending the bytes through this machine.
fn network_fs(f: &File) -> bool {
    const NFS: i64 = 0x6969;
    const SMB2: i64 = 0xFE53_4D42;
    const CIFS: i64 = 0xFF53_4D42;
    const CEPH: i64 = 0x00C3_6400;
    // SAFETY: `statfs` is plain old data, for which all-zero bytes are a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `f` is open for the call and `st` is a valid, writable statfs.
    if unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, NFS | SMB2 | CIFS | CEPH)
}

fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV)
            | Some(libc::EINVAL)
            | Some(libc::ENOSYS)
            | Some(libc::EOPNOTSUPP)
            | Some(libc::ENOTTY)
            | Some(libc::EBADF)
            | Some(libc::EPERM)
    )
}

/// Hashes a whole open file from its start.
pub fn hash_file(f: &File, buf: &mut [u8]) -> std::io::Result<Digest> {
    use std::os::unix::fs::FileExt;
    let mut h = blake3::Hasher::new();
    let mut off = 0u64;
    loop {
        let n = match f.read_at(buf, off) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok((*h.finalize().as_bytes(), off))
}

/// Hashes the file at `path` (BLAKE3 of all its bytes).
pub fn hash_path(path: &Path) -> std::io::Result<Digest> {
    let f = File::open(path)?;
    with_buf(|buf| hash_file(&f, buf))
}

/// A verified copy waiting for its name: open, and either unnamed (`O_TMPFILE`) or at its
/// hidden temporary name.
pub struct Staged {
    file: File,
    /// The hidden temporary name: where a named copy is, and where an unnamed one is linked
    /// first when it is to replace an existing destination.
    tmp: PathBuf,
    named: bool,
    /// The device of the filesystem the copy is on (to sync each filesystem once per batch).
    pub dev: u64,
}

impl Staged {
    /// A copy its caller wrote and verified itself (a file received from another device):
    /// `file` as [`open_copy`] opened it (`named`: at `tmp`), on device `dev`.
    pub(crate) fn written(file: File, tmp: PathBuf, named: bool, dev: u64) -> Staged {
        Staged {
            file,
            tmp,
            named,
            dev,
        }
    }
}

/// Copies `src` for `dst` and verifies it (see the module doc); the caller makes it durable
/// ([`sync_fs`]) and then gives it its name ([`place`]). `tmp` is the hidden temporary name used
/// where a copy cannot be unnamed (a leftover there of an interrupted run is replaced).
/// Writeback of the copy is started at once so that the later sync has little left to wait for.
/// Errors name `dst`, the path the user asked for, not the temporary.
pub fn prepare(
    src: &Path,
    dst: &Path,
    tmp: PathBuf,
    caps: &Capabilities,
) -> Result<(Staged, Copied), CopyError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match copy_once(src, dst, &tmp, caps) {
            Ok((file, named, dev, c)) => {
                return Ok((
                    Staged {
                        file,
                        tmp,
                        named,
                        dev,
                    },
                    c,
                ));
            }
            Err((named, CopyError::Changed)) if attempt < 2 => {
                if named {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
            Err((named, e)) => {
                if named {
                    let _ = std::fs::remove_file(&tmp);
                }
                return Err(e);
            }
        }
    }
}

pub use crate::fsutil::sync_fs;

/// Gives a verified (and synced) copy its final name: links the unnamed file there, or renames
/// the temporary; without `overwrite`, never replaces anything (`Exists`). A copy that cannot be
/// placed is removed.
pub fn place(staged: Staged, dst: &Path, overwrite: bool) -> Result<(), CopyError> {
    if staged.named {
        return publish(&staged.tmp, dst, overwrite);
    }
    if !overwrite {
        return link_unnamed(&staged.file, dst).map_err(|e| exists_or_write(dst, e));
    }
    // Replacing: a name of its own first, then one rename over the destination.
    let _ = std::fs::remove_file(&staged.tmp);
    link_unnamed(&staged.file, &staged.tmp).map_err(write(dst))?;
    publish(&staged.tmp, dst, true)
}

/// Renames the verified (and synced) temporary file to its final name; removes it on failure.
pub fn publish(tmp: &Path, dst: &Path, overwrite: bool) -> Result<(), CopyError> {
    let r = if overwrite {
        std::fs::rename(tmp, dst).map_err(write(dst))
    } else {
        rename_noreplace(tmp, dst).map_err(|e| exists_or_write(dst, e))
    };
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    r
}

fn exists_or_write(dst: &Path, e: std::io::Error) -> CopyError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        CopyError::Exists
    } else {
        CopyError::Write(dst.to_path_buf(), e)
    }
}

/// Gives the unnamed (`O_TMPFILE`) file `f` the name `to`, failing if `to` exists: `linkat` with
/// `AT_EMPTY_PATH` (root, or Linux ≥ 6.10 for a file this process opened), else through
/// `/proc/self/fd`.
fn link_unnamed(f: &File, to: &Path) -> std::io::Result<()> {
    let t = cstr(to)?;
    // SAFETY: `f` is open, the paths are valid NUL-terminated strings; linkat keeps no pointer.
    let r = unsafe {
        libc::linkat(
            f.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if !matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EPERM | libc::EINVAL)
    ) {
        return Err(e);
    }
    let proc = std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: as above.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing the destination.
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    let f = cstr(from)?;
    let t = cstr(to)?;
    // SAFETY: both are valid NUL-terminated paths; renameat2 does not keep the pointers.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        // A filesystem without RENAME_NOREPLACE (some network and FUSE ones): link + unlink
        // gives the same no-replace guarantee for files.
        std::fs::hard_link(from, to)?;
        return std::fs::remove_file(from);
    }
    Err(e)
}

pub(crate) fn cstr(p: &Path) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Opens the file the copy is written to: unnamed in `dst`'s folder where that works, else
/// `tmp`, with permissions `mode` (less the umask). Returns it and whether it is named.
pub(crate) fn open_copy(
    dst: &Path,
    tmp: &Path,
    caps: &Capabilities,
    mode: u32,
) -> Result<(File, bool), CopyError> {
    let dir = match dst.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let unnamed = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(mode)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
    };
    if caps.tmpfile.load(Ordering::Relaxed) {
        match unnamed() {
            Ok(f) => {
                // Once per job: can an unnamed file be named here (linkat needs root, Linux
                // ≥ 6.10 or /proc)? Tried with another unnamed file on a hidden name, removed at
                // once (a file named once cannot be linked again after its name is removed).
                let linkable = *caps.linkable.get_or_init(|| {
                    let Ok(probe) = unnamed() else { return false };
                    let _ = std::fs::remove_file(tmp);
                    let ok = link_unnamed(&probe, tmp).is_ok();
                    let _ = std::fs::remove_file(tmp);
                    ok
                });
                if linkable {
                    return Ok((f, false));
                }
                caps.tmpfile.store(false, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                caps.tmpfile.store(false, Ordering::Relaxed);
            }
            Err(e) => return Err(CopyError::Write(dst.to_path_buf(), e)),
        }
    }
    let create = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)
    };
    let mut r = create();
    if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists) {
        // A leftover of an interrupted run of this same item.
        let _ = std::fs::remove_file(tmp);
        r = create();
    }
    r.map(|f| (f, true)).map_err(write(dst))
}

/// Starts writing `len` bytes of `f` from `from` back to the disk (0: to the end), without
/// waiting for it.
pub(crate) fn start_writeback(f: &File, from: u64, len: u64) {
    let (Ok(from), Ok(len)) = (i64::try_from(from), i64::try_from(len)) else {
        return;
    };
    // SAFETY: starts asynchronous writeback of a range of an open descriptor; no memory passed.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), from, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Files from this size on have their writeback started as soon as they are copied.
const EARLY_WRITEBACK: u64 = 8 << 20;

/// A copy made (its file, whether it is named, its device, what was copied), or why not and
/// whether a named temporary is to be removed.
type Attempt = Result<(File, bool, u64, Copied), (bool, CopyError)>;

fn copy_once(src: &Path, dst: &Path, tmp: &Path, caps: &Capabilities) -> Attempt {
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)
        .map_err(|e| (false, CopyError::Io(src.to_path_buf(), e)))?;
    let before = from
        .metadata()
        .map_err(|e| (false, CopyError::Io(src.to_path_buf(), e)))?;
    let (mut to, named) = open_copy(dst, tmp, caps, 0o600).map_err(|e| (false, e))?;
    let fail = |e: CopyError| (named, e);
    let dev = to
        .metadata()
        .map_err(|e| fail(CopyError::Write(dst.to_path_buf(), e)))?
        .dev();
    let verified = with_buf(|buf| -> Result<_, CopyError> {
        let (strategy, src_hash) =
            transfer(&mut from, &mut to, before.len(), dev, caps, buf).map_err(write(dst))?;
        copy_metadata(&to, &before).map_err(write(dst))?;
        // A big file's writeback starts now, so the batch's sync finds it mostly written;
        // small files are left to that sync, which submits them together (a start per file
        // was a block-queue kick per file: on a VM, an exit each).
        if before.len() >= EARLY_WRITEBACK {
            start_writeback(&to, 0, 0);
        }
        let src_hash = match src_hash {
            Some(h) => h,
            None => hash_file(&from, buf).map_err(io(src))?,
        };
        // Verify: the bytes now in the copy, read back through it, against the source's.
        let dst_hash = hash_file(&to, buf).map_err(write(dst))?;
        Ok((strategy, src_hash, dst_hash))
    });
    let (strategy, (src_hash, src_len), (dst_hash, dst_len)) = verified.map_err(fail)?;
    let after =
        std::fs::symlink_metadata(src).map_err(|e| fail(CopyError::Io(src.to_path_buf(), e)))?;
    if after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
        || src_len != before.len()
    {
        return Err(fail(CopyError::Changed));
    }
    if src_hash != dst_hash || src_len != dst_len {
        return Err(fail(CopyError::Mismatch));
    }
    Ok((
        to,
        named,
        dev,
        Copied {
            hash: dst_hash,
            bytes: dst_len,
            strategy,
        },
    ))
}

/// Moves the bytes; returns the strategy used and the source's hash where it was computed on
/// the way (a streaming copy: read once, hashed from the buffer, written from it).
fn transfer(
    from: &mut File,
    to: &mut File,
    len: u64,
    dev: u64,
    caps: &Capabilities,
    buf: &mut [u8],
) -> std::io::Result<(Strategy, Option<Digest>)> {
    if len > 0 && caps.reflink.load(Ordering::Relaxed) {
        // SAFETY: FICLONE takes the source descriptor as its argument; both fds are open.
        let r = unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) };
        if r == 0 {
            return Ok((Strategy::Reflink, None));
        }
        let e = std::io::Error::last_os_error();
        if !unsupported(&e) {
            return Err(e);
        }
        caps.reflink.store(false, Ordering::Relaxed);
    }
    if len > 0 && caps.offloads(to, dev) {
        let mut done = 0u64;
        loop {
            // SAFETY: null offsets use and advance both files' positions; fds are open.
            let n = unsafe {
                libc::copy_file_range(
                    from.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    1usize << 30,
                    0,
                )
            };
            if n > 0 {
                done += n as u64;
                continue;
            }
            if n == 0 {
                return Ok((Strategy::CopyFileRange, None));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if done == 0 && unsupported(&e) {
                caps.copy_range.store(false, Ordering::Relaxed);
                break;
            }
            return Err(e);
        }
    }
    let mut h = blake3::Hasher::new();
    let mut n_total = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        n_total += n as u64;
    }
    Ok((Strategy::Stream, Some((*h.finalize().as_bytes(), n_total))))
}

/// Permissions, owner (when allowed) and access/modification times of `meta` onto `to`.
pub(crate) fn copy_metadata(to: &File, meta: &std::fs::Metadata) -> std::io::Result<()> {
    let fd = to.as_raw_fd();
    // SAFETY: plain syscalls on an open descriptor.
    unsafe {
        if libc::geteuid() == 0 {
            // Like `cp -a`: keep the owner when we are allowed to; ignore a refusal.
            let _ = libc::fchown(fd, meta.uid(), meta.gid());
        }
        if libc::fchmod(fd, meta.mode() & 0o7777) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let times = times_of(meta);
        if libc::futimens(fd, times.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn times_of(meta: &std::fs::Metadata) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    ]
}

/// Sets times (and mode, unless a symlink) on a path without following a final symlink.
pub(crate) fn set_path_metadata(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    let c = cstr(path)?;
    let times = times_of(meta);
    // SAFETY: valid path and timespec array.
    unsafe {
        if libc::geteuid() == 0 {
            let _ = libc::lchown(c.as_ptr(), meta.uid(), meta.gid());
        }
        if !meta.file_type().is_symlink() && libc::chmod(c.as_ptr(), meta.mode() & 0o7777) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_verify_and_keep_metadata() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("a.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = std::fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
        File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_times(t)
            .unwrap();
        // Unnamed copies (O_TMPFILE + linkat) and named temporaries.
        for (i, caps) in [Capabilities::default(), Capabilities::plain()]
            .iter()
            .enumerate()
        {
            let dst = d.path().join(format!("b{i}.bin"));
            let tmp = temp_path(&dst, 1, i as i64);
            let (staged, c) = prepare(&src, &dst, tmp.clone(), caps).unwrap();
            assert_eq!(staged.named, i == 1, "unnamed where O_TMPFILE works");
            sync_fs(d.path()).unwrap();
            place(staged, &dst, false).unwrap();
            assert_eq!(c.bytes, data.len() as u64);
            assert_eq!(c.strategy, Strategy::Stream);
            assert_eq!(std::fs::read(&dst).unwrap(), data);
            assert!(!tmp.exists());
            assert_eq!(c.hash, *blake3::hash(&data).as_bytes());
            let m = std::fs::metadata(&dst).unwrap();
            assert_eq!(m.mtime(), 1_000_000);
            assert_eq!(m.permissions().mode() & 0o777, 0o644);
            // An existing destination is never replaced without `overwrite`; nothing is left.
            let (staged, _) = prepare(&src, &dst, tmp.clone(), caps).unwrap();
            assert!(matches!(place(staged, &dst, false), Err(CopyError::Exists)));
            assert!(!tmp.exists());
            // With `overwrite` it is, in one rename.
            std::fs::write(&dst, b"older").unwrap();
            let (staged, _) = prepare(&src, &dst, tmp.clone(), caps).unwrap();
            place(staged, &dst, true).unwrap();
            assert_eq!(std::fs::read(&dst).unwrap(), data);
            assert!(!tmp.exists());
            // An unnamed copy dropped before it is placed leaves nothing behind.
            if i == 0 {
                let other = d.path().join("c.bin");
                drop(prepare(&src, &other, temp_path(&other, 1, 10), caps).unwrap());
                let mut names: Vec<_> = std::fs::read_dir(d.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                assert_eq!(names, ["a.bin", "b0.bin"]);
            }
        }
        // A leftover temporary of an interrupted run is replaced.
        let dst = d.path().join("d.bin");
        let tmp = temp_path(&dst, 1, 20);
        std::fs::write(&tmp, b"partial").unwrap();
        let (staged, _) = prepare(&src, &dst, tmp.clone(), &Capabilities::plain()).unwrap();
        place(staged, &dst, false).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        assert!(!tmp.exists());
    }
}
