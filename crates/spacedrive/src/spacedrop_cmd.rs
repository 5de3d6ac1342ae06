//! `spacedrop …`: files to and from a nearby device that is not paired.

use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use clap::Subcommand;
use sd_api::{
    Request, SpacedropConfig, SpacedropLanded, SpacedropOffer, SpacedropProgress, SpacedropSent,
};
use sd_core::names::JsonPath;

use crate::client::Client;
use crate::{absolute, output, print_json};

#[derive(Subcommand)]
pub enum SpacedropCmd {
    /// Offer files and folders to a nearby device (it need not be paired); waits for its answer
    Send {
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// The receiving device's name (found on the local network)
        #[arg(long, value_name = "NAME", conflicts_with = "addr")]
        to: Option<String>,
        /// The receiving device's address, as its `network status` shows it
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
    },
    /// Offers waiting on this device
    List,
    /// Accept an offer: its files land in the Spacedrop folder
    Accept { id: u64 },
    /// Decline an offer: nothing is written
    Decline { id: u64 },
    /// Wait for offers and ask about each (Ctrl-C stops)
    Receive,
    /// Show or change the Spacedrop folder and whether offers are received
    Config {
        /// Where accepted files land (default ~/Downloads/Spacedrop)
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        /// Receive offers (on) or refuse them at once (off)
        #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
        receive: Option<String>,
    },
}

fn show_offer(o: &SpacedropOffer) {
    println!(
        "offer {} from {} — fingerprint {} — {} files, {}",
        o.id,
        output::escape_controls(&o.sender),
        o.fingerprint,
        o.files.len(),
        output::bytes(o.size)
    );
    for f in o.files.iter().take(20) {
        println!(
            "  {}  {}",
            output::escape_controls(&f.path),
            output::bytes(f.size)
        );
    }
    if o.files.len() > 20 {
        println!("  … and {} more", o.files.len() - 20);
    }
}

fn show_landed(l: &SpacedropLanded) {
    println!("received into {}:", output::escape_controls(&l.dir));
    for n in &l.names {
        println!("  {}", output::escape_controls(n));
    }
}

pub fn run(client: &Client, cmd: SpacedropCmd, json: bool) -> Result<()> {
    match cmd {
        SpacedropCmd::Send { paths, to, addr } => {
            let paths = paths
                .iter()
                .map(|p| absolute(p).map(JsonPath))
                .collect::<Result<Vec<_>>>()?;
            let mut bar: Option<indicatif::ProgressBar> = None;
            let r: SpacedropSent = client.call_with_progress(
                &Request::SpacedropSend { paths, to, addr },
                |p: SpacedropProgress| {
                    if json {
                        let _ = print_json(&p);
                        return;
                    }
                    match p {
                        SpacedropProgress::Offered { to, fingerprint } => eprintln!(
                            "offered to {} — fingerprint {fingerprint} (the same digits show there); waiting for an answer…",
                            output::escape_controls(&to)
                        ),
                        SpacedropProgress::Sending { done, total } => {
                            let b = bar.get_or_insert_with(|| {
                                let b = indicatif::ProgressBar::new(total);
                                b.set_style(
                                    indicatif::ProgressStyle::with_template(
                                        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                                    )
                                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                                );
                                b
                            });
                            b.set_position(done);
                        }
                    }
                },
            )?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if json {
                return print_json(&r);
            }
            println!(
                "{} accepted: {} files, {} sent as {}",
                output::escape_controls(&r.to),
                r.files,
                output::bytes(r.size),
                r.names
                    .iter()
                    .map(|n| output::escape_controls(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        SpacedropCmd::List => {
            let list: Vec<SpacedropOffer> = client.call(&Request::SpacedropList)?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no offers waiting");
            }
            for o in &list {
                show_offer(o);
            }
        }
        SpacedropCmd::Accept { id } => {
            let l: SpacedropLanded = client.call(&Request::SpacedropAccept { id })?;
            if json {
                return print_json(&l);
            }
            show_landed(&l);
        }
        SpacedropCmd::Decline { id } => {
            let o: SpacedropOffer = client.call(&Request::SpacedropDecline { id })?;
            if json {
                return print_json(&o);
            }
            println!(
                "declined offer {} from {}",
                o.id,
                output::escape_controls(&o.sender)
            );
        }
        SpacedropCmd::Config { dir, receive } => {
            let dir = dir
                .map(|d| absolute(&d).map(|p| p.to_string_lossy().into_owned()))
                .transpose()?;
            let c: SpacedropConfig = client.call(&Request::SpacedropConfig {
                dir,
                receive: receive.map(|r| r == "on"),
            })?;
            if json {
                return print_json(&c);
            }
            println!("folder: {}", output::escape_controls(&c.dir));
            println!("receiving: {}", if c.receive { "on" } else { "off" });
        }
        SpacedropCmd::Receive => receive(client, json)?,
    }
    Ok(())
}

/// Waits for offers; for each, asks on the terminal (answers read from stdin: y or n).
fn receive(client: &Client, json: bool) -> Result<()> {
    let c: SpacedropConfig = client.call(&Request::SpacedropConfig {
        dir: None,
        receive: None,
    })?;
    if !c.receive {
        bail!("receiving is off; turn it on with `spacedrive spacedrop config --receive on`");
    }
    if !json {
        eprintln!("waiting for offers (into {}); Ctrl-C stops", c.dir);
    }
    let mut after = 0;
    let stdin = std::io::stdin();
    loop {
        let next: Option<SpacedropOffer> =
            client.call(&Request::SpacedropWait { after: Some(after) })?;
        let Some(o) = next else { continue };
        after = o.id;
        if json {
            print_json(&o)?;
        } else {
            show_offer(&o);
            print!("accept? [y/N] ");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(()); // stdin closed: the offer waits (or expires) untouched
        }
        if matches!(line.trim(), "y" | "Y" | "yes") {
            match client.call::<SpacedropLanded>(&Request::SpacedropAccept { id: o.id }) {
                Ok(l) if json => print_json(&l)?,
                Ok(l) => show_landed(&l),
                Err(e) => eprintln!("offer {}: {e}", o.id),
            }
        } else {
            match client.call::<SpacedropOffer>(&Request::SpacedropDecline { id: o.id }) {
                Ok(o) if json => print_json(&o)?,
                Ok(_) => println!("declined"),
                Err(e) => eprintln!("offer {}: {e}", o.id),
            }
        }
    }
}
