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
//! and after, and a change means [`HashError::Changed`], which callers retry.

use std::fs::File;
use std::io::Read;
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
    let mut h = blake3::Hasher::new();
    h.update(&size.to_le_bytes());
    let mut header = Vec::new();
    BUF.with(|buf| -> Result<(), HashError> {
        let mut buf = buf.borrow_mut();
        for (off, len) in ranges(size) {
            // Whole files up to 100 KiB come in 64 KiB chunks; samples fit in one.
            let mut done = 0;
            while done < len {
                let n = (len - done).min(CHUNK as u64) as usize;
                let b = &mut buf[..n];
                read_exact_at(&f, b, off + done)?;
                h.update(b);
                if want_header && off + done == 0 {
                    header = b[..n.min(EDGE as usize)].to_vec();
                }
                done += n as u64;
                between_reads();
            }
        }
        Ok(())
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
}
