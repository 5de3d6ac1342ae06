//! `status` and `stop`: whether the daemon runs, and stopping it. Neither starts a daemon.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use sd_api::{Request, Status, Stopping};
use serde::Serialize;

use crate::client::Client;
use crate::{output, print_json, print_wire};

/// `status --json`: `{"running": false}`, or `{"running": true, "status": Status}`.
#[derive(Serialize)]
struct Running {
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

/// `stop --json`: `{"stopped": true}`, or `{"stopped": false, "running": false}`.
#[derive(Serialize)]
struct Stopped {
    stopped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<bool>,
}

pub fn status(client: &Client, data_dir: &Path, json: bool) -> Result<()> {
    if !client.running() {
        if json {
            print_json(&Running {
                running: false,
                status: None,
            })?;
        } else {
            println!(
                "daemon: not running (data folder {})",
                output::shown(data_dir.as_os_str())
            );
        }
        return Ok(());
    }
    let s: Status = client.call(&Request::Status)?;
    if json {
        return print_wire(&Running {
            running: true,
            status: Some(s),
        });
    }
    println!(
        "daemon: running, pid {}, version {}, up {}",
        s.pid,
        s.version,
        output::duration_ms(s.uptime_ms as i64)
    );
    println!("data folder: {}", output::shown(s.data_dir.0.as_os_str()));
    println!(
        "device: {} ({}) — {}, {}",
        s.device.name, s.device.id, s.device.os, s.device.hardware
    );
    println!("libraries: {}", s.libraries);
    Ok(())
}

pub fn stop(client: &Client, json: bool) -> Result<()> {
    if !client.running() {
        if json {
            print_wire(&Stopped {
                stopped: false,
                running: Some(false),
            })?;
        } else {
            println!("the daemon is not running");
        }
        return Ok(());
    }
    let pid = client.call::<Status>(&Request::Status)?.pid;
    let _: Stopping = client.call(&Request::Stop)?;
    // Wait for the process itself, not just its socket: it holds the data folder's lock
    // until it is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    // A zombie (exited, not yet reaped by its adoptive parent) holds nothing any more.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| {
                st.rsplit(')')
                    .next()
                    .map(|rest| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    };
    while (client.running() || alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if json {
        print_json(&Stopped {
            stopped: true,
            running: None,
        })?;
    } else {
        println!("daemon stopped");
    }
    Ok(())
}
