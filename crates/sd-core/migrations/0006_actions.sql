-- Schema 6: the audit log and the durable plan of file-operation jobs.
-- Invariants:
--   * audit_log is append-only. A row is written once, when its action has finished (in the same
--     transaction as the change for instant actions, with the job's final state for file
--     operations), and never updated: an undo is a new row whose `undoes` names the row it reverses.
--   * hash = BLAKE3(prev_hash || canonical JSON of the row's other columns); prev_hash is the hash
--     of the row before it (32 zero bytes for the first). Editing, inserting or deleting a row in
--     the middle breaks the chain at that row, which `audit verify` reports.
--   * fileop_items holds a job's whole plan, in an order where a directory comes before what is in
--     it. state only moves forward (pending → done → source_removed, or → skipped / failed).
--     A destination path is written through a temporary name in the same directory, fsynced, then
--     renamed; an item is `done` only after its copy was verified and made durable, and a move
--     removes a source only after its item is `done` in a committed transaction.

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    device       TEXT NOT NULL,      -- uuid of the device whose daemon ran the action
    kind         TEXT NOT NULL,      -- e.g. file.copy, tag.apply, undo
    action       TEXT NOT NULL,      -- JSON: the action as the user asked for it
    targets      TEXT NOT NULL,      -- JSON array of the paths / tags it touched
    result       TEXT NOT NULL CHECK (result IN ('completed', 'failed', 'cancelled')),
    summary      TEXT NOT NULL,      -- JSON: counts, bytes, error
    undo         TEXT,               -- JSON: what reversing it takes; NULL when it cannot be undone
    job_id       INTEGER,
    undoes       INTEGER REFERENCES audit_log(id),
    created_at   INTEGER NOT NULL,   -- unix ms, when committed
    finished_at  INTEGER NOT NULL,
    prev_hash    BLOB NOT NULL,
    hash         BLOB NOT NULL
) STRICT;
CREATE INDEX audit_log_undoes ON audit_log(undoes) WHERE undoes IS NOT NULL;

CREATE TABLE fileop_items (
    job_id    INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    op        TEXT NOT NULL,         -- mkdir, copy, link, symlink, rename, trash, delete, restore
    src       ANY NOT NULL,          -- absolute path; TEXT if UTF-8 else BLOB
    dst       ANY,                   -- final path (NULL for delete/trash)
    size      INTEGER NOT NULL,
    mtime     INTEGER,               -- source mtime (ns) when planned
    link_to   INTEGER,               -- op = link: seq of the item whose destination it links to
    overwrite INTEGER NOT NULL DEFAULT 0,
    root      INTEGER NOT NULL DEFAULT 0,  -- 1: the item's destination parent existed before (an index re-link point)
    state     TEXT NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'done', 'source_removed', 'skipped', 'failed')),
    hash      BLOB,                  -- BLAKE3 of the bytes copied, once verified
    note      TEXT,                  -- trash: the .trashinfo path; skipped/failed: why
    PRIMARY KEY (job_id, seq)
) STRICT, WITHOUT ROWID;
