//! Encrypting, decrypting and re-keying a closed library, crash-safe.
//!
//! The new database is written beside the old one (`library.db.next`, by SQLCipher's
//! `sqlcipher_export`), then the sidecars under the new key's folder, then the new config
//! (`library.json.next`); renaming `library.db.next` over `library.db` is the one commit point.
//! [`recover`], run before every open, finishes or forgets a conversion a crash interrupted:
//! with `library.db.next` still there the old library is whole and the new files are dropped;
//! without it the database is the new one and `library.json.next` is put in place. Sidecar
//! folders of another key are removed at open ([`sweep_sidecars`]). At every instant the library
//! opens with the old passphrase or the new one.
//!
//! Architecture Invariant: the old database is not written until the commit rename replaces it
//! whole; nothing of the library is written in the clear when the target is encrypted.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::crypt::{Encryption, Kdf, LibraryKey};
use crate::library::{LibraryConfig, config_version, read_config};
use crate::{Error, Result, fsutil, store};

const NEXT_DB: &str = "library.db.next";
const NEXT_CONFIG: &str = "library.json.next";

/// What a conversion turns the library into.
pub(crate) enum Target<'a> {
    Plain,
    Encrypted { key: &'a LibraryKey, kdf: Kdf },
}

/// The folder (under the library folder) the sidecars sealed under `key` live in; `sidecars`
/// for a plain library.
pub(crate) fn sidecar_folder(key: Option<&LibraryKey>) -> String {
    key.map_or_else(|| "sidecars".to_owned(), LibraryKey::sidecar_folder)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

fn remove_if_there(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p, e)),
        _ => Ok(()),
    }
}

/// Finishes or forgets a conversion a crash interrupted (see the module doc). The caller holds
/// the library's lock.
pub(crate) fn recover(dir: &Path) -> Result<()> {
    let next_db = dir.join(NEXT_DB);
    let next_config = dir.join(NEXT_CONFIG);
    if next_db.exists() {
        for p in [
            next_db.clone(),
            dir.join(format!("{NEXT_DB}-journal")),
            next_config,
        ] {
            remove_if_there(&p)?;
        }
        tracing::warn!(dir = %dir.display(), "an interrupted encryption change was rolled back");
        return sync_dir(dir);
    }
    if next_config.exists() {
        std::fs::rename(&next_config, dir.join("library.json"))
            .map_err(|e| Error::io(&next_config, e))?;
        tracing::warn!(dir = %dir.display(), "an interrupted encryption change was completed");
        return sync_dir(dir);
    }
    Ok(())
}

/// Removes the sidecar folders of keys other than `current` (left by a conversion).
pub(crate) fn sweep_sidecars(dir: &Path, current: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if (name == "sidecars" || name.starts_with("sidecars-"))
            && name != current
            && e.file_type().is_ok_and(|t| t.is_dir())
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            tracing::warn!(folder = %e.path().display(), error = %err, "removing old sidecars");
        }
    }
}

/// `SPACEDRIVE_DEBUG_CRYPT_KILL=<step>`: the process kills itself (SIGKILL) when a conversion
/// reaches `step` (`exported`, `sidecars`, `config`, `committed`, `done`), for the crash tests.
fn debug_kill_at(step: &str) {
    if std::env::var("SPACEDRIVE_DEBUG_CRYPT_KILL").is_ok_and(|s| s == step) {
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Rewrites the closed library in `dir` (whose lock the caller holds), now opened by `from`
/// (`None`: plain), as `to`. Returns the config now in place.
pub(crate) fn convert(
    dir: &Path,
    from: Option<&LibraryKey>,
    to: Target<'_>,
) -> Result<LibraryConfig> {
    recover(dir)?;
    let config = read_config(dir)?;
    let db = dir.join("library.db");
    let next = dir.join(NEXT_DB);
    let to_key = match &to {
        Target::Plain => None,
        Target::Encrypted { key, .. } => Some(*key),
    };

    // 1. The database, whole, under the new key.
    let version = {
        let conn = Connection::open(&db)?;
        store::apply_key(&conn, from)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
        remove_if_there(&next)?;
        let key_sql = match to_key {
            Some(k) => k.sqlcipher_pragma(),
            None => zeroize::Zeroizing::new("''".to_owned()),
        };
        let path_sql = next.to_string_lossy().replace('\'', "''");
        conn.execute_batch(&format!(
            "ATTACH DATABASE '{path_sql}' AS next KEY {};",
            &*key_sql
        ))?;
        let export = (|| -> rusqlite::Result<()> {
            conn.query_row("SELECT sqlcipher_export('next')", [], |_| Ok(()))?;
            conn.execute_batch(&format!(
                "PRAGMA next.user_version = {version}; PRAGMA next.application_id = {app};"
            ))
        })();
        conn.execute_batch("DETACH DATABASE next;")?;
        export?;
        version
    };
    std::fs::File::open(&next)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&next, e))?;
    debug_kill_at("exported");

    // 2. The sidecars, under the new key's folder.
    let old_root = dir.join(sidecar_folder(from));
    let new_root = dir.join(sidecar_folder(to_key));
    if new_root != old_root {
        reseal(&old_root, &new_root, from, to_key)?;
    }
    debug_kill_at("sidecars");

    // 3. The config that goes with the new database.
    let mut new_config = config.clone();
    new_config.encryption = match to {
        Target::Plain => None,
        Target::Encrypted { key, kdf } => Some(Encryption::new(kdf, key, version)),
    };
    new_config.version = config_version(&new_config);
    fsutil::write_atomic(
        &dir.join(NEXT_CONFIG),
        &serde_json::to_vec_pretty(&new_config)?,
    )?;
    debug_kill_at("config");

    // 4. Commit: the new database replaces the old one whole. The old one was checkpointed and
    // closed: its WAL is empty and its shared-memory index stale.
    for side in ["library.db-wal", "library.db-shm"] {
        remove_if_there(&dir.join(side))?;
    }
    std::fs::rename(&next, &db).map_err(|e| Error::io(&db, e))?;
    sync_dir(dir)?;
    debug_kill_at("committed");
    recover(dir)?;
    debug_kill_at("done");
    sweep_sidecars(dir, &sidecar_folder(to_key));
    Ok(new_config)
}

/// Copies every sidecar file from `old_root` to `new_root` (emptied first), opened with the old
/// key and sealed with the new one, then flushes them.
fn reseal(
    old_root: &Path,
    new_root: &Path,
    from: Option<&LibraryKey>,
    to: Option<&LibraryKey>,
) -> Result<()> {
    if new_root.exists() {
        std::fs::remove_dir_all(new_root).map_err(|e| Error::io(new_root, e))?;
    }
    std::fs::create_dir_all(new_root).map_err(|e| Error::io(new_root, e))?;
    let (opener, sealer) = (from.map(LibraryKey::sealer), to.map(LibraryKey::sealer));
    let mut files: Vec<PathBuf> = Vec::new();
    collect_files(&old_root.join("content"), &mut files);
    for src in files {
        let Ok(rel) = src.strip_prefix(old_root) else {
            continue;
        };
        let place = rel.to_string_lossy();
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        let plain = match &opener {
            Some(o) => match o.open(&place, &bytes) {
                Ok(p) => zeroize::Zeroizing::new(p),
                // A file that does not open is remade on demand, like a missing one.
                Err(_) => continue,
            },
            None => zeroize::Zeroizing::new(bytes),
        };
        let out = match &sealer {
            Some(s) => s.seal(&place, &plain).map_err(|e| Error::io(&src, e))?,
            None => plain.to_vec(),
        };
        let dst = new_root.join(rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&dst, out).map_err(|e| Error::io(&dst, e))?;
    }
    fsutil::sync_fs(new_root).map_err(|e| Error::io(new_root, e))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_files(&e.path(), out),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
}
