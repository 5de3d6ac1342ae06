-- Schema 5: volumes, and which volume holds each location.
-- Invariants:
--   * a volume is known by its fingerprint (the filesystem's UUID or serial), never by its mount
--     point; the same volume mounted elsewhere is the same row.
--   * locations.volume_path is the location's path relative to its volume's mount point, so the
--     location follows the volume to a new mount point.
--   * an offline location keeps its entries (searchable); index jobs refuse to run on it rather
--     than read its absence as deletions.
CREATE TABLE volumes (
    id           INTEGER PRIMARY KEY,
    fingerprint  TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    fs_type      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    capacity     INTEGER NOT NULL,
    free         INTEGER NOT NULL,
    mount_point  ANY,
    online       INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    read_mb_s    REAL,
    write_mb_s   REAL
) STRICT;
ALTER TABLE locations ADD COLUMN volume_id INTEGER;
ALTER TABLE locations ADD COLUMN volume_path ANY;
ALTER TABLE locations ADD COLUMN online INTEGER NOT NULL DEFAULT 1;
