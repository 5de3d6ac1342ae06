-- Schema 2: content identity, integrity hashes and the intelligence queue.
-- Invariants:
--   * one content_identities row per distinct cas_id (BRIEF §3); `copies` is the number of entries
--     pointing at it, kept by the triggers below, never written by hand.
--   * entries.content_id is NULL for directories, symlinks, empty files and files not yet
--     identified (or changed since); a scan that sees a file's size, mtime or inode change clears it.
--   * entries.integrity is the full-file BLAKE3 of the file as it was when content_id was set, or
--     NULL when not computed; it is cleared together with content_id.
--   * rows with copies = 0 are removed at the end of each index job (with their queue rows).

CREATE TABLE content_identities (
    id          INTEGER PRIMARY KEY,
    cas_id      TEXT NOT NULL UNIQUE,   -- 16 lowercase hex chars
    digest      BLOB NOT NULL,          -- the full 32-byte sampled digest
    size        INTEGER NOT NULL,
    kind        TEXT NOT NULL,          -- filetype::ContentKind
    mime        TEXT,
    copies      INTEGER NOT NULL DEFAULT 0,
    first_seen  INTEGER NOT NULL        -- unix ms
) STRICT;

ALTER TABLE entries ADD COLUMN content_id INTEGER;
ALTER TABLE entries ADD COLUMN integrity BLOB;
CREATE INDEX entries_content ON entries(content_id) WHERE content_id IS NOT NULL;

CREATE TRIGGER entries_content_insert AFTER INSERT ON entries WHEN NEW.content_id IS NOT NULL
BEGIN
    UPDATE content_identities SET copies = copies + 1 WHERE id = NEW.content_id;
END;

CREATE TRIGGER entries_content_update AFTER UPDATE OF content_id ON entries
WHEN OLD.content_id IS NOT NEW.content_id
BEGIN
    UPDATE content_identities SET copies = copies - 1 WHERE id = OLD.content_id;
    UPDATE content_identities SET copies = copies + 1 WHERE id = NEW.content_id;
END;

CREATE TRIGGER entries_content_delete AFTER DELETE ON entries WHEN OLD.content_id IS NOT NULL
BEGIN
    UPDATE content_identities SET copies = copies - 1 WHERE id = OLD.content_id;
END;

-- Content waiting for later jobs (thumbnails, media metadata, text extraction). Nothing consumes
-- it yet; jobs report its size.
CREATE TABLE intelligence_queue (
    content_id  INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    queued_at   INTEGER NOT NULL
) STRICT;
