//! The receiving job: runs a pull's stored plan (see the module above), fetching files into
//! temporary names, verifying and then naming them, resuming from what its temporaries hold.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Piece, Removal, Transport, Want, push_error, wait_transport};
use crate::audit::{self, Outcome};
use crate::control::{Control, Stop};
use crate::fileops::copy::{self, CopyError};
use crate::fileops::run::{Item, ItemState, load_items};
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
/// Verified files waiting for their names: synced and renamed in batches this big.
const BATCH_FILES: usize = 512;
const BATCH_BYTES: u64 = 256 << 20;

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
        temp: PathBuf,
        mode: u32,
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
    /// Verified temporaries waiting for their names.
    ready: Vec<(usize, PathBuf)>,
    ready_bytes: u64,
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
        for (i, it) in self.items.iter().enumerate() {
            if it.state != ItemState::Pending
                || !matches!(it.step.op, StepOp::Copy | StepOp::Symlink)
            {
                continue;
            }
            // An item whose folder failed has nowhere to go.
            let parent_ok = it
                .step
                .dst
                .as_ref()
                .and_then(|d| d.0.parent())
                .is_some_and(Path::is_dir);
            if !parent_ok {
                continue;
            }
            let mut want = Want {
                path: it.step.src.clone(),
                offset: 0,
                prefix: None,
            };
            if it.step.op == StepOp::Copy
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

    /// Gives the verified temporaries their names, after one sync of their filesystems.
    fn publish_ready(&mut self) -> Result<()> {
        if self.ready.is_empty() {
            return Ok(());
        }
        let ready = std::mem::take(&mut self.ready);
        self.ready_bytes = 0;
        let mut synced: Vec<u64> = Vec::new();
        for (_, temp) in &ready {
            use std::os::unix::fs::MetadataExt;
            let Some(dir) = temp.parent() else { continue };
            let Ok(m) = std::fs::metadata(dir) else {
                continue;
            };
            if !synced.contains(&m.dev()) {
                synced.push(m.dev());
                if let Err(e) = copy::sync_fs(dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "syncing received files");
                }
            }
        }
        for (i, temp) in ready {
            let step = &self.items[i].step;
            let Some(dst) = step.dst.clone() else {
                continue;
            };
            match copy::publish(&temp, &dst.0, step.overwrite) {
                Ok(()) => {
                    if step.op == StepOp::Symlink {
                        self.progress.symlinks += 1;
                    } else {
                        self.progress.files_done += 1;
                    }
                    self.set(i, ItemState::Done, None);
                }
                Err(CopyError::Exists) => self.fail(
                    i,
                    format!("{} appeared meanwhile: not replaced", dst.0.display()),
                ),
                Err(e) => self.fail(i, e.to_string()),
            }
        }
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
                let Some(temp) = self.temp(i) else {
                    return Ok(());
                };
                let partial = partials.remove(&index);
                let opened = (|| -> std::io::Result<(std::fs::File, blake3::Hasher)> {
                    match partial {
                        Some(p) if offset > 0 && offset == p.len => {
                            let mut f = std::fs::OpenOptions::new().write(true).open(&temp)?;
                            f.set_len(offset)?;
                            f.seek(std::io::SeekFrom::Start(offset))?;
                            Ok((f, p.hasher))
                        }
                        _ => Ok((std::fs::File::create(&temp)?, blake3::Hasher::new())),
                    }
                })();
                match opened {
                    Ok((file, hasher)) => {
                        if offset > 0 {
                            self.progress.bytes_resumed += offset;
                            self.progress.bytes_done += offset;
                        }
                        *cur = Current::File {
                            item: i,
                            file,
                            hasher,
                            temp,
                            mode,
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
                        item, file, hasher, ..
                    } => {
                        if let Err(e) = file.write_all(bytes) {
                            let i = *item;
                            let why = match e.raw_os_error() {
                                Some(libc::ENOSPC) => "the disk is full".to_string(),
                                _ => e.to_string(),
                            };
                            if let Some(t) = self.temp(i) {
                                let _ = std::fs::remove_file(t);
                            }
                            *cur = Current::Nothing;
                            self.fail(i, why.clone());
                            return Err(Error::Invalid(format!("writing a received file: {why}")));
                        }
                        hasher.update(bytes);
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
                    self.publish_ready()?;
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
                    mode,
                } => {
                    if *hasher.finalize().as_bytes() != hash {
                        drop(file);
                        let _ = std::fs::remove_file(&temp);
                        let why = format!(
                            "{}: arrived damaged (BLAKE3 differs from the sender's); copy it again",
                            self.items[item].step.src.0.display()
                        );
                        self.fail(item, why);
                        return Ok(());
                    }
                    if let Some(why) = self.unexpected(&temp, &hash) {
                        drop(file);
                        let _ = std::fs::remove_file(&temp);
                        self.fail(item, why);
                        return Ok(());
                    }
                    self.progress.verified += 1;
                    let step = &self.items[item].step;
                    let mtime = step.mtime;
                    let size = step.size;
                    let finish = || -> std::io::Result<()> {
                        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
                        if let Some(ns) = mtime {
                            file.set_modified(time_of(ns))?;
                        }
                        Ok(())
                    };
                    if let Err(e) = finish() {
                        tracing::debug!(error = %e, "setting a received file's metadata");
                    }
                    self.ready.push((item, temp));
                    self.ready_bytes += size;
                    if self.ready.len() >= BATCH_FILES || self.ready_bytes >= BATCH_BYTES {
                        self.publish_ready()?;
                    }
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
                        Ok(()) => self.ready.push((item, temp)),
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
        let mut cur = Current::Nothing;
        let r = transport.fetch(&device, grant.as_deref(), &wants, &mut |piece| {
            self.take(&mut cur, &idx, &mut partials, piece, control)
        });
        self.publish_ready()?;
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
        let items = load_items(&lib.reader()?, id)?;
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
            ready: Vec::new(),
            ready_bytes: 0,
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
