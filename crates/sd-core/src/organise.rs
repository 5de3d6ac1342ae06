//! Organising: hierarchical tags, favourites, hidden flags and notes — on one entry, or on its
//! content (then every copy, anywhere, carries it, and it survives moves and re-identification).
//!
//! Mutations are reached through [`crate::actions::commit`], the path every change takes.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::library::Library;
use crate::store::now_ms;
use crate::{Error, Result};

/// A tag with its assignment counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Tag {
    pub id: i64,
    pub name: String,
    /// Full path, `Work/Invoices`.
    pub path: String,
    pub parent_id: Option<i64>,
    pub color: Option<String>,
    pub namespace: Option<String>,
    /// Assignments of this tag itself (not its children): to entries, and to contents.
    pub entries: u64,
    pub contents: u64,
}

/// What a tag, favourite, hidden flag or note is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Entry(i64),
    Content(i64),
}

fn split(path: &str) -> Result<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty() || p.len() > 100) {
        return Err(Error::Invalid(format!(
            "{path:?} is not a tag name: use names of 1-100 characters, '/' between levels (Work/Invoices)"
        )));
    }
    Ok(parts)
}

fn find_child(conn: &Connection, parent: Option<i64>, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM tags WHERE coalesce(parent_id, 0) = coalesce(?1, 0) AND name = ?2",
            params![parent, name],
            |r| r.get(0),
        )
        .optional()?)
}

/// The id of tag `path`.
pub fn resolve(conn: &Connection, path: &str) -> Result<i64> {
    let mut parent = None;
    for part in split(path)? {
        parent = Some(find_child(conn, parent, part)?.ok_or_else(|| {
            Error::NotFound(format!("no tag {path:?}; see `spacedrive tag list` or create it with `spacedrive tag create`"))
        })?);
    }
    parent.ok_or_else(|| Error::Invalid("empty tag name".into()))
}

/// Tag `path` and all its descendants.
pub fn tag_and_descendants(conn: &Connection, path: &str) -> Result<Vec<i64>> {
    let id = resolve(conn, path)?;
    let ids = conn
        .prepare(
            "WITH RECURSIVE t(id) AS (SELECT ?1 UNION ALL SELECT tags.id FROM tags JOIN t ON tags.parent_id = t.id)
             SELECT id FROM t",
        )?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// Every tag, parents before children, with full paths.
pub fn list(lib: &Library) -> Result<Vec<Tag>> {
    list_with(&lib.reader()?)
}

fn list_with(conn: &Connection) -> Result<Vec<Tag>> {
    let mut q = conn.prepare(
        "WITH RECURSIVE t(id, path, depth) AS (
             SELECT id, name, 0 FROM tags WHERE parent_id IS NULL
             UNION ALL SELECT tags.id, t.path || '/' || tags.name, t.depth + 1 FROM tags JOIN t ON tags.parent_id = t.id)
         SELECT tags.id, tags.name, t.path, tags.parent_id, tags.color, tags.namespace,
                (SELECT count(*) FROM tag_assignments a WHERE a.tag_id = tags.id AND a.entry_id IS NOT NULL),
                (SELECT count(*) FROM tag_assignments a WHERE a.tag_id = tags.id AND a.content_id IS NOT NULL)
           FROM t JOIN tags ON tags.id = t.id ORDER BY t.path",
    )?;
    let rows = q.query_map([], |r| {
        Ok(Tag {
            id: r.get(0)?,
            name: r.get(1)?,
            path: r.get(2)?,
            parent_id: r.get(3)?,
            color: r.get(4)?,
            namespace: r.get(5)?,
            entries: r.get::<_, i64>(6)? as u64,
            contents: r.get::<_, i64>(7)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn get(conn: &Connection, id: i64) -> Result<Tag> {
    list_with(conn)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| Error::NotFound(format!("no tag {id}")))
}

fn check_color(color: &Option<String>) -> Result<()> {
    if let Some(c) = color {
        let hex = c.strip_prefix('#').unwrap_or("");
        if !(hex.len() == 6 || hex.len() == 3) || !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "{c:?} is not a colour; use #rrggbb, e.g. #3366ff"
            )));
        }
    }
    Ok(())
}

/// Creates tag `path`, creating missing parents. Errors if it already exists.
pub(crate) fn create(
    tx: &Transaction<'_>,
    path: &str,
    color: Option<String>,
    namespace: Option<String>,
) -> Result<Tag> {
    check_color(&color)?;
    let parts = split(path)?;
    let mut parent = None;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match find_child(tx, parent, part)? {
            Some(_) if last => return Err(Error::Conflict(format!("tag {path:?} already exists"))),
            Some(id) => parent = Some(id),
            None => {
                let (c, n) = if last {
                    (color.clone(), namespace.clone())
                } else {
                    (None, None)
                };
                tx.execute(
                    "INSERT INTO tags (parent_id, name, color, namespace, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![parent, part, c, n, now_ms()],
                )?;
                parent = Some(tx.last_insert_rowid());
            }
        }
    }
    get(tx, parent.expect("at least one part"))
}

/// Renames tag `path`: `new` is a name (same parent) or a full path (moves it under another tag).
/// Assignments stay: they point at the tag's id.
pub(crate) fn rename(tx: &Transaction<'_>, path: &str, new: &str) -> Result<Tag> {
    let id = resolve(tx, path)?;
    let parts = split(new)?;
    let (parent, name) = if parts.len() == 1 {
        (
            tx.query_row("SELECT parent_id FROM tags WHERE id = ?1", [id], |r| {
                r.get::<_, Option<i64>>(0)
            })?,
            parts[0],
        )
    } else {
        let parent_path = parts[..parts.len() - 1].join("/");
        let p = resolve(tx, &parent_path)?;
        if tag_and_descendants(tx, path)?.contains(&p) {
            return Err(Error::Invalid(format!(
                "cannot move tag {path:?} under itself"
            )));
        }
        (Some(p), parts[parts.len() - 1])
    };
    if find_child(tx, parent, name)?.is_some_and(|other| other != id) {
        return Err(Error::Conflict(format!(
            "a tag named {new:?} already exists there"
        )));
    }
    tx.execute(
        "UPDATE tags SET parent_id = ?2, name = ?3 WHERE id = ?1",
        params![id, parent, name],
    )?;
    get(tx, id)
}

/// How many assignments deleting `path` (with its children) would remove.
pub fn assignments_under(conn: &Connection, path: &str) -> Result<(u64, u64)> {
    let ids = tag_and_descendants(conn, path)?;
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(conn.query_row(
        &format!(
            "SELECT count(entry_id), count(content_id) FROM tag_assignments WHERE tag_id IN ({list})"
        ),
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// Deletes tag `path` and its children. Refused when they are assigned, unless `force`.
pub(crate) fn delete(tx: &Transaction<'_>, path: &str, force: bool) -> Result<serde_json::Value> {
    let id = resolve(tx, path)?;
    let (entries, contents) = assignments_under(tx, path)?;
    if (entries > 0 || contents > 0) && !force {
        return Err(Error::Conflict(format!(
            "tag {path:?} (with its children) is on {entries} files and {contents} contents; confirm to delete it and remove it from all of them (--yes)"
        )));
    }
    let tags = tag_and_descendants(tx, path)?.len();
    tx.execute("DELETE FROM tags WHERE id = ?1", [id])?;
    Ok(
        serde_json::json!({"deleted": path, "tags": tags, "removed_from_entries": entries, "removed_from_contents": contents}),
    )
}

fn target_cols(t: Target) -> (Option<i64>, Option<i64>) {
    match t {
        Target::Entry(e) => (Some(e), None),
        Target::Content(c) => (None, Some(c)),
    }
}

/// Puts tag `tag_id` on `target`; returns whether it was new.
pub(crate) fn apply(tx: &Transaction<'_>, tag_id: i64, target: Target) -> Result<bool> {
    let (e, c) = target_cols(target);
    let sql = if e.is_some() {
        "INSERT INTO tag_assignments (tag_id, entry_id, content_id, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(entry_id, tag_id) WHERE entry_id IS NOT NULL DO NOTHING"
    } else {
        "INSERT INTO tag_assignments (tag_id, entry_id, content_id, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(content_id, tag_id) WHERE content_id IS NOT NULL DO NOTHING"
    };
    Ok(tx.execute(sql, params![tag_id, e, c, now_ms()])? == 1)
}

/// Takes tag `tag_id` off `target`; returns whether it was there.
pub(crate) fn remove(tx: &Transaction<'_>, tag_id: i64, target: Target) -> Result<bool> {
    let (e, c) = target_cols(target);
    Ok(tx.execute(
        "DELETE FROM tag_assignments WHERE tag_id = ?1 AND entry_id IS ?2 AND content_id IS ?3",
        params![tag_id, e, c],
    )? == 1)
}

/// Sets one field of the user metadata of `target` (favorite, hidden, note).
pub(crate) fn set_meta(tx: &Transaction<'_>, target: Target, field: MetaField) -> Result<()> {
    let (e, c) = target_cols(target);
    let existing: Option<i64> = tx
        .query_row(
            "SELECT rowid FROM user_metadata WHERE entry_id IS ?1 AND content_id IS ?2",
            params![e, c],
            |r| r.get(0),
        )
        .optional()?;
    let rowid = match existing {
        Some(r) => r,
        None => {
            tx.execute(
                "INSERT INTO user_metadata (entry_id, content_id, updated_at) VALUES (?1, ?2, ?3)",
                params![e, c, now_ms()],
            )?;
            tx.last_insert_rowid()
        }
    };
    match field {
        MetaField::Favorite(on) => tx.execute(
            "UPDATE user_metadata SET favorite = ?2, updated_at = ?3 WHERE rowid = ?1",
            params![rowid, on, now_ms()],
        )?,
        MetaField::Hidden(on) => tx.execute(
            "UPDATE user_metadata SET hidden = ?2, updated_at = ?3 WHERE rowid = ?1",
            params![rowid, on, now_ms()],
        )?,
        MetaField::Note(n) => tx.execute(
            "UPDATE user_metadata SET note = ?2, updated_at = ?3 WHERE rowid = ?1",
            params![rowid, n, now_ms()],
        )?,
    };
    tx.execute("DELETE FROM user_metadata WHERE rowid = ?1 AND favorite = 0 AND hidden = 0 AND note IS NULL", [rowid])?;
    Ok(())
}

/// A user-metadata field and its new value.
#[derive(Debug, Clone)]
pub enum MetaField {
    Favorite(bool),
    Hidden(bool),
    Note(Option<String>),
}

/// Everything the user attached to an entry, directly or through its content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Attached {
    pub tags: Vec<String>,
    pub content_tags: Vec<String>,
    pub favorite: bool,
    pub hidden: bool,
    pub note: Option<String>,
    pub content_note: Option<String>,
}

/// What is attached to entry `id` (and its content, if identified).
pub fn attached(conn: &Connection, id: i64) -> Result<Attached> {
    // Only a confirmed member of its content identity carries what is attached to the content.
    let content: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT ec.content_id FROM entry_content ec JOIN content_identities ci ON ci.id = ec.content_id
                  WHERE ec.entry_id = ?1 AND {}",
                crate::copies::CONFIRMED_MEMBER
            ),
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let paths: std::collections::HashMap<i64, String> = list_with(conn)?
        .into_iter()
        .map(|t| (t.id, t.path))
        .collect();
    let tags_of = |col: &str, v: i64| -> Result<Vec<String>> {
        let mut t: Vec<String> = conn
            .prepare(&format!(
                "SELECT tag_id FROM tag_assignments WHERE {col} = ?1"
            ))?
            .query_map([v], |r| r.get::<_, i64>(0))?
            .filter_map(|r| r.ok().and_then(|id| paths.get(&id).cloned()))
            .collect();
        t.sort();
        Ok(t)
    };
    let meta = |col: &str, v: i64| -> Result<Option<(bool, bool, Option<String>)>> {
        Ok(conn
            .query_row(
                &format!("SELECT favorite, hidden, note FROM user_metadata WHERE {col} = ?1"),
                [v],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    };
    let mut a = Attached {
        tags: tags_of("entry_id", id)?,
        ..Attached::default()
    };
    if let Some((f, h, n)) = meta("entry_id", id)? {
        (a.favorite, a.hidden, a.note) = (f, h, n);
    }
    if let Some(c) = content {
        a.content_tags = tags_of("content_id", c)?;
        if let Some((f, h, n)) = meta("content_id", c)? {
            a.favorite |= f;
            a.hidden |= h;
            a.content_note = n;
        }
    }
    Ok(a)
}
