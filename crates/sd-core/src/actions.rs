//! Actions: every change a user asks for — file operations, tags, favourites, hidden flags,
//! notes, and undo — is one variant of [`Action`]. [`preview`] says what it will do without
//! doing it; [`commit`] does it: organising changes in one transaction, file operations as a
//! durable job. Either way one row is appended to the audit log when it has finished, holding
//! what undoing it takes.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Outcome, Record};
use crate::fileops::{self, ConflictPolicy, FileOpJob, FileOpKind, FileUndo, OpKind};
use crate::jobs;
use crate::library::Library;
use crate::names::{JsonName, JsonPath};
use crate::organise::{self, MetaField, Target};
use crate::runner;
use crate::store::now_ms;
use crate::transfer;
use crate::{Error, Result};

/// A change to files or to a library's organisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "action", content = "params", rename_all = "snake_case")]
pub enum Action {
    TagCreate {
        path: String,
        color: Option<String>,
        namespace: Option<String>,
    },
    TagRename {
        path: String,
        new: String,
    },
    TagDelete {
        path: String,
        force: bool,
    },
    /// `content`: attach to the files' content (every copy) instead of the entries.
    TagApply {
        tag: String,
        paths: Vec<JsonPath>,
        content: bool,
    },
    TagRemove {
        tag: String,
        paths: Vec<JsonPath>,
        content: bool,
    },
    Favorite {
        paths: Vec<JsonPath>,
        content: bool,
        on: bool,
    },
    Hide {
        paths: Vec<JsonPath>,
        content: bool,
        on: bool,
    },
    Note {
        path: JsonPath,
        content: bool,
        text: Option<String>,
    },
    /// Copies `sources` into the folder `dest`, or to `dest` itself (one source, `dest` new).
    Copy {
        sources: Vec<JsonPath>,
        dest: JsonPath,
        #[serde(default)]
        on_conflict: ConflictPolicy,
    },
    /// Moves `sources` into the folder `dest`, or to `dest` itself.
    Move {
        sources: Vec<JsonPath>,
        dest: JsonPath,
        #[serde(default)]
        on_conflict: ConflictPolicy,
    },
    /// Gives `path` a new name in the same folder.
    Rename {
        path: JsonPath,
        name: JsonName,
        #[serde(default)]
        on_conflict: ConflictPolicy,
    },
    /// Moves `paths` to the trash, or deletes them for good with `permanent`.
    Delete {
        paths: Vec<JsonPath>,
        #[serde(default)]
        permanent: bool,
    },
    /// Reverses action `id` of the audit log (the latest undoable one when `None`).
    Undo {
        id: Option<i64>,
    },
    /// Copies between this device and the paired `device` (name or id): `sources` there into
    /// `dest` here when `pull`, else `sources` here into `dest` there. `remove_source` makes it a
    /// move: the sources go once every item arrived verified.
    Transfer {
        device: String,
        pull: bool,
        sources: Vec<JsonPath>,
        dest: JsonPath,
        #[serde(default)]
        on_conflict: ConflictPolicy,
        #[serde(default)]
        remove_source: bool,
    },
    /// Copies the content `content` (its UUID, as `file info` shows it on any device) from the
    /// fastest online paired device holding it into `dest` here, verified against its cas_id
    /// and, when known, its full-file hash.
    Fetch {
        content: String,
        dest: JsonPath,
        #[serde(default)]
        on_conflict: ConflictPolicy,
    },
}

/// What an action is, for its name: a file operation, or an organising action or undo with its
/// own name.
enum Class {
    File(OpKind),
    Named(&'static str),
}

impl Action {
    /// The audit log's name for it, e.g. `file.copy`, `tag.apply`: what its preview says and
    /// its audit row records. A file operation's is [`fileops::audit_kind`]'s, as its job's
    /// row is: `file.trash` for a delete to the trash, `file.move` for a rename.
    pub fn kind(&self) -> &'static str {
        match self.class() {
            Class::File(op) => fileops::audit_kind(op, false),
            Class::Named(kind) => kind,
        }
    }

    /// The file operation it is, if it is one (an undo's depends on the row it undoes).
    fn file_op(&self) -> Option<OpKind> {
        match self.class() {
            Class::File(op) => Some(op),
            Class::Named(_) => None,
        }
    }

    fn class(&self) -> Class {
        Class::Named(match self {
            Action::TagCreate { .. } => "tag.create",
            Action::TagRename { .. } => "tag.rename",
            Action::TagDelete { .. } => "tag.delete",
            Action::TagApply { .. } => "tag.apply",
            Action::TagRemove { .. } => "tag.remove",
            Action::Favorite { .. } => "meta.favorite",
            Action::Hide { .. } => "meta.hide",
            Action::Note { .. } => "meta.note",
            Action::Undo { .. } => "undo",
            Action::Fetch { .. } => fileops::audit_kind(OpKind::Copy, false),
            Action::Transfer { remove_source, .. } => fileops::audit_kind(
                if *remove_source {
                    OpKind::Move
                } else {
                    OpKind::Copy
                },
                false,
            ),
            Action::Copy { .. } => return Class::File(OpKind::Copy),
            Action::Move { .. } | Action::Rename { .. } => return Class::File(OpKind::Move),
            Action::Delete { permanent, .. } => {
                return Class::File(if *permanent {
                    OpKind::Delete
                } else {
                    OpKind::Trash
                });
            }
        })
    }

    /// The paths and tags it touches, for the audit log.
    fn targets(&self) -> Vec<String> {
        let show = |p: &std::path::Path| p.to_string_lossy().into_owned();
        match self {
            Action::TagCreate { path, .. }
            | Action::TagRename { path, .. }
            | Action::TagDelete { path, .. } => vec![path.clone()],
            Action::TagApply { tag, paths, .. } | Action::TagRemove { tag, paths, .. } => {
                std::iter::once(tag.clone())
                    .chain(paths.iter().map(|p| show(&p.0)))
                    .collect()
            }
            Action::Favorite { paths, .. } | Action::Hide { paths, .. } => {
                paths.iter().map(|p| show(&p.0)).collect()
            }
            Action::Note { path, .. } => vec![show(&path.0)],
            Action::Fetch { content, dest, .. } => {
                vec![format!("content://{content}"), show(&dest.0)]
            }
            Action::Transfer {
                device,
                pull,
                sources,
                dest,
                ..
            } => {
                let (from, to) = if *pull {
                    (format!("{device}:"), String::new())
                } else {
                    (String::new(), format!("{device}:"))
                };
                sources
                    .iter()
                    .map(|p| format!("{from}{}", show(&p.0)))
                    .chain(std::iter::once(format!("{to}{}", show(&dest.0))))
                    .collect()
            }
            Action::Copy { sources, dest, .. } | Action::Move { sources, dest, .. } => sources
                .iter()
                .chain(std::iter::once(dest))
                .map(|p| show(&p.0))
                .collect(),
            Action::Rename { path, name, .. } => {
                vec![show(&path.0), name.0.to_string_lossy().into_owned()]
            }
            Action::Delete { paths, .. } => paths.iter().map(|p| show(&p.0)).collect(),
            Action::Undo { id } => id.map(|i| vec![i.to_string()]).unwrap_or_default(),
        }
    }
}

/// What reversing an action takes, as stored in its audit row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reverse {
    /// Put (`apply`) or take off tag `tag_id` on exactly these targets.
    Tags {
        tag_id: i64,
        targets: Vec<Target>,
        apply: bool,
    },
    /// Delete the tag created (refused if it has been used since).
    DeleteTag { path: String },
    /// Give tag `id` back its former full path.
    RenameTag { id: i64, to: String },
    /// Set favourite / hidden / note of each target back.
    Meta(Vec<(Target, MetaState)>),
    /// A file operation's reverse, in the format its job wrote (`fileops::FileUndo`).
    #[serde(untagged)]
    Files(FileUndo),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct MetaState {
    favorite: bool,
    hidden: bool,
    note: Option<String>,
}

/// What an action will do, in full, before it is committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Preview {
    pub action: String,
    /// File operations: every step, conflicts, bytes, free space.
    pub plan: Option<fileops::Plan>,
    /// Organising actions: each change, in words.
    pub effects: Vec<String>,
    pub undoable: bool,
    /// For an undo: the audit row it reverses.
    pub undoes: Option<i64>,
}

/// Resolves paths to targets before the write transaction (reads only).
fn targets(lib: &Library, paths: &[JsonPath], content: bool) -> Result<Vec<Target>> {
    let conn = lib.reader()?;
    paths
        .iter()
        .map(|p| {
            let p = &p.0;
            let (_, id) = crate::query::resolve(lib, p)?;
            if !content {
                return Ok(Target::Entry(id));
            }
            let content_of = || -> Result<Option<i64>> {
                Ok(conn
                    .query_row("SELECT content_id FROM entry_content WHERE entry_id = ?1", [id], |r| r.get(0))
                    .optional()?)
            };
            let cid = content_of()?.ok_or_else(|| {
                Error::Invalid(format!(
                    "{} has no content identity (not a file, empty, or its location is shallow); drop --content to attach to this entry only",
                    p.display()
                ))
            })?;
            // "Every copy" means files with identical bytes: confirm (and split off
            // near-duplicates) before acting, and refuse while a copy cannot be confirmed.
            let unconfirmed = crate::copies::confirm(lib, &[cid])?;
            if let Some(first) = unconfirmed.first() {
                return Err(Error::Invalid(format!(
                    "cannot confirm that every copy of {} holds the same bytes: {} file(s) sharing its sampled id could not be read ({}: {}). Reconnect or rescan them, or drop --content to act on this file only. Nothing was changed.",
                    p.display(),
                    unconfirmed.len(),
                    first.path.0.display(),
                    first.message
                )));
            }
            let cid = content_of()?.unwrap_or(cid);
            Ok(Target::Content(cid))
        })
        .collect()
}

/// The undo to run for audit row `id`, or for the last action ([`audit::bare_undo`]: refused,
/// with the alternative named, when the last action cannot be undone).
fn reverse_of(lib: &Library, id: Option<i64>) -> Result<(i64, Reverse)> {
    let conn = lib.reader()?;
    let id = match id {
        Some(id) => id,
        None => audit::bare_undo(&conn)?.map_err(|why| {
            if why.starts_with("nothing to undo") {
                Error::NotFound(why)
            } else {
                Error::Invalid(why)
            }
        })?,
    };
    let (row, undo) = audit::get(&conn, id)?;
    if let Some(by) = row.undone_by {
        let (undoer, _) = audit::get(&conn, by)?;
        return Err(Error::Conflict(match undoer.undone_by {
            Some(redo) => format!(
                "action {id} ({}) was undone by action {by} and redone by action {redo}; to reverse it again, run `spacedrive undo {redo}`",
                row.kind
            ),
            None => format!(
                "action {id} ({}) was already undone by action {by}; `spacedrive undo {by}` redoes it",
                row.kind
            ),
        }));
    }
    if !matches!(
        row.result,
        Outcome::Completed | Outcome::CompletedWithErrors
    ) && undo.is_none()
    {
        return Err(Error::Invalid(format!(
            "action {id} ({}) did not complete and changed nothing to undo",
            row.kind
        )));
    }
    let undo = undo.ok_or_else(|| {
        Error::Invalid(format!(
            "action {id} ({}) cannot be undone (copies, permanent deletes, overwrites, tag deletions and library or location changes are not reversible)",
            row.kind
        ))
    })?;
    Ok((id, serde_json::from_value(undo)?))
}

/// The file operation an action runs, if it is one (undos: [`undo_request`]).
fn file_request(lib: &Library, action: &Action) -> Result<Option<fileops::Request>> {
    let paths = |v: &[JsonPath]| v.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
    // The operation is the one the action is named after (`Action::kind`).
    let Some(op) = action.file_op() else {
        return Ok(None);
    };
    let req = match action {
        Action::Copy {
            sources,
            dest,
            on_conflict,
        }
        | Action::Move {
            sources,
            dest,
            on_conflict,
        } => fileops::Request {
            op,
            pairs: fileops::destinations(&paths(sources), &dest.0)?,
            policy: *on_conflict,
        },
        Action::Rename {
            path,
            name,
            on_conflict,
        } => fileops::Request {
            op,
            pairs: vec![fileops::rename_target(&path.0, &name.0)?],
            policy: *on_conflict,
        },
        Action::Delete { paths: ps, .. } => {
            if ps.is_empty() {
                return Err(Error::Invalid(
                    "name at least one file or folder to delete".into(),
                ));
            }
            let mut pairs = Vec::new();
            for p in ps {
                let abs = fileops::absolute(&p.0)?;
                if abs.parent().is_none()
                    || lib.dir().starts_with(&abs)
                    || abs.starts_with(lib.dir())
                {
                    return Err(Error::Invalid(format!(
                        "refusing to delete {}: it is the filesystem root or holds the library itself",
                        abs.display()
                    )));
                }
                pairs.push((JsonPath(abs), None));
            }
            fileops::Request {
                op,
                pairs,
                policy: ConflictPolicy::Skip,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(req))
}

/// An undo that moves files: the operation, and folders to recreate before it (those a move
/// emptied and removed). `Err` hands back a reverse that changes organisation, not files.
fn undo_request(rev: Reverse) -> std::result::Result<(fileops::Request, Vec<PathBuf>), Reverse> {
    Ok(match rev {
        Reverse::Files(FileUndo::MoveBack(pairs)) => {
            let recreate = pairs
                .iter()
                .filter_map(|p| p.from.0.parent().map(PathBuf::from))
                .collect();
            let req = fileops::Request {
                op: OpKind::Move,
                pairs: pairs.into_iter().map(|p| (p.to, Some(p.from))).collect(),
                policy: ConflictPolicy::Ask,
            };
            (req, recreate)
        }
        Reverse::Files(FileUndo::Restore(items)) => {
            let req = fileops::Request {
                op: OpKind::Restore,
                pairs: items
                    .into_iter()
                    .map(|t| (t.trash_info, Some(t.to)))
                    .collect(),
                policy: ConflictPolicy::Ask,
            };
            (req, Vec::new())
        }
        Reverse::Files(FileUndo::TrashAgain(paths)) => {
            let req = fileops::Request {
                op: OpKind::Trash,
                pairs: paths.into_iter().map(|p| (p, None)).collect(),
                policy: ConflictPolicy::Skip,
            };
            (req, Vec::new())
        }
        other => return Err(other),
    })
}

/// The plan of a transfer between devices, planned by the receiving one (this device for a
/// pull); for a push, also the job that will send it.
fn transfer_plan(lib: &Library, action: &Action) -> Result<Option<(fileops::Plan, Started)>> {
    if let Action::Fetch {
        content,
        dest,
        on_conflict,
    } = action
    {
        let uuid: uuid::Uuid = content.parse().map_err(|_| {
            Error::Invalid(format!(
                "{content:?} is not a content UUID (`file info` shows one as content.uuid)"
            ))
        })?;
        let t = transfer::transport(lib)?;
        let holder = t
            .locate(&uuid)
            .into_iter()
            .find(|h| !h.files.is_empty())
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no online paired device holds content {uuid} (see `spacedrive network devices`)"
                ))
            })?;
        let file = holder.files[0].clone();
        let (mut plan, _) = transfer::plan_pull(
            t.as_ref(),
            &holder.device,
            None,
            std::slice::from_ref(&file.path),
            &dest.0,
            *on_conflict,
        )?;
        plan.warnings.push(format!(
            "from {} ({:.1} ms away), {}",
            holder.device_name,
            holder.rtt.as_secs_f64() * 1000.0,
            file.path.0.display()
        ));
        let job = transfer::PullJob {
            device: holder.device,
            device_name: holder.device_name,
            grant: None,
            move_source: false,
            expect: Some(transfer::Expected {
                cas_id: file.cas_id,
                integrity: file.integrity,
            }),
            sources: vec![file.path],
            action: serde_json::to_value(action)?,
            targets: action.targets(),
            committed_at: now_ms(),
        };
        return Ok(Some((plan, Started::Pull(job))));
    }
    let Action::Transfer {
        device,
        pull,
        sources,
        dest,
        on_conflict,
        remove_source,
    } = action
    else {
        return Ok(None);
    };
    let t = transfer::transport(lib)?;
    let (id, name) = t.device(device)?;
    let action_json = serde_json::to_value(action)?;
    let common = |sources: Vec<JsonPath>| (id.clone(), name.clone(), sources);
    if *pull {
        let (plan, _) = transfer::plan_pull(t.as_ref(), &id, None, sources, &dest.0, *on_conflict)?;
        let (device, device_name, sources) = common(sources.clone());
        let job = transfer::PullJob {
            device,
            device_name,
            grant: None,
            move_source: *remove_source,
            expect: None,
            sources,
            action: action_json,
            targets: action.targets(),
            committed_at: now_ms(),
        };
        return Ok(Some((plan, Started::Pull(job))));
    }
    let mut local = Vec::new();
    for s in sources {
        let abs = fileops::absolute(&s.0)?;
        if std::fs::symlink_metadata(&abs).is_err() {
            return Err(Error::NotFound(format!(
                "{}: no such file or folder",
                abs.display()
            )));
        }
        local.push(JsonPath(abs));
    }
    let push = transfer::PushRequest {
        token: uuid::Uuid::new_v4().to_string(),
        sources: local.clone(),
        dest: dest.clone(),
        policy: *on_conflict,
        move_source: *remove_source,
        action: action_json.clone(),
    };
    let plan = t.plan_push(&id, &push)?;
    let (device, device_name, sources) = common(local);
    let job = transfer::PushJob {
        device,
        device_name,
        token: push.token,
        sources,
        dest: dest.clone(),
        policy: *on_conflict,
        move_source: *remove_source,
        action: action_json,
        targets: action.targets(),
        committed_at: now_ms(),
    };
    Ok(Some((plan, Started::Push(job))))
}

/// The job a transfer's commit starts.
enum Started {
    Pull(transfer::PullJob),
    Push(transfer::PushJob),
}

/// Says what `action` would do, changing nothing.
pub fn preview(lib: &Library, action: &Action) -> Result<Preview> {
    if let Some((plan, _)) = transfer_plan(lib, action)? {
        return Ok(Preview {
            action: action.kind().into(),
            undoable: false,
            plan: Some(plan),
            effects: Vec::new(),
            undoes: None,
        });
    }
    let files = |req: fileops::Request, undoes| -> Result<Preview> {
        let plan = fileops::plan(&req)?;
        Ok(Preview {
            action: action.kind().into(),
            undoable: plan.undoable,
            plan: Some(plan),
            effects: Vec::new(),
            undoes,
        })
    };
    if let Action::Undo { id } = action {
        let (id, rev) = reverse_of(lib, *id)?;
        return match undo_request(rev) {
            Ok((req, _)) => files(req, Some(id)),
            Err(rev) => Ok(Preview {
                action: action.kind().into(),
                plan: None,
                effects: vec![describe_reverse(&rev)],
                undoable: true,
                undoes: Some(id),
            }),
        };
    }
    if let Some(req) = file_request(lib, action)? {
        return files(req, None);
    }
    let (effects, undoable, undoes) = match action {
        Action::TagCreate { path, .. } => (vec![format!("create tag {path:?}")], true, None),
        Action::TagRename { path, new } => {
            (vec![format!("rename tag {path:?} to {new:?}")], true, None)
        }
        Action::TagDelete { path, .. } => {
            let (e, c) = organise::assignments_under(&lib.reader()?, path)?;
            (
                vec![format!(
                    "delete tag {path:?} with its children, removing it from {e} files and {c} contents (cannot be undone)"
                )],
                false,
                None,
            )
        }
        Action::TagApply {
            tag,
            paths,
            content,
        }
        | Action::TagRemove {
            tag,
            paths,
            content,
        } => {
            let verb = if matches!(action, Action::TagApply { .. }) {
                "add tag"
            } else {
                "remove tag"
            };
            let on = if *content { "the content of" } else { "" };
            (
                paths
                    .iter()
                    .map(|p| format!("{verb} {tag:?}: {on} {}", p.0.display()))
                    .collect(),
                true,
                None,
            )
        }
        Action::Favorite { paths, on, .. } | Action::Hide { paths, on, .. } => {
            let what = match (matches!(action, Action::Favorite { .. }), on) {
                (true, true) => "mark favourite",
                (true, false) => "unmark favourite",
                (false, true) => "hide",
                (false, false) => "unhide",
            };
            (
                paths
                    .iter()
                    .map(|p| format!("{what}: {}", p.0.display()))
                    .collect(),
                true,
                None,
            )
        }
        Action::Note { path, text, .. } => (
            vec![match text {
                Some(t) => format!("note on {}: {t:?}", path.0.display()),
                None => format!("remove the note on {}", path.0.display()),
            }],
            true,
            None,
        ),
        _ => (Vec::new(), false, None),
    };
    // Resolve paths now so a preview fails the way the commit would.
    if let Action::TagApply { paths, content, .. }
    | Action::TagRemove { paths, content, .. }
    | Action::Favorite { paths, content, .. }
    | Action::Hide { paths, content, .. } = action
    {
        targets(lib, paths, *content)?;
    }
    Ok(Preview {
        action: action.kind().into(),
        plan: None,
        effects,
        undoable,
        undoes,
    })
}

fn describe_reverse(r: &Reverse) -> String {
    match r {
        Reverse::Tags {
            targets,
            apply: true,
            ..
        } => format!("put the tag back on {} items", targets.len()),
        Reverse::Tags { targets, .. } => format!("take the tag off {} items", targets.len()),
        Reverse::DeleteTag { path } => format!("delete tag {path:?} again"),
        Reverse::RenameTag { to, .. } => format!("rename the tag back to {to:?}"),
        Reverse::Meta(v) => format!("restore favourite/hidden/note on {} items", v.len()),
        Reverse::Files(FileUndo::MoveBack(v)) => format!("move {} items back", v.len()),
        Reverse::Files(FileUndo::Restore(v)) => format!("restore {} items from the trash", v.len()),
        Reverse::Files(FileUndo::TrashAgain(v)) => {
            format!("move {} items to the trash again", v.len())
        }
    }
}

/// Debug knob for tests: skip the free-space check so a copy really runs into a full disk.
fn skip_space_check() -> bool {
    std::env::var_os("SPACEDRIVE_DEBUG_SKIP_SPACE_CHECK").is_some_and(|v| v == "1")
}

/// Debug knob for tests: skip the writability check so a job really meets a folder that refuses
/// writes (and reports it per item).
fn skip_write_check() -> bool {
    std::env::var_os("SPACEDRIVE_DEBUG_SKIP_WRITE_CHECK").is_some_and(|v| v == "1")
}

/// Carries out `action`: organising changes in one transaction (audited in it), file operations
/// as a job (audited when it ends). Returns what it did, or `{"job": …}` for a job.
pub fn commit(lib: &Arc<Library>, action: Action) -> Result<serde_json::Value> {
    if let Action::Undo { id } = action {
        let (id, rev) = reverse_of(lib, id)?;
        // Recorded with the id it reversed, even when the user did not name it.
        let action = Action::Undo { id: Some(id) };
        return match undo_request(rev) {
            Ok((req, recreate)) => {
                for dir in recreate {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir, e))?;
                }
                start_file_op(lib, &action, req, Some(id))
            }
            Err(rev) => {
                let effect = describe_reverse(&rev);
                let mut out =
                    organise_commit(lib, &action, Some(id), move |tx| apply_reverse(tx, rev))?;
                lib.touch_meta();
                if let Some(o) = out.as_object_mut() {
                    o.insert("undid".into(), id.into());
                    o.insert("effect".into(), effect.into());
                }
                Ok(out)
            }
        };
    }
    if let Some(req) = file_request(lib, &action)? {
        return start_file_op(lib, &action, req, None);
    }
    if let Some((plan, started)) = transfer_plan(lib, &action)? {
        let job = match started {
            Started::Pull(job) => transfer::start_pull(lib, job, &plan)?,
            Started::Push(job) => {
                transfer::check_plan(&plan)?;
                transfer::start_push(lib, job)?
            }
        };
        return started_json(lib, job, &plan);
    }
    let prepared = prepare(lib, &action)?;
    let owned = action.clone();
    let out = organise_commit(lib, &action, None, move |tx| {
        run_organise(tx, owned, prepared)
    })?;
    lib.touch_meta();
    Ok(out)
}

fn start_file_op(
    lib: &Arc<Library>,
    action: &Action,
    req: fileops::Request,
    undoes: Option<i64>,
) -> Result<serde_json::Value> {
    let plan = fileops::plan(&req)?;
    if plan.unresolved > 0 {
        let first = plan
            .steps
            .iter()
            .find(|s| s.op == fileops::StepOp::Conflict)
            .and_then(|s| s.note.clone())
            .unwrap_or_default();
        // An undo puts things back exactly where they were, so it has no conflict policy.
        return Err(Error::Conflict(match undoes {
            Some(id) => format!(
                "{} place(s) to put back are taken ({first}); move what is there out of the way, then run `spacedrive undo {id}` again. Nothing was changed.",
                plan.unresolved
            ),
            None => format!(
                "{} destination(s) already exist ({first}); choose what to do with --on-conflict skip, overwrite or keep-both. Nothing was changed.",
                plan.unresolved
            ),
        }));
    }
    if let Some(b) = plan.blocked.first()
        && !skip_write_check()
    {
        return Err(Error::Invalid(format!(
            "{}. Nothing was changed.",
            b.message
        )));
    }
    if let Some(s) = plan.space.iter().find(|s| !s.ok)
        && !skip_space_check()
    {
        return Err(Error::Invalid(format!(
            "not enough space at {}: the copy needs {} bytes and {} are free. Nothing was changed.",
            s.path.0.display(),
            s.needed,
            s.available
        )));
    }
    let params = file_job(action, &req, undoes)?;
    let steps = plan.steps.clone();
    let job = lib.writer.transaction(move |tx| {
        let job = runner::insert::<FileOpKind>(tx, &params, &fileops::FileOpProgress::default())?;
        fileops::insert_items(tx, job, &steps)?;
        Ok(job)
    })?;
    runner::start(lib, job)?;
    started_json(lib, job, &plan)
}

/// A committed file operation's answer: its job and the plan's figures.
fn started_json(lib: &Library, job: i64, plan: &fileops::Plan) -> Result<serde_json::Value> {
    let info = jobs::get(lib, job)?;
    Ok(serde_json::json!({
        "job": info,
        "plan": {
            "files": plan.files, "dirs": plan.dirs, "bytes": plan.bytes, "steps": plan.steps.len(),
            "conflicts": plan.conflicts, "skipped": plan.skipped, "strategy": plan.strategy,
            "undoable": plan.undoable,
        },
    }))
}

/// The job that carries out `req` for `action`: its params are what its audit row is written
/// from when it ends.
fn file_job(action: &Action, req: &fileops::Request, undoes: Option<i64>) -> Result<FileOpJob> {
    Ok(FileOpJob {
        op: req.op,
        policy: req.policy,
        action: serde_json::to_value(action)?,
        targets: action.targets(),
        undoes,
        committed_at: now_ms(),
    })
}

/// Runs an organising change in one transaction with its audit row.
fn organise_commit(
    lib: &Library,
    action: &Action,
    undoes: Option<i64>,
    f: impl FnOnce(&Transaction<'_>) -> Result<(serde_json::Value, Option<Reverse>)> + Send + 'static,
) -> Result<serde_json::Value> {
    let record = Record {
        kind: action.kind().to_string(),
        action: serde_json::to_value(action)?,
        targets: action.targets(),
        outcome: Outcome::Completed,
        summary: serde_json::Value::Null,
        undo: None,
        job_id: None,
        undoes,
        created_at: now_ms(),
    };
    let device_row = lib.device_row;
    lib.writer.transaction(move |tx| {
        let (mut out, reverse) = f(tx)?;
        let mut record = record;
        record.summary = out.clone();
        record.undo = reverse.map(serde_json::to_value).transpose()?;
        let id = audit::append(tx, device_row, &record)?;
        if let Some(o) = out.as_object_mut() {
            o.insert("audit_id".into(), id.into());
        }
        Ok(out)
    })
}

/// Reads done before the write transaction: the targets of path-based actions.
fn prepare(lib: &Library, action: &Action) -> Result<Vec<Target>> {
    match action {
        Action::TagApply {
            tag,
            paths,
            content,
        }
        | Action::TagRemove {
            tag,
            paths,
            content,
        } => {
            if paths.is_empty() {
                return Err(Error::Invalid(format!(
                    "name at least one file to tag with {tag:?}"
                )));
            }
            targets(lib, paths, *content)
        }
        Action::Favorite { paths, content, .. } | Action::Hide { paths, content, .. } => {
            targets(lib, paths, *content)
        }
        Action::Note { path, content, .. } => targets(lib, std::slice::from_ref(path), *content),
        _ => Ok(Vec::new()),
    }
}

fn run_organise(
    tx: &Transaction<'_>,
    action: Action,
    t: Vec<Target>,
) -> Result<(serde_json::Value, Option<Reverse>)> {
    let apply = matches!(action, Action::TagApply { .. });
    Ok(match action {
        Action::TagCreate {
            path,
            color,
            namespace,
        } => {
            let tag = organise::create(tx, &path, color, namespace)?;
            let rev = Reverse::DeleteTag {
                path: tag.path.clone(),
            };
            (serde_json::to_value(tag)?, Some(rev))
        }
        Action::TagRename { path, new } => {
            let tag = organise::rename(tx, &path, &new)?;
            let rev = Reverse::RenameTag {
                id: tag.id,
                to: path,
            };
            (serde_json::to_value(tag)?, Some(rev))
        }
        Action::TagDelete { path, force } => (organise::delete(tx, &path, force)?, None),
        Action::TagApply { tag, content, .. } | Action::TagRemove { tag, content, .. } => {
            let id = organise::resolve(tx, &tag)?;
            let changed = tag_targets(tx, id, &t, apply)?;
            let key = if apply { "added" } else { "removed" };
            let out = serde_json::json!({"tag": tag, key: changed.len(), "on_content": content});
            (
                out,
                Some(Reverse::Tags {
                    tag_id: id,
                    targets: changed,
                    apply: !apply,
                }),
            )
        }
        Action::Favorite { on, content, .. } => set(tx, &t, content, MetaField::Favorite(on))?,
        Action::Hide { on, content, .. } => set(tx, &t, content, MetaField::Hidden(on))?,
        Action::Note { text, content, .. } => {
            let text = text.filter(|t| !t.trim().is_empty());
            set(tx, &t, content, MetaField::Note(text))?
        }
        other => {
            return Err(Error::Invalid(format!(
                "{} is not an organising action",
                other.kind()
            )));
        }
    })
}

/// Applies or removes tag `id` on `targets`; returns those that changed.
fn tag_targets(
    tx: &Transaction<'_>,
    id: i64,
    targets: &[Target],
    apply: bool,
) -> Result<Vec<Target>> {
    let mut changed = Vec::new();
    for &target in targets {
        let done = if apply {
            organise::apply(tx, id, target)?
        } else {
            organise::remove(tx, id, target)?
        };
        if done {
            changed.push(target);
        }
    }
    Ok(changed)
}

fn meta_state(tx: &Transaction<'_>, t: Target) -> Result<MetaState> {
    let (e, c) = match t {
        Target::Entry(e) => (Some(e), None),
        Target::Content(c) => (None, Some(c)),
    };
    Ok(tx
        .query_row(
            "SELECT favorite, hidden, note FROM user_metadata WHERE entry_id IS ?1 AND content_id IS ?2",
            params![e, c],
            |r| Ok(MetaState { favorite: r.get(0)?, hidden: r.get(1)?, note: r.get(2)? }),
        )
        .optional()?
        .unwrap_or_default())
}

fn set_state(tx: &Transaction<'_>, t: Target, s: MetaState) -> Result<()> {
    organise::set_meta(tx, t, MetaField::Favorite(s.favorite))?;
    organise::set_meta(tx, t, MetaField::Hidden(s.hidden))?;
    organise::set_meta(tx, t, MetaField::Note(s.note))
}

fn set(
    tx: &Transaction<'_>,
    t: &[Target],
    content: bool,
    field: MetaField,
) -> Result<(serde_json::Value, Option<Reverse>)> {
    let mut before = Vec::with_capacity(t.len());
    for &target in t {
        before.push((target, meta_state(tx, target)?));
        organise::set_meta(tx, target, field.clone())?;
    }
    Ok((
        serde_json::json!({"updated": t.len(), "on_content": content}),
        Some(Reverse::Meta(before)),
    ))
}

/// Applies an organising undo; returns what it did and how to reverse it in turn.
fn apply_reverse(
    tx: &Transaction<'_>,
    rev: Reverse,
) -> Result<(serde_json::Value, Option<Reverse>)> {
    Ok(match rev {
        Reverse::Tags {
            tag_id,
            targets,
            apply,
        } => {
            let changed = tag_targets(tx, tag_id, &targets, apply)?;
            let out = serde_json::json!({"tag_id": tag_id, if apply { "added" } else { "removed" }: changed.len()});
            (
                out,
                Some(Reverse::Tags {
                    tag_id,
                    targets: changed,
                    apply: !apply,
                }),
            )
        }
        Reverse::DeleteTag { path } => (organise::delete(tx, &path, false)?, None),
        Reverse::RenameTag { id, to } => {
            let current = organise::get(tx, id)?.path;
            let tag = organise::rename(tx, &current, &to)?;
            (
                serde_json::to_value(tag)?,
                Some(Reverse::RenameTag { id, to: current }),
            )
        }
        Reverse::Meta(states) => {
            let mut before = Vec::with_capacity(states.len());
            for (t, s) in states {
                before.push((t, meta_state(tx, t)?));
                set_state(tx, t, s)?;
            }
            (
                serde_json::json!({"updated": before.len()}),
                Some(Reverse::Meta(before)),
            )
        }
        Reverse::Files(_) => {
            return Err(Error::Invalid("a file undo runs as a job".into()));
        }
    })
}

#[cfg(test)]
mod reverse_tests {
    use super::*;

    /// Undo data written by a file-operation job (`FileUndo`) reads back as the file part of
    /// `Reverse`, and organising reverses keep their own tags: one format, both directions.
    #[test]
    fn file_undo_written_by_a_job_reads_back_as_a_reverse() {
        let undo = FileUndo::MoveBack(vec![fileops::MovedPair {
            from: JsonPath::from_text("/a/x"),
            to: JsonPath::from_text("/b/x"),
        }]);
        let stored = serde_json::to_value(&undo).unwrap();
        let rev: Reverse = serde_json::from_value(stored.clone()).unwrap();
        assert!(matches!(&rev, Reverse::Files(u) if *u == undo));
        assert_eq!(serde_json::to_value(&rev).unwrap(), stored);
        let tag: Reverse =
            serde_json::from_value(serde_json::json!({"delete_tag": {"path": "a/b"}})).unwrap();
        assert!(matches!(tag, Reverse::DeleteTag { path } if path == "a/b"));
        assert!(serde_json::from_value::<Reverse>(serde_json::json!({"nonsense": 1})).is_err());
    }
}

#[cfg(test)]
mod job_tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::control::JobState;
    use crate::runner::{End, JobKind};

    /// A library in `tmp/data` whose jobs run (and publish nowhere).
    fn library(tmp: &Path) -> Arc<Library> {
        let data = tmp.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let device = crate::device::DeviceIdentity::load_or_create(&data).unwrap();
        Library::create(&data, "test", &device, jobs::Host::new(|_| {}), None).unwrap()
    }

    fn wait(lib: &Library, job: i64) -> JobState {
        let since = Instant::now();
        loop {
            let state = runner::state(lib, job).unwrap();
            if state.is_final() {
                return state;
            }
            assert!(since.elapsed() < Duration::from_secs(60), "job {job} ends");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn committed_job(lib: &Arc<Library>, action: Action) -> i64 {
        let job = commit(lib, action).unwrap()["job"]["id"].as_i64().unwrap();
        assert_eq!(wait(lib, job), JobState::Completed);
        job
    }

    fn newest_kind(lib: &Library) -> String {
        audit::list(lib, 1).unwrap().remove(0).kind
    }

    /// A preview names the kind its audit row records, for every file operation: the one
    /// decision is `fileops::audit_kind` (a delete to the trash once previewed as `file.delete`
    /// and was audited as `file.trash`).
    #[test]
    fn preview_and_audit_row_name_the_same_kind() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = library(tmp.path());
        let files = tmp.path().join("files");
        std::fs::create_dir_all(files.join("dest")).unwrap();
        for n in ["a", "b", "c", "d"] {
            std::fs::write(files.join(n), n).unwrap();
        }
        let p = |n: &str| JsonPath(files.join(n));

        // Run to their end: each job's end appends its audit row.
        let run = [
            (
                Action::Rename {
                    path: p("a"),
                    name: JsonName("a2".into()),
                    on_conflict: ConflictPolicy::default(),
                },
                "file.move",
            ),
            (
                Action::Copy {
                    sources: vec![p("b")],
                    dest: p("dest"),
                    on_conflict: ConflictPolicy::default(),
                },
                "file.copy",
            ),
            (
                Action::Move {
                    sources: vec![p("d")],
                    dest: p("dest"),
                    on_conflict: ConflictPolicy::default(),
                },
                "file.move",
            ),
            (
                Action::Delete {
                    paths: vec![p("c")],
                    permanent: true,
                },
                "file.delete",
            ),
        ];
        for (action, kind) in run {
            let shown = preview(&lib, &action).unwrap().action;
            assert_eq!(shown, kind);
            let job = committed_job(&lib, action);
            assert_eq!(newest_kind(&lib), shown, "job {job}");
        }

        // A move to the trash: its job's end writes the row through the same `finish`, without
        // running it (a unit test must not put files in the user's trash).
        let action = Action::Delete {
            paths: vec![p("b")],
            permanent: false,
        };
        let shown = preview(&lib, &action).unwrap().action;
        assert_eq!(shown, "file.trash");
        let req = file_request(&lib, &action).unwrap().unwrap();
        let params = file_job(&action, &req, None).unwrap();
        let device_row = lib.device_row;
        lib.writer
            .transaction(move |tx| {
                let id = runner::insert::<FileOpKind>(tx, &params, &Default::default())?;
                FileOpKind::finish(
                    tx,
                    &End {
                        id,
                        params: &params,
                        state: JobState::Cancelled,
                        error: None,
                        device_row,
                    },
                )
            })
            .unwrap();
        assert_eq!(newest_kind(&lib), shown);
        lib.close();
    }

    /// Many items renamed by one job are re-linked per flush (one reader, the flush's own
    /// transaction): every entry keeps its id and its tags, a folder its children, and an entry
    /// moved into another location goes there with its subtree.
    #[test]
    fn a_move_of_many_items_keeps_every_id_and_tag() {
        use std::os::unix::ffi::OsStringExt;

        let tmp = tempfile::tempdir().unwrap();
        let lib = library(tmp.path());
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        let src = one.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(one.join("dest")).unwrap();
        std::fs::create_dir_all(&two).unwrap();
        let mut names: Vec<std::ffi::OsString> =
            (0..300).map(|i| format!("f{i:03}").into()).collect();
        names.push(std::ffi::OsString::from_vec(b"caf\xe9-\xff".to_vec()));
        for n in &names {
            std::fs::write(src.join(n), "x").unwrap();
        }
        std::fs::write(src.join("sub/inner"), "y").unwrap();
        names.push("sub".into());
        let mut locs = Vec::new();
        for dir in [&one, &two] {
            let opts = crate::location::AddOptions {
                name: None,
                mode: crate::location::row::IndexMode::Shallow,
                rules: crate::rules::RuleConfig::default(),
                watch: false,
            };
            let (loc, job) =
                crate::location::add(&lib, dir, opts, &tmp.path().join("data"), &|_| {}).unwrap();
            wait(&lib, job);
            locs.push(loc.id);
        }
        let id_of = |p: &Path| crate::query::resolve(&lib, p).unwrap();
        let ids: Vec<i64> = names.iter().map(|n| id_of(&src.join(n)).1).collect();
        let inner = id_of(&src.join("sub/inner")).1;
        let everything: Vec<JsonPath> = names.iter().map(|n| JsonPath(src.join(n))).collect();
        commit(
            &lib,
            Action::TagCreate {
                path: "keep".into(),
                color: None,
                namespace: None,
            },
        )
        .unwrap();
        commit(
            &lib,
            Action::TagApply {
                tag: "keep".into(),
                paths: everything.clone(),
                content: false,
            },
        )
        .unwrap();

        // All but the last two into another folder of the location, those two into location two.
        let (here, there) = everything.split_at(everything.len() - 2);
        committed_job(
            &lib,
            Action::Move {
                sources: here.to_vec(),
                dest: JsonPath(one.join("dest")),
                on_conflict: ConflictPolicy::default(),
            },
        );
        committed_job(
            &lib,
            Action::Move {
                sources: there.to_vec(),
                dest: JsonPath(two.clone()),
                on_conflict: ConflictPolicy::default(),
            },
        );

        let conn = lib.reader().unwrap();
        let tags = |id: i64| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM tag_assignments WHERE entry_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        for (i, (n, id)) in names.iter().zip(&ids).enumerate() {
            let (dir, loc) = if i < names.len() - 2 {
                (one.join("dest"), locs[0])
            } else {
                (two.clone(), locs[1])
            };
            let (l, now) = id_of(&dir.join(n));
            assert_eq!(
                (now, l.id),
                (*id, loc),
                "{n:?} kept its id and is in its location"
            );
            assert_eq!(tags(now), 1, "{n:?} kept its tag");
        }
        let (l, now) = id_of(&two.join("sub/inner"));
        assert_eq!(
            (now, l.id),
            (inner, locs[1]),
            "the subtree moved with its folder"
        );
        let location_of: i64 = conn
            .query_row(
                "SELECT location_id FROM entries WHERE id = ?1",
                [inner],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(location_of, locs[1]);
        drop(conn);
        lib.close();
    }
}
