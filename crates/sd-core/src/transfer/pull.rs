//! The receiving job: runs a pull's stored plan (see the module above), fetching files into
//! temporary names, verifying and then naming them, resuming from what its temporaries hold.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Piece, Removal, Transport, Want, push_error, wait_transport};
use crate::audit::{self, Outcome};
use crate::control::{Control, Stop};
use crate::fileops::copy::{self, CopyError};
use crate::fileops::run::{
    BATCH_BYTES, BATCH_WAIT, Item, ItemState, holds, load_items, staged_max, sync_filesystems,
};
use crate::fileops::{self, ItemKind, OpKind, Plan, StepOp};
use crate::library::Library;
use crate::names::JsonPath;
use crate::runner::store_progress;
use crate::runner::{End, JobKind};
use crate::{Error, Result};

/// What a receiving job was asked to do (its `jobs.params`); the plan is in `fileop_items`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PullJob {
    /// The device the files come from (network id), and its name when the job was made.
    pub device: String,
    pub device_name: String,
    /// Set when the sender asked for this copy (a push): the grant its reads go under.
    #[serde(default)]
    pub grant: Option<String>,
    /// Remove the sources there once every item was copied and verified.
    pub move_source: bool,
    /// A content fetch (`content://`): what each file received must be.
    #[serde(default)]
    pub expect: Option<super::Expected>,
    pub sources: Vec<JsonPath>,
    /// The action as the user asked for it, and what it targets (for the audit row).
    pub action: serde_json::Value,
    pub targets: Vec<String>,
    pub committed_at: i64,
}

/// Where a receiving job is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PullPhase {
    #[default]
    Receiving,
    /// The other device cannot be reached: the job tries again until it can (or is cancelled).
    Waiting,
    RemovingSources,
    UpdatingIndex,
    Done,
}

/// Progress and result of a receiving job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PullProgress {
    /// Where the job is (always present: tells this progress apart from other kinds').
    pub pull: PullPhase,
    /// The device the files come from.
    pub from: String,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Bytes that crossed the network in this run of the job.
    pub bytes_received: u64,
    /// Bytes found already received (in temporary files) when the job resumed: not sent again.
    pub bytes_resumed: u64,
    /// Files whose BLAKE3 matched the sender's.
    pub verified: u64,
    pub dirs_made: u64,
    pub linked: u64,
    pub symlinks: u64,
    pub skipped: u64,
    pub failed: u64,
    pub resumes: u64,
    /// Why the job waits for the other device.
    pub waiting: Option<String>,
    pub sources_removed: u64,
    /// Sources of a move that were not removed (changed since, or items failed).
    pub sources_kept: u64,
    pub errors: Vec<String>,
}

impl PullProgress {
    pub(crate) fn planned(plan: &Plan, from: &str) -> PullProgress {
        PullProgress {
            from: from.to_owned(),
            files_total: plan.files,
            bytes_total: plan.bytes,
            skipped: plan.skipped,
            ..PullProgress::default()
        }
    }

    fn failures(&self) -> Option<String> {
        if self.failed == 0 && self.sources_kept == 0 {
            return None;
        }
        let mut what = Vec::new();
        if self.failed > 0 {
            what.push(format!("{} items failed", self.failed));
        }
        if self.sources_kept > 0 {
            what.push(format!(
                "{} sources were copied but not removed",
                self.sources_kept
            ));
        }
        let first = self
            .errors
            .first()
            .map(|e| format!("; first: {e}"))
            .unwrap_or_default();
        Some(format!("{}{first}", what.join(", ")))
    }
}

/// How long a push's receiver keeps asking a sender that refuses its grant (the sender's
/// daemon restarting re-grants when its push job resumes).
const GRANT_PATIENCE: Duration = Duration::from_secs(300);
/// Files at least this big are received into a named temporary, which a resumed job continues;
/// smaller ones unnamed (`O_TMPFILE`, named by `linkat` once verified and synced), sent again
/// whole after an interruption.
const RESUMABLE: u64 = 8 << 20;
/// A big file's writeback is started every this many bytes, so the batch's sync has little
/// left to wait for.
const WRITEBACK: u64 = 32 << 20;
/// Item states are committed at least every this many.
const RECORD_EVERY: usize = 512;

/// A file's temporary, already holding `len` bytes whose running hash is `hasher`.
struct Partial {
    len: u64,
    hasher: blake3::Hasher,
}

/// What is being received now.
enum Current {
    Nothing,
    File {
        item: usize,
        file: std::fs::File,
        hasher: blake3::Hasher,
        /// The named temporary, or where an unnamed copy would be linked to replace a file.
        temp: PathBuf,
        named: bool,
        mode: u32,
        /// Bytes in the file, and how many of them have their writeback started.
        written: u64,
        flushed: u64,
    },
    Link {
        item: usize,
        target: Vec<u8>,
        hasher: blake3::Hasher,
    },
}

/// One run of a receiving job.
struct Receiver<'a> {
    lib: &'a Arc<Library>,
    job: i64,
    params: &'a PullJob,
    transport: Arc<dyn Transport>,
    items: Vec<Item>,
    by_seq: HashMap<i64, usize>,
    progress: PullProgress,
    on_progress: &'a (dyn Fn(&PullProgress, bool) + Sync),
    /// Item states to commit.
    updates: Vec<(i64, ItemState, Option<String>)>,
    /// The publisher of the fetch running now, and how many handed-over items it still has.
    publisher: Option<Publisher>,
    in_flight: usize,
    caps: copy::Capabilities,
    /// Whether this run continues an earlier one (temporaries may hold bytes).
    resumed: bool,
    throttle: Option<u64>,
    /// When the progress was last written to the job's row.
    stored_at: Instant,
}

impl Receiver<'_> {
    fn temp(&self, i: usize) -> Option<PathBuf> {
        let s = &self.items[i].step;
        Some(copy::temp_path(&s.dst.as_ref()?.0, self.job, s.seq))
    }

    fn set(&mut self, i: usize, state: ItemState, note: Option<String>) {
        self.items[i].state = state;
        self.updates.push((self.items[i].step.seq, state, note));
    }

    fn fail(&mut self, i: usize, why: String) {
        self.progress.failed += 1;
        push_error(&mut self.progress.errors, why.clone());
        self.set(i, ItemState::Failed, Some(why));
    }

    /// Publishes the progress; writes it to the job's row at most twice a second.
    fn report(&mut self) -> Result<()> {
        (self.on_progress)(&self.progress, false);
        if self.stored_at.elapsed() >= Duration::from_millis(500) {
            self.stored_at = Instant::now();
            store_progress(self.lib, self.job, &self.progress)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.updates.is_empty() {
            return self.report();
        }
        let updates = std::mem::take(&mut self.updates);
        let job = self.job;
        self.lib.writer.transaction(move |tx| {
            let mut q = tx.prepare_cached(
                "UPDATE fileop_items SET state = ?3, note = coalesce(?4, note)
                 WHERE job_id = ?1 AND seq = ?2",
            )?;
            for (seq, state, note) in &updates {
                q.execute(params![job, seq, state.as_str(), note])?;
            }
            Ok(())
        })?;
        self.report()
    }

    /// Folders first (a folder's item comes before what is in it).
    fn make_dirs(&mut self) {
        for i in 0..self.items.len() {
            let it = &self.items[i];
            if it.state != ItemState::Pending {
                continue;
            }
            match it.step.op {
                StepOp::Merge => self.set(i, ItemState::Done, None),
                StepOp::Mkdir => {
                    let Some(dst) = it.step.dst.clone() else {
                        continue;
                    };
                    match std::fs::create_dir(&dst.0) {
                        Ok(()) => {
                            self.progress.dirs_made += 1;
                            self.set(i, ItemState::Done, None);
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::AlreadyExists && dst.0.is_dir() =>
                        {
                            // Made by an earlier run of this job.
                            self.set(i, ItemState::Done, None);
                        }
                        Err(e) => self.fail(i, format!("{}: {e}", dst.0.display())),
                    }
                }
                _ => {}
            }
        }
    }

    /// The files and links still to fetch, each resumed from its temporary where it has one.
    fn wants(&self) -> (Vec<usize>, Vec<Want>, HashMap<usize, Partial>) {
        let mut idx = Vec::new();
        let mut wants = Vec::new();
        let mut partials = HashMap::new();
        // Items come folder by folder: each folder is looked at once.
        let mut folder: Option<(&Path, bool)> = None;
        for (i, it) in self.items.iter().enumerate() {
            if it.state != ItemState::Pending
                || !matches!(it.step.op, StepOp::Copy | StepOp::Symlink)
            {
                continue;
            }
            // An item whose folder failed has nowhere to go.
            let Some(parent) = it.step.dst.as_ref().and_then(|d| d.0.parent()) else {
                continue;
            };
            let parent_ok = match folder {
                Some((p, ok)) if p == parent => ok,
                _ => {
                    let ok = parent.is_dir();
                    folder = Some((parent, ok));
                    ok
                }
            };
            if !parent_ok {
                continue;
            }
            let mut want = Want {
                path: it.step.src.clone(),
                offset: 0,
                prefix: None,
            };
            // Only a big file (or any, after an interruption) can have a temporary.
            if it.step.op == StepOp::Copy
                && (self.resumed || self.named(i))
                && let Some(temp) = self.temp(i)
                && let Some(p) = partial(&temp)
            {
                want.offset = p.len;
                want.prefix = Some(crate::content::hex(p.hasher.finalize().as_bytes()));
                partials.insert(wants.len(), p);
            }
            idx.push(i);
            wants.push(want);
        }
        (idx, wants, partials)
    }

    /// Whether item `i` is received into a named temporary (resumable), not unnamed.
    fn named(&self, i: usize) -> bool {
        // A content fetch reads the file by its name to check its cas_id.
        self.items[i].step.size >= RESUMABLE || self.params.expect.is_some()
    }

    /// Hands a verified file or symlink to the publisher (which syncs, then names it).
    fn hand_over(&mut self, item: usize, what: Waiting, hash: [u8; 32], len: u64) -> Result<()> {
        let step = &self.items[item].step;
        let (Some(dst), Some(p)) = (step.dst.clone(), &self.publisher) else {
            return Ok(());
        };
        let ready = Ready {
            item,
            what,
            dst: dst.0,
            overwrite: step.overwrite,
            hash,
            len,
        };
        p.hand
            .send(Handoff::Ready(ready))
            .map_err(|_| Error::Invalid("the publisher of received files stopped".into()))?;
        self.in_flight += 1;
        self.collect(false)
    }

    /// Records what the publisher placed (waiting for all it holds when `all`).
    fn collect(&mut self, all: bool) -> Result<()> {
        while self.in_flight > 0 {
            let Some(p) = &self.publisher else { break };
            let placed = if all {
                p.placed.recv().ok()
            } else {
                p.placed.try_recv().ok()
            };
            let Some(Placed { item, dst, result }) = placed else {
                break;
            };
            self.in_flight -= 1;
            match result {
                Ok(()) => {
                    if self.items[item].step.op == StepOp::Symlink {
                        self.progress.symlinks += 1;
                    } else {
                        self.progress.files_done += 1;
                    }
                    self.set(item, ItemState::Done, None);
                }
                Err(CopyError::Exists) => self.fail(
                    item,
                    format!("{} appeared meanwhile: not replaced", dst.display()),
                ),
                Err(e) => self.fail(item, e.to_string()),
            }
        }
        if self.updates.len() >= RECORD_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Has everything handed over synced, named and recorded.
    fn settle(&mut self) -> Result<()> {
        if let Some(p) = &self.publisher
            && self.in_flight > 0
        {
            let _ = p.hand.send(Handoff::Flush);
        }
        self.collect(true)?;
        self.flush()
    }

    /// One piece of the stream.
    fn take(
        &mut self,
        cur: &mut Current,
        idx: &[usize],
        partials: &mut HashMap<usize, Partial>,
        piece: Piece<'_>,
        control: &Control,
    ) -> Result<()> {
        match piece {
            Piece::Start {
                index,
                offset,
                len: _,
                mode,
            } => {
                let i = *idx.get(index).ok_or_else(|| {
                    Error::Invalid("the sender named a file not asked for".into())
                })?;
                *cur = Current::Nothing;
                if self.items[i].step.op == StepOp::Symlink {
                    *cur = Current::Link {
                        item: i,
                        target: Vec::new(),
                        hasher: blake3::Hasher::new(),
                    };
                    return Ok(());
                }
                let (Some(temp), Some(dst)) = (self.temp(i), self.items[i].step.dst.clone()) else {
                    return Ok(());
                };
                let partial = partials.remove(&index);
                let named = self.named(i) || partial.is_some();
                let caps = &self.caps;
                // Made with the sender's permissions (less the umask; special bits are set
                // once verified): mostly no chmod is left to do.
                let perms = mode & 0o777;
                let opened = (|| -> std::io::Result<(std::fs::File, blake3::Hasher, bool)> {
                    match partial {
                        Some(p) if offset > 0 && offset == p.len => {
                            let mut f = std::fs::OpenOptions::new().write(true).open(&temp)?;
                            f.set_len(offset)?;
                            f.seek(std::io::SeekFrom::Start(offset))?;
                            Ok((f, p.hasher, true))
                        }
                        _ if named => {
                            let f = std::fs::OpenOptions::new()
                                .write(true)
                                .create(true)
                                .truncate(true)
                                .mode(perms)
                                .open(&temp)?;
                            Ok((f, blake3::Hasher::new(), true))
                        }
                        _ => {
                            let (f, named) = copy::open_copy(&dst.0, &temp, caps, perms)
                                .map_err(|e| std::io::Error::other(e.to_string()))?;
                            Ok((f, blake3::Hasher::new(), named))
                        }
                    }
                })();
                match opened {
                    Ok((file, hasher, named)) => {
                        if offset > 0 {
                            self.progress.bytes_resumed += offset;
                            self.progress.bytes_done += offset;
                        }
                        *cur = Current::File {
                            item: i,
                            file,
                            hasher,
                            temp,
                            named,
                            mode,
                            written: offset,
                            flushed: offset,
                        };
                    }
                    Err(e) => {
                        let why = format!("{}: {e}", temp.display());
                        self.fail(i, why);
                    }
                }
            }
            Piece::Data(bytes) => {
                match cur {
                    Current::File {
                        item,
                        file,
                        hasher,
                        temp,
                        named,
                        written,
                        flushed,
                        ..
                    } => {
                        if let Err(e) = file.write_all(bytes) {
                            let i = *item;
                            let why = match e.raw_os_error() {
                                Some(libc::ENOSPC) => "the disk is full".to_string(),
                                _ => e.to_string(),
                            };
                            if *named {
                                let _ = std::fs::remove_file(&*temp);
                            }
                            *cur = Current::Nothing;
                            self.fail(i, why.clone());
                            return Err(Error::Invalid(format!("writing a received file: {why}")));
                        }
                        hasher.update(bytes);
                        *written += bytes.len() as u64;
                        if *written - *flushed >= WRITEBACK {
                            copy::start_writeback(file, *flushed, *written - *flushed);
                            *flushed = *written;
                        }
                    }
                    Current::Link { target, hasher, .. } => {
                        if target.len() + bytes.len() > 64 * 1024 {
                            return Err(Error::Invalid("the sender sent an absurd symlink".into()));
                        }
                        target.extend_from_slice(bytes);
                        hasher.update(bytes);
                    }
                    Current::Nothing => {}
                }
                self.progress.bytes_done += bytes.len() as u64;
                self.progress.bytes_received += bytes.len() as u64;
                if let Some(bps) = self.throttle {
                    std::thread::sleep(Duration::from_secs_f64(bytes.len() as f64 / bps as f64));
                }
                self.report()?;
                if control.stopped().is_some() {
                    return Err(Error::Invalid("stopped".into()));
                }
                if control.paused() {
                    self.settle()?;
                    (self.on_progress)(&self.progress, true);
                    control
                        .check()
                        .map_err(|_| Error::Invalid("stopped".into()))?;
                }
            }
            Piece::End { hash } => match std::mem::replace(cur, Current::Nothing) {
                Current::File {
                    item,
                    file,
                    hasher,
                    temp,
                    named,
                    mode,
                    written,
                    ..
                } => {
                    let discard = |file: std::fs::File| {
                        drop(file);
                        if named {
                            let _ = std::fs::remove_file(&temp);
                        }
                    };
                    if *hasher.finalize().as_bytes() != hash {
                        discard(file);
                        let why = format!(
                            "{}: arrived damaged (BLAKE3 differs from the sender's); copy it again",
                            self.items[item].step.src.0.display()
                        );
                        self.fail(item, why);
                        return Ok(());
                    }
                    if let Some(why) = self.unexpected(&temp, &hash) {
                        discard(file);
                        self.fail(item, why);
                        return Ok(());
                    }
                    self.progress.verified += 1;
                    let mtime = self.items[item].step.mtime;
                    let finish = || -> std::io::Result<u64> {
                        use std::os::unix::fs::MetadataExt;
                        let m = file.metadata()?;
                        if m.mode() & 0o7777 != mode & 0o7777 {
                            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
                        }
                        if let Some(ns) = mtime {
                            file.set_modified(time_of(ns))?;
                        }
                        Ok(m.dev())
                    };
                    let dev = match finish() {
                        Ok(dev) => dev,
                        Err(e) => {
                            tracing::debug!(error = %e, "setting a received file's metadata");
                            0
                        }
                    };
                    let staged = copy::Staged::written(file, temp, named, dev);
                    self.hand_over(item, Waiting::File(staged), hash, written)?;
                }
                Current::Link {
                    item,
                    target,
                    hasher,
                } => {
                    if *hasher.finalize().as_bytes() != hash {
                        self.fail(item, "a symlink arrived damaged".into());
                        return Ok(());
                    }
                    let Some(temp) = self.temp(item) else {
                        return Ok(());
                    };
                    let _ = std::fs::remove_file(&temp);
                    let target = std::ffi::OsString::from_vec(target);
                    match std::os::unix::fs::symlink(&target, &temp) {
                        Ok(()) => self.hand_over(item, Waiting::Link(temp), hash, 0)?,
                        Err(e) => self.fail(item, format!("{}: {e}", temp.display())),
                    }
                }
                Current::Nothing => {}
            },
            Piece::Failed { index, reason } => {
                let Some(&item) = idx.get(index) else {
                    return Err(Error::Invalid(
                        "the sender named a file not asked for".into(),
                    ));
                };
                *cur = Current::Nothing;
                if let Some(temp) = self.temp(item) {
                    let _ = std::fs::remove_file(temp);
                }
                let why = format!("{}: {reason}", self.items[item].step.src.0.display());
                self.fail(item, why);
            }
        }
        Ok(())
    }

    /// Why a received file is not the content a fetch asked for, if it is not.
    fn unexpected(&self, temp: &Path, hash: &[u8; 32]) -> Option<String> {
        let want = self.params.expect.as_ref()?;
        if let Some(full) = &want.integrity
            && *full != crate::content::hex(hash)
        {
            return Some(format!(
                "the file sent is not content {} (its full hash differs: it changed there since it was indexed)",
                want.cas_id
            ));
        }
        match crate::content::cas_of_file(temp) {
            Ok(h) if h.id.cas_id == want.cas_id => None,
            Ok(h) => Some(format!(
                "the file sent is content {}, not {}",
                h.id.cas_id, want.cas_id
            )),
            Err(e) => Some(format!("hashing the received file: {e}")),
        }
    }

    fn fetch(&mut self, control: &Control) -> Result<bool> {
        let (idx, wants, mut partials) = self.wants();
        if wants.is_empty() {
            return Ok(false);
        }
        let transport = self.transport.clone();
        let (device, grant) = (self.params.device.clone(), self.params.grant.clone());
        let (publisher, thread) = Publisher::start(self.job)?;
        self.publisher = Some(publisher);
        let mut cur = Current::Nothing;
        let r = transport.fetch(&device, grant.as_deref(), &wants, &mut |piece| {
            self.take(&mut cur, &idx, &mut partials, piece, control)
        });
        // A file cut off midway: an unnamed one goes with its descriptor, a named one stays
        // for the next attempt to continue.
        drop(cur);
        let settled = self.settle();
        self.publisher = None;
        let _ = thread.join();
        settled?;
        r.map(|()| true)
    }

    /// Hard links, once the files they link to are in place.
    fn links(&mut self) {
        for i in 0..self.items.len() {
            let it = &self.items[i];
            if it.state != ItemState::Pending || it.step.op != StepOp::Link {
                continue;
            }
            let src = it.step.src.0.display().to_string();
            let target = it
                .step
                .link_to
                .and_then(|s| self.by_seq.get(&s))
                .map(|&t| &self.items[t])
                .filter(|t| t.state.is_done())
                .and_then(|t| t.step.dst.clone());
            let (Some(target), Some(dst), Some(temp)) = (target, it.step.dst.clone(), self.temp(i))
            else {
                self.fail(i, format!("{src}: what it links to was not copied"));
                continue;
            };
            let overwrite = it.step.overwrite;
            let _ = std::fs::remove_file(&temp);
            let r = std::fs::hard_link(&target.0, &temp)
                .map_err(|e| e.to_string())
                .and_then(|()| copy::publish(&temp, &dst.0, overwrite).map_err(|e| e.to_string()));
            match r {
                Ok(()) => {
                    self.progress.linked += 1;
                    self.progress.files_done += 1;
                    self.set(i, ItemState::Done, None);
                }
                Err(e) => self.fail(i, format!("{}: {e}", dst.0.display())),
            }
        }
    }

    /// Folders made get their source's modification time, deepest first (after what is in them).
    fn folder_times(&self) {
        let mut dirs: Vec<(&Path, i64)> = self
            .items
            .iter()
            .filter(|i| i.step.op == StepOp::Mkdir && i.state.is_done())
            .filter_map(|i| Some((i.step.dst.as_ref()?.0.as_path(), i.step.mtime?)))
            .collect();
        dirs.sort_by_key(|(d, _)| std::cmp::Reverse(d.as_os_str().len()));
        for (d, ns) in dirs {
            if let Ok(f) = std::fs::File::open(d) {
                let _ = f.set_modified(time_of(ns));
            }
        }
    }

    /// A move: the sources there go, when every item arrived verified.
    fn remove_sources(&mut self) {
        let total = self.items.len() as u64;
        if self.progress.failed > 0 {
            self.progress.sources_kept = total;
            push_error(
                &mut self.progress.errors,
                format!(
                    "{} items failed, so no source was removed on {}",
                    self.progress.failed, self.params.device_name
                ),
            );
            return;
        }
        let removals: Vec<Removal> = self
            .items
            .iter()
            .filter(|i| i.state.is_done())
            .filter_map(|i| {
                let kind = match i.step.op {
                    StepOp::Copy | StepOp::Link => ItemKind::File,
                    StepOp::Symlink => ItemKind::Symlink,
                    StepOp::Mkdir | StepOp::Merge => ItemKind::Dir,
                    _ => return None,
                };
                Some(Removal {
                    path: i.step.src.clone(),
                    kind,
                    size: i.step.size,
                    mtime_ns: i.step.mtime,
                })
            })
            .collect();
        for batch in removals.chunks(5000) {
            match self
                .transport
                .remove(&self.params.device, self.params.grant.as_deref(), batch)
            {
                Ok(r) => {
                    self.progress.sources_removed += r.removed;
                    self.progress.sources_kept += r.kept;
                    for e in r.errors {
                        push_error(&mut self.progress.errors, e);
                    }
                }
                Err(e) => {
                    self.progress.sources_kept += batch.len() as u64;
                    push_error(
                        &mut self.progress.errors,
                        format!("removing the sources: {e}"),
                    );
                }
            }
        }
    }

    fn run(&mut self, control: &Control) -> Result<std::result::Result<(), Stop>> {
        let mut backoff = Duration::from_millis(500);
        let mut refused_since: Option<Instant> = None;
        loop {
            if let Some(stop) = control.stopped() {
                self.flush()?;
                return Ok(Err(stop));
            }
            self.make_dirs();
            self.flush()?;
            let r = self.fetch(control);
            self.flush()?;
            if let Some(stop) = control.stopped() {
                return Ok(Err(stop));
            }
            let e = match r {
                Ok(false) => break,
                Ok(true) => {
                    self.progress.waiting = None;
                    self.progress.pull = PullPhase::Receiving;
                    backoff = Duration::from_millis(500);
                    refused_since = None;
                    continue;
                }
                Err(e) => e,
            };
            let retry = match &e {
                Error::Unreachable(_) => true,
                // A sender restarting has not granted its push again yet.
                Error::Forbidden(_) | Error::NotFound(_) if self.params.grant.is_some() => {
                    refused_since.get_or_insert_with(Instant::now).elapsed() < GRANT_PATIENCE
                }
                _ => false,
            };
            if !retry {
                return Err(e);
            }
            self.progress.pull = PullPhase::Waiting;
            self.progress.waiting = Some(e.to_string());
            self.progress.resumes += 1;
            (self.on_progress)(&self.progress, true);
            store_progress(self.lib, self.job, &self.progress)?;
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if let Some(stop) = control.stopped() {
                    return Ok(Err(stop));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        self.progress.pull = PullPhase::Receiving;
        self.progress.waiting = None;
        self.links();
        self.flush()?;
        self.folder_times();
        if self.params.move_source {
            self.progress.pull = PullPhase::RemovingSources;
            (self.on_progress)(&self.progress, true);
            self.remove_sources();
        }
        self.progress.pull = PullPhase::UpdatingIndex;
        (self.on_progress)(&self.progress, true);
        let locs = fileops::locations_touched(self.lib, &self.items);
        fileops::update_index(self.lib, &self.items, OpKind::Copy, control);
        fileops::release(self.lib, &locs);
        self.transport.tell_done(
            &self.params.device,
            self.params.grant.as_deref(),
            &self.params.sources,
            &summary(&self.progress, self.params),
        );
        self.progress.pull = PullPhase::Done;
        Ok(Ok(()))
    }
}

/// A verified file or symlink waiting for its name.
enum Waiting {
    File(copy::Staged),
    /// A symlink, made at its temporary name.
    Link(PathBuf),
}

/// One item handed to the publisher.
struct Ready {
    item: usize,
    what: Waiting,
    dst: PathBuf,
    overwrite: bool,
    /// BLAKE3 of the bytes and their length, both ends agreeing.
    hash: [u8; 32],
    len: u64,
}

enum Handoff {
    Ready(Ready),
    /// Sync and name what is waiting now (a pause, the end of a fetch).
    Flush,
}

/// What the publisher did with an item.
struct Placed {
    item: usize,
    dst: PathBuf,
    result: std::result::Result<(), CopyError>,
}

/// The thread that makes received files durable and names them, so that receiving goes on
/// while a batch is synced: the local copy's publisher, for files that arrive over the network.
struct Publisher {
    hand: crossbeam_channel::Sender<Handoff>,
    placed: crossbeam_channel::Receiver<Placed>,
}

impl Publisher {
    fn start(job: i64) -> Result<(Publisher, std::thread::JoinHandle<()>)> {
        // Each unnamed file waiting holds a descriptor: at most `batch` in the batch and as
        // many on their way to it.
        let batch = staged_max();
        let (hand, rx) = crossbeam_channel::bounded(batch);
        let (tx, placed) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name(format!("sd-receive-{job}"))
            .spawn(move || publish(rx, tx, batch))
            .map_err(|e| Error::io("<publisher thread>", e))?;
        Ok((Publisher { hand, placed }, thread))
    }
}

/// The publisher's loop: every batch ([`staged_max`] files, [`BATCH_BYTES`], [`BATCH_WAIT`]
/// after its first, or when asked) syncs each filesystem once, then names its files without
/// replacing anything (unless planned so). A name taken meanwhile by exactly these bytes — this
/// job's own, placed just before an interruption kept it from being recorded — counts as done.
fn publish(
    rx: crossbeam_channel::Receiver<Handoff>,
    tx: crossbeam_channel::Sender<Placed>,
    batch: usize,
) {
    use crossbeam_channel::RecvTimeoutError;
    let mut ready: Vec<Ready> = Vec::new();
    let mut bytes = 0u64;
    let mut since = Instant::now();
    loop {
        let next = if ready.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(Duration::from_millis(100))
        };
        let (open, now) = match next {
            Ok(Handoff::Ready(r)) => {
                if ready.is_empty() {
                    since = Instant::now();
                }
                bytes += r.len;
                ready.push(r);
                (true, false)
            }
            Ok(Handoff::Flush) => (true, true),
            Err(RecvTimeoutError::Timeout) => (true, false),
            Err(RecvTimeoutError::Disconnected) => (false, true),
        };
        let due =
            now || ready.len() >= batch || bytes >= BATCH_BYTES || since.elapsed() >= BATCH_WAIT;
        if due && !ready.is_empty() {
            sync_filesystems(ready.iter().filter_map(|r| {
                let dev = match &r.what {
                    Waiting::File(s) => s.dev,
                    Waiting::Link(t) => {
                        use std::os::unix::fs::MetadataExt;
                        std::fs::symlink_metadata(t).map(|m| m.dev()).unwrap_or(0)
                    }
                };
                Some((dev, r.dst.parent()?))
            }));
            for r in ready.drain(..) {
                let result = match r.what {
                    Waiting::File(staged) => match copy::place(staged, &r.dst, r.overwrite) {
                        Err(CopyError::Exists) if holds(&r.dst, &r.hash, r.len) => Ok(()),
                        other => other,
                    },
                    Waiting::Link(temp) => copy::publish(&temp, &r.dst, r.overwrite),
                };
                let placed = Placed {
                    item: r.item,
                    dst: r.dst,
                    result,
                };
                if tx.send(placed).is_err() {
                    return;
                }
            }
            bytes = 0;
        }
        if !open {
            return;
        }
    }
}

/// What the temporary at `temp` holds of an earlier run: its length and running hash.
fn partial(temp: &Path) -> Option<Partial> {
    let f = std::fs::File::open(temp).ok()?;
    let len = f.metadata().ok()?.len();
    if len == 0 {
        return None;
    }
    let mut hasher = blake3::Hasher::new();
    super::hash_prefix(&f, len, &mut hasher).ok()?;
    Some(Partial { len, hasher })
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn summary(p: &PullProgress, params: &PullJob) -> serde_json::Value {
    serde_json::json!({
        "from": params.device_name,
        "files": p.files_done,
        "bytes": p.bytes_done,
        "verified": p.verified,
        "symlinks": p.symlinks,
        "linked": p.linked,
        "dirs_made": p.dirs_made,
        "skipped": p.skipped,
        "failed": p.failed,
        "bytes_resumed": p.bytes_resumed,
        "sources_removed": p.sources_removed,
        "sources_kept": p.sources_kept,
        "errors": p.errors,
    })
}

/// Debug knob for tests: `SPACEDRIVE_DEBUG_RECEIVE_BPS` caps how fast a receiving job takes
/// bytes, so a test can stop it midway.
fn debug_throttle() -> Option<u64> {
    std::env::var("SPACEDRIVE_DEBUG_RECEIVE_BPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&b| b > 0)
}

/// The receiving job kind.
pub struct PullKind;

impl JobKind for PullKind {
    const KIND: &'static str = "transfer.pull";
    const TAG: &'static str = "transfer_pull";
    type Params = PullJob;
    type Progress = PullProgress;

    fn had_started(p: &PullProgress) -> bool {
        p.bytes_done > 0 || p.files_done > 0 || p.dirs_made > 0
    }

    fn failures(p: &PullProgress) -> Option<String> {
        p.failures()
    }

    fn run(
        lib: &Arc<Library>,
        id: i64,
        params: &PullJob,
        control: &Control,
        progress: &(dyn Fn(&PullProgress, bool) + Sync),
    ) -> Result<std::result::Result<Option<String>, Stop>> {
        let transport = match wait_transport(lib, control) {
            Ok(t) => t,
            Err(stop) => return Ok(Err(stop)),
        };
        let (items, stored) = {
            let conn = lib.reader()?;
            let stored: PullProgress = crate::runner::stored_progress(&conn, id)?;
            (load_items(&conn, id)?, stored)
        };
        // Temporaries of an earlier run may hold bytes (it may have stopped before storing
        // any progress, but not before the first item or folder was recorded).
        let resumed = PullKind::had_started(&stored)
            || items
                .iter()
                .any(|i| !matches!(i.state, ItemState::Pending | ItemState::Skipped));
        let by_seq = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.step.seq, i))
            .collect();
        let mut prog = PullProgress {
            from: params.device_name.clone(),
            ..PullProgress::default()
        };
        for it in &items {
            match it.step.op {
                StepOp::Copy | StepOp::Link => {
                    prog.files_total += 1;
                    prog.bytes_total += if it.step.op == StepOp::Copy {
                        it.step.size
                    } else {
                        0
                    };
                    if it.state.is_done() {
                        prog.files_done += 1;
                        if it.step.op == StepOp::Copy {
                            prog.bytes_done += it.step.size;
                        }
                    }
                }
                StepOp::Skip => prog.skipped += 1,
                _ => {}
            }
            if it.state == ItemState::Failed {
                prog.failed += 1;
            }
        }
        let locs = fileops::locations_touched(lib, &items);
        fileops::hold(lib, &locs);
        let mut r = Receiver {
            lib,
            job: id,
            params,
            transport,
            items,
            by_seq,
            progress: prog,
            on_progress: progress,
            updates: Vec::new(),
            publisher: None,
            in_flight: 0,
            caps: copy::Capabilities::default(),
            resumed,
            throttle: debug_throttle(),
            stored_at: Instant::now(),
        };
        let outcome = r.run(control);
        if !matches!(outcome, Ok(Ok(()))) {
            fileops::release(lib, &locs);
        }
        if let Ok(Err(Stop::Cancel)) = &outcome {
            // A cancelled copy leaves nothing half-received behind.
            for i in 0..r.items.len() {
                if let Some(t) = r.temp(i) {
                    let _ = std::fs::remove_file(t);
                }
            }
        }
        match outcome? {
            Err(stop) => Ok(Err(stop)),
            Ok(()) => {
                store_progress(lib, id, &r.progress)?;
                progress(&r.progress, true);
                Ok(Ok(r.progress.failures()))
            }
        }
    }

    fn finish(tx: &rusqlite::Transaction<'_>, end: &End<'_, PullJob>) -> Result<()> {
        let p = end.params;
        let progress: PullProgress = crate::runner::stored_progress(tx, end.id)?;
        let mut summary = summary(&progress, p);
        if let Some(e) = end.error {
            summary["error"] = serde_json::Value::String(e.to_owned());
        }
        let outcome = Outcome::of_job(end.state);
        audit::append(
            tx,
            end.device_row,
            &audit::Record {
                kind: fileops::audit_kind(
                    if p.move_source {
                        OpKind::Move
                    } else {
                        OpKind::Copy
                    },
                    false,
                )
                .to_owned(),
                action: p.action.clone(),
                targets: p.targets.clone(),
                outcome,
                summary,
                undo: None,
                job_id: Some(end.id),
                undoes: None,
                created_at: p.committed_at,
            },
        )?;
        Ok(())
    }
}
