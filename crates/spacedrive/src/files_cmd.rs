//! Files and folders: `ls` (an indexed folder), `index quick-scan` (any folder, not indexed),
//! `dupes`, `file info` and `verify`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use sd_api::Request;
use sd_core::dupes::{DupReport, FileInfo, Verified};
use sd_core::index::ephemeral::{QuickScan, Scope};
use sd_core::index::walk::EntryKind;
use sd_core::names::JsonPath;
use sd_core::query::{Listing, SortBy};

use crate::client::Client;
use crate::{RuleArgs, absolute, output, print_json};

#[derive(Args)]
pub struct DupesArgs {
    /// A folder to check without indexing it (default: the whole library's index)
    path: Option<PathBuf>,
    /// Ignore files smaller than this many bytes
    #[arg(long, default_value = "1")]
    min_size: u64,
    /// Show at most this many groups (the totals still count all)
    #[arg(long, default_value = "20")]
    limit: usize,
}

#[derive(Subcommand)]
pub enum FileCmd {
    /// Kind, MIME type, size, cas_id, every other indexed copy, media metadata and sidecars
    Info { path: PathBuf },
}

#[derive(Args)]
pub struct LsArgs {
    /// An indexed folder (default: the current directory)
    path: Option<PathBuf>,
    /// List the whole subtree, parents before children
    #[arg(long, short)]
    recursive: bool,
    #[arg(long, value_enum, default_value = "name")]
    sort: SortBy,
    /// At most this many entries
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Subcommand)]
pub enum IndexCmd {
    /// Scan any folder in memory; no library is read or written
    QuickScan {
        path: PathBuf,
        #[arg(long, value_enum, default_value = "current")]
        scope: Scope,
        /// In memory only (quick-scan always is; accepted for clarity)
        #[arg(long)]
        ephemeral: bool,
        #[command(flatten)]
        rules: RuleArgs,
    },
}

/// `index quick-scan`.
pub fn index(client: &Client, cmd: IndexCmd, json: bool) -> Result<()> {
    let IndexCmd::QuickScan {
        path,
        scope,
        ephemeral: _,
        rules,
    } = cmd;
    let r: QuickScan = client.call(&Request::QuickScan {
        path: JsonPath(absolute(&path)?),
        scope,
        rules: rules.config(),
    })?;
    if json {
        return print_json(&r);
    }
    print_quick_scan(&r);
    Ok(())
}

pub fn dupes(client: &Client, library: Option<String>, a: DupesArgs, json: bool) -> Result<()> {
    let path = a.path.as_deref().map(absolute).transpose()?.map(JsonPath);
    let r: DupReport = client.call(&Request::Dupes {
        library,
        path,
        min_size: a.min_size,
    })?;
    if json {
        return print_json(&r);
    }
    print_dupes(&r, a.limit);
    Ok(())
}

/// `file info`.
pub fn file(client: &Client, library: Option<String>, cmd: FileCmd, json: bool) -> Result<()> {
    let FileCmd::Info { path } = cmd;
    let info: FileInfo = client.call(&Request::FileInfo {
        library,
        path: JsonPath(absolute(&path)?),
    })?;
    if json {
        return print_json(&info);
    }
    print_file_info(&info);
    Ok(())
}

/// `verify`: exits non-zero when the file no longer matches the index's integrity hash.
pub fn verify(client: &Client, library: Option<String>, path: &Path, json: bool) -> Result<()> {
    let v: Verified = client.call(&Request::Verify {
        library,
        path: JsonPath(absolute(path)?),
    })?;
    if json {
        return print_json(&v);
    }
    println!("{}  {}", v.blake3, output::shown(v.path.0.as_os_str()));
    println!(
        "  {} bytes{}",
        output::count(v.size),
        v.cas_id
            .map(|c| format!(", cas_id {c}"))
            .unwrap_or_default()
    );
    match v.matches_index {
        Some(true) => println!("  matches the integrity hash in the index"),
        Some(false) => {
            println!(
                "  DIFFERS from the integrity hash in the index: the file changed since it was identified"
            );
            bail!(
                "{} does not match its recorded integrity hash",
                output::shown(v.path.0.as_os_str())
            );
        }
        None => {}
    }
    Ok(())
}

fn print_dupes(r: &DupReport, limit: usize) {
    for g in r.groups.iter().take(limit) {
        println!(
            "{} × {} = {} wasted  (cas_id {}{})",
            g.files.len(),
            output::bytes(g.size),
            output::bytes(g.wasted),
            g.cas_id,
            if g.integrity.is_some() {
                ", confirmed by full hash"
            } else {
                ", whole file hashed"
            }
        );
        for f in &g.files {
            println!("    {}", output::shown(f.0.as_os_str()));
        }
        for f in &g.hard_links {
            println!(
                "    {} (hard link, no extra space)",
                output::shown(f.0.as_os_str())
            );
        }
    }
    if r.groups.len() > limit {
        println!(
            "… {} more groups (--limit to show more, --json for all)",
            r.groups.len() - limit
        );
    }
    let source = if r.source == "library" {
        "in the library's index"
    } else {
        "under the folder (not indexed)"
    };
    println!(
        "{} duplicate groups {source}: {} redundant files, {} wasted; {} files considered, {} read, {} ms",
        output::count(r.groups.len() as u64),
        output::count(r.redundant_files),
        output::bytes(r.wasted_bytes),
        output::count(r.files_scanned),
        output::bytes(r.bytes_hashed),
        r.duration_ms
    );
    if !r.unconfirmed.is_empty() {
        println!(
            "{} files could not be checked (not counted as duplicates):",
            r.unconfirmed.len()
        );
        for e in r.unconfirmed.iter().take(10) {
            println!(
                "  {}: {}",
                output::shown(e.path.0.as_os_str()),
                output::escape_controls(&e.message)
            );
        }
    }
}

fn print_file_info(info: &FileInfo) {
    let e = &info.entry;
    println!("{}", output::shown(e.path.0.as_os_str()));
    println!(
        "  {}, {} bytes, modified {}",
        format!("{:?}", e.kind).to_lowercase(),
        output::count(e.size),
        e.mtime.map(output::time_ns).unwrap_or_default()
    );
    println!(
        "  location {}, entry {}, inode {}{}",
        info.location_id,
        e.id,
        e.inode,
        e.nlink
            .map(|n| format!(", {n} hard links"))
            .unwrap_or_default()
    );
    let a = &info.attached;
    let tags: Vec<String> = a
        .tags
        .iter()
        .cloned()
        .chain(
            a.content_tags
                .iter()
                .map(|t| format!("{t} (on its content)")),
        )
        .collect();
    if !tags.is_empty() {
        println!("  tags: {}", tags.join(", "));
    }
    if a.favorite {
        println!("  favourite");
    }
    if a.hidden {
        println!("  hidden from search");
    }
    for n in a.note.iter().chain(a.content_note.iter()) {
        println!("  note: {n}");
    }
    match &info.content {
        None => println!(
            "  no content identity (empty, not a file, not yet identified, or the location is shallow)"
        ),
        Some(c) => {
            println!(
                "  kind: {}, MIME: {}",
                c.kind,
                c.mime.as_deref().unwrap_or("unknown")
            );
            println!("  cas_id {} (content {})", c.cas_id, c.uuid);
            if let Some(i) = &c.integrity {
                println!("  blake3 {i}");
            }
            if c.other_copies.is_empty() {
                println!("  no other copies indexed");
            } else {
                println!("  {} other copies (identical bytes):", c.other_copies.len());
                for p in &c.other_copies {
                    println!("    {}", output::shown(p.0.as_os_str()));
                }
            }
            if !c.unconfirmed.is_empty() {
                println!(
                    "  {} unconfirmed (same sampled id; could not be read to compare, so not counted as copies):",
                    c.unconfirmed.len()
                );
                for p in &c.unconfirmed {
                    println!("    {}", p.0.to_string_lossy());
                }
            }
            if let Some(m) = &c.media {
                let mut parts = Vec::new();
                if let (Some(w), Some(h)) = (m.width, m.height) {
                    parts.push(format!("{w}×{h}"));
                }
                if let Some(t) = m.taken_at {
                    parts.push(format!("taken {}", output::time_ns(t)));
                }
                let camera: Vec<&str> = [m.make.as_deref(), m.model.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                if !camera.is_empty() {
                    parts.push(camera.join(" "));
                }
                if let Some(l) = &m.lens {
                    parts.push(format!("lens {l}"));
                }
                if let (Some(la), Some(lo)) = (m.latitude, m.longitude) {
                    parts.push(format!("GPS {la:.5}, {lo:.5}"));
                }
                if let Some(o) = m.orientation.filter(|o| *o != 1) {
                    parts.push(format!("EXIF orientation {o}"));
                }
                println!("  media: {}", output::escape_controls(&parts.join(", ")));
            }
            if !c.sidecars.is_empty() {
                println!("  sidecars:");
                for s in &c.sidecars {
                    let what = format!("{}/{}", s.kind, s.variant);
                    let detail = match (&s.path, s.status) {
                        (Some(p), _) => format!(
                            "{}×{}  {}",
                            s.width.unwrap_or(0),
                            s.height.unwrap_or(0),
                            output::shown(p.0.as_os_str())
                        ),
                        (None, sd_core::sidecar::Status::Ready) if s.kind == "text" => {
                            format!("{} of text in the full-text index", output::bytes(s.size))
                        }
                        (None, sd_core::sidecar::Status::Ready) => "ready".into(),
                        (None, st) => format!(
                            "{}: {}",
                            st.as_str(),
                            output::escape_controls(s.reason.as_deref().unwrap_or(""))
                        ),
                    };
                    let old = if s.outdated { " (outdated)" } else { "" };
                    println!("    {what:<22} {detail}{old}");
                }
            }
            if !c.near_duplicates.is_empty() {
                println!(
                    "  {} near-duplicates (same size and sampled id, different bytes: not copies):",
                    c.near_duplicates.len()
                );
                for p in &c.near_duplicates {
                    println!("    {}", p.0.to_string_lossy());
                }
            }
        }
    }
}

fn kind_char(k: EntryKind) -> char {
    match k {
        EntryKind::Dir => 'd',
        EntryKind::File => '-',
        EntryKind::Symlink => 'l',
        EntryKind::Other => '?',
    }
}

pub fn ls(client: &Client, library: Option<String>, a: LsArgs, json: bool) -> Result<()> {
    let path = match a.path {
        Some(p) => absolute(&p)?,
        None => std::env::current_dir()?,
    };
    let l: Listing = client.call(&Request::EntriesList {
        library,
        path: JsonPath(path),
        recursive: a.recursive,
        sort: a.sort,
        limit: a.limit,
        offset: None,
    })?;
    if json {
        return print_json(&l);
    }
    let base = l.entry.path.0.clone();
    let rows: Vec<Vec<String>> = l
        .entries
        .iter()
        .map(|e| {
            let shown = if a.recursive {
                output::shown(
                    e.path
                        .0
                        .strip_prefix(&base)
                        .unwrap_or(&e.path.0)
                        .as_os_str(),
                )
            } else {
                output::shown(e.name.0.as_os_str())
            };
            let name = output::entry_name(e.kind, shown, e.target.as_ref());
            let items = match (e.files, e.dirs) {
                (Some(f), Some(d)) => {
                    format!("{} files, {} dirs", output::count(f), output::count(d))
                }
                _ if e.nlink.is_some() => format!("{} links", e.nlink.unwrap_or(1)),
                _ => String::new(),
            };
            vec![
                kind_char(e.kind).to_string(),
                output::bytes(e.size),
                e.mtime.map(output::time_ns).unwrap_or_default(),
                items,
                name,
            ]
        })
        .collect();
    output::table(&["", "SIZE", "MODIFIED", "CONTAINS", "NAME"], &rows);
    println!(
        "{}: {} files, {} dirs, {}{}",
        output::shown(base.as_os_str()),
        output::count(l.entry.files.unwrap_or(0)),
        output::count(l.entry.dirs.unwrap_or(0)),
        output::bytes(l.entry.size),
        if l.truncated {
            " (listing cut at --limit)"
        } else {
            ""
        }
    );
    Ok(())
}

fn print_quick_scan(r: &QuickScan) {
    let rows: Vec<Vec<String>> = r
        .entries
        .iter()
        .map(|e| {
            let name = output::entry_name(
                e.kind,
                output::shown(e.name.0.as_os_str()),
                e.target.as_ref(),
            );
            vec![
                kind_char(e.kind).to_string(),
                output::bytes(e.size),
                output::time_ns(e.mtime),
                name,
            ]
        })
        .collect();
    output::table(&["", "SIZE", "MODIFIED", "NAME"], &rows);
    let scope = match r.scope {
        Scope::Current => "this folder",
        Scope::Recursive => "whole tree",
    };
    println!(
        "{} ({scope}, not indexed): {} files, {} dirs, {} symlinks, {}; {} ignored by rules; {} ms",
        output::shown(r.path.0.as_os_str()),
        output::count(r.totals.files),
        output::count(r.totals.dirs),
        output::count(r.symlinks),
        output::bytes(r.totals.bytes),
        output::count(r.ignored),
        r.duration_ms
    );
    if r.errors > 0 {
        println!("{} paths could not be read:", output::count(r.errors));
        for e in r.error_samples.iter().take(10) {
            println!(
                "  {}: {}",
                output::shown(e.path.0.as_os_str()),
                output::escape_controls(&e.message)
            );
        }
    }
}
