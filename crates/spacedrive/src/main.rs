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
mod client;
mod daemon;
mod daemon_cmd;
mod files_cmd;
mod http;
mod job_cmd;
mod library_cmd;
mod location_cmd;
mod network;
mod network_cmd;
mod organise_cmd;
mod output;
mod search_cmd;
mod sidecar_cmd;
mod spacedrop;
mod spacedrop_cmd;
mod transfer;
mod ui_cmd;
mod volume_cmd;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use sd_core::rules::RuleConfig;
use serde::Serialize;

use client::{Client, Remote};
use files_cmd::IndexCmd;
use library_cmd::LibraryCmd;

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
    /// Ask a paired device instead of this one (read-only: status, libraries, locations)
    #[arg(
        long = "device",
        id = "remote_device",
        global = true,
        value_name = "NAME"
    )]
    remote_device: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage libraries
    #[command(subcommand)]
    Library(library_cmd::LibraryCmd),
    /// Manage the folders a library indexes
    #[command(subcommand)]
    Location(location_cmd::LocationCmd),
    /// List an indexed folder with sizes (recursive sizes for folders)
    Ls(files_cmd::LsArgs),
    /// Index tools that work outside libraries
    #[command(subcommand)]
    Index(files_cmd::IndexCmd),
    /// Groups of identical files, biggest waste first: in the library's index, or under PATH
    Dupes(files_cmd::DupesArgs),
    /// Indexed files: type, content identity, other copies
    #[command(subcommand)]
    File(files_cmd::FileCmd),
    /// Full-file BLAKE3 of a file (compared with the index's record when there is one)
    Verify { path: PathBuf },
    /// Find indexed files by name (substring; case and accents ignored), by the words in them
    /// (--content) and filters
    Search(Box<search_cmd::SearchArgs>),
    /// Print the path of an indexed file's thumbnail (made now if missing)
    Thumb(sidecar_cmd::ThumbArgs),
    /// Thumbnails, media metadata and text made for deep locations: status, regenerate
    #[command(subcommand)]
    Sidecar(sidecar_cmd::SidecarCmd),
    /// Create, list, rename, delete, apply and remove tags (hierarchical: Work/Invoices)
    #[command(subcommand)]
    Tag(organise_cmd::TagCmd),
    /// Mark files as favourites (or --off)
    Favorite(organise_cmd::MarkArgs),
    /// Hide files from search results (or --off)
    Hide(organise_cmd::MarkArgs),
    /// Show, set or clear a file's note
    Note(organise_cmd::NoteArgs),
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
    Job(job_cmd::JobCmd),
    /// Mounted volumes and the ones your library remembers
    #[command(subcommand)]
    Volume(volume_cmd::VolumeCmd),
    /// Devices: this one on the network, pairing, paired devices
    #[command(subcommand)]
    Network(network_cmd::NetworkCmd),
    /// Spacedrop: files to and from a nearby device that is not paired
    #[command(subcommand)]
    Spacedrop(spacedrop_cmd::SpacedropCmd),
    /// Show whether the daemon is running, and its device
    Status,
    /// Stop the daemon; running jobs continue from their checkpoint at next start
    Stop,
    /// Open the web UI: prints its URL (which logs the browser in) and opens it in a browser
    Ui(ui_cmd::UiArgs),
    /// Run the daemon in the foreground (other commands start it automatically)
    Daemon(DaemonArgs),
}

/// Where the daemon serves its HTTP API and web UI. Flags override `<data dir>/http.json`
/// (`{"enabled", "addr", "port", "listen_beyond_loopback"}`); a daemon started by another
/// command reads the file and the `SPACEDRIVE_HTTP_*` variables only.
#[derive(Args)]
struct DaemonArgs {
    /// Address to listen on (default 127.0.0.1: this machine only)
    #[arg(long, env = "SPACEDRIVE_HTTP_ADDR", value_name = "IP")]
    http_addr: Option<std::net::IpAddr>,
    /// Port to listen on [default: 8742; another free one when it is taken; 0: any]
    #[arg(long, env = "SPACEDRIVE_HTTP_PORT", value_name = "PORT")]
    http_port: Option<u16>,
    /// Allow --http-addr to be an address other machines can reach (the token is required on
    /// every request, as always)
    #[arg(long)]
    http_listen_beyond_loopback: bool,
    /// Serve no HTTP at all (the Unix socket only)
    #[arg(long)]
    no_http: bool,
}

impl DaemonArgs {
    fn settings(&self, data_dir: &std::path::Path) -> Result<http::Settings> {
        let mut s = http::Settings::load(data_dir)?;
        if let Some(a) = self.http_addr {
            s.addr = a;
        }
        if let Some(p) = self.http_port {
            s.port = p;
        }
        if self.http_listen_beyond_loopback {
            s.listen_beyond_loopback = true;
        }
        if self.no_http {
            s.enabled = false;
        }
        Ok(s)
    }
}

/// What a location (or a quick scan) leaves out.
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
            // The daemon's error as it sent it, or one of the CLI's own (code `cli`).
            let (code, message) = match e.downcast_ref::<Remote>() {
                Some(r) => (r.0.code.as_str(), r.0.message.clone()),
                None => ("cli", format!("{e:#}")),
            };
            #[derive(Serialize)]
            struct Error<'a> {
                code: &'a str,
                message: String,
            }
            #[derive(Serialize)]
            struct Failed<'a> {
                error: Error<'a>,
            }
            let failed = Failed {
                error: Error { code, message },
            };
            // Through `println!`, which ends quietly on a closed pipe.
            println!("{}", serde_json::to_string(&failed).unwrap_or_default());
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
        Command::Library(LibraryCmd::Unlock { .. }) => "library unlock",
        Command::Library(LibraryCmd::Lock { .. }) => "library lock",
        Command::Library(LibraryCmd::Encrypt { .. }) => "library encrypt",
        Command::Library(LibraryCmd::Decrypt { .. }) => "library decrypt",
        Command::Library(LibraryCmd::Passphrase { .. }) => "library passphrase",
        Command::Index(IndexCmd::QuickScan { .. }) => "index quick-scan",
        Command::Status => "status",
        Command::Stop => "stop",
        Command::Daemon(_) => "daemon",
        Command::Ui(_) => "ui",
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

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Prints an answer with its keys sorted, exactly as the daemon sent it (the socket's framing
/// writes through a `serde_json::Value`), for the commands that always printed it that way.
fn print_wire<T: Serialize>(v: &T) -> Result<()> {
    print_json(&serde_json::to_value(v)?)
}

fn run(cli: Cli) -> Result<()> {
    check_library_flag(&cli)?;
    let data_dir = match cli.data_dir {
        Some(d) => absolute(&d)?,
        None => default_data_dir(),
    };
    if let Command::Daemon(args) = &cli.command {
        init_logging();
        return daemon::run(&data_dir, args.settings(&data_dir)?);
    }
    let autostart = !matches!(cli.command, Command::Stop | Command::Status);
    if cli.remote_device.is_some()
        && matches!(
            cli.command,
            Command::Network(_) | Command::Spacedrop(_) | Command::Stop | Command::Ui(_)
        )
    {
        bail!("--device does not apply to `network`, `spacedrop`, `stop` or `ui`; leave it out");
    }
    let client = Client::new(data_dir.clone(), autostart).on_device(cli.remote_device.clone());
    let lib = cli.library;
    let json = cli.json;
    match cli.command {
        Command::Daemon(_) => unreachable!("served above"),
        Command::Ui(a) => ui_cmd::run(&client, &data_dir, a, json),
        Command::Status => daemon_cmd::status(&client, &data_dir, json),
        Command::Stop => daemon_cmd::stop(&client, json),
        Command::Library(cmd) => library_cmd::run(&client, lib, cmd, json),
        Command::Location(cmd) => location_cmd::run(&client, lib, cmd, json),
        Command::Ls(a) => files_cmd::ls(&client, lib, a, json),
        Command::Index(cmd) => files_cmd::index(&client, cmd, json),
        Command::Dupes(a) => files_cmd::dupes(&client, lib, a, json),
        Command::File(cmd) => files_cmd::file(&client, lib, cmd, json),
        Command::Verify { path } => files_cmd::verify(&client, lib, &path, json),
        Command::Search(a) => search_cmd::run(&client, lib, *a, json),
        Command::Thumb(a) => sidecar_cmd::thumb(&client, lib, a, json),
        Command::Sidecar(cmd) => sidecar_cmd::run(&client, lib, cmd, json),
        Command::Tag(cmd) => organise_cmd::tag(&client, lib, cmd, json),
        Command::Favorite(m) => {
            organise_cmd::mark(&client, lib, m, json, organise_cmd::Mark::Favorite)
        }
        Command::Hide(m) => organise_cmd::mark(&client, lib, m, json, organise_cmd::Mark::Hidden),
        Command::Note(a) => organise_cmd::note(&client, lib, a, json),
        Command::Cp(a) => actions_cmd::transfer(&client, lib, a, json, false),
        Command::Mv(a) => actions_cmd::transfer(&client, lib, a, json, true),
        Command::Rename(a) => actions_cmd::rename(&client, lib, a, json),
        Command::Rm(a) => actions_cmd::rm(&client, lib, a, json),
        Command::History { limit } => actions_cmd::history(&client, lib, limit, json),
        Command::Undo(a) => actions_cmd::undo(&client, lib, a, json),
        Command::Audit(cmd) => actions_cmd::audit(&client, lib, cmd, json),
        Command::Job(cmd) => job_cmd::run(&client, lib, cmd, json),
        Command::Volume(cmd) => volume_cmd::run(&client, lib, cmd, json),
        Command::Network(cmd) => network_cmd::run(&client, cmd, json),
        Command::Spacedrop(cmd) => spacedrop_cmd::run(&client, cmd, json),
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
