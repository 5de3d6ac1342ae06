//! `cp`, `mv`, `rename`, `rm`, `undo`, `history` and `audit`: actions previewed, committed as
//! jobs, followed with a progress bar, and the audit log they leave.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use sd_api::{Committed, ErrorCode, Request};
use sd_core::actions::{Action, Preview};
use sd_core::audit::{AuditRow, Role, Verification};
use sd_core::fileops::{ConflictPolicy, Plan, StepOp};
use sd_core::jobs::JobState;
use sd_core::names::{JsonName, JsonPath};

use crate::client::{Client, Remote};
use crate::job_cmd::watch_job;
use crate::{absolute, output, print_json, print_wire};

/// What to do when a destination exists.
#[derive(Clone, Copy, ValueEnum)]
pub enum OnConflict {
    /// Show the conflicts and ask (fails when there is no terminal to ask on)
    Ask,
    /// Leave the existing file; do not copy or move this one
    Skip,
    /// Replace existing files (never folders); replaced files cannot be recovered
    Overwrite,
    /// Keep both: the new one gets a free name, "name (1).ext"
    KeepBoth,
}

impl From<OnConflict> for ConflictPolicy {
    fn from(o: OnConflict) -> Self {
        match o {
            OnConflict::Ask => ConflictPolicy::Ask,
            OnConflict::Skip => ConflictPolicy::Skip,
            OnConflict::Overwrite => ConflictPolicy::Overwrite,
            OnConflict::KeepBoth => ConflictPolicy::KeepBoth,
        }
    }
}

#[derive(Args)]
pub struct TransferArgs {
    /// Sources, then the destination (a folder to put them in, or a new name for one source).
    /// `DEVICE:/path` is a path on a paired device: the sources, or the destination, may be
    /// there (write `./a:/b` for a local path that looks like one)
    #[arg(required = true, num_args = 2.., value_name = "SOURCE... DEST")]
    paths: Vec<PathBuf>,
    /// Show every step, conflicts, bytes and free space; change nothing
    #[arg(long)]
    preview: bool,
    #[arg(long, value_enum, default_value = "ask")]
    on_conflict: OnConflict,
    /// Return once the job is queued instead of following it
    #[arg(long)]
    detach: bool,
}

#[derive(Args)]
pub struct RenameArgs {
    path: PathBuf,
    /// The new name (in the same folder)
    name: std::ffi::OsString,
    #[arg(long)]
    preview: bool,
    #[arg(long, value_enum, default_value = "ask")]
    on_conflict: OnConflict,
}

#[derive(Args)]
pub struct RmArgs {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Delete for good instead of moving to the trash (asks first, unless --yes)
    #[arg(long)]
    permanent: bool,
    #[arg(long)]
    preview: bool,
    /// Do not ask
    #[arg(long, short)]
    yes: bool,
    #[arg(long)]
    detach: bool,
}

#[derive(Args)]
pub struct UndoArgs {
    /// The action to reverse (see `history`). Without it: the last action, if it can be undone
    /// (undos are skipped, so repeated undos walk back; naming an undo redoes it)
    id: Option<i64>,
    #[arg(long)]
    preview: bool,
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check the audit log's hash chain (exits 1 if a row was edited, inserted or removed)
    Verify,
}

fn preview(client: &Client, lib: &Option<String>, action: &Action) -> Result<Preview> {
    client.call(&Request::Preview {
        library: lib.clone(),
        action: action.clone(),
    })
}

fn shown(p: &JsonPath) -> String {
    output::shown(p.0.as_os_str())
}

/// Prints a plan for people: totals, strategy, space, conflicts, then the first steps.
pub fn print_preview(p: &Preview, all: bool) {
    if let Some(plan) = &p.plan {
        print_plan(plan, all, p.undoes);
    }
    for e in &p.effects {
        println!("  {}", output::escape_controls(e));
    }
    if let Some(id) = p.undoes {
        println!("reverses action {id}");
    }
    if p.plan.is_none() {
        println!("undoable: {}", if p.undoable { "yes" } else { "no" });
    }
}

/// `undoes`: the plan is an undo's, which puts things back where they were and takes no
/// conflict policy.
fn print_plan(plan: &Plan, all: bool, undoes: Option<i64>) {
    println!(
        "{}: {} files, {} folders, {} symlinks, {}",
        plan.op.as_str(),
        output::count(plan.files),
        output::count(plan.dirs),
        output::count(plan.symlinks),
        output::bytes(plan.bytes)
    );
    if !plan.strategy.is_empty() {
        println!("how: {}", plan.strategy);
    }
    if plan.verify {
        println!(
            "verify: BLAKE3 of every copied file compared with its source before it gets its name"
        );
    }
    for s in &plan.space {
        println!(
            "space at {}: needs {}, {} free — {}",
            shown(&s.path),
            output::bytes(s.needed),
            output::bytes(s.available),
            if s.ok { "ok" } else { "NOT ENOUGH" }
        );
    }
    if plan.conflicts > 0 {
        println!(
            "conflicts: {} destinations exist{}",
            plan.conflicts,
            if plan.unresolved > 0 {
                match undoes {
                    Some(id) => format!(
                        ", {} in the way: move them elsewhere, then `spacedrive undo {id}` again",
                        plan.unresolved
                    ),
                    None => format!(", {} need a decision (--on-conflict)", plan.unresolved),
                }
            } else {
                String::new()
            }
        );
    }
    for b in &plan.blocked {
        println!("cannot start: {}", output::escape_controls(&b.message));
    }
    println!("undoable: {}", if plan.undoable { "yes" } else { "no" });
    for w in &plan.warnings {
        println!("warning: {}", output::escape_controls(w));
    }
    let limit = if all { usize::MAX } else { 20 };
    for s in plan.steps.iter().take(limit) {
        let to = s
            .dst
            .as_ref()
            .map(|d| format!(" -> {}", shown(d)))
            .unwrap_or_default();
        let size = if s.size > 0
            && matches!(
                s.op,
                StepOp::Copy | StepOp::Delete | StepOp::Trash | StepOp::Rename
            ) {
            format!("  ({})", output::bytes(s.size))
        } else {
            String::new()
        };
        let note = s
            .note
            .as_ref()
            .map(|n| format!("  [{}]", output::escape_controls(n)))
            .unwrap_or_default();
        println!("  {:<8} {}{to}{size}{note}", s.op.as_str(), shown(&s.src));
    }
    if plan.steps.len() > limit {
        println!(
            "  … and {} more steps (--json lists them all)",
            plan.steps.len() - limit
        );
    }
}

fn ask(question: &str) -> Result<String> {
    eprint!("{question} ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().to_lowercase())
}

/// Commits `action`; on unresolved conflicts at a terminal, shows them and asks for a policy.
/// Follows the job it starts (unless `detach`) and prints its summary.
fn commit(
    client: &Client,
    lib: &Option<String>,
    mut action: Action,
    json: bool,
    detach: bool,
) -> Result<()> {
    let answer: Committed = match client.call(&Request::Action {
        library: lib.clone(),
        action: action.clone(),
    }) {
        Err(e)
            if !json
                && std::io::stdin().is_terminal()
                && e.downcast_ref::<Remote>()
                    .is_some_and(|r| r.0.code == ErrorCode::Conflict)
                && policy_of(&mut action).is_some() =>
        {
            let p = preview(client, lib, &action)?;
            if let Some(plan) = &p.plan {
                for s in plan
                    .steps
                    .iter()
                    .filter(|s| s.op == StepOp::Conflict)
                    .take(20)
                {
                    eprintln!(
                        "  exists: {}",
                        s.dst.as_ref().map(shown).unwrap_or_default()
                    );
                }
            }
            let policy =
                match ask("Existing destinations: [s]kip, [o]verwrite, [k]eep both, or [c]ancel?")?
                    .as_str()
                {
                    "s" | "skip" => ConflictPolicy::Skip,
                    "o" | "overwrite" => ConflictPolicy::Overwrite,
                    "k" | "keep both" | "keep-both" => ConflictPolicy::KeepBoth,
                    _ => bail!("cancelled; nothing was changed"),
                };
            if let Some(p) = policy_of(&mut action) {
                *p = policy;
            }
            client.call(&Request::Action {
                library: lib.clone(),
                action,
            })?
        }
        other => other?,
    };
    let started = match answer {
        Committed::Job(started) => started,
        Committed::Organised(o) => {
            if json {
                return print_wire(&o);
            }
            // Only an undo of an organising change answers without a job.
            match (o.undid, &o.effect) {
                (Some(id), Some(effect)) => println!("undid action {id}: {effect}"),
                _ => println!("done (audit row {})", o.audit_id),
            }
            return Ok(());
        }
    };
    if detach {
        if json {
            return print_wire(&started);
        }
        println!(
            "job {} queued: {}",
            started.job.id,
            output::describe(&started.job)
        );
        return Ok(());
    }
    let job = started.job;
    let lib = lib.clone().or(Some(job.library_id.to_string()));
    let done = watch_job(client, lib, job.id, json)?;
    if json {
        print_json(&done)?;
    } else {
        println!("{}", output::job_summary(&done));
    }
    match done.state {
        JobState::Completed => Ok(()),
        JobState::CompletedWithErrors => bail!(
            "job {} completed with errors: {}",
            done.id,
            done.progress
                .failures()
                .or(done.error.clone())
                .unwrap_or_default()
        ),
        s => bail!(
            "job {} {}{}",
            done.id,
            s.as_str(),
            done.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}

fn policy_of(a: &mut Action) -> Option<&mut ConflictPolicy> {
    match a {
        Action::Copy { on_conflict, .. }
        | Action::Move { on_conflict, .. }
        | Action::Rename { on_conflict, .. }
        | Action::Transfer { on_conflict, .. } => Some(on_conflict),
        _ => None,
    }
}

fn show_or_commit(
    client: &Client,
    lib: Option<String>,
    action: Action,
    show: bool,
    json: bool,
    detach: bool,
) -> Result<()> {
    if show {
        let p = preview(client, &lib, &action)?;
        if json {
            return print_json(&p);
        }
        print_preview(&p, false);
        return Ok(());
    }
    commit(client, &lib, action, json, detach)
}

pub fn transfer(
    client: &Client,
    lib: Option<String>,
    a: TransferArgs,
    json: bool,
    is_move: bool,
) -> Result<()> {
    let on_conflict = a.on_conflict.into();
    if let [src, dest] = a.paths.as_slice()
        && let Some(content) = src.to_str().and_then(|s| s.strip_prefix("content://"))
    {
        if is_move {
            bail!("a content is copied from the devices that hold it, never moved: use cp");
        }
        let action = Action::Fetch {
            content: content.to_owned(),
            dest: JsonPath(absolute(dest)?),
            on_conflict,
        };
        return show_or_commit(client, lib, action, a.preview, json, a.detach);
    }
    let mut sd: Vec<(Option<String>, PathBuf)> = a.paths.iter().map(|p| sd_path(p)).collect();
    let (dest_device, dest) = sd.pop().expect("clap requires two paths");
    let devices: std::collections::BTreeSet<&Option<String>> = sd.iter().map(|(d, _)| d).collect();
    if devices.len() > 1 {
        bail!("the sources must all be on one device (here, or one paired device)");
    }
    let source_device = sd[0].0.clone();
    if source_device.is_some() || dest_device.is_some() {
        let (device, pull) = match (source_device, dest_device) {
            (Some(d), None) => (d, true),
            (None, Some(d)) => (d, false),
            _ => bail!(
                "copying between two other devices is not supported: run the command on one of them"
            ),
        };
        let local = |p: PathBuf| absolute(&p).map(JsonPath);
        let remote = |p: PathBuf| {
            if p.is_absolute() {
                Ok(JsonPath(p))
            } else {
                Err(anyhow::anyhow!(
                    "{} on {device} must be an absolute path (DEVICE:/path)",
                    output::shown(p.as_os_str())
                ))
            }
        };
        let (sources, dest) = if pull {
            (
                sd.into_iter()
                    .map(|(_, p)| remote(p))
                    .collect::<Result<Vec<_>>>()?,
                local(dest)?,
            )
        } else {
            (
                sd.into_iter()
                    .map(|(_, p)| local(p))
                    .collect::<Result<Vec<_>>>()?,
                remote(dest)?,
            )
        };
        let action = Action::Transfer {
            device,
            pull,
            sources,
            dest,
            on_conflict,
            remove_source: is_move,
        };
        return show_or_commit(client, lib, action, a.preview, json, a.detach);
    }
    let mut paths = sd
        .into_iter()
        .map(|(_, p)| absolute(&p).map(JsonPath))
        .collect::<Result<Vec<_>>>()?;
    paths.push(JsonPath(absolute(&dest)?));
    let dest = paths.pop().expect("the destination was just pushed");
    let action = if is_move {
        Action::Move {
            sources: paths,
            dest,
            on_conflict,
        }
    } else {
        Action::Copy {
            sources: paths,
            dest,
            on_conflict,
        }
    };
    show_or_commit(client, lib, action, a.preview, json, a.detach)
}

/// A path as the user wrote it: `DEVICE:/path` (a colon before the first slash, an absolute
/// path after it) is on a paired device; anything else is here.
fn sd_path(p: &std::path::Path) -> (Option<String>, PathBuf) {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    let colon = b.iter().position(|&c| c == b':');
    let slash = b.iter().position(|&c| c == b'/');
    if let Some(c) = colon
        && c > 0
        && slash == Some(c + 1)
        && let Ok(device) = std::str::from_utf8(&b[..c])
    {
        let path = std::ffi::OsStr::from_bytes(&b[c + 1..]);
        return (Some(device.to_owned()), PathBuf::from(path));
    }
    (None, p.to_path_buf())
}

pub fn rename(client: &Client, lib: Option<String>, a: RenameArgs, json: bool) -> Result<()> {
    let action = Action::Rename {
        path: JsonPath(absolute(&a.path)?),
        name: JsonName(a.name),
        on_conflict: a.on_conflict.into(),
    };
    show_or_commit(client, lib, action, a.preview, json, false)
}

pub fn rm(client: &Client, lib: Option<String>, a: RmArgs, json: bool) -> Result<()> {
    let paths = a
        .paths
        .iter()
        .map(|p| absolute(p).map(JsonPath))
        .collect::<Result<Vec<_>>>()?;
    let action = Action::Delete {
        paths,
        permanent: a.permanent,
    };
    if a.preview {
        return show_or_commit(client, lib, action, true, json, false);
    }
    if a.permanent && !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!(
                "deleting for good cannot be undone; pass --yes to confirm (or drop --permanent to use the trash)"
            );
        }
        let p = preview(client, &lib, &action)?;
        print_preview(&p, false);
        if !matches!(
            ask("Delete these for good? This cannot be undone. [y/N]")?.as_str(),
            "y" | "yes"
        ) {
            bail!("nothing was deleted");
        }
    }
    commit(client, &lib, action, json, a.detach)
}

pub fn undo(client: &Client, lib: Option<String>, a: UndoArgs, json: bool) -> Result<()> {
    show_or_commit(
        client,
        lib,
        Action::Undo { id: a.id },
        a.preview,
        json,
        false,
    )
}

pub fn history(client: &Client, lib: Option<String>, limit: usize, json: bool) -> Result<()> {
    let rows: Vec<AuditRow> = client.call(&Request::AuditList {
        library: lib,
        limit: Some(limit),
    })?;
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("no actions yet");
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut targets = r.targets.join(", ");
            if targets.chars().count() > 60 {
                targets = targets.chars().take(59).collect::<String>() + "…";
            }
            let mut undo = match (r.role, r.undoes, r.undone_by, r.undoable) {
                (_, _, Some(by), _) => format!("undone by {by}"),
                (Role::Undo, Some(of), None, true) => {
                    format!("undoes {of}; `undo {}` redoes", r.id)
                }
                (Role::Undo, Some(of), None, false) => format!("undoes {of}"),
                (Role::Redo, Some(of), None, _) => format!("redoes (undoes {of})"),
                (_, _, None, true) => "undoable".into(),
                (_, _, None, false) => "not undoable".into(),
            };
            if r.role == Role::Redo && r.undoable && r.undone_by.is_none() {
                undo.push_str("; undoable");
            }
            if r.next_undo {
                undo.push_str(" (next `undo`)");
            }
            vec![
                r.id.to_string(),
                output::time_ms(r.finished_at),
                r.kind.clone(),
                targets,
                serde_json::to_value(r.result)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                r.job_id
                    .map(|j| j.to_string())
                    .unwrap_or_else(|| "-".into()),
                undo,
            ]
        })
        .collect();
    output::table(
        &["ID", "WHEN", "ACTION", "TARGETS", "RESULT", "JOB", "UNDO"],
        &table,
    );
    Ok(())
}

pub fn audit(client: &Client, lib: Option<String>, cmd: AuditCmd, json: bool) -> Result<()> {
    match cmd {
        AuditCmd::Verify => {
            let v: Verification = client.call(&Request::AuditVerify { library: lib })?;
            if json {
                print_json(&v)?;
            } else if v.ok {
                println!(
                    "audit log intact: {} rows, hash chain verified{}",
                    v.rows,
                    v.head
                        .as_ref()
                        .map(|h| format!("; head {h}"))
                        .unwrap_or_default()
                );
            }
            if !v.ok {
                bail!(
                    "audit log tampered with: {}",
                    v.problem.unwrap_or_else(|| "hash chain broken".into())
                );
            }
            Ok(())
        }
    }
}
