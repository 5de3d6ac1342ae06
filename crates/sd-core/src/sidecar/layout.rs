//! Where sidecar files live, and how they get there.
//!
//! `<library>/sidecars/content/{h0}/{h1}/{uuid}/{kind}/{variant}.{ext}`, where `uuid` is the
//! content's UUID (BRIEF §3) and `h0`/`h1` the first two byte-pairs of its hex, so no folder
//! holds more than 256 others. A file is written in `sidecars/tmp/` under a name that carries
//! the writing process's id, fsynced, then renamed into place: a sidecar at its final path is
//! always whole. A killed process leaves at most temporaries, which the next sidecar job of
//! another process removes.
//!
//! An encrypted library keeps its sidecars in `sidecars-<key id>/` instead, each file sealed
//! (XChaCha20-Poly1305 under a key derived from the library key, its path as associated data)
//! before it is written, temporaries included: nothing of it is on disk in the clear.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::content;

/// The sidecar folder of one library, and the sealer of an encrypted one.
#[derive(Clone)]
pub struct Layout {
    root: PathBuf,
    sealer: Option<crate::crypt::Sealer>,
}

/// The folder name of a content's sidecars: the UUID of its row's key. For a content identity
/// this is its UUID (BRIEF §3); for one split off by full hash (near-duplicates share the sampled
/// UUID) it is the UUID of its own key, so two different contents never share a folder.
pub fn storage_uuid(content_id: i64) -> Uuid {
    content::content_uuid(&content::cas_id_of_key(content_id))
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Layout {
    /// The layout of `lib`.
    pub fn of(lib: &crate::library::Library) -> Layout {
        Layout {
            root: lib.sidecar_dir(),
            sealer: lib.key().map(crate::crypt::LibraryKey::sealer),
        }
    }

    /// The layout of a plain library under the folder `library_dir` (for tools and benches
    /// that make sidecars outside a library).
    pub fn plain(library_dir: &Path) -> Layout {
        Layout {
            root: library_dir.join("sidecars"),
            sealer: None,
        }
    }

    /// What seals `dest` is bound to: its path under the sidecar folder.
    fn place(&self, dest: &Path) -> String {
        dest.strip_prefix(&self.root)
            .unwrap_or(dest)
            .to_string_lossy()
            .into_owned()
    }

    /// The bytes of the sidecar file at `path` (opened, for an encrypted library).
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let bytes = std::fs::read(path)?;
        match &self.sealer {
            Some(s) => s.open(&self.place(path), &bytes),
            None => Ok(bytes),
        }
    }

    /// Whether files are sealed (the library is encrypted).
    pub fn sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// The folder holding every sidecar of one content.
    pub fn content_dir(&self, content_id: i64) -> PathBuf {
        let hex = storage_uuid(content_id).simple().to_string();
        self.root
            .join("content")
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(storage_uuid(content_id).hyphenated().to_string())
    }

    /// The path of one sidecar file.
    pub fn file(&self, content_id: i64, kind: &str, variant: &str, ext: &str) -> PathBuf {
        self.content_dir(content_id)
            .join(kind)
            .join(format!("{variant}.{ext}"))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh path in the temporary folder (created), for a file being written whole
    /// (see [`Layout::write`]); the caller removes it.
    fn temp_path(&self) -> std::io::Result<PathBuf> {
        let dir = self.tmp_dir();
        std::fs::create_dir_all(&dir)?;
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!("{}-{n}", std::process::id())))
    }

    /// Writes `bytes` at `dest` whole or not at all: temporary file, fsync, rename. Sealed first
    /// in an encrypted library.
    pub fn write(&self, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let sealed;
        let bytes = match &self.sealer {
            Some(s) => {
                sealed = s.seal(&self.place(dest), bytes)?;
                &sealed[..]
            }
            None => bytes,
        };
        let tmp = self.temp_path()?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_data()?;
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&tmp, dest)
        };
        write().inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Removes temporaries left by other (dead) processes. Returns how many.
    pub fn sweep_temporaries(&self) -> usize {
        let me = format!("{}-", std::process::id());
        let Ok(rd) = std::fs::read_dir(self.tmp_dir()) else {
            return 0;
        };
        rd.filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with(&me))
            .filter(|e| {
                let p = e.path();
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).is_ok()
                } else {
                    std::fs::remove_file(&p).is_ok()
                }
            })
            .count()
    }

    /// Removes every sidecar file of a content (nothing to do when there is none).
    pub fn remove_content(&self, content_id: i64) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.content_dir(content_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Files under `sidecars/` and their bytes (for `sidecar status`).
    pub fn usage(&self) -> (u64, u64) {
        fn walk(dir: &Path, acc: &mut (u64, u64)) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.filter_map(|e| e.ok()) {
                match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path(), acc),
                    Ok(t) if t.is_file() => {
                        acc.0 += 1;
                        acc.1 += e.metadata().map(|m| m.len()).unwrap_or(0);
                    }
                    _ => {}
                }
            }
        }
        let mut acc = (0, 0);
        walk(&self.root.join("content"), &mut acc);
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_content_uuid() {
        let l = Layout::plain(Path::new("/lib/My.sdlibrary"));
        // A content's key is its cas_id read as a big-endian integer.
        let key = i64::from_be_bytes(*b"\x01\x23\x45\x67\x89\xab\xcd\xef");
        let uuid = content::content_uuid("0123456789abcdef");
        assert_eq!(storage_uuid(key), uuid);
        let hex = uuid.simple().to_string();
        assert_eq!(
            l.file(key, "thumbnail", "grid-256", "webp"),
            PathBuf::from(format!(
                "/lib/My.sdlibrary/sidecars/content/{}/{}/{uuid}/thumbnail/grid-256.webp",
                &hex[0..2],
                &hex[2..4]
            ))
        );
    }

    #[test]
    fn writes_are_whole_and_stale_temporaries_swept() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::plain(dir.path());
        let dest = l.file(7, "thumbnail", "grid-256", "webp");
        l.write(&dest, b"one").unwrap();
        l.write(&dest, b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        let stale = dir.path().join("sidecars/tmp/1-99");
        std::fs::write(&stale, b"half").unwrap();
        let mine = l.temp_path().unwrap();
        std::fs::write(&mine, b"in use").unwrap();
        assert_eq!(l.sweep_temporaries(), 1);
        assert!(!stale.exists() && mine.exists());
        l.remove_content(7).unwrap();
        assert!(!dest.exists());
        l.remove_content(7).unwrap();
    }

    #[test]
    fn an_encrypted_librarys_sidecars_are_sealed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let kdf = crate::crypt::Kdf {
            memory_kib: 64,
            iterations: 1,
            ..crate::crypt::Kdf::fresh().unwrap()
        };
        let key = kdf.derive("p").unwrap();
        let l = Layout {
            root: dir.path().join(key.sidecar_folder()),
            sealer: Some(key.sealer()),
        };
        let dest = l.file(7, "thumbnail", "grid-256", "webp");
        l.write(&dest, b"RIFF webp bytes").unwrap();
        let raw = std::fs::read(&dest).unwrap();
        assert!(!raw.windows(4).any(|w| w == b"RIFF" || w == b"webp"));
        assert_eq!(l.read(&dest).unwrap(), b"RIFF webp bytes");
        // Put in another content's place, it does not open.
        let other = l.file(8, "thumbnail", "grid-256", "webp");
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::copy(&dest, &other).unwrap();
        assert!(l.read(&other).is_err());
    }
}
