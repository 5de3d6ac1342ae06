//! Content identity: which files hold the same bytes, wherever they are.
//!
//! The **cas_id** (BRIEF §3, compatible with the reference design) is a BLAKE3 digest over
//! `size as u64 LE ‖ content`, where content is the whole file up to 100 KiB, and above that the
//! first 8 KiB, four 10 KiB samples at `8192 + i·((size − 16384) / 4)` and the last 8 KiB. The id
//! is the first 16 hex chars of the digest; the content UUID is UUIDv5(DNS, those 16 chars).
//! Large files with equal cas_ids are only *candidates*: the **integrity hash** (BLAKE3 of every
//! byte) confirms them.
//!
//! Files that change while being read are never mis-hashed: size and mtime are checked before
//! and after, and a change means [`HashError::Changed`], which callers retry. A file the index
//! has recorded is checked once, after the read, against the record ([`cas_of_recorded`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use uuid::Uuid;

/// Files up to this size are hashed whole.
pub const WHOLE_FILE_LIMIT: u64 = 102_400;
/// Header and footer length for sampled files.
pub const EDGE: u64 = 8192;
/// Length of each of the four samples.
pub const SAMPLE: u64 = 10_240;
const SAMPLES: u64 = 4;

/// A file's content identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentId {
    /// The full 32-byte digest.
    pub digest: [u8; 32],
    /// First 16 lowercase hex chars of the digest.
    pub cas_id: String,
}

impl ContentId {
    fn from_hasher(h: &blake3::Hasher) -> ContentId {
        let digest: [u8; 32] = *h.finalize().as_bytes();
        let cas_id = hex(&digest[..8]);
        ContentId { digest, cas_id }
    }

    /// UUIDv5 in the DNS namespace of the 16 ASCII bytes of the cas_id.
    pub fn uuid(&self) -> Uuid {
        content_uuid(&self.cas_id)
    }
}

/// The database key of a content identity: the cas_id's 8 bytes as a big-endian signed integer.
pub fn cas_key(digest: &[u8; 32]) -> i64 {
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The cas_id of a database key (inverse of [`cas_key`]).
pub fn cas_id_of_key(key: i64) -> String {
    hex(&key.to_be_bytes())
}

/// UUIDv5(NAMESPACE_DNS, cas_id).
pub fn content_uuid(cas_id: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_DNS, cas_id.as_bytes())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Offsets and lengths of the byte ranges the cas_id covers, in order.
pub fn ranges(size: u64) -> Vec<(u64, u64)> {
    if size <= WHOLE_FILE_LIMIT {
        return vec![(0, size)];
    }
    let step = (size - 2 * EDGE) / SAMPLES;
    let mut r = vec![(0, EDGE)];
    r.extend((0..SAMPLES).map(|i| (EDGE + i * step, SAMPLE)));
    r.push((size - EDGE, EDGE));
    r
}

/// The cas_id of an in-memory byte string (used for test vectors and by tests).
pub fn cas_of_bytes(bytes: &[u8]) -> Option<ContentId> {
    let size = bytes.len() as u64;
    if size == 0 {
        return None;
    }
    let mut h = blake3::Hasher::new();
    h.update(&size.to_le_bytes());
    for (off, len) in ranges(size) {
        h.update(&bytes[off as usize..(off + len) as usize]);
    }
    Some(ContentId::from_hasher(&h))
}

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Size or mtime changed while the file was read; the result would be wrong.
    #[error("the file changed while it was being read")]
    Changed,
    #[error("empty files have no content identity")]
    Empty,
}

/// What was hashed: the file's size and mtime (ns) as they were throughout the read, and the
/// first bytes of the file (up to 8 KiB, for file-type detection).
#[derive(Debug, Clone)]
pub struct Hashed {
    pub id: ContentId,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub header: Vec<u8>,
}

fn stamp(md: &std::fs::Metadata) -> (u64, i64) {
    (md.len(), crate::index::walk::mtime_ns(md))
}

/// Runs `f` over `items` on two threads, keeping order.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<R>>> =
        out.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    **slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    drop(slots);
    out.into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

#[cfg(test)]
thread_local! {
    /// Test hook: runs between the reads of a file being hashed.
    pub(crate) static BETWEEN_READS: std::cell::RefCell<Option<Box<dyn FnMut()>>> = const { std::cell::RefCell::new(None) };
}

fn between_reads() {
    #[cfg(test)]
    BETWEEN_READS.with(|h| {
        if let Some(f) = h.borrow_mut().as_mut() {
            f()
        }
    });
}

/// Bytes read per `pread` when hashing; one reusable buffer per thread (no allocation per file).
const CHUNK: usize = 64 * 1024;

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; CHUNK]);
}

/// Computes the cas_id of the file at `path` once, failing with [`HashError::Changed`] if the file
/// changes during the read. `Hashed::header` is left empty (see [`cas_and_header_of_file`]).
pub fn cas_of_file(path: &Path) -> Result<Hashed, HashError> {
    hash_sampled(path, false)
}

/// [`cas_of_file`], also returning the file's first 8 KiB (for file-type detection).
pub fn cas_and_header_of_file(path: &Path) -> Result<Hashed, HashError> {
    hash_sampled(path, true)
}

fn hash_sampled(path: &Path, want_header: bool) -> Result<Hashed, HashError> {
    let f = File::open(path)?;
    let before = f.metadata()?;
    let (size, mtime_ns) = stamp(&before);
    if size == 0 {
        return Err(HashError::Empty);
    }
    let mut header = Vec::new();
    let h = read_sampled(&f, size, &mut |head| {
        if want_header {
            header = head.to_vec();
        }
    })?;
    let after = f.metadata()?;
    if stamp(&after) != (size, mtime_ns) {
        return Err(HashError::Changed);
    }
    Ok(Hashed {
        id: ContentId::from_hasher(&h),
        size,
        mtime_ns,
        inode: before.ino(),
        header,
    })
}

/// Feeds the sampled ranges of an open `size`-byte file (after the size prefix) to a new hasher.
/// `head` sees the file's first bytes (up to [`EDGE`]) as they are read.
fn read_sampled(
    f: &File,
    size: u64,
    head: &mut dyn FnMut(&[u8]),
) -> Result<blake3::Hasher, HashError> {
    let mut h = blake3::Hasher::new();
    h.update(&size.to_le_bytes());
    BUF.with(|buf| -> Result<(), HashError> {
        let mut buf = buf.borrow_mut();
        for (off, len) in ranges(size) {
            // Whole files up to 100 KiB come in 64 KiB chunks; samples fit in one.
            let mut done = 0;
            while done < len {
                let n = (len - done).min(CHUNK as u64) as usize;
                let b = &mut buf[..n];
                read_exact_at(f, b, off + done)?;
                h.update(b);
                if off + done == 0 {
                    head(&b[..n.min(EDGE as usize)]);
                }
                done += n as u64;
                between_reads();
            }
        }
        Ok(())
    })?;
    Ok(h)
}

/// A file as the index recorded it when it last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

/// The cas_id of the file `name` in the directory open as `dir`, provided it is still the file
/// `rec` describes. The ranges read are those of `rec.size`, and one `fstat` after the read must
/// give back `rec`'s size, mtime and inode. A write at any time since the index looked would have
/// moved the mtime, so this one `fstat` proves what [`cas_of_file`]'s two do. `head` sees the
/// first bytes read (up to [`EDGE`]); whatever it computed is only good if this returns `Some`.
///
/// `None` when the file differs from the record or cannot be read: the caller then hashes it by
/// path with [`cas_of_file_stable`], which tells what is wrong.
pub fn cas_of_recorded(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    rec: Recorded,
    head: &mut dyn FnMut(&[u8]),
) -> Option<Hashed> {
    if rec.size == 0 {
        return None;
    }
    let f = open_at(dir, name)?;
    let h = read_sampled(&f, rec.size, head).ok()?;
    let after = f.metadata().ok()?;
    (stamp(&after) == (rec.size, rec.mtime_ns) && after.ino() == rec.inode).then(|| Hashed {
        id: ContentId::from_hasher(&h),
        size: rec.size,
        mtime_ns: rec.mtime_ns,
        inode: rec.inode,
        header: Vec::new(),
    })
}

/// Opens `name` in the directory `dir` for reading, following a symlink as `File::open` would,
/// without walking the directory's path again. `None` on any failure.
fn open_at(dir: BorrowedFd<'_>, name: &OsStr) -> Option<File> {
    let mut c = [0u8; 256];
    let bytes = name.as_bytes();
    if bytes.len() >= c.len() || bytes.contains(&0) {
        return None;
    }
    c[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: `c` holds the name and a NUL after it; `dir` is an open descriptor.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr().cast(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a descriptor openat just returned belongs to no one else.
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
}

/// [`cas_of_file`], retried up to `attempts` times while the file keeps changing.
pub fn cas_of_file_stable(
    path: &Path,
    attempts: usize,
    want_header: bool,
) -> Result<Hashed, HashError> {
    let mut last = HashError::Changed;
    for _ in 0..attempts.max(1) {
        match hash_sampled(path, want_header) {
            Err(HashError::Changed) => last = HashError::Changed,
            other => return other,
        }
    }
    Err(last)
}

fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    match f.read_exact_at(buf, off) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(std::io::Error::other(
            "the file got shorter while it was being read",
        )),
        other => other,
    }
}

/// The integrity hash: BLAKE3 over every byte of the file, with the same change check.
/// Returns the digest and the size it covers.
pub fn integrity_of_file(path: &Path) -> Result<([u8; 32], u64), HashError> {
    let mut f = File::open(path)?;
    let before = f.metadata()?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 18];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    let after = f.metadata()?;
    if stamp(&after) != stamp(&before) || total != before.len() {
        return Err(HashError::Changed);
    }
    Ok((*h.finalize().as_bytes(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a test vector file: deterministic, no two 8 KiB blocks alike.
    pub(crate) fn vector_bytes(size: usize) -> Vec<u8> {
        (0..size)
            .map(|i| ((i as u64 * 2_654_435_761) >> 13) as u8 ^ (i % 251) as u8)
            .collect()
    }

    #[test]
    fn cas_ids_match_the_independently_generated_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../tests/cas_vectors.json")).expect("vectors JSON");
        let dir = tempfile::tempdir().unwrap();
        for v in vectors["vectors"].as_array().unwrap() {
            let size = v["size"].as_u64().unwrap() as usize;
            let bytes = vector_bytes(size);
            let path = dir.path().join(format!("v{size}"));
            std::fs::write(&path, &bytes).unwrap();
            if size == 0 {
                assert!(v["cas_id"].is_null());
                assert!(cas_of_bytes(&bytes).is_none());
                assert!(matches!(cas_of_file(&path), Err(HashError::Empty)));
                continue;
            }
            let mem = cas_of_bytes(&bytes).unwrap();
            let file = cas_of_file(&path).unwrap();
            assert_eq!(mem, file.id, "size {size}");
            assert_eq!(
                mem.cas_id,
                v["cas_id"].as_str().unwrap(),
                "cas_id of size {size}"
            );
            assert_eq!(
                hex(&mem.digest),
                v["digest"].as_str().unwrap(),
                "digest of size {size}"
            );
            assert_eq!(
                mem.uuid().to_string(),
                v["uuid"].as_str().unwrap(),
                "uuid of size {size}"
            );
            let (full, n) = integrity_of_file(&path).unwrap();
            assert_eq!(n as usize, size);
            assert_eq!(
                hex(&full),
                v["integrity"].as_str().unwrap(),
                "integrity of size {size}"
            );
        }
    }

    #[test]
    fn sampled_ranges_follow_the_spec() {
        assert_eq!(ranges(102_400), vec![(0, 102_400)]);
        let r = ranges(102_401);
        assert_eq!(r.len(), 6);
        assert_eq!(r[0], (0, 8192));
        assert_eq!(r[1], (8192, 10_240));
        assert_eq!(r[2], (8192 + (102_401 - 16_384) / 4, 10_240));
        assert_eq!(r[5], (102_401 - 8192, 8192));
    }

    #[test]
    fn a_file_that_changes_while_hashed_is_never_mis_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.bin");
        std::fs::write(&path, vector_bytes(300_000)).unwrap();
        // Append between every read of the first two attempts (six reads each for this size).
        let p = path.clone();
        let mut left = 12;
        BETWEEN_READS.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                if left > 0 {
                    left -= 1;
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                    f.write_all(b"more bytes").unwrap();
                }
            }))
        });
        assert!(matches!(
            cas_of_file_stable(&path, 2, false),
            Err(HashError::Changed)
        ));
        // Once the file holds still, the retry succeeds with the final content's identity.
        let got = cas_of_file_stable(&path, 3, false).unwrap();
        BETWEEN_READS.with(|h| *h.borrow_mut() = None);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 300_120);
        assert_eq!(got.size, 300_120);
        assert_eq!(got.id, cas_of_bytes(&bytes).unwrap());
    }

    /// The quick way for files the index recorded: the same id as by path while the file is as
    /// recorded, and nothing (so the caller hashes it the careful way) once anything differs:
    /// rewritten since, replaced by another file with the same size and mtime, or written to
    /// during the read.
    #[test]
    fn a_recorded_file_is_hashed_once_and_only_while_it_is_as_recorded() {
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let open = File::open(dir.path()).unwrap();
        let fd = open.as_fd();
        let record = |name: &str| {
            let md = std::fs::metadata(dir.path().join(name)).unwrap();
            Recorded {
                size: md.len(),
                mtime_ns: crate::index::walk::mtime_ns(&md),
                inode: md.ino(),
            }
        };
        let quick = |name: &str, rec: Recorded| {
            let mut head = Vec::new();
            cas_of_recorded(fd, OsStr::new(name), rec, &mut |h| head = h.to_vec())
                .map(|hashed| (hashed, head))
        };
        for size in [1usize, 5_000, 102_400, 300_000] {
            let name = format!("v{size}");
            let bytes = vector_bytes(size);
            std::fs::write(dir.path().join(&name), &bytes).unwrap();
            let (got, head) = quick(&name, record(&name)).expect("as recorded");
            let by_path = cas_of_file(&dir.path().join(&name)).unwrap();
            assert_eq!((got.id, got.size), (by_path.id, by_path.size), "{size}");
            assert_eq!(head, bytes[..size.min(EDGE as usize)], "{size}");
        }

        let path = dir.path().join("f");
        std::fs::write(&path, vector_bytes(300_000)).unwrap();
        let before = record("f");
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(quick("f", before).is_none(), "written since the record");
        assert!(quick("f", record("f")).is_some());

        // Another file of the same size and mtime put in its place.
        let rec = record("f");
        let other = dir.path().join("other");
        std::fs::write(&other, vector_bytes(300_000)).unwrap();
        File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(later)
            .unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(
            (record("f").size, record("f").mtime_ns),
            (rec.size, rec.mtime_ns)
        );
        assert!(quick("f", rec).is_none(), "another inode");

        // Written to while read.
        let rec = record("f");
        let p = path.clone();
        BETWEEN_READS.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                f.write_all(b"more").unwrap();
            }))
        });
        let got = quick("f", rec);
        BETWEEN_READS.with(|h| *h.borrow_mut() = None);
        assert!(got.is_none(), "changed during the read");
        assert!(quick("missing", rec).is_none());
        assert!(quick("f", Recorded { size: 0, ..rec }).is_none());
    }
}
