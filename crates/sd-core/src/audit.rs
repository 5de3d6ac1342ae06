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
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    /// A file operation that ran to its end with some items failed; what it did can be undone.
    CompletedWithErrors,
    Failed,
    Cancelled,
}

impl Outcome {
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
pub struct AuditRow {
    pub id: i64,
    pub device: String,
    pub kind: String,
    pub action: serde_json::Value,
    pub targets: Vec<String>,
    pub result: Outcome,
    pub summary: serde_json::Value,
    pub undoable: bool,
    pub job_id: Option<i64>,
    /// The row this action reversed, if it was an undo.
    pub undoes: Option<i64>,
    /// The later row that reversed this one, if any.
    pub undone_by: Option<i64>,
    pub created_at: i64,
    pub finished_at: i64,
    pub hash: String,
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

fn view(s: Stored, hash: &[u8], undone_by: Option<i64>) -> AuditRow {
    AuditRow {
        id: s.id,
        device: s.device,
        kind: s.kind,
        action: serde_json::from_str(&s.action).unwrap_or(serde_json::Value::Null),
        targets: serde_json::from_str(&s.targets).unwrap_or_default(),
        result: Outcome::parse(&s.result),
        summary: serde_json::from_str(&s.summary).unwrap_or(serde_json::Value::Null),
        undoable: s.undo.is_some()
            && undone_by.is_none()
            && matches!(s.result.as_str(), "completed" | "completed_with_errors"),
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
        out.push(view(s, &hash, undone_by));
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
    Ok((view(s, &hash, undone_by), undo))
}

/// The latest completed action that can still be undone (undos themselves are skipped, so
/// repeated undos walk back through history; an undo is redone by naming it).
pub(crate) fn last_undoable(conn: &rusqlite::Connection) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT a.id FROM audit_log a WHERE a.undo IS NOT NULL AND a.result IN ('completed', 'completed_with_errors') AND a.undoes IS NULL
               AND NOT EXISTS (SELECT 1 FROM audit_log u WHERE u.undoes = a.id AND u.result = 'completed')
             ORDER BY a.id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Result of checking the hash chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
