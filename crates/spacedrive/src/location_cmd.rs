//! `location`: add, list, show, rescan, change and remove the folders a library indexes;
//! following an index job's progress.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use sd_api::{LocationDetail, LocationRemoved, LocationUpdated, Request, Started};
use sd_core::jobs::JobState;
use sd_core::location::{IndexMode, Location};
use sd_core::names::JsonPath;
use serde::Serialize;

use crate::client::Client;
use crate::job_cmd::watch_job;
use crate::{RuleArgs, absolute, output, print_json, print_wire};

/// How much to index. A CLI mirror of [`IndexMode`] for its help texts, which say what this
/// build does.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Metadata: names, sizes, times, inodes
    Shallow,
    /// Metadata, then content identity (sampled BLAKE3) and file types, for duplicates
    Content,
    /// As content, then thumbnails, media metadata (EXIF) and text for `search --content`,
    /// made in the background at the lowest priority (`spacedrive sidecar status`)
    Deep,
}

impl From<ModeArg> for IndexMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Shallow => IndexMode::Shallow,
            ModeArg::Content => IndexMode::Content,
            ModeArg::Deep => IndexMode::Deep,
        }
    }
}

#[derive(Subcommand)]
pub enum LocationCmd {
    /// Add a folder and index it (with a progress bar; creates a library if there is none)
    Add {
        path: PathBuf,
        #[arg(long, value_enum, default_value = "shallow")]
        mode: ModeArg,
        /// Display name (default: the folder's name)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        rules: RuleArgs,
        /// Do not keep the index live with a filesystem watcher (rescan by hand instead)
        #[arg(long)]
        no_watch: bool,
        /// Return once the job is queued instead of showing its progress
        #[arg(long)]
        detach: bool,
    },
    /// List locations with their files, folders, total size and state
    List,
    /// Show one location in detail
    Info { id: i64 },
    /// Pick up changes since the last scan (new, modified, moved, deleted)
    Rescan {
        id: i64,
        /// Return once the job is queued instead of showing its progress
        #[arg(long)]
        detach: bool,
    },
    /// Remove a location and its index entries (the folder itself is not touched)
    Remove { id: i64 },
    /// Change a location's name, watcher or rules (a rules change rescans it)
    Set {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        /// Keep the index live with a filesystem watcher
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        watch: Option<bool>,
        /// Leave out system files (.DS_Store, Thumbs.db, …)
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        default_rules: Option<bool>,
        /// Honour .gitignore files
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        gitignore: Option<bool>,
        /// Replace the custom ignore globs (repeatable; --ignore '' clears them)
        #[arg(long, value_name = "GLOB")]
        ignore: Option<Vec<String>>,
        /// The location's folder was moved here: keep its index, tags and notes, and rescan
        #[arg(long, value_name = "FOLDER")]
        path: Option<PathBuf>,
    },
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("{s:?}: use on or off")),
    }
}

pub fn run(client: &Client, library: Option<String>, cmd: LocationCmd, json: bool) -> Result<()> {
    match cmd {
        LocationCmd::Add {
            path,
            mode,
            name,
            rules,
            no_watch,
            detach,
        } => {
            let mode = IndexMode::from(mode);
            let started: Started = client.call(&Request::LocationAdd {
                library: library.clone(),
                path: JsonPath(absolute(&path)?),
                name,
                mode,
                rules: rules.config(),
                watch: !no_watch,
            })?;
            if !json {
                if let Some(l) = &started.created_library {
                    println!("created library {l:?} (there was none yet)");
                }
                println!(
                    "added location {} {:?} ({}), indexing as job {}",
                    started.location.id,
                    started.location.name,
                    output::shown(started.location.path.0.as_os_str()),
                    started.job_id
                );
                if mode == IndexMode::Deep {
                    println!(
                        "thumbnails, media metadata and text follow in the background (`spacedrive sidecar status`)"
                    );
                }
            }
            follow(client, library, started, detach, json)?;
        }
        LocationCmd::Rescan { id, detach } => {
            let started: Started = client.call(&Request::LocationRescan {
                library: library.clone(),
                id,
            })?;
            if !json {
                if started.new_job {
                    println!("rescanning location {} as job {}", id, started.job_id);
                } else {
                    println!(
                        "location {id} is already being indexed by job {}",
                        started.job_id
                    );
                    // `follow` says so if that job is paused, and returns.
                }
            }
            follow(client, library, started, detach, json)?;
        }
        LocationCmd::List => {
            let locs: Vec<Location> = client.call(&Request::LocationList { library })?;
            if json {
                return print_json(&locs);
            }
            if locs.is_empty() {
                println!("no locations yet: add a folder with `spacedrive location add PATH`");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = locs
                .iter()
                .map(|l| {
                    vec![
                        l.id.to_string(),
                        l.name.clone(),
                        output::count(l.files),
                        output::count(l.dirs),
                        output::bytes(l.bytes),
                        l.mode.as_str().to_owned(),
                        if l.online {
                            l.state.clone()
                        } else {
                            "offline".into()
                        },
                        l.last_scan_at
                            .map(output::time_ms)
                            .unwrap_or_else(|| "never".into()),
                        output::shown(l.path.0.as_os_str()),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID",
                    "NAME",
                    "FILES",
                    "DIRS",
                    "SIZE",
                    "MODE",
                    "STATE",
                    "LAST SCAN",
                    "PATH",
                ],
                &rows,
            );
        }
        LocationCmd::Info { id } => {
            let d: LocationDetail = client.call(&Request::LocationInfo { library, id })?;
            if json {
                return print_json(&d);
            }
            let l = &d.location;
            println!("location {} {:?}", l.id, l.name);
            println!("  path: {}", output::shown(l.path.0.as_os_str()));
            match &l.offline_reason {
                // As `location list` shows it: offline first, the last scan's state after.
                Some(why) => println!(
                    "  state: offline ({}; last scan {}), mode: {}, watcher: {}",
                    output::escape_controls(why),
                    l.state,
                    l.mode.as_str(),
                    d.watcher
                ),
                None => println!(
                    "  state: {}, mode: {}, watcher: {}",
                    l.state,
                    l.mode.as_str(),
                    d.watcher
                ),
            }
            println!(
                "  {} files, {} dirs, {} symlinks, {}",
                output::count(l.files),
                output::count(l.dirs),
                output::count(d.symlinks),
                output::bytes(l.bytes)
            );
            println!("  {} index entries", output::count(d.entries));
            println!(
                "  rules: system defaults {}, .gitignore {}, ignore {:?}",
                if l.rules.system_defaults { "on" } else { "off" },
                if l.rules.gitignore { "on" } else { "off" },
                l.rules.ignore
            );
            println!(
                "  last scan: {}",
                l.last_scan_at
                    .map(output::time_ms)
                    .unwrap_or_else(|| "never".into())
            );
            if let Some(j) = &d.last_job {
                println!("  {}", output::job_summary(j).replace('\n', "\n  "));
            }
        }
        LocationCmd::Set {
            id,
            name,
            watch,
            default_rules,
            gitignore,
            ignore,
            path,
        } => {
            let path = path.map(|p| absolute(&p)).transpose()?.map(JsonPath);
            let changes = sd_core::location::Changes {
                path,
                name,
                watch,
                system_defaults: default_rules,
                gitignore,
                ignore: ignore.map(|g| g.into_iter().filter(|x| !x.is_empty()).collect()),
            };
            let u: LocationUpdated = client.call(&Request::LocationUpdate {
                library: library.clone(),
                id,
                changes,
            })?;
            if json {
                return print_wire(&u);
            }
            println!("updated location {id}");
            if let Some(job) = u.rescan_job {
                println!("rescanning as job {job} (`spacedrive job monitor {job}`)");
            } else if let Some(job) = u.rescan_after_job {
                println!(
                    "job {job} is indexing this location: it is rescanned again, under the new settings, when job {job} ends"
                );
            }
        }
        LocationCmd::Remove { id } => {
            let r: LocationRemoved = client.call(&Request::LocationRemove { library, id })?;
            if json {
                return print_wire(&r);
            }
            println!(
                "removed location {id} and {} index entries; the folder on disk was not touched",
                r.entries_removed
            );
        }
    }
    Ok(())
}

/// Shows a job's progress until it ends (unless detached), then its summary.
fn follow(
    client: &Client,
    library: Option<String>,
    started: Started,
    detach: bool,
    json: bool,
) -> Result<()> {
    if detach {
        if json {
            print_json(&started)?;
        }
        return Ok(());
    }
    let lib = library.or(Some(started.library_id.clone()));
    let job = watch_job(client, lib.clone(), started.job_id, json)?;
    if json {
        let location: LocationDetail = client.call(&Request::LocationInfo {
            library: lib,
            id: started.location.id,
        })?;
        /// What `location add` and `rescan` print with `--json` once the job ends.
        #[derive(Serialize)]
        struct Indexed {
            location: LocationDetail,
            job: sd_core::jobs::JobInfo,
        }
        return print_wire(&Indexed { location, job });
    }
    if job.state == JobState::Paused {
        println!(
            "job {id} is paused; resume it with `spacedrive job resume {id}` (follow it with `spacedrive job monitor {id}`)",
            id = job.id
        );
        return Ok(());
    }
    println!("{}", output::job_summary(&job));
    if job.state == JobState::Failed {
        bail!("job {} failed", job.id);
    }
    Ok(())
}
