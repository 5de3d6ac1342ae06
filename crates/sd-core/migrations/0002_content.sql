-- Schema 2: content identity, integrity hashes and the intelligence queue.
-- Invariants:
--   * one content_identities row per distinct cas_id (BRIEF §3); `copies` is the number of
--     entry_content rows pointing at it. Rows are linked in one place (the content phase,
--     index/identify.rs), which counts the copy there (a new identity is inserted with copies = 1);
--     unlinking (the row deleted, directly or with its entry) is counted by the triggers below.
--   * entry_content holds a row only for a file identified as it is now: a scan that sees a
--     file's size, mtime or inode change deletes the row, and the content phase makes a new one.
--     Keeping the link out of `entries` means identifying a file appends a row here instead of
--     growing a packed entries row (which splits pages), and shallow locations pay nothing.
--   * integrity is the full-file BLAKE3 of the file as it was when linked, or NULL if not computed.
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

CREATE TABLE entry_content (
    entry_id    INTEGER PRIMARY KEY,    -- entries.id
    content_id  INTEGER NOT NULL,       -- content_identities.id
    integrity   BLOB
) STRICT;
CREATE INDEX entry_content_by_content ON entry_content(content_id);

CREATE TRIGGER entries_unlink_content AFTER DELETE ON entries
BEGIN
    DELETE FROM entry_content WHERE entry_id = OLD.id;
END;

CREATE TRIGGER entry_content_uncount AFTER DELETE ON entry_content
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
