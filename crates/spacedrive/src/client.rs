//! The client side of the API: connects to the daemon's socket, starting the daemon first when
//! nothing is listening, so the first command on a fresh machine just works.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::socket_path;
use anyhow::{Context, Result, anyhow, bail};
use sd_api::{ApiError, Request, StreamLine};
use sd_core::events::Event;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A connection factory for one data folder.
#[derive(Clone)]
pub struct Client {
    data_dir: PathBuf,
    autostart: bool,
    /// `--device`: requests go to this paired device, through the local daemon.
    device: Option<String>,
}

/// An error the daemon answered with; the CLI prints it and exits non-zero.
#[derive(Debug)]
pub struct Remote(pub ApiError);

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Remote {}

impl Client {
    pub fn new(data_dir: PathBuf, autostart: bool) -> Client {
        Client {
            data_dir,
            autostart,
            device: None,
        }
    }

    /// Sends every request to the paired device `device` (through the local daemon, which
    /// refuses what a paired device may not do).
    pub fn on_device(mut self, device: Option<String>) -> Client {
        self.device = device;
        self
    }

    fn connect(&self) -> Result<UnixStream> {
        let sock = socket_path(&self.data_dir);
        match UnixStream::connect(&sock) {
            Ok(s) => Ok(s),
            Err(_) if self.autostart => self.start_daemon(&sock),
            Err(e) => Err(anyhow!(
                "the daemon is not running ({}: {e})",
                sock.display()
            )),
        }
    }

    /// Starts `spacedrive daemon` in the background and waits for its socket. Clients starting
    /// at the same moment take turns (`daemon.start.lock`): the first starts the daemon, the
    /// others find it listening and connect, so exactly one daemon is ever started.
    fn start_daemon(&self, sock: &Path) -> Result<UnixStream> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data folder {}", self.data_dir.display()))?;
        let _turn = StartTurn::take(&self.data_dir)?;
        if let Ok(s) = UnixStream::connect(sock) {
            return Ok(s); // another client started it while we waited for our turn
        }
        let log_path = self.data_dir.join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let exe = std::env::current_exe().context("locating the spacedrive binary")?;
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting the daemon")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(s) = UnixStream::connect(sock) {
                return Ok(s);
            }
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "the daemon exited at start ({status}):\n{}",
                    tail.join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not start listening on {} within 15 s; see {}",
                    sock.display(),
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&self, req: &Request) -> Result<BufReader<UnixStream>> {
        let mut s = self.connect()?;
        let remote;
        let req = match &self.device {
            Some(device) => {
                remote = Request::Remote {
                    device: device.clone(),
                    request: Box::new(req.clone()),
                };
                &remote
            }
            None => req,
        };
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        s.write_all(&line)
            .context("sending the request to the daemon")?;
        Ok(BufReader::new(s))
    }

    /// One request, one answer.
    pub fn call<T: DeserializeOwned>(&self, req: &Request) -> Result<T> {
        let mut r = self.send(req)?;
        let mut line = String::new();
        r.read_line(&mut line)
            .context("reading the daemon's answer")?;
        if line.is_empty() {
            bail!(
                "the daemon closed the connection without answering; see {}",
                self.data_dir.join("daemon.log").display()
            );
        }
        parse_answer(&line)
    }

    /// One request whose answer is preceded by `{"progress": P}` lines, each given to `f`.
    pub fn call_with_progress<P: DeserializeOwned, T: DeserializeOwned>(
        &self,
        req: &Request,
        mut f: impl FnMut(P),
    ) -> Result<T> {
        #[derive(Deserialize)]
        struct Progress<P> {
            progress: P,
        }
        let r = self.send(req)?;
        for line in r.lines() {
            let line = line.context("reading the daemon's answer")?;
            if let Ok(p) = serde_json::from_str::<Progress<P>>(&line) {
                f(p.progress);
                continue;
            }
            return parse_answer(&line);
        }
        bail!(
            "the daemon closed the connection without answering; see {}",
            self.data_dir.join("daemon.log").display()
        )
    }

    /// Whether a daemon is listening (never starts one).
    pub fn running(&self) -> bool {
        UnixStream::connect(socket_path(&self.data_dir)).is_ok()
    }

    /// A stream of events; calls `f` for each until it returns false or the daemon ends the stream.
    pub fn stream(&self, req: &Request, mut f: impl FnMut(Event) -> Result<bool>) -> Result<()> {
        let r = self.send(req)?;
        for line in r.lines() {
            let line = line.context("reading events from the daemon")?;
            match serde_json::from_str(&line).context("malformed event from the daemon")? {
                StreamLine::Event(ev) => {
                    if !f(ev)? {
                        return Ok(());
                    }
                }
                StreamLine::Heartbeat(_) => {}
                StreamLine::Error(e) => return Err(Remote(e).into()),
            }
        }
        Ok(())
    }
}

/// An exclusive `flock` on `<data>/daemon.start.lock`, released on drop (the file stays).
struct StartTurn(std::fs::File);

impl StartTurn {
    fn take(data_dir: &Path) -> Result<StartTurn> {
        use std::os::fd::AsRawFd;
        let path = data_dir.join("daemon.start.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // The holder waits at most 15 s for its daemon; give it a little more.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // SAFETY: the descriptor belongs to `f`, which is open for the whole call.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(StartTurn(f));
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
            if Instant::now() > deadline {
                bail!(
                    "another spacedrive command has been starting the daemon for 20 s; see {}",
                    data_dir.join("daemon.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StartTurn {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor belongs to `self.0`, still open here.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// One answer line, as the daemon writes it.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer<T> {
    Ok(T),
    Error(ApiError),
}

fn parse_answer<T: DeserializeOwned>(line: &str) -> Result<T> {
    match serde_json::from_str::<Answer<T>>(line) {
        Ok(Answer::Ok(v)) => Ok(v),
        Ok(Answer::Error(e)) => Err(Remote(e).into()),
        Err(e) => bail!(
            "unexpected answer from the daemon ({e}): {}",
            line.trim_end()
        ),
    }
}
