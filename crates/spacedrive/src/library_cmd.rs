//! `library`: create, list, show, rename, delete and pick the default library; encrypt,
//! decrypt, lock, unlock and change the passphrase of one.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use sd_api::{LibraryDeleted, LibraryInfo, LibrarySummary, LockedNow, Passphrase, Request};

use crate::client::Client;
use crate::{output, print_json, print_wire};

#[derive(Subcommand)]
pub enum LibraryCmd {
    /// Create a library (the first one becomes the default)
    Create {
        name: String,
        /// Encrypt it (SQLCipher; the key comes from a passphrase through Argon2id)
        #[arg(long)]
        encrypt: bool,
        #[command(flatten)]
        secret: Secret,
    },
    /// Unlock an encrypted library with its passphrase
    Unlock {
        name: String,
        #[command(flatten)]
        secret: Secret,
    },
    /// Lock an encrypted library: close it and forget a remembered key
    Lock { name: String },
    /// Encrypt an existing library (its database and sidecars are rewritten, crash-safe)
    Encrypt {
        name: String,
        #[command(flatten)]
        secret: Secret,
    },
    /// Decrypt an encrypted library back to a plain one
    Decrypt {
        name: String,
        /// Read the passphrase from this file (first line) instead of the terminal or stdin
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Change an encrypted library's passphrase (a new key; everything is re-encrypted)
    Passphrase {
        name: String,
        /// Read the current passphrase from this file instead of the terminal or stdin
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Read the new passphrase from this file (without it: the terminal, or the second line
        /// of stdin)
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
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

/// Where a passphrase comes from, and whether the key is remembered.
#[derive(Args)]
pub struct Secret {
    /// Read the passphrase from this file (its first line) instead of the terminal or stdin
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Keep the derived key in a file only you can read (<data>/keys/), so the library opens
    /// when the daemon starts. No OS keyring is used
    #[arg(long)]
    remember: bool,
}

/// Reads passphrases: from a file, else from the terminal (hidden; asked twice for a new one),
/// else one line of stdin each.
struct Asker {
    stdin: Option<std::io::StdinLock<'static>>,
}

impl Asker {
    fn new() -> Asker {
        Asker { stdin: None }
    }

    fn ask(&mut self, file: Option<&Path>, prompt: &str, new: bool) -> Result<Passphrase> {
        let p = if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading the passphrase from {}", f.display()))?;
            first_line(&text).to_owned()
        } else if std::io::stdin().is_terminal() {
            let p = rpassword::prompt_password(format!("{prompt}: "))?;
            if new && rpassword::prompt_password("Repeat it: ")? != p {
                bail!("the two passphrases differ; nothing was changed");
            }
            p
        } else {
            let stdin = self.stdin.get_or_insert_with(|| std::io::stdin().lock());
            let mut line = String::new();
            if stdin.read_line(&mut line)? == 0 {
                bail!(
                    "no passphrase: type it on a terminal, pipe it on stdin, or pass --passphrase-file FILE"
                );
            }
            first_line(&line).to_owned()
        };
        if p.is_empty() {
            bail!("the passphrase is empty");
        }
        Ok(Passphrase::new(p))
    }
}

fn first_line(text: &str) -> &str {
    text.split('\n').next().unwrap_or("").trim_end_matches('\r')
}

/// What to tell about an encrypted library's key after it was given.
fn tell_key(info: &LibraryInfo) {
    match &info.key_file {
        Some(f) => println!(
            "  key remembered in {} (readable only by you): it opens when the daemon starts",
            output::shown(f.0.as_os_str())
        ),
        None => println!(
            "  encrypted: after a daemon restart it is locked until `spacedrive library unlock {}`",
            output::quoted(&info.name)
        ),
    }
}

pub fn run(client: &Client, lib: Option<String>, cmd: LibraryCmd, json: bool) -> Result<()> {
    let mut asker = Asker::new();
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
        LibraryCmd::Create {
            name,
            encrypt,
            secret,
        } => {
            if !encrypt && (secret.passphrase_file.is_some() || secret.remember) {
                bail!("--passphrase-file and --remember go with --encrypt");
            }
            let passphrase = if encrypt {
                Some(asker.ask(
                    secret.passphrase_file.as_deref(),
                    "Passphrase for the new library",
                    true,
                )?)
            } else {
                None
            };
            let info: LibraryInfo = client.call(&Request::LibraryCreate {
                name,
                passphrase,
                remember: secret.remember,
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "created");
            if info.encrypted {
                tell_key(&info);
            }
        }
        LibraryCmd::Unlock { name, secret } => {
            let passphrase = asker.ask(
                secret.passphrase_file.as_deref(),
                &format!("Passphrase of {}", output::quoted(&name)),
                false,
            )?;
            let info: LibraryInfo = client.call(&Request::LibraryUnlock {
                library: name,
                passphrase,
                remember: secret.remember,
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "unlocked");
            tell_key(&info);
        }
        LibraryCmd::Lock { name } => {
            let l: LockedNow = client.call(&Request::LibraryLock { library: name })?;
            if json {
                return print_wire(&l);
            }
            println!(
                "locked library {}: unlock it with `spacedrive library unlock {}`",
                output::quoted(&l.locked),
                output::quoted(&l.locked)
            );
        }
        LibraryCmd::Encrypt { name, secret } => {
            let passphrase = asker.ask(
                secret.passphrase_file.as_deref(),
                &format!("New passphrase for {}", output::quoted(&name)),
                true,
            )?;
            let info: LibraryInfo = client.call(&Request::LibraryEncrypt {
                library: name,
                passphrase,
                remember: secret.remember,
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "encrypted");
            tell_key(&info);
            println!(
                "  note: the plain copy's disk blocks are freed, not overwritten; on an SSD they may linger until reused"
            );
        }
        LibraryCmd::Decrypt {
            name,
            passphrase_file,
            yes,
        } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "decrypting library {name:?} writes its index in the clear; pass --yes to confirm"
                    );
                }
                eprint!(
                    "Decrypt library {name:?}? Its index and thumbnails will be stored in the clear. [y/N] "
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    bail!("not decrypted");
                }
            }
            let passphrase = asker.ask(
                passphrase_file.as_deref(),
                &format!("Passphrase of {}", output::quoted(&name)),
                false,
            )?;
            let info: LibraryInfo = client.call(&Request::LibraryDecrypt {
                library: name,
                passphrase,
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "decrypted");
        }
        LibraryCmd::Passphrase {
            name,
            passphrase_file,
            new_passphrase_file,
        } => {
            let passphrase = asker.ask(
                passphrase_file.as_deref(),
                &format!("Current passphrase of {}", output::quoted(&name)),
                false,
            )?;
            let new_passphrase = asker.ask(
                new_passphrase_file.as_deref(),
                &format!("New passphrase for {}", output::quoted(&name)),
                true,
            )?;
            let info: LibraryInfo = client.call(&Request::LibraryPassphrase {
                library: name,
                passphrase,
                new_passphrase,
            })?;
            if json {
                return print_json(&info);
            }
            show(&info, "changed the passphrase of");
            tell_key(&info);
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
                        match (&l.status, l.encrypted) {
                            (sd_api::LibraryStatus::Open, Some(true)) => "open, encrypted".into(),
                            (s, _) => s.to_string(),
                        },
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
            if info.encrypted {
                println!("  encrypted (SQLCipher; key from the passphrase through Argon2id)");
                tell_key(&info);
            }
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
