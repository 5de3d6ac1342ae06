//! The daemon: owns a [`Node`], serves the API on a Unix socket (mode 0600), and stops cleanly
//! on `daemon.stop`, SIGTERM or SIGINT, leaving running jobs resumable.

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sd_core::control::Control;
use sd_core::events::Event;
use sd_core::jobs;
use sd_core::library::Library;
use sd_core::location::{self, AddOptions};
use sd_core::node::Slot;
use sd_core::{Node, index, query};
use serde_json::{Value, json};

use crate::api::{self, ApiError, Request};

/// Where the daemon of `data_dir` listens.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("daemon.sock")
}

struct Daemon {
    node: Node,
    started: Instant,
    socket: PathBuf,
    /// Set once a stop began; a second signal then exits at once.
    stopping: AtomicBool,
}

/// How long a stop waits for libraries to close before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(4);

/// Runs the daemon in the foreground until it is told to stop.
pub fn run(data_dir: &Path) -> Result<()> {
    // Signals are taken by a dedicated thread; block them everywhere else first.
    // The signal thread starts before the node opens: a daemon that is told to stop while it is
    // still starting (resuming jobs, setting up watches) stops too.
    let signals = block_signals();
    let ready: Arc<OnceLock<Arc<Daemon>>> = Arc::default();
    let r = ready.clone();
    std::thread::Builder::new()
        .name("sd-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            loop {
                // SAFETY: `signals` is a valid, initialised signal set and `sig` a valid out-pointer.
                if unsafe { libc::sigwait(&signals, &mut sig) } != 0 {
                    continue;
                }
                tracing::info!(signal = sig, "stopping on signal");
                match r.get() {
                    // A second signal while stopping: stop at once (jobs resume from their
                    // last checkpoint, as after a crash).
                    Some(d) if !d.stopping.swap(true, Ordering::SeqCst) => {
                        let d = d.clone();
                        std::thread::spawn(move || d.stop());
                    }
                    _ => std::process::exit(0),
                }
            }
        })?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", data_dir.display()))?;
    let node = Node::open(data_dir)?;
    let socket = socket_path(data_dir);
    // We hold the daemon lock, so a socket file left here is a stale one from a killed daemon.
    let _ = std::fs::remove_file(&socket);
    // The data folder is 0700, so nobody else can reach the socket before it is made 0600.
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let daemon = Arc::new(Daemon {
        node,
        started: Instant::now(),
        socket,
        stopping: AtomicBool::new(false),
    });
    let _ = ready.set(daemon.clone());
    tracing::info!(pid = std::process::id(), socket = %daemon.socket.display(), "daemon ready");

    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let d = daemon.clone();
                std::thread::Builder::new()
                    .name("sd-conn".into())
                    .spawn(move || {
                        if let Err(e) = d.serve(stream) {
                            tracing::debug!(error = %e, "connection ended");
                        }
                    })?;
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
    Ok(())
}

/// Writes one JSON line with a single write (the socket is unbuffered; formatting straight onto it
/// would cost a syscall per token).
fn send(out: &mut UnixStream, v: &Value) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(v)?;
    buf.push(b'\n');
    out.write_all(&buf)
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain old data (all-zero is valid, and sigemptyset initialises it);
    // the calls get valid pointers to it, and pthread_sigmask accepts a null old-set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn err(e: &sd_core::Error) -> ApiError {
    ApiError {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

impl Daemon {
    /// Closes the libraries (jobs stop at a checkpoint) and exits. Whatever a job or the watcher
    /// is doing, the process is gone within [`STOP_GRACE`]: what did not reach a checkpoint by
    /// then resumes from the last one, exactly as after a crash.
    fn stop(self: &Arc<Self>) {
        self.stopping.store(true, Ordering::SeqCst);
        // First, so no new client connects to a daemon on its way out (it starts a new one).
        let _ = std::fs::remove_file(&self.socket);
        let (done_tx, done) = std::sync::mpsc::channel();
        let d = self.clone();
        let _ = std::thread::Builder::new()
            .name("sd-shutdown".into())
            .spawn(move || {
                d.node.shutdown();
                let _ = done_tx.send(());
            });
        if done.recv_timeout(STOP_GRACE).is_err() {
            tracing::warn!(
                "libraries did not close within {} s; exiting anyway (jobs resume from their last checkpoint)",
                STOP_GRACE.as_secs()
            );
        }
        tracing::info!("daemon stopped");
        std::process::exit(0);
    }

    fn serve(self: &Arc<Self>, stream: UnixStream) -> Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        let req: Request = match api::read_request(&mut reader) {
            Ok(r) => r,
            Err(e) => {
                let body = json!({"error": {"code": "bad_request", "message": e}});
                send(&mut out, &body)?;
                return Ok(());
            }
        };
        match req {
            Request::Subscribe { library, job } => self.subscribe(out, library.as_deref(), job),
            Request::Stop => {
                send(&mut out, &json!({"ok": {"stopping": true}}))?;
                drop(out);
                self.stop();
                Ok(())
            }
            req => {
                let body = match self.handle(req) {
                    Ok(v) => json!({ "ok": v }),
                    Err(e) => json!({ "error": e }),
                };
                send(&mut out, &body)?;
                Ok(())
            }
        }
    }

    fn lib(&self, sel: Option<&str>) -> Result<Arc<Library>, ApiError> {
        self.node.library(sel).map_err(|e| err(&e))
    }

    /// The library an action is recorded in. A file operation on a fresh machine creates the
    /// default library (its jobs and audit log live there), as `location add` does.
    fn lib_for(
        &self,
        sel: Option<&str>,
        action: &sd_core::actions::Action,
    ) -> Result<Arc<Library>, ApiError> {
        use sd_core::actions::Action;
        let file_op = matches!(
            action,
            Action::Copy { .. }
                | Action::Move { .. }
                | Action::Rename { .. }
                | Action::Delete { .. }
        );
        if file_op {
            return self
                .node
                .library_or_create(sel, "My Library")
                .map(|(lib, _)| lib)
                .map_err(|x| err(&x));
        }
        self.lib(sel)
    }

    fn handle(&self, req: Request) -> Result<Value, ApiError> {
        let to = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| ApiError {
                code: "internal".into(),
                message: e.to_string(),
            })
        };
        let e = |e: sd_core::Error| err(&e);
        match req {
            Request::Status => to(serde_json::to_value(api::Status {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").into(),
                data_dir: self.node.data_dir.clone().into(),
                device: self.node.device.clone(),
                libraries: self.node.slots().len(),
                uptime_ms: self.started.elapsed().as_millis() as u64,
            })),
            Request::LibraryCreate { name } => {
                let lib = self.node.create_library(&name).map_err(e)?;
                to(serde_json::to_value(self.library_info(&lib)?))
            }
            Request::LibraryList => to(serde_json::to_value(self.library_list())),
            Request::LibraryInfo { library } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(self.library_info(&lib)?))
            }
            Request::LibraryRename { library, new_name } => {
                let lib = self.node.rename_library(&library, &new_name).map_err(e)?;
                to(serde_json::to_value(self.library_info(&lib)?))
            }
            Request::LibraryDelete { library } => {
                let name = self.node.delete_library(&library).map_err(e)?;
                Ok(json!({ "deleted": name }))
            }
            Request::LibraryUse { library } => {
                let lib = self.node.use_library(&library).map_err(e)?;
                to(serde_json::to_value(self.library_info(&lib)?))
            }
            Request::LocationAdd {
                library,
                path,
                name,
                mode,
                rules,
                watch,
            } => {
                // Check the folder before anything is created on its behalf (the default library).
                match std::fs::metadata(&path.0) {
                    Ok(md) if md.is_dir() => {}
                    Ok(_) => {
                        return Err(err(&sd_core::Error::Invalid(format!(
                            "{} is not a folder; a location is a folder",
                            path.0.display()
                        ))));
                    }
                    Err(x) => {
                        return Err(err(&sd_core::Error::Invalid(format!(
                            "cannot add {} as a location: {x}",
                            path.0.display()
                        ))));
                    }
                }
                let (lib, created) = self
                    .node
                    .library_or_create(library.as_deref(), "My Library")
                    .map_err(e)?;
                let created_library = created.then(|| lib.name());
                let opts = AddOptions {
                    name,
                    mode,
                    rules,
                    watch,
                };
                let (location, job_id) = self.node.add_location(&lib, &path.0, opts).map_err(e)?;
                // Link it to its volume now rather than at the watcher's next sync.
                if let Ok(volumes) = sd_core::volume::detect() {
                    let _ = sd_core::volume::track(&lib, &volumes);
                }
                to(serde_json::to_value(api::Started {
                    library_id: lib.id.to_string(),
                    location,
                    job_id,
                    new_job: true,
                    created_library,
                }))
            }
            Request::LocationList { library } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(location::list(&lib).map_err(e)?))
            }
            Request::LocationInfo { library, id } => {
                let lib = self.lib(library.as_deref())?;
                let location = location::get(&lib, id).map_err(e)?;
                let conn = lib.reader().map_err(e)?;
                let count = |sql: &str| -> Result<u64, ApiError> {
                    conn.query_row(sql, [id], |r| r.get::<_, i64>(0))
                        .map(|n| n as u64)
                        .map_err(|x| e(x.into()))
                };
                let symlinks =
                    count("SELECT count(*) FROM entries WHERE location_id = ?1 AND kind = 2")?;
                let entries = count("SELECT count(*) FROM entries WHERE location_id = ?1")?;
                let last_job = location.last_job_id.and_then(|j| jobs::get(&lib, j).ok());
                let watcher = self.node.watch_state(lib.id, id);
                to(serde_json::to_value(api::LocationDetail {
                    location,
                    symlinks,
                    entries,
                    last_job,
                    watcher,
                }))
            }
            Request::LocationRescan { library, id } => {
                let lib = self.lib(library.as_deref())?;
                let (job_id, new_job) = location::rescan(&lib, id).map_err(e)?;
                let location = location::get(&lib, id).map_err(e)?;
                to(serde_json::to_value(api::Started {
                    library_id: lib.id.to_string(),
                    location,
                    job_id,
                    new_job,
                    created_library: None,
                }))
            }
            Request::LocationUpdate {
                library,
                id,
                changes,
            } => {
                let lib = self.lib(library.as_deref())?;
                let (location, rescan) =
                    location::update(&lib, id, changes, &self.node.data_dir).map_err(e)?;
                let (now, after) = match rescan {
                    Some(location::RulesRescan::Now { job }) => (Some(job), None),
                    Some(location::RulesRescan::After { job }) => (None, Some(job)),
                    None => (None, None),
                };
                Ok(json!({ "location": location, "rescan_job": now, "rescan_after_job": after }))
            }
            Request::LocationRemove { library, id } => {
                let lib = self.lib(library.as_deref())?;
                let removed = location::remove(&lib, id).map_err(e)?;
                Ok(json!({ "location_id": id, "entries_removed": removed }))
            }
            Request::EntriesList {
                library,
                path,
                recursive,
                sort,
                limit,
            } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    query::list(&lib, &path.0, recursive, sort, limit).map_err(e)?,
                ))
            }
            Request::QuickScan { path, scope, rules } => {
                let control = Control::default();
                to(serde_json::to_value(
                    index::ephemeral::quick_scan(&path.0, scope, rules, &control).map_err(e)?,
                ))
            }
            Request::Dupes {
                library,
                path,
                min_size,
            } => match path {
                Some(p) => {
                    // Not read from the library, but a library named that does not exist is
                    // still an error, never silently ignored.
                    if library.is_some() {
                        self.lib(library.as_deref())?;
                    }
                    let control = Control::default();
                    to(serde_json::to_value(
                        sd_core::dupes::in_path(&p.0, min_size, &control).map_err(e)?,
                    ))
                }
                None => {
                    let lib = self.lib(library.as_deref())?;
                    to(serde_json::to_value(
                        sd_core::dupes::in_library(&lib, min_size).map_err(e)?,
                    ))
                }
            },
            Request::FileInfo { library, path } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    sd_core::dupes::file_info(&lib, &path.0).map_err(e)?,
                ))
            }
            Request::Verify { library, path } => {
                let lib = self.node.library(library.as_deref()).ok();
                to(serde_json::to_value(
                    sd_core::dupes::verify(lib.as_deref(), &path.0).map_err(e)?,
                ))
            }
            Request::Search { library, query } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    sd_core::search::search(&lib, &query).map_err(e)?,
                ))
            }
            Request::TagList { library } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    sd_core::organise::list(&lib).map_err(e)?,
                ))
            }
            Request::Preview { library, action } => {
                let lib = self.lib_for(library.as_deref(), &action)?;
                to(serde_json::to_value(
                    sd_core::actions::preview(&lib, &action).map_err(e)?,
                ))
            }
            Request::Action { library, action } => {
                let lib = self.lib_for(library.as_deref(), &action)?;
                sd_core::actions::commit(&lib, action).map_err(e)
            }
            Request::AuditList { library, limit } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    sd_core::audit::list(&lib, limit.unwrap_or(50)).map_err(e)?,
                ))
            }
            Request::AuditVerify { library } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    sd_core::audit::verify(&lib).map_err(e)?,
                ))
            }
            Request::VolumeList { library } => {
                let mounted = sd_core::volume::detect().map_err(e)?;
                let tracked = match self.node.library(library.as_deref()) {
                    Ok(lib) => sd_core::volume::tracked(&lib).map_err(e)?,
                    Err(_) => Vec::new(),
                };
                to(serde_json::to_value(api::Volumes { mounted, tracked }))
            }
            Request::SpeedTest {
                library,
                path,
                size_mb,
            } => {
                let speed = sd_core::volume::speed_test(&path.0, size_mb.clamp(1, 4096) << 20)
                    .map_err(e)?;
                if let Ok(lib) = self.node.library(library.as_deref())
                    && let Ok(volumes) = sd_core::volume::detect()
                    && let Some(fp) = sd_core::volume::volume_of(&volumes, &speed.dir.0)
                        .and_then(|v| v.fingerprint)
                {
                    sd_core::volume::record_speed(&lib, &fp, &speed).map_err(e)?;
                }
                to(serde_json::to_value(speed))
            }
            Request::JobList { library, limit } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(
                    jobs::list(&lib, limit.unwrap_or(50)).map_err(e)?,
                ))
            }
            Request::JobInfo { library, id } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(jobs::get(&lib, id).map_err(e)?))
            }
            Request::JobPause { library, id } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(jobs::pause(&lib, id).map_err(e)?))
            }
            Request::JobResume { library, id } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(jobs::resume(&lib, id).map_err(e)?))
            }
            Request::JobCancel { library, id } => {
                let lib = self.lib(library.as_deref())?;
                to(serde_json::to_value(jobs::cancel(&lib, id).map_err(e)?))
            }
            Request::Stop | Request::Subscribe { .. } => unreachable!("handled in serve"),
        }
    }

    fn library_list(&self) -> Vec<api::LibrarySummary> {
        let default = self.node.default_library();
        self.node
            .slots()
            .into_iter()
            .map(|s| match s {
                Slot::Open(l) => api::LibrarySummary {
                    id: Some(l.id.to_string()),
                    name: l.name(),
                    path: sd_core::names::JsonPath(l.dir().to_path_buf()),
                    default: default == Some(l.id)
                        || (default.is_none() && self.node.libraries().len() == 1),
                    status: "open".into(),
                    error: None,
                    locations: location::list(&l).ok().map(|v| v.len()),
                },
                Slot::Unavailable(u) => api::LibrarySummary {
                    id: None,
                    name: u.name,
                    path: sd_core::names::JsonPath(u.dir),
                    default: false,
                    status: u.code,
                    error: Some(u.reason),
                    locations: None,
                },
            })
            .collect()
    }

    fn library_info(&self, lib: &Library) -> Result<api::LibraryInfo, ApiError> {
        let e = |x: sd_core::Error| err(&x);
        let config = lib.config().map_err(e)?;
        let conn = lib.reader().map_err(e)?;
        let q = |sql: &str| {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map_err(|x| e(x.into()))
        };
        Ok(api::LibraryInfo {
            id: lib.id.to_string(),
            name: lib.name(),
            path: sd_core::names::JsonPath(lib.dir().to_path_buf()),
            created_at: config.created_at,
            schema_version: q("PRAGMA user_version")?,
            config_version: config.version,
            locations: q("SELECT count(*) FROM locations")? as usize,
            entries: q("SELECT count(*) FROM entries")? as u64,
            disk_bytes: lib.disk_bytes(),
            jobs_running: jobs::running_ids(lib).len(),
            contents: q("SELECT count(*) FROM content_identities")? as u64,
            intelligence_queue: q("SELECT count(*) FROM intelligence_queue")? as u64,
        })
    }

    fn subscribe(
        &self,
        mut out: UnixStream,
        library: Option<&str>,
        job: Option<i64>,
    ) -> Result<()> {
        let rx = self.node.bus.subscribe();
        let write = |out: &mut UnixStream, v: Value| send(out, &v);
        // Snapshot first, so a client never misses the state a job was in when it connected.
        let libs: Vec<Arc<Library>> = if library.is_some() || job.is_some() {
            match self.lib(library) {
                Ok(l) => vec![l],
                Err(e) => {
                    write(&mut out, json!({ "error": e }))?;
                    return Ok(());
                }
            }
        } else {
            self.node.libraries()
        };
        let lib_filter: Option<uuid::Uuid> =
            (library.is_some() || job.is_some()).then(|| libs[0].id);
        for lib in &libs {
            let snapshot: Vec<jobs::JobInfo> = match job {
                Some(id) => match jobs::get(lib, id) {
                    Ok(j) => vec![j],
                    Err(e) => {
                        write(&mut out, json!({ "error": err(&e) }))?;
                        return Ok(());
                    }
                },
                None => jobs::list(lib, 200)?
                    .into_iter()
                    .filter(|j| !j.state.is_final())
                    .collect(),
            };
            for j in snapshot {
                let done = job.is_some() && j.state.is_final();
                write(&mut out, json!({ "event": Event::Job(j) }))?;
                if done {
                    return Ok(());
                }
            }
        }
        loop {
            match rx.recv_timeout(Duration::from_secs(2)) {
                Ok(Event::Job(j)) => {
                    if lib_filter.is_some_and(|l| l != j.library_id)
                        || job.is_some_and(|id| id != j.id)
                    {
                        continue;
                    }
                    let done = job.is_some() && j.state.is_final();
                    write(&mut out, json!({ "event": Event::Job(j) }))?;
                    if done {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    // A job may have ended between snapshot and subscription; re-check it.
                    if let Some(id) = job
                        && let Ok(j) = jobs::get(&libs[0], id)
                        && j.state.is_final()
                    {
                        write(&mut out, json!({ "event": Event::Job(j) }))?;
                        return Ok(());
                    }
                    // Heartbeat, so a vanished client is noticed.
                    write(&mut out, json!({ "heartbeat": true }))?;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }
}
