//! `spacedrive ui`: the web UI's address. Starts the daemon if needed, reads where its HTTP
//! server listens (`<data>/ui.json`) and its token (`<data>/http.token`), prints the URL that
//! logs a browser in, and opens it when there is a browser to open it in.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use sd_api::{Request, Status};
use serde::Serialize;

use crate::client::Client;
use crate::http::{UiState, auth};
use crate::print_json;

#[derive(Args)]
pub struct UiArgs {
    /// Print the URL only; do not open a browser
    #[arg(long)]
    no_open: bool,
}

/// `ui --json`.
#[derive(Serialize)]
struct Opened {
    /// Opens the UI logged in (holds the token: do not share it).
    url: String,
    listen: std::net::SocketAddr,
    beyond_loopback: bool,
    /// Whether a browser was started.
    opened: bool,
}

pub fn run(client: &Client, data_dir: &Path, a: UiArgs, json: bool) -> Result<()> {
    // Starts the daemon when none runs; its pid tells its ui.json from a stale one.
    let pid = client.call::<Status>(&Request::Status)?.pid;
    let state = wait_state(data_dir, pid)?;
    let (Some(base), Some(listen)) = (state.url, state.listen) else {
        bail!(
            "the daemon serves no web UI: {}",
            state
                .error
                .as_deref()
                .unwrap_or("unknown reason (see daemon.log)")
        );
    };
    let token = std::fs::read_to_string(auth::token_path(data_dir))
        .with_context(|| format!("reading {}", auth::token_path(data_dir).display()))?;
    let url = format!("{base}login?token={}", token.trim());
    let opened = !a.no_open && open_browser(&url);
    if json {
        return print_json(&Opened {
            url,
            listen,
            beyond_loopback: state.beyond_loopback,
            opened,
        });
    }
    println!("Spacedrive web UI: {url}");
    if let Some(p) = state.requested_port {
        println!(
            "(port {p} was taken; the daemon listens on {})",
            listen.port()
        );
    }
    if state.beyond_loopback {
        println!(
            "warning: listening on {listen}, reachable from other machines; anyone with this URL has full access"
        );
    }
    if opened {
        println!("opened in your browser");
    } else if !a.no_open {
        println!("no browser found here: open the URL above in one");
    }
    Ok(())
}

/// The daemon `pid`'s ui.json; it writes it right after it starts listening.
fn wait_state(data_dir: &Path, pid: u32) -> Result<UiState> {
    let path = crate::http::state_path(data_dir);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(s) = serde_json::from_slice::<UiState>(&bytes)
            && s.pid == pid
        {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon (pid {pid}) has not said where its web UI is ({}); see daemon.log",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Starts `xdg-open URL` when a graphical session is there (`$DISPLAY`, `$WAYLAND_DISPLAY`) and
/// `$BROWSER` does not name another program; never fails: without a browser the URL is printed.
fn open_browser(url: &str) -> bool {
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let program = match std::env::var("BROWSER") {
        Ok(b) if !b.is_empty() => b,
        _ if graphical => "xdg-open".to_owned(),
        _ => return false,
    };
    Command::new(program)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
