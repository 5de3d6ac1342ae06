//! Actions: every change a user asks for goes through [`commit`], one closed enum dispatched in
//! one `match`. (The actions issue adds preview and the audit log here, for every action at once.)

use std::path::PathBuf;

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::library::Library;
use crate::organise::{self, MetaField, Target};
use crate::{Error, Result};

/// A change to a library's organisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
        paths: Vec<PathBuf>,
        content: bool,
    },
    TagRemove {
        tag: String,
        paths: Vec<PathBuf>,
        content: bool,
    },
    Favorite {
        paths: Vec<PathBuf>,
        content: bool,
        on: bool,
    },
    Hide {
        paths: Vec<PathBuf>,
        content: bool,
        on: bool,
    },
    Note {
        path: PathBuf,
        content: bool,
        text: Option<String>,
    },
}

/// Resolves paths to targets before the write transaction (reads only).
fn targets(lib: &Library, paths: &[PathBuf], content: bool) -> Result<Vec<Target>> {
    let conn = lib.reader()?;
    paths
        .iter()
        .map(|p| {
            let (_, id) = crate::query::resolve(lib, p)?;
            if !content {
                return Ok(Target::Entry(id));
            }
            let cid: Option<i64> = conn
                .query_row("SELECT content_id FROM entry_content WHERE entry_id = ?1", [id], |r| r.get(0))
                .optional()?;
            cid.map(Target::Content).ok_or_else(|| {
                Error::Invalid(format!(
                    "{} has no content identity (not a file, empty, or its location is shallow); drop --content to attach to this entry only",
                    p.display()
                ))
            })
        })
        .collect()
}

/// Carries out `action` in one transaction and returns what it did.
pub fn commit(lib: &Library, action: Action) -> Result<serde_json::Value> {
    let out = match action {
        Action::TagCreate {
            path,
            color,
            namespace,
        } => lib.writer.transaction(move |tx| {
            Ok(serde_json::to_value(organise::create(
                tx, &path, color, namespace,
            )?)?)
        })?,
        Action::TagRename { path, new } => lib
            .writer
            .transaction(move |tx| Ok(serde_json::to_value(organise::rename(tx, &path, &new)?)?))?,
        Action::TagDelete { path, force } => lib
            .writer
            .transaction(move |tx| organise::delete(tx, &path, force))?,
        Action::TagApply {
            tag,
            paths,
            content,
        } => tag_files(lib, tag, &paths, content, true)?,
        Action::TagRemove {
            tag,
            paths,
            content,
        } => tag_files(lib, tag, &paths, content, false)?,
        Action::Favorite { paths, content, on } => {
            set(lib, &paths, content, MetaField::Favorite(on))?
        }
        Action::Hide { paths, content, on } => set(lib, &paths, content, MetaField::Hidden(on))?,
        Action::Note {
            path,
            content,
            text,
        } => {
            let text = text.filter(|t| !t.trim().is_empty());
            set(lib, &[path], content, MetaField::Note(text))?
        }
    };
    lib.touch_meta();
    Ok(out)
}

/// Puts tag `tag` on (`apply`) or takes it off the files at `paths`, or their content.
fn tag_files(
    lib: &Library,
    tag: String,
    paths: &[PathBuf],
    content: bool,
    apply: bool,
) -> Result<serde_json::Value> {
    if paths.is_empty() {
        return Err(Error::Invalid(format!(
            "name at least one file to tag with {tag:?}"
        )));
    }
    let t = targets(lib, paths, content)?;
    lib.writer.transaction(move |tx| {
        let id = organise::resolve(tx, &tag)?;
        let mut changed = 0u64;
        for target in t {
            let done = if apply {
                organise::apply(tx, id, target)?
            } else {
                organise::remove(tx, id, target)?
            };
            changed += u64::from(done);
        }
        let key = if apply { "added" } else { "removed" };
        Ok(serde_json::json!({"tag": tag, key: changed, "on_content": content}))
    })
}

fn set(
    lib: &Library,
    paths: &[PathBuf],
    content: bool,
    field: MetaField,
) -> Result<serde_json::Value> {
    let t = targets(lib, paths, content)?;
    let n = t.len();
    lib.writer.transaction(move |tx| {
        for target in t {
            organise::set_meta(tx, target, field.clone())?;
        }
        Ok(serde_json::json!({"updated": n, "on_content": content}))
    })
}
