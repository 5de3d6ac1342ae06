-- Schema 2: content identity, integrity hashes and the intelligence queue.
-- Invariants:
--   * one content_identities row per distinct cas_id (BRIEF §3); `copies` is the number of entries
--     pointing at it. Pointing an entry at an identity is done in one place (the content phase,
--     index/identify.rs), which counts it there (a new identity is inserted with copies = 1);
--     every other change of entries.content_id (cleared, or the entry deleted) is counted by the
--     triggers below.
--   * entries.content_id is NULL for directories, symlinks, empty files and files not yet
--     identified (or changed since); a scan that sees a file's size, mtime or inode change clears it.
--   * entries.integrity is the full-file BLAKE3 of the file as it was when content_id was set, or
--     NULL when not computed; it is cleared together with content_id.
--   * rows with copies = 0 are removed at the end of each index job (with their queue rows).

-- The key *is* the cas_id: its 16 hex chars are 8 bytes, read as a big-endian signed integer.
-- So an identity needs no second index, and a file's identity row is known from its hash alone.
CREATE TABLE content_identities (
    id          INTEGER PRIMARY KEY,    -- the cas_id (content::cas_key)
    digest      BLOB NOT NULL,          -- the full 32-byte sampled digest; cas_id = hex(digest[0..8])
    size        INTEGER NOT NULL,
    kind        TEXT NOT NULL,          -- filetype::ContentKind
    mime        TEXT,
    copies      INTEGER NOT NULL DEFAULT 0,
    first_seen  INTEGER NOT NULL        -- unix ms
) STRICT;

ALTER TABLE entries ADD COLUMN content_id INTEGER;
ALTER TABLE entries ADD COLUMN integrity BLOB;
CREATE INDEX entries_content ON entries(content_id) WHERE content_id IS NOT NULL;

CREATE TRIGGER entries_content_cleared AFTER UPDATE OF content_id ON entries
WHEN OLD.content_id IS NOT NULL AND OLD.content_id IS NOT NEW.content_id
BEGIN
    UPDATE content_identities SET copies = copies - 1 WHERE id = OLD.content_id;
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
