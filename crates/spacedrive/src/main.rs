//! `spacedrive`: the command-line client of the Spacedrive daemon, and the daemon itself
//! (`spacedrive daemon`). Every command except `daemon` talks to the daemon over its Unix socket
//! and starts it when it is not running.

/// `println!` that ends the process quietly when stdout is a closed pipe (`spacedrive dupes |
/// head`) instead of panicking, as ripgrep does. It shadows std's macro in every module of this
/// binary, so no command can forget it.
macro_rules! println {
    () => {
        $crate::output::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}

mod actions_cmd;
mod api;
mod client;
mod daemon;
mod output;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::MultiProgress;
use sd_core::index::ephemeral::{QuickScan, Scope};
use sd_core::index::walk::EntryKind;
use sd_core::jobs::JobInfo;
use sd_core::location::{IndexMode, Location};
use sd_core::names::JsonPath;
use sd_core::query::{self, SortBy};
use sd_core::rules::RuleConfig;
use serde_json::Value;

use api::Request;
use client::{Client, Remote};

/// Spacedrive: index your folders into a library, browse and search them.
#[derive(Parser)]
#[command(name = "spacedrive", version, about, max_term_width = 100)]
struct Cli {
    /// Folder holding the daemon's state and libraries
    /// [default: $XDG_DATA_HOME/spacedrive or ~/.local/share/spacedrive]
    #[arg(long, global = true, env = "SPACEDRIVE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Library to act on, by name or id (default: the default library)
    #[arg(long, short = 'L', global = true, value_name = "NAME")]
    library: Option<String>,
    /// Print one JSON document (JSON Lines for streams) instead of text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage libraries
    #[command(subcommand)]
    Library(LibraryCmd),
    /// Manage the folders a library indexes
    #[command(subcommand)]
    Location(LocationCmd),
    /// List an indexed folder with sizes (recursive sizes for folders)
    Ls(LsArgs),
    /// Index tools that work outside libraries
    #[command(subcommand)]
    Index(IndexCmd),
    /// Groups of identical files, biggest waste first: in the library's index, or under PATH
    Dupes(DupesArgs),
    /// Indexed files: type, content identity, other copies
    #[command(subcommand)]
    File(FileCmd),
    /// Full-file BLAKE3 of a file (compared with the index's record when there is one)
    Verify { path: PathBuf },
    /// Find indexed files by name (substring; case and accents ignored) and filters
    Search(Box<SearchArgs>),
    /// Create, list, rename, delete, apply and remove tags (hierarchical: Work/Invoices)
    #[command(subcommand)]
    Tag(TagCmd),
    /// Mark files as favourites (or --off)
    Favorite(MarkArgs),
    /// Hide files from search results (or --off)
    Hide(MarkArgs),
    /// Show, set or clear a file's note
    Note {
        path: PathBuf,
        /// The note; omit to show the current one
        text: Option<String>,
        /// On the file's content (every copy) rather than this entry
        #[arg(long)]
        content: bool,
        /// Remove the note
        #[arg(long, conflicts_with = "text")]
        clear: bool,
    },
    /// Copy files and folders (each copy verified; --preview shows every step first)
    Cp(actions_cmd::TransferArgs),
    /// Move files and folders (a rename within a filesystem; verified copy, then removal, across)
    Mv(actions_cmd::TransferArgs),
    /// Give a file or folder a new name in the same folder
    Rename(actions_cmd::RenameArgs),
    /// Delete files and folders: to the trash (undoable), or --permanent
    Rm(actions_cmd::RmArgs),
    /// The audit log: every action, newest first
    History {
        #[arg(long, default_value_t = 30)]
        limit: usize,
    },
    /// Reverse an action: a rename, move, trash or tag change — the last action by default
    /// (refused, naming what `undo ID` could reverse, when the last action cannot be undone)
    Undo(actions_cmd::UndoArgs),
    /// Check the audit log
    #[command(subcommand)]
    Audit(actions_cmd::AuditCmd),
    /// Watch and control durable jobs
    #[command(subcommand)]
    Job(JobCmd),
    /// Mounted volumes and the ones your library remembers
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Show whether the daemon is running, and its device
    Status,
    /// Stop the daemon; running jobs continue from their checkpoint at next start
    Stop,
    /// Run the daemon in the foreground (other commands start it automatically)
    Daemon,
}

#[derive(Subcommand)]
enum LibraryCmd {
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

#[derive(Args)]
struct RuleArgs {
    /// Index system files too (.DS_Store, Thumbs.db, .Trash-*, lost+found, ...)
    #[arg(long)]
    no_default_rules: bool,
    /// Do not honour .gitignore files
    #[arg(long)]
    no_gitignore: bool,
    /// Leave out file names matching this glob (repeatable), e.g. --ignore '*.tmp'
    #[arg(long, value_name = "GLOB")]
    ignore: Vec<String>,
}

impl RuleArgs {
    fn config(&self) -> RuleConfig {
        RuleConfig {
            system_defaults: !self.no_default_rules,
            gitignore: !self.no_gitignore,
            ignore: self.ignore.clone(),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Metadata: names, sizes, times, inodes
    Shallow,
    /// Metadata, then content identity (sampled BLAKE3) and file types, for duplicates
    Content,
    /// As content (media metadata and thumbnails are not built yet)
    Deep,
}

#[derive(Args)]
struct DupesArgs {
    /// A folder to check without indexing it (default: the whole library's index)
    path: Option<PathBuf>,
    /// Ignore files smaller than this many bytes
    #[arg(long, default_value = "1")]
    min_size: u64,
    /// Show at most this many groups (the totals still count all)
    #[arg(long, default_value = "20")]
    limit: usize,
}

#[derive(Args)]
struct MarkArgs {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// On the files' content (every copy, anywhere) rather than these entries
    #[arg(long)]
    content: bool,
    /// Clear the mark instead
    #[arg(long)]
    off: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrderArg {
    Relevance,
    Name,
    Size,
    Modified,
}

#[derive(Args)]
struct SearchArgs {
    /// Words that must all appear in the name; "quoted words" stay together. May start with '-'.
    #[arg(allow_hyphen_values = true)]
    query: Option<String>,
    /// Content kind: image, video, audio, document, book, archive, code, text, database, font, executable
    #[arg(long)]
    kind: Vec<String>,
    /// Extension, without the dot (repeatable)
    #[arg(long)]
    ext: Vec<String>,
    /// e.g. 1MB, 500KiB
    #[arg(long, value_name = "SIZE")]
    larger_than: Option<String>,
    #[arg(long, value_name = "SIZE")]
    smaller_than: Option<String>,
    /// YYYY-MM-DD (UTC)
    #[arg(long, value_name = "DATE")]
    modified_after: Option<String>,
    #[arg(long, value_name = "DATE")]
    modified_before: Option<String>,
    #[arg(long, value_name = "DATE")]
    created_after: Option<String>,
    #[arg(long, value_name = "DATE")]
    created_before: Option<String>,
    /// Location id (repeatable)
    #[arg(long)]
    location: Vec<i64>,
    /// Must carry this tag or one of its children (repeatable: all must match)
    #[arg(long)]
    tag: Vec<String>,
    /// Must not carry this tag or its children
    #[arg(long)]
    not_tag: Vec<String>,
    /// Favourites only
    #[arg(long)]
    favorite: bool,
    /// Only what you hid
    #[arg(long, conflicts_with = "include_hidden")]
    hidden: bool,
    /// Include what you hid
    #[arg(long)]
    include_hidden: bool,
    #[arg(long, value_enum, default_value = "relevance")]
    sort: OrderArg,
    #[arg(long, default_value = "50")]
    limit: usize,
    #[arg(long, default_value = "0")]
    offset: usize,
}

#[derive(Subcommand)]
enum TagCmd {
    /// Create a tag; missing parents are created too (Work/Invoices)
    Create {
        name: String,
        /// #rrggbb
        #[arg(long)]
        color: Option<String>,
        #[arg(long)]
        namespace: Option<String>,
    },
    /// All tags, with how many files and contents carry each
    List,
    /// Rename a tag (a bare name), or move it (a full path); assignments stay
    Rename { tag: String, new: String },
    /// Delete a tag and its children; asks when they are in use, unless --yes
    Delete {
        tag: String,
        #[arg(long, short)]
        yes: bool,
    },
    /// Put a tag on files
    Apply {
        tag: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// On the files' content: every copy, anywhere, now and later
        #[arg(long)]
        content: bool,
    },
    /// Take a tag off files
    Remove {
        tag: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        content: bool,
    },
}

#[derive(Subcommand)]
enum VolumeCmd {
    /// Name, filesystem, capacity and free space, kind, storage class, fingerprint, online
    List {
        /// Include virtual filesystems (proc, tmpfs, overlay, …)
        #[arg(long)]
        all: bool,
    },
    /// Sequential write and read speed (writes a temporary file in PATH and removes it)
    SpeedTest {
        path: PathBuf,
        /// Size of the test file in MiB
        #[arg(long, default_value = "256")]
        size_mb: u64,
    },
}

#[derive(Subcommand)]
enum FileCmd {
    /// Kind, MIME type, size, cas_id and every other indexed copy of a file
    Info { path: PathBuf },
}

#[derive(Subcommand)]
enum LocationCmd {
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

#[derive(Clone, Copy, ValueEnum)]
enum SortArg {
    Name,
    Size,
    Modified,
}

#[derive(Args)]
struct LsArgs {
    /// An indexed folder (default: the current directory)
    path: Option<PathBuf>,
    /// List the whole subtree, parents before children
    #[arg(long, short)]
    recursive: bool,
    #[arg(long, value_enum, default_value = "name")]
    sort: SortArg,
    /// At most this many entries
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    /// The folder's own entries
    Current,
    /// The whole tree below it (folders show recursive sizes)
    Recursive,
}

#[derive(Subcommand)]
enum IndexCmd {
    /// Scan any folder in memory; no library is read or written
    QuickScan {
        path: PathBuf,
        #[arg(long, value_enum, default_value = "current")]
        scope: ScopeArg,
        /// In memory only (quick-scan always is; accepted for clarity)
        #[arg(long)]
        ephemeral: bool,
        #[command(flatten)]
        rules: RuleArgs,
    },
}

#[derive(Subcommand)]
enum JobCmd {
    /// Recent jobs, newest first
    List {
        #[arg(long, default_value = "20")]
        limit: usize,
    },
    /// One job's details and result
    Info { id: i64 },
    /// Live progress of running jobs (of one job, if given: then exits when it ends)
    Monitor { id: Option<i64> },
    /// Pause a running job at its next checkpoint
    Pause { id: i64 },
    /// Resume a paused job
    Resume { id: i64 },
    /// Cancel a job; what it already indexed stays
    Cancel { id: i64 },
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("{s:?}: use on or off")),
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("spacedrive");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/spacedrive")
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    if let Err(e) = run(cli) {
        if let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>())
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            // Whoever read our output stopped reading (`| head`): not an error of ours.
            std::process::exit(0);
        }
        if json {
            let (code, message) = match e.downcast_ref::<Remote>() {
                Some(r) => (r.0.code.clone(), r.0.message.clone()),
                None => ("cli".to_owned(), format!("{e:#}")),
            };
            println!(
                "{}",
                serde_json::json!({"error": {"code": code, "message": message}})
            );
        } else {
            eprintln!("error: {}", output::escape_controls(&format!("{e:#}")));
        }
        std::process::exit(1);
    }
}

/// `--library` on a command that acts on no library is refused rather than ignored (a typo in it
/// must not quietly act on the default library). `library info` takes it as the library to show.
fn check_library_flag(cli: &Cli) -> Result<()> {
    let Some(named) = &cli.library else {
        return Ok(());
    };
    let what = match &cli.command {
        Command::Library(LibraryCmd::Info { name: Some(n) }) if n != named => {
            bail!("--library {named:?} and `library info {n}` name different libraries; name one")
        }
        Command::Library(LibraryCmd::Info { .. }) => return Ok(()),
        Command::Library(LibraryCmd::Create { .. }) => "library create",
        Command::Library(LibraryCmd::List) => "library list",
        Command::Library(LibraryCmd::Rename { .. }) => "library rename",
        Command::Library(LibraryCmd::Delete { .. }) => "library delete",
        Command::Library(LibraryCmd::Use { .. }) => "library use",
        Command::Index(IndexCmd::QuickScan { .. }) => "index quick-scan",
        Command::Status => "status",
        Command::Stop => "stop",
        Command::Daemon => "daemon",
        _ => return Ok(()),
    };
    bail!(
        "--library does not apply to `{what}`{}; leave it out",
        if what.starts_with("library ") && what != "library list" {
            " (name the library as its argument)"
        } else {
            ""
        }
    )
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", output::shown(p.as_os_str())))
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    check_library_flag(&cli)?;
    let data_dir = match cli.data_dir {
        Some(d) => absolute(&d)?,
        None => default_data_dir(),
    };
    if let Command::Daemon = cli.command {
        init_logging();
        return daemon::run(&data_dir);
    }
    let autostart = !matches!(cli.command, Command::Stop | Command::Status);
    let client = Client::new(data_dir.clone(), autostart);
    let lib = cli.library.clone();
    let json = cli.json;
    match cli.command {
        Command::Daemon => unreachable!(),
        Command::Status => {
            if !client.running() {
                if json {
                    print_json(&serde_json::json!({"running": false}))?;
                } else {
                    println!(
                        "daemon: not running (data folder {})",
                        output::shown(data_dir.as_os_str())
                    );
                }
                return Ok(());
            }
            let s: api::Status = client.call(&Request::Status)?;
            if json {
                print_json(&serde_json::json!({"running": true, "status": s}))?;
            } else {
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
            }
        }
        Command::Stop => {
            if !client.running() {
                if json {
                    print_json(&serde_json::json!({"stopped": false, "running": false}))?;
                } else {
                    println!("the daemon is not running");
                }
                return Ok(());
            }
            let pid = client.call::<api::Status>(&Request::Status)?.pid;
            let _: Value = client.call(&Request::Stop)?;
            // Wait for the process itself, not just its socket: it holds the data folder's lock
            // until it is gone.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
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
            while (client.running() || alive()) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if json {
                print_json(&serde_json::json!({"stopped": true}))?;
            } else {
                println!("daemon stopped");
            }
        }
        Command::Library(cmd) => library_cmd(&client, lib, cmd, json)?,
        Command::Location(cmd) => location_cmd(&client, lib, cmd, json)?,
        Command::Ls(a) => ls(&client, lib, a, json)?,
        Command::Index(IndexCmd::QuickScan {
            path,
            scope,
            ephemeral: _,
            rules,
        }) => {
            let scope = match scope {
                ScopeArg::Current => Scope::Current,
                ScopeArg::Recursive => Scope::Recursive,
            };
            let r: QuickScan = client.call(&Request::QuickScan {
                path: JsonPath(absolute(&path)?),
                scope,
                rules: rules.config(),
            })?;
            if json {
                return print_json(&r);
            }
            print_quick_scan(&r);
        }
        Command::Job(cmd) => job_cmd(&client, lib, cmd, json)?,
        Command::Dupes(a) => {
            let path = a.path.as_deref().map(absolute).transpose()?.map(JsonPath);
            let r: sd_core::dupes::DupReport = client.call(&Request::Dupes {
                library: lib,
                path,
                min_size: a.min_size,
            })?;
            if json {
                return print_json(&r);
            }
            print_dupes(&r, a.limit);
        }
        Command::File(FileCmd::Info { path }) => {
            let info: sd_core::dupes::FileInfo = client.call(&Request::FileInfo {
                library: lib,
                path: JsonPath(absolute(&path)?),
            })?;
            if json {
                return print_json(&info);
            }
            print_file_info(&info);
        }
        Command::Volume(VolumeCmd::List { all }) => {
            let v: api::Volumes = client.call(&Request::VolumeList { library: lib })?;
            if json {
                return print_json(&v);
            }
            let mut rows: Vec<Vec<String>> = Vec::new();
            for m in v
                .mounted
                .iter()
                .filter(|m| all || m.kind != sd_core::volume::VolumeKind::Virtual)
            {
                let t = v
                    .tracked
                    .iter()
                    .find(|t| Some(&t.fingerprint) == m.fingerprint.as_ref());
                rows.push(vec![
                    m.name.clone(),
                    output::shown(m.mount_point.0.as_os_str()),
                    m.fs_type.clone(),
                    format!("{:?}", m.kind).to_lowercase(),
                    format!("{:?}", m.storage_class).to_lowercase(),
                    output::bytes(m.capacity),
                    output::bytes(m.free),
                    "yes".into(),
                    m.fingerprint.clone().unwrap_or_else(|| "-".into()),
                    t.and_then(|t| t.read_mb_s.zip(t.write_mb_s))
                        .map(|(r, w)| format!("{r:.0}/{w:.0} MB/s"))
                        .unwrap_or_default(),
                ]);
            }
            for t in v.tracked.iter().filter(|t| !t.online) {
                rows.push(vec![
                    t.name.clone(),
                    t.mount_point
                        .as_ref()
                        .map(|p| format!("(was {})", output::shown(p.0.as_os_str())))
                        .unwrap_or_default(),
                    t.fs_type.clone(),
                    t.kind.clone(),
                    t.storage_class.clone(),
                    output::bytes(t.capacity),
                    output::bytes(t.free),
                    format!("no, last seen {}", output::time_ms(t.last_seen)),
                    t.fingerprint.clone(),
                    t.read_mb_s
                        .zip(t.write_mb_s)
                        .map(|(r, w)| format!("{r:.0}/{w:.0} MB/s"))
                        .unwrap_or_default(),
                ]);
            }
            output::table(
                &[
                    "NAME",
                    "MOUNTED AT",
                    "FS",
                    "KIND",
                    "CLASS",
                    "SIZE",
                    "FREE",
                    "ONLINE",
                    "FINGERPRINT",
                    "READ/WRITE",
                ],
                &rows,
            );
        }
        Command::Volume(VolumeCmd::SpeedTest { path, size_mb }) => {
            if !json {
                eprintln!(
                    "writing and reading {size_mb} MiB in {} …",
                    output::shown(path.as_os_str())
                );
            }
            let s: sd_core::volume::Speed = client.call(&Request::SpeedTest {
                library: lib,
                path: JsonPath(absolute(&path)?),
                size_mb,
            })?;
            if json {
                return print_json(&s);
            }
            println!(
                "{}: write {:.0} MB/s, read {:.0} MB/s ({} tested; the test file was removed)",
                output::shown(s.dir.0.as_os_str()),
                s.write_mb_s,
                s.read_mb_s,
                output::bytes(s.bytes)
            );
        }
        Command::Search(a) => search_cmd(&client, lib, *a, json)?,
        Command::Cp(a) => actions_cmd::transfer(&client, lib, a, json, false)?,
        Command::Mv(a) => actions_cmd::transfer(&client, lib, a, json, true)?,
        Command::Rename(a) => actions_cmd::rename(&client, lib, a, json)?,
        Command::Rm(a) => actions_cmd::rm(&client, lib, a, json)?,
        Command::History { limit } => actions_cmd::history(&client, lib, limit, json)?,
        Command::Undo(a) => actions_cmd::undo(&client, lib, a, json)?,
        Command::Audit(cmd) => actions_cmd::audit(&client, lib, cmd, json)?,
        Command::Tag(cmd) => tag_cmd(&client, lib, cmd, json)?,
        Command::Favorite(m) => mark(&client, lib, m, json, Mark::Favorite)?,
        Command::Hide(m) => mark(&client, lib, m, json, Mark::Hidden)?,
        Command::Note {
            path,
            text,
            content,
            clear,
        } => {
            let path = absolute(&path)?;
            if text.is_none() && !clear {
                let info: sd_core::dupes::FileInfo = client.call(&Request::FileInfo {
                    library: lib,
                    path: JsonPath(path),
                })?;
                if json {
                    return print_json(
                        &serde_json::json!({"note": info.attached.note, "content_note": info.attached.content_note}),
                    );
                }
                match (&info.attached.note, &info.attached.content_note) {
                    (None, None) => println!("no note"),
                    (n, c) => {
                        if let Some(n) = n {
                            println!("{n}");
                        }
                        if let Some(c) = c {
                            println!("(on its content) {c}");
                        }
                    }
                }
                return Ok(());
            }
            let action = sd_core::actions::Action::Note {
                path: JsonPath(path),
                content,
                text,
            };
            let v: Value = client.call(&Request::Action {
                library: lib,
                action,
            })?;
            if json {
                return print_json(&v);
            }
            println!("{}", if clear { "note cleared" } else { "note saved" });
        }
        Command::Verify { path } => {
            let v: sd_core::dupes::Verified = client.call(&Request::Verify {
                library: lib,
                path: JsonPath(absolute(&path)?),
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
        }
    }
    Ok(())
}

enum Mark {
    Favorite,
    Hidden,
}

/// `favorite` and `hide`: the same shape, different flag.
fn mark(
    client: &Client,
    library: Option<String>,
    m: MarkArgs,
    json: bool,
    which: Mark,
) -> Result<()> {
    use sd_core::actions::Action;
    let paths = m
        .paths
        .iter()
        .map(|p| absolute(p).map(JsonPath))
        .collect::<Result<Vec<_>>>()?;
    let (content, on) = (m.content, !m.off);
    let action = match which {
        Mark::Favorite => Action::Favorite { paths, content, on },
        Mark::Hidden => Action::Hide { paths, content, on },
    };
    let v: Value = client.call(&Request::Action { library, action })?;
    if json {
        return print_json(&v);
    }
    let what = if content { "contents" } else { "files" };
    let verb = match (which, on) {
        (Mark::Favorite, true) => "marked as favourite:",
        (Mark::Favorite, false) => "no longer favourite:",
        (Mark::Hidden, true) => "hidden from search:",
        (Mark::Hidden, false) => "visible in search again:",
    };
    println!("{verb} {} {what}", v["updated"]);
    Ok(())
}

fn search_cmd(client: &Client, library: Option<String>, a: SearchArgs, json: bool) -> Result<()> {
    use sd_core::search::{Order, parse_date, parse_size};
    let kinds = a
        .kind
        .iter()
        .map(|k| {
            sd_core::filetype::ContentKind::parse(&k.to_ascii_lowercase())
                .ok_or_else(|| anyhow::anyhow!("unknown kind {k:?}; one of image, video, audio, document, book, archive, code, text, database, font, executable"))
        })
        .collect::<Result<Vec<_>>>()?;
    let size = |s: &Option<String>| s.as_deref().map(parse_size).transpose();
    // Dates without an offset or zone are local times, as times are shown.
    let tz = output::time_zone();
    let date = |s: &Option<String>| s.as_deref().map(|s| parse_date(s, tz)).transpose();
    let query = sd_core::search::Query {
        text: a.query.unwrap_or_default(),
        kinds,
        extensions: a.ext,
        larger_than: size(&a.larger_than)?,
        smaller_than: size(&a.smaller_than)?,
        modified_after: date(&a.modified_after)?,
        modified_before: date(&a.modified_before)?,
        created_after: date(&a.created_after)?,
        created_before: date(&a.created_before)?,
        locations: a.location,
        tags: a.tag,
        not_tags: a.not_tag,
        favorite: a.favorite,
        hidden: if a.hidden {
            Some(true)
        } else if a.include_hidden {
            Some(false)
        } else {
            None
        },
        order: match a.sort {
            OrderArg::Relevance => Order::Relevance,
            OrderArg::Name => Order::Name,
            OrderArg::Size => Order::Size,
            OrderArg::Modified => Order::Modified,
        },
        limit: Some(a.limit),
        offset: a.offset,
    };
    let r: sd_core::search::Results = client.call(&Request::Search { library, query })?;
    if json {
        return print_json(&r);
    }
    let rows: Vec<Vec<String>> = r
        .hits
        .iter()
        .map(|h| {
            vec![
                h.content_kind
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_else(|| format!("{:?}", h.kind).to_lowercase()),
                if h.kind == EntryKind::Dir {
                    "-".into()
                } else {
                    output::bytes(h.size)
                },
                h.mtime.map(output::time_ns).unwrap_or_default(),
                output::shown(h.path.0.as_os_str()),
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::table(&["KIND", "SIZE", "MODIFIED", "PATH"], &rows);
    }
    let shown = r.hits.len();
    println!(
        "{} matches{} ({:.1} ms{})",
        output::count(r.total as u64),
        if shown < r.total {
            format!(", showing {shown} (--limit/--offset for more)")
        } else {
            String::new()
        },
        r.took_us as f64 / 1000.0,
        r.index_built_ms
            .map(|b| format!(", after building the search index in {b} ms"))
            .unwrap_or_default()
    );
    Ok(())
}

fn tag_cmd(client: &Client, library: Option<String>, cmd: TagCmd, json: bool) -> Result<()> {
    use sd_core::actions::Action;
    let act = |action: Action| -> Result<Value> {
        client.call(&Request::Action {
            library: library.clone(),
            action,
        })
    };
    let abs = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| absolute(p).map(JsonPath))
            .collect::<Result<Vec<_>>>()
    };
    let v = match cmd {
        TagCmd::List => {
            let tags: Vec<sd_core::organise::Tag> = client.call(&Request::TagList {
                library: library.clone(),
            })?;
            if json {
                return print_json(&tags);
            }
            if tags.is_empty() {
                println!("no tags yet: `spacedrive tag create Work --color \"#3366ff\"`");
            }
            for t in &tags {
                let depth = t.path.matches('/').count();
                println!(
                    "{}{}{}  ({} files, {} contents){}",
                    "  ".repeat(depth),
                    t.name,
                    t.color
                        .as_deref()
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default(),
                    t.entries,
                    t.contents,
                    t.namespace
                        .as_deref()
                        .map(|n| format!(" [{n}]"))
                        .unwrap_or_default()
                );
            }
            return Ok(());
        }
        TagCmd::Create {
            name,
            color,
            namespace,
        } => act(Action::TagCreate {
            path: name,
            color,
            namespace,
        })?,
        TagCmd::Rename { tag, new } => act(Action::TagRename { path: tag, new })?,
        TagCmd::Delete { tag, yes } => match act(Action::TagDelete {
            path: tag.clone(),
            force: yes,
        }) {
            Err(e)
                if !yes
                    && std::io::stdin().is_terminal()
                    && e.downcast_ref::<Remote>()
                        .is_some_and(|r| r.0.code == "conflict") =>
            {
                eprint!("{e}. Delete anyway? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    bail!("not deleted");
                }
                act(Action::TagDelete {
                    path: tag,
                    force: true,
                })?
            }
            other => other?,
        },
        TagCmd::Apply {
            tag,
            paths,
            content,
        } => act(Action::TagApply {
            tag,
            paths: abs(&paths)?,
            content,
        })?,
        TagCmd::Remove {
            tag,
            paths,
            content,
        } => act(Action::TagRemove {
            tag,
            paths: abs(&paths)?,
            content,
        })?,
    };
    if json {
        return print_json(&v);
    }
    match (&v["path"], &v["added"], &v["removed"], &v["deleted"]) {
        (Value::String(p), ..) => println!("tag {p}"),
        (_, Value::Number(n), ..) => println!(
            "tagged {n} {} with {}",
            if v["on_content"] == true {
                "contents"
            } else {
                "files"
            },
            v["tag"]
        ),
        (_, _, Value::Number(n), _) => println!(
            "removed {} from {n} {}",
            v["tag"],
            if v["on_content"] == true {
                "contents"
            } else {
                "files"
            }
        ),
        (_, _, _, Value::String(d)) => println!(
            "deleted tag {d} ({} tags; removed from {} files and {} contents)",
            v["tags"], v["removed_from_entries"], v["removed_from_contents"]
        ),
        _ => println!("done (audit row {})", v["audit_id"]),
    }
    Ok(())
}

fn print_dupes(r: &sd_core::dupes::DupReport, limit: usize) {
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

fn print_file_info(info: &sd_core::dupes::FileInfo) {
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

fn init_logging() {
    let level = std::env::var("SPACEDRIVE_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

fn library_cmd(client: &Client, lib: Option<String>, cmd: LibraryCmd, json: bool) -> Result<()> {
    let show = |info: &api::LibraryInfo, verb: &str| {
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
            let info: api::LibraryInfo = client.call(&Request::LibraryCreate { name })?;
            if json {
                return print_json(&info);
            }
            show(&info, "created");
        }
        LibraryCmd::List => {
            let libs: Vec<api::LibrarySummary> = client.call(&Request::LibraryList)?;
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
                        l.status.clone(),
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
            let info: api::LibraryInfo = client.call(&Request::LibraryInfo {
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
            let info: api::LibraryInfo = client.call(&Request::LibraryRename {
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
            let v: Value = client.call(&Request::LibraryDelete { library: name })?;
            if json {
                return print_json(&v);
            }
            println!("deleted library {}", v["deleted"]);
        }
        LibraryCmd::Use { name } => {
            let info: api::LibraryInfo = client.call(&Request::LibraryUse { library: name })?;
            if json {
                return print_json(&info);
            }
            show(&info, "now using");
        }
    }
    Ok(())
}

fn location_cmd(
    client: &Client,
    library: Option<String>,
    cmd: LocationCmd,
    json: bool,
) -> Result<()> {
    match cmd {
        LocationCmd::Add {
            path,
            mode,
            name,
            rules,
            no_watch,
            detach,
        } => {
            let mode = match mode {
                ModeArg::Shallow => IndexMode::Shallow,
                ModeArg::Content => IndexMode::Content,
                ModeArg::Deep => IndexMode::Deep,
            };
            let started: api::Started = client.call(&Request::LocationAdd {
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
                        "note: deep mode identifies content; media metadata and thumbnails are not built yet"
                    );
                }
            }
            follow(client, library, started, detach, json)?;
        }
        LocationCmd::Rescan { id, detach } => {
            let started: api::Started = client.call(&Request::LocationRescan {
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
            let d: api::LocationDetail = client.call(&Request::LocationInfo { library, id })?;
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
            let v: Value = client.call(&Request::LocationUpdate {
                library: library.clone(),
                id,
                changes,
            })?;
            if json {
                return print_json(&v);
            }
            println!("updated location {id}");
            if let Some(job) = v["rescan_job"].as_i64() {
                println!("rescanning as job {job} (`spacedrive job monitor {job}`)");
            } else if let Some(job) = v["rescan_after_job"].as_i64() {
                println!(
                    "job {job} is indexing this location: it is rescanned again, under the new settings, when job {job} ends"
                );
            }
        }
        LocationCmd::Remove { id } => {
            let v: Value = client.call(&Request::LocationRemove { library, id })?;
            if json {
                return print_json(&v);
            }
            println!(
                "removed location {id} and {} index entries; the folder on disk was not touched",
                v["entries_removed"]
            );
        }
    }
    Ok(())
}

/// Streams job `id` until it ends or is paused, with a progress bar on stderr unless `json`; returns its
/// final state.
fn watch_job(client: &Client, lib: Option<String>, id: i64, json: bool) -> Result<JobInfo> {
    let mut last: Option<JobInfo> = None;
    let mut bar = None;
    client.stream(
        &Request::Subscribe {
            library: lib,
            job: Some(id),
        },
        |ev| {
            let job: JobInfo = serde_json::from_value(ev["data"].clone())?;
            if !json {
                let b = bar.get_or_insert_with(|| output::job_bar(&job));
                let knows_total = job.progress.index().is_none_or(|p| p.expected.is_some());
                if b.length().is_none() && knows_total {
                    b.finish_and_clear();
                    *b = output::job_bar(&job);
                }
                output::update_bar(b, &job);
            }
            // A paused job would keep this command waiting until someone resumes it: say so
            // (the caller does) and return.
            let done = job.state.is_final() || job.state == sd_core::jobs::JobState::Paused;
            last = Some(job);
            Ok(!done)
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match last {
        Some(j) if j.state.is_final() || j.state == sd_core::jobs::JobState::Paused => Ok(j),
        _ => bail!(
            "lost track of job {id}: the daemon stopped; it resumes when the daemon starts again"
        ),
    }
}

/// Shows a job's progress until it ends (unless detached), then its summary.
fn follow(
    client: &Client,
    library: Option<String>,
    started: api::Started,
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
        let location: api::LocationDetail = client.call(&Request::LocationInfo {
            library: lib,
            id: started.location.id,
        })?;
        return print_json(&serde_json::json!({ "location": location, "job": job }));
    }
    if job.state == sd_core::jobs::JobState::Paused {
        println!(
            "job {id} is paused; resume it with `spacedrive job resume {id}` (follow it with `spacedrive job monitor {id}`)",
            id = job.id
        );
        return Ok(());
    }
    println!("{}", output::job_summary(&job));
    if job.state == sd_core::jobs::JobState::Failed {
        bail!("job {} failed", job.id);
    }
    Ok(())
}

fn kind_char(k: EntryKind) -> char {
    match k {
        EntryKind::Dir => 'd',
        EntryKind::File => '-',
        EntryKind::Symlink => 'l',
        EntryKind::Other => '?',
    }
}

fn ls(client: &Client, library: Option<String>, a: LsArgs, json: bool) -> Result<()> {
    let path = match a.path {
        Some(p) => absolute(&p)?,
        None => std::env::current_dir()?,
    };
    let sort = match a.sort {
        SortArg::Name => SortBy::Name,
        SortArg::Size => SortBy::Size,
        SortArg::Modified => SortBy::Modified,
    };
    let l: query::Listing = client.call(&Request::EntriesList {
        library,
        path: JsonPath(path),
        recursive: a.recursive,
        sort,
        limit: a.limit,
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

fn job_cmd(client: &Client, library: Option<String>, cmd: JobCmd, json: bool) -> Result<()> {
    let one = |j: &JobInfo| -> Result<()> {
        if json {
            return print_json(j);
        }
        println!("{}", output::job_summary(j));
        Ok(())
    };
    match cmd {
        JobCmd::List { limit } => {
            let jobs: Vec<JobInfo> = client.call(&Request::JobList {
                library,
                limit: Some(limit),
            })?;
            if json {
                return print_json(&jobs);
            }
            if jobs.is_empty() {
                println!("no jobs yet");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        output::describe(j),
                        j.state.as_str().to_owned(),
                        output::progress_message(&j.progress),
                        j.resumes.to_string(),
                        output::time_ms(j.created_at),
                    ]
                })
                .collect();
            output::table(
                &["ID", "JOB", "STATE", "PROGRESS", "RESUMES", "CREATED"],
                &rows,
            );
        }
        JobCmd::Info { id } => one(&client.call(&Request::JobInfo { library, id })?)?,
        JobCmd::Pause { id } => one(&client.call(&Request::JobPause { library, id })?)?,
        JobCmd::Resume { id } => one(&client.call(&Request::JobResume { library, id })?)?,
        JobCmd::Cancel { id } => one(&client.call(&Request::JobCancel { library, id })?)?,
        JobCmd::Monitor { id } => monitor(client, library, id, json)?,
    }
    Ok(())
}

fn monitor(client: &Client, library: Option<String>, id: Option<i64>, json: bool) -> Result<()> {
    let multi = MultiProgress::new();
    let mut bars: HashMap<(String, i64), indicatif::ProgressBar> = HashMap::new();
    if !json && id.is_none() {
        eprintln!("watching jobs; Ctrl-C to stop");
    }
    client.stream(&Request::Subscribe { library, job: id }, |ev| {
        if json {
            print_json(&ev)?;
            std::io::stdout().flush()?;
        }
        let job: JobInfo = serde_json::from_value(ev["data"].clone())?;
        let done = job.state.is_final();
        if !json {
            let key = (job.library_id.to_string(), job.id);
            if done {
                if let Some(b) = bars.remove(&key) {
                    b.finish_and_clear();
                }
                let _ = multi.println(output::job_summary(&job));
            } else {
                let b = bars
                    .entry(key)
                    .or_insert_with(|| multi.add(output::job_bar(&job)));
                output::update_bar(b, &job);
            }
        }
        Ok(!(done && id.is_some()))
    })?;
    for b in bars.values() {
        b.finish_and_clear();
    }
    Ok(())
}
