//! Files between devices — the engine's half. The network is the daemon's: it lends the library a
//! [`Transport`]; this module never opens a socket.
//!
//! A copy between devices is run by the device that *receives* the files (the sink): it lists the
//! sources through the transport ([`Listing`]), plans against its own disk with the planner a
//! local copy uses ([`fileops::plan_copy_from`]: the same conflict policies, merges, hard links,
//! free-space and writability checks) and stores that plan as a durable job ([`PullKind`]). Each
//! file arrives unnamed (a big one under a temporary name beside its destination), hashed
//! (BLAKE3, the whole file) as it is written, and is compared with the hash the sender computed
//! over the bytes it read; only then is it synced and given its name. A job stopped, killed or
//! cut off at any point resumes from the bytes already in its temporary files: it sends their
//! length and hash, and the sender continues after them when its own prefix hashes the same
//! (else from zero); a small file is sent again whole.
//!
//! A push is the receiving device pulling, at the sender's request, what the sender granted it
//! for that push: [`PushKind`] on the sender grants, asks, and follows the receiver's job.
//!
//! Invariants: nothing reaches a final name unverified; a paired device reads and writes here only
//! inside this device's locations ([`resolve_within`]: `..` cannot climb out, a symlinked folder
//! pointing out is refused, a final symlink is sent as a link and never followed) or, for reads,
//! what a running push granted it; sources of a move are removed only after every item was
//! copied and verified, and only when they are unchanged since they were listed.

mod pull;
mod push;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::{Control, Stop};
use crate::fileops::{self, ConflictPolicy, ItemKind, Meta, Plan, Tree};
use crate::library::Library;
use crate::names::JsonPath;
use crate::runner::JobKind as _;
use crate::{Error, Result};

pub use pull::{PullJob, PullKind, PullPhase, PullProgress};
pub use push::{PushJob, PushKind, PushPhase, PushProgress};

/// How the bytes travel, as a plan says it.
pub const HOW: &str = "streamed over QUIC from the device that holds them; every file BLAKE3-verified on both ends before it gets its name";

/// Bytes per piece of a file on the wire.
pub const CHUNK: usize = 1 << 20;

/// The network, as the engine uses it; implemented by the daemon over `sd-net`. Devices are
/// named by their network id. Calls block until they have an answer.
pub trait Transport: Send + Sync {
    /// The paired device `selector` names (name, or id or a unique prefix of it): its network
    /// id and its name.
    fn device(&self, selector: &str) -> Result<(String, String)>;

    /// What `device` holds at `sources` (absolute paths there), listed by it: recursively, not
    /// following symlinks. `grant`: the token of a push from that device (its sources need not
    /// be in its locations).
    fn list(&self, device: &str, grant: Option<&str>, sources: &[JsonPath]) -> Result<Listing>;

    /// Streams `wants` from `device`, in order, into `sink`, all over one connection with no
    /// round trip per file. Returns when every file was delivered (or failed there), or with
    /// the error that broke the stream; an error from `sink` ends it too.
    fn fetch(
        &self,
        device: &str,
        grant: Option<&str>,
        wants: &[Want],
        sink: &mut dyn FnMut(Piece<'_>) -> Result<()>,
    ) -> Result<()>;

    /// Asks `device` to plan receiving `push` (it lists the sources here, granted for the
    /// call): the plan a preview shows. Changes nothing.
    fn plan_push(&self, device: &str, push: &PushRequest) -> Result<Plan>;

    /// Asks `device` to receive `push` (it starts its receiving job, or finds the one this
    /// token started) and says where that job is.
    fn push(&self, device: &str, push: &PushRequest) -> Result<RemoteJob>;

    /// Where the receiving job of push `token` on `device` is.
    fn push_status(&self, device: &str, token: &str) -> Result<RemoteJob>;

    /// Cancels the receiving job of push `token` on `device`.
    fn push_cancel(&self, device: &str, token: &str) -> Result<()>;

    /// Lets `device` read `roots` (here) under `token` until [`Transport::ungrant`].
    fn grant(&self, token: &str, device: &str, roots: &[JsonPath]);

    fn ungrant(&self, token: &str);

    /// Asks `device` to delete what a move copied from it: each file only if it is still as
    /// listed (size and modification time), then the folders left empty.
    fn remove(&self, device: &str, grant: Option<&str>, items: &[Removal]) -> Result<Removed>;

    /// Every online paired device holding the content `uuid`, fastest first (a device that
    /// does not answer within a few seconds is passed over).
    fn locate(&self, uuid: &uuid::Uuid) -> Vec<Holder>;

    /// Tells `device` (best effort) that a copy of `sources` from it ended, for its audit log.
    fn tell_done(
        &self,
        device: &str,
        grant: Option<&str>,
        sources: &[JsonPath],
        summary: &serde_json::Value,
    );
}

/// The transport lent to a library (absent until the daemon's network is up).
#[derive(Default)]
pub struct TransportSlot(RwLock<Option<Arc<dyn Transport>>>);

impl TransportSlot {
    pub fn set(&self, t: Option<Arc<dyn Transport>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn get(&self) -> Option<Arc<dyn Transport>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The transport of `lib`, or `Unreachable` when networking is off.
pub fn transport(lib: &Library) -> Result<Arc<dyn Transport>> {
    lib.extension::<TransportSlot>()
        .get()
        .ok_or_else(|| Error::Unreachable("networking is off in this daemon".into()))
}

/// Waits (for a job resumed while the daemon starts) until `lib` has a transport.
fn wait_transport(
    lib: &Library,
    control: &Control,
) -> std::result::Result<Arc<dyn Transport>, Stop> {
    loop {
        if let Some(t) = lib.extension::<TransportSlot>().get() {
            return Ok(t);
        }
        control.check()?;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a device holds under some paths: every item, absolute paths there.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Listing {
    /// Each source as the device holding it resolved it (the same order).
    #[serde(default)]
    pub roots: Vec<JsonPath>,
    pub items: Vec<(JsonPath, Meta)>,
    /// Folders that could not be listed (what is inside them is not copied).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Listing {
    /// Appends `root` and, for a folder, everything under it (symlinks are items, not followed).
    pub fn add(&mut self, root: &Path) -> Result<()> {
        let m = match std::fs::symlink_metadata(root) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "{}: no such file or folder",
                    root.display()
                )));
            }
            Err(e) => return Err(Error::io(root, e)),
        };
        self.items
            .push((JsonPath(root.to_path_buf()), Meta::of(&m)));
        if !m.is_dir() {
            return Ok(());
        }
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) => {
                    self.warnings
                        .push(format!("{}: cannot list: {e}; not copied", dir.display()));
                    continue;
                }
            };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue; // gone meanwhile
                };
                if m.is_dir() {
                    stack.push(p.clone());
                }
                self.items.push((JsonPath(p), Meta::of(&m)));
            }
        }
        Ok(())
    }
}

/// A [`Listing`] as the planner reads it.
struct ListedTree {
    metas: HashMap<PathBuf, Meta>,
    children: HashMap<PathBuf, Vec<OsString>>,
}

impl ListedTree {
    fn new(l: &Listing) -> ListedTree {
        let mut metas = HashMap::with_capacity(l.items.len());
        let mut children: HashMap<PathBuf, Vec<OsString>> = HashMap::new();
        for (p, m) in &l.items {
            if let (Some(parent), Some(name)) = (p.0.parent(), p.0.file_name()) {
                children
                    .entry(parent.to_path_buf())
                    .or_default()
                    .push(name.to_owned());
            }
            metas.insert(p.0.clone(), *m);
        }
        ListedTree { metas, children }
    }
}

impl Tree for ListedTree {
    fn meta(&self, p: &Path) -> Result<Option<Meta>> {
        Ok(self.metas.get(p).copied())
    }

    fn list(&self, p: &Path) -> std::io::Result<Vec<OsString>> {
        Ok(self.children.get(p).cloned().unwrap_or_default())
    }
}

/// Where `asked` (a path another device sent) really is, if it is inside one of `roots`
/// (resolved folders): cleaned lexically (so `..` cannot climb out), its parent's symlinks
/// resolved (a symlinked folder pointing out is refused); a final symlink stays itself.
pub fn resolve_within(roots: &[PathBuf], asked: &Path) -> Result<PathBuf> {
    if !asked.is_absolute() {
        return Err(Error::Invalid(format!(
            "{} is not an absolute path",
            asked.display()
        )));
    }
    let real = real_path(asked)?;
    if roots.iter().any(|r| real.starts_with(r)) {
        Ok(real)
    } else {
        Err(Error::Forbidden(format!(
            "{} is outside the folders this device shares (its locations)",
            asked.display()
        )))
    }
}

/// `p` cleaned lexically, with its parent's symlinks resolved; a final symlink stays itself.
pub fn real_path(p: &Path) -> Result<PathBuf> {
    let clean = fileops::absolute(p)?;
    Ok(match (clean.parent(), clean.file_name()) {
        (Some(parent), Some(name)) => match canonical_dir(parent) {
            Ok(p) => p.join(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "no folder {} there",
                    parent.display()
                )));
            }
            Err(e) => return Err(Error::io(parent, e)),
        },
        _ => clean,
    })
}

/// `dir` with every symlink in it resolved, as `canonicalize` gives it, but in one lookup: the
/// folder is opened (`O_PATH`, the kernel resolving the whole path once) and its descriptor
/// read back from `/proc` — `realpath(3)` walks the path again for each of its components,
/// which a sender pays for every file it sends.
fn canonical_dir(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    match std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())) {
        Ok(p) if p.is_absolute() && !p.as_os_str().as_bytes().ends_with(b" (deleted)") => Ok(p),
        _ => std::fs::canonicalize(dir),
    }
}

/// The library whose location holds `path` (resolved), if any.
pub fn library_holding(libs: &[Arc<Library>], path: &Path) -> Option<Arc<Library>> {
    libs.iter()
        .find(|lib| {
            crate::location::list(lib)
                .unwrap_or_default()
                .iter()
                .any(|l| std::fs::canonicalize(&l.path.0).is_ok_and(|r| path.starts_with(r)))
        })
        .cloned()
}

/// Starts rescans of the folders that held `removed` paths, in the locations holding them (an
/// index job already running there will see them anyway).
pub fn rescan_after_removal(libs: &[Arc<Library>], removed: &[PathBuf]) {
    for lib in libs {
        let Ok(locs) = crate::location::list(lib) else {
            continue;
        };
        for loc in &locs {
            let mut dirs: Vec<PathBuf> = removed
                .iter()
                .filter(|p| p.starts_with(&loc.path.0))
                .filter_map(|p| p.parent().map(Path::to_path_buf))
                .collect();
            dirs.sort();
            dirs.dedup();
            let mut top: Vec<PathBuf> = Vec::new();
            for d in dirs {
                if !top.iter().any(|t| d.starts_with(t)) {
                    top.push(d);
                }
            }
            if !top.is_empty()
                && let Err(e) = crate::location::rescan_subtrees(lib, loc.id, &top)
            {
                tracing::warn!(error = %e, "rescanning after a move's sources went");
            }
        }
    }
}

/// The resolved root folders of every location in `libs`: what a paired device may reach.
pub fn shared_roots(libs: &[Arc<Library>]) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for lib in libs {
        for loc in crate::location::list(lib).unwrap_or_default() {
            if let Ok(r) = std::fs::canonicalize(&loc.path.0) {
                roots.push(r);
            }
        }
    }
    roots
}

/// One file a sink asks for: from `offset`, when it already holds that many bytes whose hash is
/// `prefix` (hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Want {
    pub path: JsonPath,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub prefix: Option<String>,
}

/// What arrives for the wants, in order.
#[derive(Debug)]
pub enum Piece<'a> {
    /// Want `index` begins: its bytes follow from `offset` (0 when the sink's prefix did not
    /// match); `len` is the whole file's size when it was opened.
    Start {
        index: usize,
        offset: u64,
        len: u64,
        /// Permission bits.
        mode: u32,
    },
    Data(&'a [u8]),
    /// The file is complete: BLAKE3 of all its bytes, as the sender read them.
    End {
        hash: [u8; 32],
    },
    /// The sender could not read want `index` (or stopped reading it midway).
    Failed {
        index: usize,
        reason: String,
    },
}

/// A file (or a symlink's target) being sent, hashed as it is read.
pub struct Outgoing {
    body: Body,
    hasher: blake3::Hasher,
    /// Where sending starts.
    pub offset: u64,
    /// The size when opened.
    pub len: u64,
    /// Permission bits.
    pub mode: u32,
}

enum Body {
    File(std::fs::File, u64),
    Bytes(Vec<u8>, usize),
}

impl Outgoing {
    /// Opens `path` to send from `offset`, if the first `offset` bytes hash to `prefix` (else
    /// from zero). A symlink sends its target; it is never followed.
    pub fn open(path: &Path, offset: u64, prefix: Option<&str>) -> std::io::Result<Outgoing> {
        let m = std::fs::symlink_metadata(path)?;
        if m.file_type().is_symlink() {
            let target = std::fs::read_link(path)?.into_os_string().into_vec();
            return Ok(Outgoing {
                mode: 0o777,
                len: target.len() as u64,
                body: Body::Bytes(target, 0),
                hasher: blake3::Hasher::new(),
                offset: 0,
            });
        }
        if !m.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let len = f.metadata()?.len();
        let mut hasher = blake3::Hasher::new();
        let mut start = 0;
        if let Some(prefix) = prefix
            && offset > 0
            && offset <= len
        {
            hash_prefix(&f, offset, &mut hasher)?;
            if crate::content::hex(hasher.finalize().as_bytes()) == prefix {
                start = offset;
            } else {
                hasher.reset();
            }
        }
        Ok(Outgoing {
            mode: std::os::unix::fs::PermissionsExt::mode(&m.permissions()),
            body: Body::File(f, start),
            hasher,
            offset: start,
            len,
        })
    }

    /// The next bytes (0 at the end).
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = match &mut self.body {
            Body::File(f, pos) => {
                let n = f.read_at(buf, *pos)?;
                *pos += n as u64;
                n
            }
            Body::Bytes(b, pos) => {
                let n = (&b[*pos..]).read(buf)?;
                *pos += n;
                n
            }
        };
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    /// BLAKE3 of every byte from the start of the file (the prefix included).
    pub fn finish(self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

/// Feeds the first `n` bytes of `f` to `h`.
fn hash_prefix(f: &std::fs::File, n: u64, h: &mut blake3::Hasher) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < n {
        let want = ((n - off) as usize).min(buf.len());
        let got = f.read_at(&mut buf[..want], off)?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "shorter than its prefix",
            ));
        }
        h.update(&buf[..got]);
        off += got as u64;
    }
    Ok(())
}

/// A push as the receiving device is asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest {
    /// Names the push on both devices (and the grant its reads go under).
    pub token: String,
    /// Paths on the sending device.
    pub sources: Vec<JsonPath>,
    /// Where they go on the receiving device (`cp` semantics: into it when it is a folder).
    pub dest: JsonPath,
    pub policy: ConflictPolicy,
    pub move_source: bool,
    /// The action as the user asked for it, for the receiver's audit log.
    pub action: serde_json::Value,
}

/// A file holding a content, as the device that has it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldFile {
    pub path: JsonPath,
    pub cas_id: String,
    pub size: u64,
    /// Full-file BLAKE3 (hex) when the index has confirmed it.
    pub integrity: Option<String>,
}

/// The files of `lib` that hold the content named `uuid` (the UUIDv5 of its cas_id), found by
/// a scan of the library's content identities.
pub fn held(lib: &Library, uuid: &uuid::Uuid) -> Result<Vec<HeldFile>> {
    let conn = lib.reader()?;
    let mut q = conn.prepare("SELECT id, digest, integrity FROM content_identities")?;
    let ids: Vec<(i64, String, Option<Vec<u8>>)> = q
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?
        .filter_map(std::result::Result::ok)
        .filter_map(|(id, digest, integrity)| {
            let cas_id = crate::content::hex(digest.get(..8)?);
            (crate::content::content_uuid(&cas_id) == *uuid).then_some((id, cas_id, integrity))
        })
        .collect();
    let locs: HashMap<i64, crate::location::Location> = crate::location::list(lib)?
        .into_iter()
        .map(|l| (l.id, l))
        .collect();
    let mut out = Vec::new();
    let mut files = conn.prepare_cached(
        "SELECT e.id, e.location_id, e.size, ec.integrity FROM entry_content ec
           JOIN entries e ON e.id = ec.entry_id WHERE ec.content_id = ?1",
    )?;
    for (cid, cas_id, integrity) in ids {
        let rows: Vec<(i64, i64, i64, Option<Vec<u8>>)> = files
            .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (entry, loc, size, own) in rows {
            let Some(l) = locs.get(&loc).filter(|l| l.online) else {
                continue;
            };
            let Some(path) = crate::tree::entry_path(&conn, l.root_entry_id, &l.path.0, entry)?
            else {
                continue;
            };
            out.push(HeldFile {
                path: JsonPath(path),
                cas_id: cas_id.clone(),
                size: size as u64,
                integrity: own
                    .or_else(|| integrity.clone())
                    .map(|h| crate::content::hex(&h)),
            });
        }
    }
    Ok(out)
}

/// A device that holds a content, and how quickly it answered.
#[derive(Debug, Clone)]
pub struct Holder {
    pub device: String,
    pub device_name: String,
    pub rtt: Duration,
    pub files: Vec<HeldFile>,
}

/// What a fetched file must be: its content's cas_id, and its full hash when known.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Expected {
    pub cas_id: String,
    pub integrity: Option<String>,
}

/// A job on another device, as it reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteJob {
    pub job: i64,
    /// `queued`, `running`, `paused`, `completed`, `completed_with_errors`, `failed`,
    /// `cancelled`.
    pub state: String,
    pub error: Option<String>,
    pub progress: Option<PullProgress>,
}

impl RemoteJob {
    pub fn is_final(&self) -> bool {
        matches!(
            self.state.as_str(),
            "completed" | "completed_with_errors" | "failed" | "cancelled"
        )
    }
}

/// One file (or symlink) a move copied, to delete at its source if it is still as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removal {
    pub path: JsonPath,
    /// Folders are removed when empty; files and links only when unchanged.
    pub kind: ItemKind,
    pub size: u64,
    pub mtime_ns: Option<i64>,
}

/// What a removal did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Removed {
    pub removed: u64,
    /// Changed since they were listed (or not removable): kept.
    pub kept: u64,
    pub errors: Vec<String>,
}

/// Deletes what a move copied, here: files and links still as listed, then folders left empty
/// (deepest first). Never follows a symlink; never removes a changed file.
pub fn remove_sources(items: &[Removal]) -> Removed {
    let mut out = Removed::default();
    let mut dirs: Vec<&Path> = Vec::new();
    for it in items {
        let p = &it.path.0;
        if it.kind == ItemKind::Dir {
            dirs.push(p);
            continue;
        }
        let m = match std::fs::symlink_metadata(p) {
            Ok(m) => Meta::of(&m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.kept += 1;
                push_error(&mut out.errors, format!("{}: {e}", p.display()));
                continue;
            }
        };
        let unchanged =
            m.kind == it.kind && m.len == it.size && it.mtime_ns.is_none_or(|t| t == m.mtime_ns);
        if !unchanged {
            out.kept += 1;
            push_error(
                &mut out.errors,
                format!("{} changed since it was copied: kept", p.display()),
            );
            continue;
        }
        match std::fs::remove_file(p) {
            Ok(()) => out.removed += 1,
            Err(e) => {
                out.kept += 1;
                push_error(&mut out.errors, format!("{}: {e}", p.display()));
            }
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().as_bytes().len()));
    for d in dirs {
        match std::fs::remove_dir(d) {
            Ok(()) => out.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => out.kept += 1, // not empty: something in it was kept
        }
    }
    out
}

const MAX_ERRORS: usize = 20;

fn push_error(errors: &mut Vec<String>, e: String) {
    if errors.len() < MAX_ERRORS {
        errors.push(e);
    }
}

/// Plans receiving `sources` from `device` into `dest` (here, `cp` semantics): lists them
/// through `transport` and plans against this disk. Reads only.
pub fn plan_pull(
    transport: &dyn Transport,
    device: &str,
    grant: Option<&str>,
    sources: &[JsonPath],
    dest: &Path,
    policy: ConflictPolicy,
) -> Result<(Plan, Listing)> {
    let listing = transport.list(device, grant, sources)?;
    let srcs: Vec<PathBuf> = if listing.roots.len() == sources.len() {
        listing.roots.iter().map(|s| s.0.clone()).collect()
    } else {
        sources.iter().map(|s| s.0.clone()).collect()
    };
    let pairs: Vec<(JsonPath, JsonPath)> = fileops::destinations(&srcs, dest)?
        .into_iter()
        .filter_map(|(s, d)| Some((s, d?)))
        .collect();
    let mut plan = fileops::plan_copy_from(&ListedTree::new(&listing), &pairs, policy, HOW)?;
    plan.warnings.extend(listing.warnings.iter().cloned());
    Ok((plan, listing))
}

/// Refuses a plan that cannot start: unresolved conflicts, a folder that refuses writes, too
/// little space.
pub(crate) fn check_plan(plan: &Plan) -> Result<()> {
    if plan.unresolved > 0 {
        let first = plan
            .steps
            .iter()
            .find(|s| s.op == fileops::StepOp::Conflict)
            .and_then(|s| s.note.clone())
            .unwrap_or_default();
        return Err(Error::Conflict(format!(
            "{} destination(s) already exist ({first}); choose what to do with --on-conflict skip, overwrite or keep-both. Nothing was changed.",
            plan.unresolved
        )));
    }
    if let Some(b) = plan.blocked.first() {
        return Err(Error::Invalid(format!(
            "{}. Nothing was changed.",
            b.message
        )));
    }
    if let Some(s) = plan.space.iter().find(|s| !s.ok) {
        return Err(Error::Invalid(format!(
            "not enough space at {}: the copy needs {} bytes and {} are free. Nothing was changed.",
            s.path.0.display(),
            s.needed,
            s.available
        )));
    }
    Ok(())
}

/// Starts the job that receives `plan` (from [`plan_pull`]) from `device`.
pub fn start_pull(lib: &Arc<Library>, params: PullJob, plan: &Plan) -> Result<i64> {
    check_plan(plan)?;
    let steps = plan.steps.clone();
    let progress = PullProgress::planned(plan, &params.device_name);
    let job = lib.writer.transaction(move |tx| {
        let job = crate::runner::insert::<PullKind>(tx, &params, &progress)?;
        fileops::insert_items(tx, job, &steps)?;
        Ok(job)
    })?;
    crate::runner::start(lib, job)?;
    Ok(job)
}

/// Starts the job that pushes to another device.
pub fn start_push(lib: &Arc<Library>, params: PushJob) -> Result<i64> {
    let job = lib.writer.transaction(move |tx| {
        crate::runner::insert::<PushKind>(tx, &params, &PushProgress::default())
    })?;
    crate::runner::start(lib, job)?;
    Ok(job)
}

/// The pull job a push with `token` started in `lib`, if any.
pub fn job_of_push(lib: &Library, token: &str) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    let conn = lib.reader()?;
    Ok(conn
        .query_row(
            "SELECT id FROM jobs WHERE kind = ?1 AND json_extract(params, '$.params.grant') = ?2
             ORDER BY id DESC LIMIT 1",
            rusqlite::params![PullKind::KIND, token],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records in `lib`'s audit log that `device` copied (or moved) files from here.
pub fn record_sent(lib: &Library, device: &str, summary: serde_json::Value) -> Result<()> {
    let targets = vec![device.to_owned()];
    crate::audit::record(
        lib,
        "file.send",
        serde_json::json!({ "to": device }),
        targets,
        summary,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_locations_only() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("shared");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(d.path().join("private")).unwrap();
        std::fs::write(d.path().join("private/secret"), b"s").unwrap();
        std::os::unix::fs::symlink(d.path().join("private"), root.join("out")).unwrap();
        let roots = vec![std::fs::canonicalize(&root).unwrap()];
        let real = |p: &Path| resolve_within(&roots, p);
        assert!(real(&root.join("sub/x")).is_ok());
        assert!(real(&root).is_ok());
        for bad in [
            root.join("../private/secret"),
            root.join("sub/../../private/secret"),
            root.join("out/secret"),
            PathBuf::from("/etc/passwd"),
        ] {
            assert!(
                matches!(real(&bad), Err(Error::Forbidden(_))),
                "{}: {:?}",
                bad.display(),
                real(&bad)
            );
        }
        // A folder is resolved as `canonicalize` resolves it.
        assert_eq!(
            canonical_dir(&root.join("out")).unwrap(),
            std::fs::canonicalize(root.join("out")).unwrap()
        );
        // The link itself is inside: it is sent as a link, never followed.
        assert!(real(&root.join("out")).is_ok());
        assert!(matches!(
            real(Path::new("relative/x")),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn an_outgoing_file_resumes_only_after_a_matching_prefix() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let whole = *blake3::hash(&data).as_bytes();
        let prefix = crate::content::hex(blake3::hash(&data[..1_000_000]).as_bytes());
        let send = |offset, prefix: Option<&str>| {
            let mut o = Outgoing::open(&p, offset, prefix).unwrap();
            let start = o.offset;
            let mut buf = vec![0; 70_000];
            let mut n = 0;
            loop {
                let k = o.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                n += k;
            }
            (start, n, o.finish())
        };
        assert_eq!(
            send(1_000_000, Some(&prefix)),
            (1_000_000, 2_000_000, whole)
        );
        assert_eq!(send(1_000_000, Some("00")), (0, 3_000_000, whole));
        assert_eq!(send(9_000_000, Some(&prefix)), (0, 3_000_000, whole));
    }

    #[test]
    fn moved_sources_go_only_when_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("same"), b"1234").unwrap();
        std::fs::write(dir.join("edited"), b"1234").unwrap();
        let mut l = Listing::default();
        l.add(&dir).unwrap();
        std::fs::write(dir.join("edited"), b"123456").unwrap();
        let items: Vec<Removal> = l
            .items
            .iter()
            .map(|(p, m)| Removal {
                path: p.clone(),
                kind: m.kind,
                size: m.len,
                mtime_ns: Some(m.mtime_ns),
            })
            .collect();
        let r = remove_sources(&items);
        assert_eq!((r.removed, r.kept), (1, 2), "{r:?}");
        assert!(!dir.join("same").exists());
        assert!(dir.join("edited").exists(), "a changed file is kept");
    }
}
