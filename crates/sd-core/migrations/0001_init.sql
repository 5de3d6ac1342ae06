-- Schema 1: devices, locations, the entry tree, durable jobs and the indexer's checkpoint tables.
-- Invariants:
--   * entries form a forest: each location has exactly one root entry (parent_id IS NULL) named
--     after the location folder; every other live entry has a parent in the same location.
--   * (parent_id, name) is unique: a directory never lists two children with the same raw name.
--   * name is TEXT when the file name is valid UTF-8 and a BLOB of the raw bytes otherwise.
--   * there is deliberately no index on inode: random-order inserts into it cost more than a
--     whole initial scan's other work; a rescan that needs inode lookups builds a map in memory.
--   * for directories, size/files/dirs are recursive aggregates written by the aggregation phase;
--     for files size is the file's length; for symlinks it is the length of the link target.

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    os          TEXT NOT NULL,
    hardware    TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,   -- unix ms
    last_seen   INTEGER NOT NULL
) STRICT;

CREATE TABLE locations (
    id             INTEGER PRIMARY KEY,
    uuid           TEXT NOT NULL UNIQUE,
    device_id      INTEGER NOT NULL REFERENCES devices(id),
    name           TEXT NOT NULL,
    path           ANY NOT NULL,     -- absolute path; TEXT if UTF-8 else BLOB
    root_entry_id  INTEGER,
    mode           TEXT NOT NULL CHECK (mode IN ('shallow', 'content', 'deep')),
    rules          TEXT NOT NULL,    -- JSON RuleConfig
    state          TEXT NOT NULL CHECK (state IN ('indexing', 'ready', 'partial')),
    dev            INTEGER NOT NULL, -- st_dev of the root: the walk never crosses into another filesystem
    created_at     INTEGER NOT NULL,
    last_scan_at   INTEGER,
    last_job_id    INTEGER
) STRICT;
CREATE UNIQUE INDEX locations_path ON locations(device_id, path);

CREATE TABLE entries (
    id           INTEGER PRIMARY KEY,
    location_id  INTEGER NOT NULL,
    parent_id    INTEGER,
    name         ANY NOT NULL,
    kind         INTEGER NOT NULL,   -- 0 file, 1 directory, 2 symlink, 3 other (fifo, socket, device)
    size         INTEGER NOT NULL,
    mtime        INTEGER,            -- ns since the epoch
    inode        INTEGER NOT NULL,
    btime        INTEGER,            -- birth time in ns when the filesystem reports it: with inode, the identity moves are matched by
    nlink        INTEGER,            -- NULL when 1; >1 marks a hard-linked file
    files        INTEGER,            -- directories: recursive regular-file count
    dirs         INTEGER,            -- directories: recursive directory count
    target       BLOB                -- symlinks: raw link target, never followed
) STRICT;
CREATE UNIQUE INDEX entries_children ON entries(parent_id, name);
CREATE INDEX entries_dirs ON entries(location_id) WHERE kind = 1;

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    params       TEXT NOT NULL,      -- JSON
    progress     TEXT NOT NULL,      -- JSON, persisted with each checkpoint
    result       TEXT,               -- JSON, when finished
    error        TEXT,
    resumes      INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER
) STRICT;

-- The indexer's checkpoint. A directory is in index_frontier from the moment its entry is written
-- until the transaction that writes its children; so after a crash, exactly the directories whose
-- listing was not committed are listed again.
CREATE TABLE index_frontier (
    job_id    INTEGER NOT NULL,
    entry_id  INTEGER NOT NULL,
    PRIMARY KEY (job_id, entry_id)
) STRICT, WITHOUT ROWID;

-- Entries seen in the index but not on disk during a scan. Deletion is deferred to the end of the
-- walk so that a file moved to a directory visited later keeps its id.
CREATE TABLE index_missing (
    job_id    INTEGER NOT NULL,
    entry_id  INTEGER NOT NULL,
    PRIMARY KEY (job_id, entry_id)
) STRICT, WITHOUT ROWID;
