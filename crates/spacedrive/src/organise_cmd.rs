//! Organising: `tag` (create, list, rename, delete, apply, remove), `favorite`, `hide` and
//! `note`. Each change is an action, recorded in the audit log and undoable.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use sd_api::{Change, Committed, ErrorCode, Marked, Organised, Request, TagCount};
use sd_core::actions::Action;
use sd_core::dupes::FileInfo;
use sd_core::names::JsonPath;
use serde::Serialize;

use crate::client::{Client, Remote};
use crate::{absolute, output, print_json, print_wire};

#[derive(Args)]
pub struct MarkArgs {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// On the files' content (every copy, anywhere) rather than these entries
    #[arg(long)]
    content: bool,
    /// Clear the mark instead
    #[arg(long)]
    off: bool,
}

#[derive(Subcommand)]
pub enum TagCmd {
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

#[derive(Args)]
pub struct NoteArgs {
    path: PathBuf,
    /// The note; omit to show the current one
    text: Option<String>,
    /// On the file's content (every copy) rather than this entry
    #[arg(long)]
    content: bool,
    /// Remove the note
    #[arg(long, conflicts_with = "text")]
    clear: bool,
}

pub enum Mark {
    Favorite,
    Hidden,
}

/// Commits an organising action; its answer is always an [`Organised`] change.
fn organise(client: &Client, library: Option<String>, action: Action) -> Result<Organised> {
    match client.call(&Request::Action { library, action })? {
        Committed::Organised(o) => Ok(o),
        Committed::Job(j) => bail!(
            "the daemon started job {} for an organising action; see `spacedrive job info {}`",
            j.job.id,
            j.job.id
        ),
    }
}

/// `favorite` and `hide`: the same shape, different flag.
pub fn mark(
    client: &Client,
    library: Option<String>,
    m: MarkArgs,
    json: bool,
    which: Mark,
) -> Result<()> {
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
    let o = organise(client, library, action)?;
    if json {
        return print_wire(&o);
    }
    let Change::Marked(Marked { updated, .. }) = o.change else {
        bail!("unexpected answer to {}: {:?}", "a mark", o.change);
    };
    let what = if content { "contents" } else { "files" };
    let verb = match (which, on) {
        (Mark::Favorite, true) => "marked as favourite:",
        (Mark::Favorite, false) => "no longer favourite:",
        (Mark::Hidden, true) => "hidden from search:",
        (Mark::Hidden, false) => "visible in search again:",
    };
    println!("{verb} {updated} {what}");
    Ok(())
}

/// `note PATH`: shows the notes; `note PATH TEXT` or `--clear` sets or clears one.
pub fn note(client: &Client, library: Option<String>, a: NoteArgs, json: bool) -> Result<()> {
    let NoteArgs {
        path,
        text,
        content,
        clear,
    } = a;
    let path = absolute(&path)?;
    if text.is_none() && !clear {
        let info: FileInfo = client.call(&Request::FileInfo {
            library,
            path: JsonPath(path),
        })?;
        if json {
            #[derive(Serialize)]
            struct Notes {
                content_note: Option<String>,
                note: Option<String>,
            }
            return print_wire(&Notes {
                content_note: info.attached.content_note,
                note: info.attached.note,
            });
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
    let action = Action::Note {
        path: JsonPath(path),
        content,
        text,
    };
    let o = organise(client, library, action)?;
    if json {
        return print_wire(&o);
    }
    println!("{}", if clear { "note cleared" } else { "note saved" });
    Ok(())
}

pub fn tag(client: &Client, library: Option<String>, cmd: TagCmd, json: bool) -> Result<()> {
    let act = |action: Action| organise(client, library.clone(), action);
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
                        .is_some_and(|r| r.0.code == ErrorCode::Conflict) =>
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
        return print_wire(&v);
    }
    let what = |on_content: bool| if on_content { "contents" } else { "files" };
    match &v.change {
        Change::Tag(t) => println!("tag {}", t.path),
        Change::Tagged(t) => match t.count {
            TagCount::Added(n) => println!(
                "tagged {n} {} with {}",
                what(t.on_content),
                output::quoted(&t.tag)
            ),
            TagCount::Removed(n) => println!(
                "removed {} from {n} {}",
                output::quoted(&t.tag),
                what(t.on_content)
            ),
        },
        Change::TagDeleted(d) => println!(
            "deleted tag {} ({} tags; removed from {} files and {} contents)",
            d.deleted, d.tags, d.removed_from_entries, d.removed_from_contents
        ),
        Change::Retagged(_) | Change::Marked(_) => println!("done (audit row {})", v.audit_id),
    }
    Ok(())
}
