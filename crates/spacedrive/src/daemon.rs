//! The daemon: owns a [`Node`], serves the API on a Unix socket (mode 0600) and over HTTP on
//! loopback ([`crate::http`]: the web UI), and stops cleanly on `daemon.stop`, SIGTERM or
//! SIGINT, leaving running jobs resumable.
//!
//! This is framing only: a request is one line read with [`sd_api::read_request`], answered by
//! [`sd_api::handle`] as one line `{"ok": …}` or `{"error": …}`, or — `events.subscribe` — by the
//! lines of [`sd_api::subscribe`]. What a request does is decided in sd-api and sd-core.

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use sd_api::{ApiError, Request, Response};
use sd_core::Node;
use serde::Serialize;

/// Where the daemon of `data_dir` listens.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("daemon.sock")
}

struct Daemon {
    node: Arc<Node>,
    /// The network service; `None` when it could not start (the reason is logged).
    net: Option<Arc<crate::network::NetService>>,
    socket: PathBuf,
    /// Set once a stop began; a second signal then exits at once.
    stopping: AtomicBool,
}

/// How long a stop waits for libraries to close before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(4);

/// Runs the daemon in the foreground until it is told to stop.
pub fn run(data_dir: &Path, http: crate::http::Settings) -> Result<()> {
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
    let node = Arc::new(Node::open(data_dir)?);
    let net = match crate::network::NetService::start(node.clone()) {
        Ok(n) => {
            let n = Arc::new(n);
            // Transfers between devices go through it (jobs resumed at open wait for this).
            node.set_transport(n.clone());
            Some(n)
        }
        Err(e) => {
            tracing::warn!(error = %e, "networking is off");
            None
        }
    };
    let socket = socket_path(data_dir);
    // We hold the daemon lock, so a socket file left here is a stale one from a killed daemon.
    let _ = std::fs::remove_file(&socket);
    // The data folder is 0700, so nobody else can reach the socket before it is made 0600.
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("listening on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let daemon = Arc::new(Daemon {
        node,
        net,
        socket,
        stopping: AtomicBool::new(false),
    });
    let _ = ready.set(daemon.clone());
    // The HTTP server's runtime lives as long as this function, which serves until the process
    // exits.
    let _http_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sd-http")
        .enable_all()
        .build()
        .context("starting the HTTP server's runtime")?;
    crate::http::start(
        &_http_rt,
        data_dir,
        http,
        Arc::new(HttpService(daemon.clone())),
    );
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

/// One answer line: `{"ok": <result>}` or `{"error": {"code", "message"}}`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(Box<Response>),
    Error(ApiError),
}

/// Writes one JSON line with a single write (the socket is unbuffered; formatting straight onto it
/// would cost a syscall per token). Keys go out sorted, as they always have (through a `Value`).
fn send(out: &mut UnixStream, v: &impl Serialize) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(&serde_json::to_value(v)?)?;
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

/// The daemon as the HTTP server uses it: the same handler and stop as the socket.
struct HttpService(Arc<Daemon>);

impl crate::http::Service for HttpService {
    fn answer(&self, req: Request) -> Result<Response, ApiError> {
        let net = self.0.net.as_deref().map(|n| n as &dyn sd_api::Network);
        sd_api::handle_with(&self.0.node, net, req)
    }

    fn stop(&self) {
        if !self.0.stopping.swap(true, Ordering::SeqCst) {
            self.0.stop();
        }
    }

    fn node(&self) -> &Node {
        &self.0.node
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
        let _ = std::fs::remove_file(crate::http::state_path(&self.node.data_dir));
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
        let req = match sd_api::read_request(&mut reader) {
            Ok(r) => r,
            Err(e) => return Ok(send(&mut out, &Answer::Error(e))?),
        };
        match req {
            Request::Subscribe { library, job } => {
                for line in sd_api::subscribe(&self.node, library.as_deref(), job) {
                    send(&mut out, &line)?;
                }
                Ok(())
            }
            Request::SpacedropSend { paths, to, addr } => {
                // Progress lines `{"progress": …}`, then the answer.
                let Some(net) = self.net.as_deref() else {
                    let e = ApiError::new(
                        sd_api::ErrorCode::Unreachable,
                        "networking is off in this daemon",
                    );
                    return Ok(send(&mut out, &Answer::Error(e))?);
                };
                let paths: Vec<PathBuf> = paths.into_iter().map(|p| p.0).collect();
                let mut w = out.try_clone()?;
                let r = sd_api::Spacedrop::send(
                    net,
                    &paths,
                    to.as_deref(),
                    addr.as_deref(),
                    &mut |p| {
                        let _ = send(&mut w, &serde_json::json!({ "progress": p }));
                    },
                );
                let answer = match r {
                    Ok(s) => Answer::Ok(Box::new(Response::SpacedropSent(s))),
                    Err(e) => Answer::Error(e),
                };
                Ok(send(&mut out, &answer)?)
            }
            req => {
                let stop = matches!(req, Request::Stop);
                let net = self.net.as_deref().map(|n| n as &dyn sd_api::Network);
                let answer = match sd_api::handle_with(&self.node, net, req) {
                    Ok(r) => Answer::Ok(Box::new(r)),
                    Err(e) => Answer::Error(e),
                };
                send(&mut out, &answer)?;
                if stop {
                    drop(out);
                    self.stop();
                }
                Ok(())
            }
        }
    }
}
