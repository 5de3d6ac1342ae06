//! `library`: create, list, show, rename, delete and pick the default library.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use clap::Subcommand;
use sd_api::{LibraryDeleted, LibraryInfo, LibrarySummary, Request};

use crate::client::Client;
use crate::{output, print_json, print_wire};

#[derive(Subcommand)]
pub enum LibraryCmd {
    /// Create a library (the first one becomes the default)
    Create { name: String },
    /// List libraries, including ones that cannot be opened and why
    List,
    /// Show a library's details
    Info { name: Option<String> },
    /// Rename a library (config and folder)
    Rename { name: String, new_name: String },
    /// Delete a library's folder: its index and jobs. Files in its locations are not touched
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Make a library the default for commands that name none
    Use { name: String },
}

pub fn run(client: &Client, lib: Option<String>, cmd: LibraryCmd, json: bool) -> Result<()> {
    let show = |info: &LibraryInfo, verb: &str| {
        let verb = if verb.is_empty() {
            "library".to_owned()
        } else {
            format!("{verb} library")
        };
        println!("{verb} {:?} ({})", info.name, info.id);
        println!("  folder: {}", output::shown(info.path.0.as_os_str()));
    };
    match cmd {
        LibraryCmd::Create { name } => {
            let info: LibraryInfo = client.call(&Request::LibraryCreate { name })?;
            if json {
                return print_json(&info);
            }
            show(&info, "created");
        }
        LibraryCmd::List => {
            let libs: Vec<LibrarySummary> = client.call(&Request::LibraryList)?;
            if json {
                return print_json(&libs);
            }
            if libs.is_empty() {
                println!("no libraries yet: create one with `spacedrive library create NAME`");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = libs
                .iter()
                .map(|l| {
                    vec![
                        format!("{}{}", l.name, if l.default { " *" } else { "" }),
                        l.id.clone().unwrap_or_else(|| "-".into()),
                        l.locations
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                        l.status.to_string(),
                        l.error
                            .clone()
                            .unwrap_or_else(|| output::shown(l.path.0.as_os_str())),
                    ]
                })
                .collect();
            output::table(
                &["NAME", "ID", "LOCATIONS", "STATUS", "FOLDER / PROBLEM"],
                &rows,
            );
        }
        LibraryCmd::Info { name } => {
            // `library info NAME` or `-L NAME library info`; a name that matches nothing is an
            // error, never the default library.
            let info: LibraryInfo = client.call(&Request::LibraryInfo {
                library: name.or(lib),
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "");
            println!("  created: {}", output::time_ms(info.created_at));
            println!(
                "  schema version {} (config version {})",
                info.schema_version, info.config_version
            );
            println!(
                "  {} locations, {} entries, {} on disk",
                info.locations,
                output::count(info.entries),
                output::bytes(info.disk_bytes)
            );
            println!("  running jobs: {}", info.jobs_running);
            println!(
                "  {} distinct contents identified; {} queued for thumbnails and text extraction",
                output::count(info.contents),
                output::count(info.intelligence_queue)
            );
        }
        LibraryCmd::Rename { name, new_name } => {
            let info: LibraryInfo = client.call(&Request::LibraryRename {
                library: name,
                new_name,
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "renamed to");
        }
        LibraryCmd::Delete { name, yes } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "deleting library {name:?} removes its index and jobs; pass --yes to confirm"
                    );
                }
                eprint!(
                    "Delete library {name:?} (its index, tags and jobs)? Files in its locations are not touched. [y/N] "
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    bail!("not deleted");
                }
            }
            let d: LibraryDeleted = client.call(&Request::LibraryDelete { library: name })?;
            if json {
                return print_wire(&d);
            }
            println!("deleted library {}", output::quoted(&d.deleted));
        }
        LibraryCmd::Use { name } => {
            let info: LibraryInfo = client.call(&Request::LibraryUse { library: name })?;
            if json {
                return print_json(&info);
            }
            show(&info, "now using");
        }
    }
    Ok(())
}
