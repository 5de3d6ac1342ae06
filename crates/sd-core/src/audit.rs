//! The audit log: one append-only row per finished action, chained by hashes so that an edited,
//! inserted or deleted row is detectable ([`verify`]). Undo reads what it needs from here.
//!
//! A row's hash is BLAKE3 over the previous row's hash followed by the JSON array of the row's
//! columns exactly as stored; the first row's predecessor is 32 zero bytes.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::library::Library;
use crate::store::now_ms;
use crate::{Error, Result};

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    /// A file operation that ran to its end with some items failed; what it did can be undone.
    CompletedWithErrors,
    Failed,
    Cancelled,
}

impl Outcome {
    /// How an action run as a job ended, from the job's final state.
    pub(crate) fn of_job(state: crate::control::JobState) -> Outcome {
        use crate::control::JobState;
        match state {
            JobState::Completed => Outcome::Completed,
            JobState::CompletedWithErrors => Outcome::CompletedWithErrors,
            JobState::Cancelled => Outcome::Cancelled,
            _ => Outcome::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::CompletedWithErrors => "completed_with_errors",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "completed" => Outcome::Completed,
            "completed_with_errors" => Outcome::CompletedWithErrors,
            "failed" => Outcome::Failed,
            _ => Outcome::Cancelled,
        }
    }
}

/// What is appended for one action.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub kind: String,
    pub action: serde_json::Value,
    pub targets: Vec<String>,
    pub outcome: Outcome,
    pub summary: serde_json::Value,
    /// What reversing the action takes; `None` when it cannot be undone.
    pub undo: Option<serde_json::Value>,
    pub job_id: Option<i64>,
    pub undoes: Option<i64>,
    pub created_at: i64,
}

/// One row of the log, as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditRow {
    pub id: i64,
    pub device: String,
    pub kind: String,
    pub action: serde_json::Value,
    pub targets: Vec<String>,
    pub result: Outcome,
    pub summary: serde_json::Value,
    /// `undo ID` reverses it: it left undo data and has not been undone. For an undo row that
    /// is a redo.
    pub undoable: bool,
    /// An action, an undo of one, or a redo (an undo of an undo).
    pub role: Role,
    /// A bare `undo` would reverse this row now.
    pub next_undo: bool,
    pub job_id: Option<i64>,
    /// The row this action reversed, if it was an undo.
    pub undoes: Option<i64>,
    /// The later row that reversed this one, if any.
    pub undone_by: Option<i64>,
    pub created_at: i64,
    pub finished_at: i64,
    pub hash: String,
}

/// Where a row stands in the undo history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A change the user asked for (files, organisation, libraries, locations).
    Action,
    /// The reversal of an action or of a redo.
    Undo,
    /// The reversal of an undo: the action's change, made again.
    Redo,
}

/// The role of a row that reverses `undoes` (`None`: an action): the parity of its chain.
fn role_of(conn: &rusqlite::Connection, undoes: Option<i64>) -> Result<Role> {
    let mut depth = 0u32;
    let mut next = undoes;
    // Each row can only reverse an earlier one, so the chain ends; the bound is belt and braces.
    while let Some(id) = next
        && depth < 100_000
    {
        depth += 1;
        next = conn
            .query_row("SELECT undoes FROM audit_log WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .flatten();
    }
    Ok(match depth {
        0 => Role::Action,
        d if d % 2 == 1 => Role::Undo,
        _ => Role::Redo,
    })
}

/// The stored columns that the hash covers, in order.
struct Stored {
    id: i64,
    device: String,
    kind: String,
    action: String,
    targets: String,
    result: String,
    summary: String,
    undo: Option<String>,
    job_id: Option<i64>,
    undoes: Option<i64>,
    created_at: i64,
    finished_at: i64,
}

impl Stored {
    fn hash(&self, prev: &[u8]) -> [u8; 32] {
        let cols = serde_json::json!([
            self.id,
            self.device,
            self.kind,
            self.action,
            self.targets,
            self.result,
            self.summary,
            self.undo,
            self.job_id,
            self.undoes,
            self.created_at,
            self.finished_at
        ]);
        let mut h = blake3::Hasher::new();
        h.update(prev);
        h.update(cols.to_string().as_bytes());
        *h.finalize().as_bytes()
    }
}

const GENESIS: [u8; 32] = [0; 32];

/// Appends `rec` to the log inside `tx`; returns the new row's id.
pub(crate) fn append(tx: &Transaction<'_>, device_row: i64, rec: &Record) -> Result<i64> {
    let device: String = tx.query_row(
        "SELECT uuid FROM devices WHERE id = ?1",
        [device_row],
        |r| r.get(0),
    )?;
    let last: Option<(i64, Vec<u8>)> = tx
        .query_row(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (id, prev) = match last {
        Some((id, h)) => (id + 1, h),
        None => (1, GENESIS.to_vec()),
    };
    let row = Stored {
        id,
        device,
        kind: rec.kind.clone(),
        action: rec.action.to_string(),
        targets: serde_json::to_string(&rec.targets)?,
        result: rec.outcome.as_str().to_string(),
        summary: rec.summary.to_string(),
        undo: rec.undo.as_ref().map(|u| u.to_string()),
        job_id: rec.job_id,
        undoes: rec.undoes,
        created_at: rec.created_at,
        finished_at: now_ms(),
    };
    let hash = row.hash(&prev);
    tx.execute(
        "INSERT INTO audit_log (id, device, kind, action, targets, result, summary, undo, job_id,
                                undoes, created_at, finished_at, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            row.id,
            row.device,
            row.kind,
            row.action,
            row.targets,
            row.result,
            row.summary,
            row.undo,
            row.job_id,
            row.undoes,
            row.created_at,
            row.finished_at,
            prev,
            hash.to_vec()
        ],
    )?;
    Ok(id)
}

/// Records a finished change that is not an [`crate::actions::Action`] (locations, library
/// settings): it cannot be undone from the log, but it is in it.
pub(crate) fn record(
    lib: &Library,
    kind: &str,
    action: serde_json::Value,
    targets: Vec<String>,
    summary: serde_json::Value,
) -> Result<i64> {
    let rec = Record {
        kind: kind.to_string(),
        action,
        targets,
        outcome: Outcome::Completed,
        summary,
        undo: None,
        job_id: None,
        undoes: None,
        created_at: now_ms(),
    };
    let device_row = lib.device_row;
    lib.writer
        .transaction(move |tx| append(tx, device_row, &rec))
}

const COLUMNS: &str = "a.id, a.device, a.kind, a.action, a.targets, a.result, a.summary, a.undo,
    a.job_id, a.undoes, a.created_at, a.finished_at, a.prev_hash, a.hash,
    (SELECT min(u.id) FROM audit_log u WHERE u.undoes = a.id AND u.result = 'completed')";

/// A stored row with its previous hash, its hash, and the row that undid it.
type Read = (Stored, Vec<u8>, Vec<u8>, Option<i64>);

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Read> {
    Ok((
        Stored {
            id: r.get(0)?,
            device: r.get(1)?,
            kind: r.get(2)?,
            action: r.get(3)?,
            targets: r.get(4)?,
            result: r.get(5)?,
            summary: r.get(6)?,
            undo: r.get(7)?,
            job_id: r.get(8)?,
            undoes: r.get(9)?,
            created_at: r.get(10)?,
            finished_at: r.get(11)?,
        },
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    ))
}

fn view(s: Stored, hash: &[u8], undone_by: Option<i64>, role: Role) -> AuditRow {
    AuditRow {
        id: s.id,
        device: s.device,
        kind: s.kind,
        action: serde_json::from_str(&s.action).unwrap_or(serde_json::Value::Null),
        targets: serde_json::from_str(&s.targets).unwrap_or_default(),
        result: Outcome::parse(&s.result),
        summary: serde_json::from_str(&s.summary).unwrap_or(serde_json::Value::Null),
        undoable: s.undo.is_some() && undone_by.is_none(),
        role,
        next_undo: false,
        job_id: s.job_id,
        undoes: s.undoes,
        undone_by,
        created_at: s.created_at,
        finished_at: s.finished_at,
        hash: crate::content::hex(hash),
    }
}

/// The most recent rows, newest first.
pub fn list(lib: &Library, limit: usize) -> Result<Vec<AuditRow>> {
    let conn = lib.reader()?;
    let mut q = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_log a ORDER BY a.id DESC LIMIT ?1"
    ))?;
    let rows = q.query_map([limit as i64], stored)?;
    let mut out = Vec::new();
    for row in rows {
        let (s, _, hash, undone_by) = row?;
        let role = role_of(&conn, s.undoes)?;
        out.push(view(s, &hash, undone_by, role));
    }
    if let Ok(next) = bare_undo(&conn)?
        && let Some(r) = out.iter_mut().find(|r| r.id == next)
    {
        r.next_undo = true;
    }
    Ok(out)
}

/// One row, with what undoing it takes (`None` if it cannot be undone).
pub(crate) fn get(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<(AuditRow, Option<serde_json::Value>)> {
    let (s, _, hash, undone_by) = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM audit_log a WHERE a.id = ?1"),
            [id],
            stored,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("no action {id} in the audit log")))?;
    let undo = s.undo.as_deref().map(serde_json::from_str).transpose()?;
    let role = role_of(conn, s.undoes)?;
    Ok((view(s, &hash, undone_by, role), undo))
}

/// What a bare `undo` reverses: the last row of the log that is still in effect, if it can be
/// undone. `Err` holds why not, in words for the user.
///
/// Rows already undone, and failed or cancelled actions that changed nothing, are passed over;
/// so are undo rows (an undo is redone only by naming it), so repeated undos walk back through
/// history. A last action that cannot be undone (a copy, a permanent delete, a tag deletion, a
/// location change…) stops the walk: a bare `undo` never reaches past it to an older action,
/// and the message names the action that `undo ID` could reverse instead.
pub(crate) fn bare_undo(conn: &rusqlite::Connection) -> Result<std::result::Result<i64, String>> {
    let mut q = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_log a ORDER BY a.id DESC"
    ))?;
    let mut rows = q.query([])?;
    let mut last: Option<AuditRow> = None;
    let mut alternative: Option<AuditRow> = None;
    let mut latest_undo: Option<AuditRow> = None;
    while let Some(r) = rows.next()? {
        let (s, _, hash, undone_by) = stored(r)?;
        let has_undo = s.undo.is_some();
        let role = role_of(conn, s.undoes)?;
        let row = view(s, &hash, undone_by, role);
        if row.undone_by.is_some() || changed_nothing(&row, has_undo) {
            continue;
        }
        if row.role == Role::Undo {
            if last.is_none() && latest_undo.is_none() {
                latest_undo = Some(row);
            }
            continue;
        }
        if last.is_none() {
            if row.undoable {
                return Ok(Ok(row.id));
            }
            last = Some(row);
        } else if row.undoable {
            alternative = Some(row);
            break;
        }
    }
    let instead = match &alternative {
        Some(a) => format!(
            "The latest action that can be undone is {}: run `spacedrive undo {}` to reverse it.",
            describe(a),
            a.id
        ),
        None => "No earlier action can be undone either.".into(),
    };
    let redo = latest_undo.as_ref().map(|u| {
        format!(
            "The latest undo, {}, reversed action {}; `spacedrive undo {}` redoes it.",
            u.id,
            u.undoes.unwrap_or_default(),
            u.id
        )
    });
    Ok(Err(match (last, redo) {
        (Some(l), None) => format!(
            "the last action, {}{} cannot be undone ({NOT_REVERSIBLE}), and a bare `undo` only reverses the last action. Nothing was changed. {instead}",
            describe(&l),
            outcome_note(&l)
        ),
        (Some(l), Some(redo)) => format!(
            "nothing more to undo: the action before your undos, {}{} cannot be undone ({NOT_REVERSIBLE}). {instead} {redo}",
            describe(&l),
            outcome_note(&l)
        ),
        (None, Some(redo)) => format!("nothing to undo: every action has been undone. {redo}"),
        (None, None) => "nothing to undo: no action in the audit log can be undone".into(),
    }))
}

const NOT_REVERSIBLE: &str = "copies, permanent deletes, overwrites, tag deletions and library or location changes are not reversible";

/// A failed or cancelled action that did nothing (every step failed or none ran).
fn changed_nothing(row: &AuditRow, has_undo: bool) -> bool {
    !matches!(
        row.result,
        Outcome::Completed | Outcome::CompletedWithErrors
    ) && !has_undo
        && row.summary.get("done").and_then(|d| d.as_u64()) == Some(0)
}

/// `12 (file.rename: /home/me/a.txt, b.txt)`.
pub fn describe(row: &AuditRow) -> String {
    let mut targets = row.targets.join(", ");
    if targets.chars().count() > 80 {
        targets = targets.chars().take(79).collect::<String>() + "…";
    }
    if targets.is_empty() {
        format!("{} ({})", row.id, row.kind)
    } else {
        format!("{} ({}: {targets})", row.id, row.kind)
    }
}

fn outcome_note(row: &AuditRow) -> &'static str {
    match row.result {
        Outcome::Completed => ",",
        Outcome::CompletedWithErrors => ", which completed with errors,",
        Outcome::Failed => ", which failed part-way,",
        Outcome::Cancelled => ", which was cancelled part-way,",
    }
}

/// Result of checking the hash chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Verification {
    pub rows: u64,
    pub ok: bool,
    /// The first row whose stored hash or link does not match, and why.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
    /// Hash of the last row: write it down to detect a truncated log later.
    pub head: Option<String>,
}

/// Recomputes every row's hash and checks each row links to the one before it.
pub fn verify(lib: &Library) -> Result<Verification> {
    let conn = lib.reader()?;
    let mut q = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log a ORDER BY a.id"))?;
    let rows = q.query_map([], stored)?;
    let mut expected_prev = GENESIS.to_vec();
    let mut expected_id = 1;
    let mut n = 0u64;
    let fail = |n, id, why: String| Verification {
        rows: n,
        ok: false,
        broken_at: Some(id),
        problem: Some(why),
        head: None,
    };
    for row in rows {
        let (s, prev, hash, _) = row?;
        n += 1;
        let id = s.id;
        if id != expected_id {
            return Ok(fail(
                n,
                id,
                format!("row {id} follows row {}: rows are missing", expected_id - 1),
            ));
        }
        if prev != expected_prev {
            return Ok(fail(
                n,
                id,
                format!(
                    "row {id} does not link to the row before it (a row before it was changed or removed)"
                ),
            ));
        }
        if s.hash(&prev).as_slice() != hash.as_slice() {
            return Ok(fail(
                n,
                id,
                format!("row {id} was modified after it was written (its hash does not match)"),
            ));
        }
        expected_prev = hash;
        expected_id = id + 1;
    }
    Ok(Verification {
        rows: n,
        ok: true,
        broken_at: None,
        problem: None,
        head: (n > 0).then(|| crate::content::hex(&expected_prev)),
    })
}
