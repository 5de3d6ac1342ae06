//! `thumb` (a file's thumbnail, made on demand) and `sidecar` (status, regenerate): what the
//! library derived from its contents.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use sd_api::Request;
use sd_core::names::JsonPath;
use sd_core::sidecar::{Regenerated, StatusReport, Thumbnail};

use crate::client::Client;
use crate::{absolute, output, print_json};

#[derive(Args)]
pub struct ThumbArgs {
    /// An indexed file
    path: PathBuf,
    /// Longest side wanted, in pixels: the smallest variant at least this large (256, 512, 1024)
    #[arg(long, default_value_t = 256)]
    size: u32,
}

#[derive(Subcommand)]
pub enum SidecarCmd {
    /// Sidecars by kind and status, contents waiting, tools found (ffmpeg, pdftoppm), the job
    Status,
    /// Make sidecars again (all, or of one kind), e.g. after installing ffmpeg
    Regenerate {
        /// thumbnail, metadata or text
        #[arg(long)]
        kind: Option<String>,
    },
}

/// `thumb`: prints the thumbnail's path.
pub fn thumb(client: &Client, library: Option<String>, a: ThumbArgs, json: bool) -> Result<()> {
    let t: Thumbnail = client.call(&Request::Thumbnail {
        library,
        path: JsonPath(absolute(&a.path)?),
        size: a.size,
    })?;
    if json {
        return print_json(&t);
    }
    println!("{}", output::shown(t.path.0.as_os_str()));
    if t.sealed {
        eprintln!(
            "note: the library is encrypted, so this file is sealed with its key; the web UI (`spacedrive ui`) shows it"
        );
    }
    Ok(())
}

/// `sidecar status` and `sidecar regenerate`.
pub fn run(client: &Client, library: Option<String>, cmd: SidecarCmd, json: bool) -> Result<()> {
    match cmd {
        SidecarCmd::Status => {
            let s: StatusReport = client.call(&Request::SidecarStatus { library })?;
            if json {
                return print_json(&s);
            }
            print_status(&s);
        }
        SidecarCmd::Regenerate { kind } => {
            let r: Regenerated = client.call(&Request::SidecarRegenerate { library, kind })?;
            if json {
                return print_json(&r);
            }
            match r.job {
                Some(j) => println!(
                    "{} sidecars marked to be made again by job {j} (`spacedrive job monitor {j}`)",
                    output::count(r.marked)
                ),
                None => println!(
                    "{} sidecars marked; nothing to make (no deep location holds them)",
                    output::count(r.marked)
                ),
            }
        }
    }
    Ok(())
}

fn print_status(s: &StatusReport) {
    let rows: Vec<Vec<String>> = s
        .counts
        .iter()
        .map(|c| {
            vec![
                c.kind.clone(),
                c.status.as_str().to_owned(),
                output::count(c.sidecars),
                output::count(c.contents),
                if c.bytes > 0 {
                    output::bytes(c.bytes)
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no sidecars yet (they are made for locations added with --mode deep)");
    } else {
        output::table(&["KIND", "STATUS", "SIDECARS", "CONTENTS", "FILES"], &rows);
    }
    println!(
        "{} contents waiting; {} made by an older generator (remade lazily)",
        output::count(s.queued),
        output::count(s.outdated)
    );
    let tool = |name: &str, p: &Option<PathBuf>, what: &str| match p {
        Some(p) => println!("  {name}: {} ({what})", output::shown(p.as_os_str())),
        None => println!("  {name}: not installed — no {what}"),
    };
    println!("tools:");
    tool("ffmpeg", &s.tools.ffmpeg, "video thumbnails");
    tool("pdftoppm", &s.tools.pdftoppm, "PDF thumbnails");
    match s.job {
        Some((id, state)) => println!("job {id} is {}", state.as_str()),
        None => println!("no sidecar job running"),
    }
    println!("files under {}", output::shown(s.dir.0.as_os_str()));
}
