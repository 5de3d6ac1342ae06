//! `network …`: this device on the network, pairing with a code, paired devices.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;
use sd_api::{Device, NetworkStatus, PairCode, Pong, Request, Revoked};

use crate::client::Client;
use crate::{output, print_json};

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// This device's network id, listening addresses and discovery
    Status,
    /// Pair with another device using a short code
    #[command(subcommand)]
    Pair(PairCmd),
    /// Paired devices: online or not, last seen
    Devices,
    /// End the pairing with a device (it is refused from its next connection on)
    Revoke { device: String },
    /// Round-trip time to a paired device
    Ping { device: String },
    /// The relay that devices on other networks meet through (none by default)
    #[command(subcommand)]
    Relay(RelayCmd),
}

#[derive(Subcommand)]
pub enum RelayCmd {
    /// Use the relay at URL (e.g. a self-hosted iroh-relay); the endpoint restarts
    Set {
        /// The relay's URL, e.g. https://relay.example.org
        url: String,
        /// PEM file of CA certificates to trust for it (a private CA)
        #[arg(long, value_name = "FILE")]
        ca: Option<std::path::PathBuf>,
    },
    /// Stop using a relay: direct connections only
    Clear,
}

#[derive(Subcommand)]
pub enum PairCmd {
    /// Show a code for the other device, then wait until it joins (Ctrl-C cancels)
    Generate,
    /// Join the device showing CODE (found on the local network, or at --addr)
    Join {
        code: String,
        /// The other device's address, as `pair generate` shows it
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
    },
}

fn show_device(d: &Device) {
    println!(
        "{}  {}  {}  {}  last seen {}",
        output::escape_controls(&d.name),
        &d.id[..d.id.len().min(12)],
        d.os,
        match d.latency_ms {
            Some(ms) => format!("online ({ms:.1} ms)"),
            None if d.online => "online".into(),
            None => "offline".into(),
        },
        d.last_seen
            .map(output::time_ms)
            .unwrap_or_else(|| "never".into())
    );
}

fn show_relay(s: &NetworkStatus) {
    match &s.relay {
        None => println!("relay: none (direct connections only)"),
        Some(r) => println!(
            "relay: {}{} — {}",
            r.url,
            if r.custom_ca { " (private CA)" } else { "" },
            match (&r.connected, &r.error) {
                (true, _) => "connected".to_string(),
                (false, Some(e)) => format!("not connected: {e}"),
                (false, None) => "connecting".to_string(),
            }
        ),
    }
}

pub fn run(client: &Client, cmd: NetworkCmd, json: bool) -> Result<()> {
    match cmd {
        NetworkCmd::Status => {
            let s: NetworkStatus = client.call(&Request::NetworkStatus)?;
            if json {
                return print_json(&s);
            }
            println!("id: {}", s.id);
            println!("listening: {}", s.listening.join(", "));
            if let Some(i) = &s.intro {
                println!(
                    "pairing by address: port {}",
                    i.rsplit(':').next().unwrap_or(i)
                );
            }
            println!(
                "discovery (mDNS): {}{}",
                if s.discovery { "on" } else { "off" },
                if s.discovery {
                    format!(", {} devices nearby", s.nearby)
                } else {
                    String::new()
                }
            );
            show_relay(&s);
            println!("paired devices: {}", s.paired);
        }
        NetworkCmd::Relay(cmd) => {
            let (url, ca_pem) = match cmd {
                RelayCmd::Set { url, ca } => {
                    let pem = ca
                        .map(|f| {
                            std::fs::read_to_string(&f).map_err(|e| {
                                anyhow::anyhow!("cannot read the CA file {}: {e}", f.display())
                            })
                        })
                        .transpose()?;
                    (Some(url), pem)
                }
                RelayCmd::Clear => (None, None),
            };
            let s: NetworkStatus = client.call(&Request::NetworkRelaySet { url, ca_pem })?;
            if json {
                return print_json(&s);
            }
            show_relay(&s);
        }
        NetworkCmd::Pair(PairCmd::Generate) => generate(client, json)?,
        NetworkCmd::Pair(PairCmd::Join { code, addr }) => {
            let d: Device = client.call(&Request::NetworkPairJoin { code, addr })?;
            if json {
                return print_json(&d);
            }
            println!(
                "paired with {} ({})",
                output::escape_controls(&d.name),
                d.id
            );
        }
        NetworkCmd::Devices => {
            let list: Vec<Device> = client.call(&Request::NetworkDevices)?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no paired devices: pair one with `spacedrive network pair generate`");
            }
            for d in &list {
                show_device(d);
            }
        }
        NetworkCmd::Revoke { device } => {
            let r: Revoked = client.call(&Request::NetworkRevoke { device })?;
            if json {
                return print_json(&r);
            }
            println!(
                "revoked {}{}",
                output::escape_controls(&r.device.name),
                if r.told {
                    " (it was told and dropped this device too)"
                } else {
                    " (it was not reachable; it is refused at its next connection)"
                }
            );
        }
        NetworkCmd::Ping { device } => {
            let p: Pong = client.call(&Request::NetworkPing { device })?;
            if json {
                return print_json(&p);
            }
            println!(
                "{}: {:.2} ms",
                output::escape_controls(&p.device.name),
                p.rtt_ms
            );
        }
    }
    Ok(())
}

/// Shows the code, then waits for the other device; Ctrl-C withdraws the code.
fn generate(client: &Client, json: bool) -> Result<()> {
    // SIGINT is taken here (sigtimedwait) rather than killing the process, so the code can be
    // withdrawn first. Blocked before the waiting thread starts, so it is blocked there too.
    let set = sigint_set();
    // SAFETY: `set` is an initialised signal set; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let code: PairCode = client.call(&Request::NetworkPairGenerate)?;
    if json {
        print_json(&code)?;
        std::io::stdout().flush()?;
    } else {
        println!(
            "pairing code: {}   (valid 5 minutes, for one device)",
            code.code
        );
        println!(
            "on the other device: spacedrive network pair join {}",
            code.code
        );
        if !code.addrs.is_empty() {
            println!(
                "  (not on the same network? add --addr with one of: {})",
                code.addrs.join(", ")
            );
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = client.clone();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.call::<Device>(&Request::NetworkPairWait));
    });
    let started = std::time::Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(result) => {
                if !json {
                    eprint!("\r\x1b[K");
                }
                let d = result?;
                if json {
                    return print_json(&serde_json::json!({ "paired": d }));
                }
                println!(
                    "paired with {} ({})",
                    output::escape_controls(&d.name),
                    d.id
                );
                return Ok(());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => bail!("lost the daemon"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` is initialised, `zero` is a valid timeout, a null info pointer is allowed.
        if unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) } == libc::SIGINT {
            let _ = client.call::<serde_json::Value>(&Request::NetworkPairCancel);
            if !json {
                eprintln!("\r\x1b[Kcancelled: the code no longer works");
            }
            std::process::exit(130);
        }
        if !json {
            let left = 300u64.saturating_sub(started.elapsed().as_secs());
            eprint!(
                "\r\x1b[Kwaiting for the other device… {}:{:02} left (Ctrl-C cancels)",
                left / 60,
                left % 60
            );
        }
    }
}

fn sigint_set() -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain old data; sigemptyset initialises it and sigaddset adds to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}
