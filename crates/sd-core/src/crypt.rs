//! Encryption at rest: the key of an encrypted library, how a passphrase becomes it, and what is
//! derived from it — SQLCipher's raw key, the sidecar files' AEAD key, the check that tells a
//! wrong passphrase from a damaged library, and the remembered-key file.
//!
//! The passphrase goes through Argon2id (memory-hard: a guess costs 64 MiB and three passes,
//! which graphics cards and ASICs cannot cheapen the way they cheapen PBKDF2's SHA iterations)
//! with a random per-library salt; the parameters live in `library.json`, so they can be raised
//! for new libraries without breaking old ones. The 32-byte result is the library key, handed to
//! SQLCipher as a raw key (SQLCipher's own PBKDF2 is then skipped). Everything else is derived
//! from the library key with BLAKE3's `derive_key`, one context string per use.
//!
//! Architecture Invariant: neither a passphrase nor a key is ever written to disk in the clear,
//! logged or shown — except the key file `--remember` asks for, readable only by its owner. A
//! wrong passphrase is told apart from a damaged library only by the key check, and says no more
//! than "wrong".

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Argon2id's parameters as `library.json` keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    pub parallelism: u32,
    /// 16 random bytes, hex.
    pub salt: String,
}

/// Memory, passes and lanes for new libraries: RFC 9106's second recommendation with one lane
/// (the derivation runs on one thread).
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 3;
const PARALLELISM: u32 = 1;

impl Kdf {
    /// Today's parameters with a fresh random salt.
    pub fn fresh() -> Result<Kdf> {
        Ok(Kdf {
            algorithm: "argon2id".into(),
            memory_kib: MEMORY_KIB,
            iterations: ITERATIONS,
            parallelism: PARALLELISM,
            salt: hex(&random::<16>()?),
        })
    }

    /// The library key `passphrase` gives under these parameters.
    pub fn derive(&self, passphrase: &str) -> Result<LibraryKey> {
        if self.algorithm != "argon2id" {
            return Err(Error::Invalid(format!(
                "this library's key is derived with {:?}, which this build does not know",
                self.algorithm
            )));
        }
        let salt = unhex(&self.salt)
            .filter(|s| s.len() >= 8)
            .ok_or_else(|| Error::Invalid("the library's key salt is not valid hex".into()))?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::Invalid(format!("the library's key parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, &mut *key)
            .map_err(|e| Error::Invalid(format!("deriving the library key: {e}")))?;
        Ok(LibraryKey(key))
    }
}

/// The `encryption` section of an encrypted library's `library.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `sqlcipher4`: the database is SQLCipher 4 with the library key as its raw key.
    pub cipher: String,
    pub kdf: Kdf,
    /// [`LibraryKey::check`] of the key: tells a wrong passphrase from a damaged database.
    pub key_check: String,
    /// The database's schema version (`user_version`), kept here because an encrypted database's
    /// header cannot be read without the key: a newer library is refused before it is opened.
    pub schema_version: i64,
}

impl Encryption {
    pub fn new(kdf: Kdf, key: &LibraryKey, schema_version: i64) -> Encryption {
        Encryption {
            cipher: "sqlcipher4".into(),
            kdf,
            key_check: key.check(),
            schema_version,
        }
    }

    /// Whether `key` is this library's key.
    pub fn accepts(&self, key: &LibraryKey) -> bool {
        constant_time_eq(self.key_check.as_bytes(), key.check().as_bytes())
    }

    /// Derives the key from `passphrase` and checks it: [`Error::WrongPassphrase`] when it is not
    /// this library's.
    pub fn unlock(&self, library: &str, passphrase: &str) -> Result<LibraryKey> {
        let key = self.kdf.derive(passphrase)?;
        if !self.accepts(&key) {
            return Err(Error::WrongPassphrase {
                name: library.to_owned(),
            });
        }
        Ok(key)
    }
}

/// An encrypted library's 32-byte key. Wiped from memory when dropped; never printed.
#[derive(Clone)]
pub struct LibraryKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for LibraryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LibraryKey(..)")
    }
}

impl LibraryKey {
    fn derived(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &*self.0)
    }

    /// 16 bytes derived from the key, hex: stored beside the salt to recognise the right key.
    pub fn check(&self) -> String {
        hex(&self.derived("spacedrive 2026-12 library key check")[..16])
    }

    /// The value of SQLCipher's `PRAGMA key` for this raw key: `"x'…'"`.
    pub fn sqlcipher_pragma(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("\"x'{}'\"", hex(&*self.0)))
    }

    /// The name of the folder this key's sidecars live in, so sidecars sealed under another key
    /// (or none) are never read as this key's.
    pub fn sidecar_folder(&self) -> String {
        format!(
            "sidecars-{}",
            hex(&self.derived("spacedrive 2026-12 sidecar folder")[..8])
        )
    }

    /// The AEAD that seals this library's sidecar files.
    pub fn sealer(&self) -> Sealer {
        let k = Zeroizing::new(self.derived("spacedrive 2026-12 sidecar seal"));
        Sealer(XChaCha20Poly1305::new(&(*k).into()))
    }

    /// The key as hex, for the remembered-key file only.
    fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex(&*self.0))
    }

    fn from_hex(s: &str) -> Option<LibraryKey> {
        let bytes = Zeroizing::new(unhex(s.trim())?);
        let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(LibraryKey(Zeroizing::new(arr)))
    }
}

/// Seals and opens sidecar files: XChaCha20-Poly1305 with a random nonce per file, the file's
/// path under the sidecar folder as associated data (a sealed file moved to another content's
/// place does not open).
#[derive(Clone)]
pub struct Sealer(XChaCha20Poly1305);

const SEAL_MAGIC: &[u8; 8] = b"SDSEAL01";

impl Sealer {
    pub fn seal(&self, place: &str, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        let nonce = XNonce::try_generate().map_err(std::io::Error::other)?;
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| std::io::Error::other("sealing failed"))?;
        let mut out = Vec::with_capacity(SEAL_MAGIC.len() + nonce.len() + sealed.len());
        out.extend_from_slice(SEAL_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, place: &str, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a sealed sidecar did not open (damaged, or sealed under another key)",
            )
        };
        let rest = sealed.strip_prefix(SEAL_MAGIC.as_slice()).ok_or_else(bad)?;
        if rest.len() < 24 {
            return Err(bad());
        }
        let (nonce, body) = rest.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| bad())?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }
}

/// `N` bytes from the operating system's random source.
fn random<const N: usize>() -> Result<[u8; N]> {
    <[u8; N]>::try_generate()
        .map_err(|e| Error::io("<random source>", std::io::Error::other(e.to_string())))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where `--remember` keeps library keys: `<data>/keys/`, a folder only its owner can open.
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(data_dir: &Path) -> KeyStore {
        KeyStore {
            dir: data_dir.join("keys"),
        }
    }

    /// The file library `id`'s key is remembered in.
    pub fn path(&self, id: uuid::Uuid) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// The remembered key of library `id`, if there is one.
    pub fn get(&self, id: uuid::Uuid) -> Option<LibraryKey> {
        let text = Zeroizing::new(std::fs::read_to_string(self.path(id)).ok()?);
        LibraryKey::from_hex(&text)
    }

    /// Remembers `key` for library `id`: a 0600 file, written whole (temporary, fsync, rename).
    pub fn put(&self, id: uuid::Uuid, key: &LibraryKey) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(&self.dir, e))?;
        let path = self.path(id);
        let tmp = self
            .dir
            .join(format!(".{id}.key.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(key.to_hex().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })?;
        Ok(path)
    }

    /// Forgets library `id`'s key; true when one was remembered.
    pub fn forget(&self, id: uuid::Uuid) -> Result<bool> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick_kdf() -> Kdf {
        Kdf {
            memory_kib: 64,
            iterations: 1,
            ..Kdf::fresh().unwrap()
        }
    }

    #[test]
    fn the_same_passphrase_and_salt_give_the_same_key_and_others_do_not() {
        let kdf = quick_kdf();
        let a = kdf.derive("correct horse").unwrap();
        let enc = Encryption::new(kdf.clone(), &a, 1);
        assert!(enc.accepts(&kdf.derive("correct horse").unwrap()));
        assert!(matches!(
            enc.unlock("L", "correct horsf"),
            Err(Error::WrongPassphrase { .. })
        ));
        let other_salt = Kdf {
            salt: hex(&[7; 16]),
            ..kdf.clone()
        };
        assert!(!enc.accepts(&other_salt.derive("correct horse").unwrap()));
        assert_eq!(a.sqlcipher_pragma().len(), 64 + 5);
        assert!(!format!("{a:?}").contains(&hex(&*a.0)));
    }

    #[test]
    fn sealed_files_open_only_with_their_key_and_place() {
        let kdf = quick_kdf();
        let key = kdf.derive("p").unwrap();
        let s = key.sealer();
        let sealed = s.seal("content/a", b"thumbnail bytes").unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"thumbnail"));
        assert_eq!(s.open("content/a", &sealed).unwrap(), b"thumbnail bytes");
        assert!(s.open("content/b", &sealed).is_err());
        let other = kdf.derive("q").unwrap().sealer();
        assert!(other.open("content/a", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(s.open("content/a", &flipped).is_err());
        assert!(s.open("content/a", b"SDSEAL01short").is_err());
        assert!(s.open("content/a", b"").is_err());
    }

    #[test]
    fn remembered_keys_are_owner_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let id = uuid::Uuid::new_v4();
        assert!(store.get(id).is_none());
        let key = quick_kdf().derive("p").unwrap();
        let path = store.put(id, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.get(id).unwrap().check(), key.check());
        assert!(store.forget(id).unwrap());
        assert!(!store.forget(id).unwrap());
        assert!(store.get(id).is_none());
    }
}
