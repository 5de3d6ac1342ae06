//! Spacedrop, the daemon's half: the folder accepted drops land in, its settings, and what is
//! offered when sending. The protocol (offers, fingerprints, sanitising, the bytes) is
//! [`sd_net::spacedrop`]'s.
//!
//! Settings (`<data>/spacedrop.json`): the folder (default `~/Downloads/Spacedrop`) and whether
//! offers are received (on). `SPACEDRIVE_SPACEDROP_TTL_MS` shortens how long an offer waits (tests).
//!
//! Architecture Invariant: a drop writes only inside the Spacedrop folder, nothing before it is
//! accepted, and never over anything. Its files arrive in a hidden staging folder there, each
//! compared with the sender's BLAKE3 before the next; only when all are verified are the
//! top-level names renamed into place (`rename` without replace, `name (1).ext` beside what is
//! there). A drop that fails or is cut off leaves nothing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sd_api::{
    ApiError, ErrorCode, SpacedropConfig, SpacedropFile, SpacedropOffer, SpacedropProgress,
    SpacedropSent,
};
use sd_net::spacedrop::{Inbox, Landing, Offer, OfferFile, Opener, Pending};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<PathBuf>,
    #[serde(default = "yes")]
    receive: bool,
}

fn yes() -> bool {
    true
}

impl Settings {
    fn load(data_dir: &Path) -> Settings {
        std::fs::read(data_dir.join("spacedrop.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Settings {
                dir: None,
                receive: true,
            })
    }

    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/"))
                .join("Downloads")
                .join("Spacedrop")
        })
    }
}

/// Spacedrop's state: settings and the inbox of offers.
pub struct Drops {
    data_dir: PathBuf,
    settings: Arc<Mutex<Settings>>,
    pub(crate) inbox: Inbox,
}

impl Drops {
    pub fn new(data_dir: &Path) -> Drops {
        let settings = Arc::new(Mutex::new(Settings::load(data_dir)));
        let receive = lock(&settings).receive;
        let ttl = std::env::var("SPACEDRIVE_SPACEDROP_TTL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(sd_net::spacedrop::TTL);
        let folder = Folder {
            settings: settings.clone(),
        };
        Drops {
            data_dir: data_dir.to_owned(),
            settings,
            inbox: Inbox::new(Arc::new(folder), receive, ttl),
        }
    }

    pub fn dir(&self) -> PathBuf {
        lock(&self.settings).dir()
    }

    pub fn config(
        &self,
        dir: Option<&str>,
        receive: Option<bool>,
    ) -> Result<SpacedropConfig, ApiError> {
        let mut s = lock(&self.settings);
        let mut next = s.clone();
        if let Some(d) = dir {
            let p = PathBuf::from(d);
            if !p.is_absolute() {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!("{d:?} is not an absolute path"),
                ));
            }
            next.dir = Some(p);
        }
        if let Some(r) = receive {
            next.receive = r;
        }
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| ApiError::internal(e.to_string()))?;
        sd_core::fsutil::write_atomic(&self.data_dir.join("spacedrop.json"), &bytes)
            .map_err(|e| ApiError::new(ErrorCode::Io, format!("saving spacedrop.json: {e}")))?;
        *s = next;
        self.inbox.set_receiving(s.receive);
        Ok(SpacedropConfig {
            dir: s.dir().to_string_lossy().into_owned(),
            receive: s.receive,
        })
    }
}

fn lock(s: &Mutex<Settings>) -> std::sync::MutexGuard<'_, Settings> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// An offer as the API shows it.
pub fn offer(p: Pending) -> SpacedropOffer {
    SpacedropOffer {
        id: p.id,
        size: p.offer.total(),
        sender: p.offer.sender,
        peer: p.peer,
        fingerprint: p.fingerprint,
        files: p
            .offer
            .files
            .into_iter()
            .map(|f| SpacedropFile {
                path: f.path.join("/"),
                size: f.size,
            })
            .collect(),
        expires_at: p.expires_at,
    }
}

/// The Spacedrop folder, as the protocol lands files in it.
struct Folder {
    settings: Arc<Mutex<Settings>>,
}

impl Opener for Folder {
    fn admit(&self, offer: &Offer) -> Result<(), String> {
        let dir = lock(&self.settings).dir();
        // The folder may not exist yet: its nearest existing ancestor holds the space.
        let mut at = dir.as_path();
        while !at.exists() {
            match at.parent() {
                Some(p) => at = p,
                None => break,
            }
        }
        match sd_core::volume::free_bytes(at) {
            Some(free) if free < offer.total() => Err(format!(
                "the offer is {} bytes; the receiving folder has {free} free",
                offer.total()
            )),
            _ => Ok(()),
        }
    }

    fn open(&self, pending: &Pending) -> Result<Box<dyn Landing>, String> {
        self.admit(&pending.offer)?;
        let dir = lock(&self.settings).dir();
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let staging = dir.join(format!(
            ".spacedrop-{}-{}.partial",
            pending.id,
            std::process::id()
        ));
        std::fs::create_dir(&staging)
            .map_err(|e| format!("creating {}: {e}", staging.display()))?;
        Ok(Box::new(Drop_ {
            dir,
            staging,
            files: pending.offer.files.clone(),
            current: None,
            committed: false,
        }))
    }
}

/// An accepted drop being written into its staging folder.
struct Drop_ {
    dir: PathBuf,
    staging: PathBuf,
    files: Vec<OfferFile>,
    current: Option<(std::fs::File, blake3::Hasher, PathBuf)>,
    committed: bool,
}

impl Landing for Drop_ {
    fn begin(&mut self, index: usize) -> std::io::Result<()> {
        let f = self
            .files
            .get(index)
            .ok_or_else(|| std::io::Error::other("no such file in the offer"))?;
        // Sanitised names: no separators, no `..`; joined under the staging folder only.
        let mut path = self.staging.clone();
        for part in &f.path {
            path.push(part);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&path)?;
        self.current = Some((file, blake3::Hasher::new(), path));
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let (f, h, _) = self
            .current
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no file started"))?;
        h.update(bytes);
        f.write_all(bytes)
    }

    fn end(&mut self, hash: [u8; 32]) -> Result<(), String> {
        let (f, h, path) = self.current.take().ok_or("no file started")?;
        if *h.finalize().as_bytes() != hash {
            return Err(format!(
                "{}: the bytes that arrived do not hash as the sender's (BLAKE3); the drop is dropped",
                path.strip_prefix(&self.staging).unwrap_or(&path).display()
            ));
        }
        f.sync_all().map_err(|e| e.to_string())
    }

    fn commit(mut self: Box<Self>) -> Result<Vec<String>, String> {
        let mut tops: Vec<String> = Vec::new();
        for f in &self.files {
            if let Some(t) = f.path.first()
                && !tops.contains(t)
            {
                tops.push(t.clone());
            }
        }
        let mut names = Vec::new();
        for t in tops {
            let from = self.staging.join(&t);
            let mut n = 0;
            loop {
                let name = keep_both(&t, n);
                match sd_core::fileops::copy::rename_noreplace(&from, &self.dir.join(&name)) {
                    Ok(()) => {
                        names.push(name);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                    Err(e) => return Err(format!("moving {t:?} into place: {e}")),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        self.committed = true;
        Ok(names)
    }
}

impl Drop for Drop_ {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// `name`, or its `n`th alternative: `photo (1).jpg`, `folder (2)`.
pub fn keep_both(name: &str, n: usize) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{} ({n}){}", &name[..i], &name[i..]),
        _ => format!("{name} ({n})"),
    }
}

/// What `paths` offer: every regular file, folders walked (symbolic links are not followed and
/// not sent), with the files' real paths in the same order.
pub fn build_offer(sender: &str, paths: &[PathBuf]) -> Result<(Offer, Vec<PathBuf>), ApiError> {
    let mut files = Vec::new();
    let mut real = Vec::new();
    for p in paths {
        let meta = std::fs::symlink_metadata(p)
            .map_err(|e| ApiError::new(ErrorCode::NotFound, format!("{}: {e}", p.display())))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                ApiError::new(ErrorCode::Invalid, format!("{} has no name", p.display()))
            })?;
        if meta.is_file() {
            files.push(OfferFile {
                path: vec![name],
                size: meta.len(),
            });
            real.push(p.clone());
        } else if meta.is_dir() {
            walk(p, vec![name], &mut files, &mut real)?;
        } else {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("{} is not a file or folder", p.display()),
            ));
        }
    }
    if files.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "nothing to send: no file in what was given",
        ));
    }
    Ok((
        Offer {
            sender: sender.to_owned(),
            files,
        },
        real,
    ))
}

fn walk(
    dir: &Path,
    at: Vec<String>,
    files: &mut Vec<OfferFile>,
    real: &mut Vec<PathBuf>,
) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::new(ErrorCode::Io, format!("{}: {e}", dir.display()));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type().map_err(io)?;
        let mut path = at.clone();
        path.push(e.file_name().to_string_lossy().into_owned());
        if t.is_file() {
            files.push(OfferFile {
                path,
                size: e.metadata().map_err(io)?.len(),
            });
            real.push(e.path());
        } else if t.is_dir() {
            walk(&e.path(), path, files, real)?;
        }
    }
    Ok(())
}

/// Sends a drop through `net` (see [`sd_api::Spacedrop::send`]).
pub fn send(
    svc: &crate::network::NetService,
    sender: &str,
    paths: &[PathBuf],
    to: Option<&str>,
    addr: Option<&str>,
    progress: &mut dyn FnMut(SpacedropProgress),
) -> Result<SpacedropSent, ApiError> {
    let target = match addr {
        Some(a) => sd_net::SpacedropTo::Addr(a.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::Invalid,
                format!(
                    "{a:?} is not an address; use HOST:PORT as `network status` shows it (intro)"
                ),
            )
        })?),
        None => sd_net::SpacedropTo::Nearby(to.map(str::to_owned)),
    };
    let (offer, real) = build_offer(sender, paths)?;
    let (files, size) = (offer.files.len(), offer.total());
    let open: sd_net::spacedrop::OpenFile = Box::new(move |i| {
        let p = real
            .get(i)
            .ok_or_else(|| std::io::Error::other("no such file"))?;
        let out = sd_core::transfer::Outgoing::open(p, 0, None)?;
        Ok(Box::new(crate::transfer::Sending(out)) as Box<dyn sd_net::transfer::Source>)
    });
    // The runtime's threads report progress through a channel: `progress` is this thread's.
    let (tx, rx) = std::sync::mpsc::channel();
    let net = svc.net();
    let task = svc.rt.spawn(async move {
        let mut report = |p: sd_net::spacedrop::Progress| {
            let _ = tx.send(p);
        };
        net.spacedrop_send(target, offer, open, &mut report).await
    });
    for p in rx {
        progress(match p {
            sd_net::spacedrop::Progress::Offered { to, fingerprint } => {
                SpacedropProgress::Offered { to, fingerprint }
            }
            sd_net::spacedrop::Progress::Sending { done, total } => {
                SpacedropProgress::Sending { done, total }
            }
        });
    }
    let r = svc
        .rt
        .block_on(task)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    use sd_net::spacedrop::SpacedropError as E;
    match r {
        Ok(s) => Ok(SpacedropSent {
            to: s.to,
            fingerprint: s.fingerprint,
            names: s.names,
            files,
            size,
        }),
        Err(e) => {
            let code = match &e {
                E::Unreachable(_) => ErrorCode::Unreachable,
                E::Declined { .. } | E::Refused { .. } => ErrorCode::Forbidden,
                E::Expired { .. } => ErrorCode::Conflict,
                E::Ambiguous(_) => ErrorCode::Ambiguous,
                _ => ErrorCode::Io,
            };
            Err(ApiError::new(code, e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_both_names() {
        assert_eq!(keep_both("a.txt", 0), "a.txt");
        assert_eq!(keep_both("a.txt", 1), "a (1).txt");
        assert_eq!(keep_both("folder", 2), "folder (2)");
        assert_eq!(keep_both(".bashrc", 1), ".bashrc (1)");
    }
}
