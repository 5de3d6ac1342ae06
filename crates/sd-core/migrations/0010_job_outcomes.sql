-- Schema 10: a job (and its audit row) can end `completed_with_errors`: it ran to its end, but
-- some of what it was asked to do failed. Before, such a job was recorded as `completed`.
-- Invariants:
--   * `completed_with_errors` is final, like `completed`, `failed` and `cancelled`; the job's
--     `error` says what failed (counts and the first error).
--   * audit rows keep their values and hashes: the tables are copied row for row, so
--     `audit verify` holds across this migration.
-- SQLite cannot widen a CHECK in place: both tables are rebuilt. Nothing references `jobs`;
-- `audit_log` references only itself, so its copy references itself from the start.

CREATE TABLE jobs_new (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'completed',
                                                'completed_with_errors', 'failed', 'cancelled')),
    params       TEXT NOT NULL,      -- JSON
    progress     TEXT NOT NULL,      -- JSON, persisted with each checkpoint
    result       TEXT,               -- JSON, when finished
    error        TEXT,
    resumes      INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
) STRICT;
INSERT INTO jobs_new SELECT * FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

CREATE TABLE audit_log_new (
    id           INTEGER PRIMARY KEY,
    device       TEXT NOT NULL,      -- uuid of the device whose daemon ran the action
    kind         TEXT NOT NULL,      -- e.g. file.copy, tag.apply, undo
    action       TEXT NOT NULL,      -- JSON: the action as the user asked for it
    targets      TEXT NOT NULL,      -- JSON array of the paths / tags it touched
    result       TEXT NOT NULL CHECK (result IN ('completed', 'completed_with_errors', 'failed', 'cancelled')),
    summary      TEXT NOT NULL,      -- JSON: counts, bytes, error
    undo         TEXT,               -- JSON: what reversing it takes; NULL when it cannot be undone
    job_id       INTEGER,
    undoes       INTEGER REFERENCES audit_log_new(id),
    created_at   INTEGER NOT NULL,   -- unix ms, when committed
    finished_at  INTEGER NOT NULL,
    prev_hash    BLOB NOT NULL,
    hash         BLOB NOT NULL
) STRICT;
INSERT INTO audit_log_new SELECT * FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_undoes ON audit_log(undoes) WHERE undoes IS NOT NULL;
