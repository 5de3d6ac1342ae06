-- Schema 11: sidecars — what is derived from a content (thumbnails, media metadata, extracted
-- text), made in the background for the content of deep locations, kept once per content in the
-- library folder and never next to the user's files.
-- Invariants:
--   * one `sidecars` row per (content, kind, variant). status `ready`: generated — a kind that
--     writes a file has it complete at sidecars/content/{h0}/{h1}/{uuid}/{kind}/{variant}.{ext}
--     under the library folder; `failed`: the generator could not read it (reason: corrupt,
--     truncated, over a limit, timed out); `unsupported`: nothing here can make it (reason: which
--     format or tool is missing). A file reaches its final name by temp → fsync → rename before
--     its row is written, and the rows of a content are written in the transaction that removes
--     its queue row: after a crash a content is either done or still queued, never half done.
--   * `generator` is the version of the code that made the row; a row older than the current
--     version is remade lazily (queued again by the next sidecar job, or by `thumb` on demand).
--   * every content the sidecar job handled has at least one row (its kinds that apply, or an
--     `unsupported` metadata row), so the content phase does not queue it again.
--   * when a content with sidecars loses its last file (entry deleted, or moved to a split
--     identity), the triggers below put it in `sidecar_gc`; the sidecar job removes its files,
--     then its rows, media and text — unless a file points at it again by then.
--   * `media` and `content_text` hold at most one row per content and go with its sidecars.
CREATE TABLE sidecars (
    content_id  INTEGER NOT NULL,     -- content_identities.id
    kind        TEXT NOT NULL,        -- thumbnail, metadata, text
    variant     TEXT NOT NULL,        -- grid-256, grid-512, detail-1024; media; plain
    status      TEXT NOT NULL CHECK (status IN ('ready', 'failed', 'unsupported')),
    reason      TEXT,                 -- failed / unsupported: why
    ext         TEXT,                 -- extension of the sidecar's file (webp); NULL: no file
    size        INTEGER NOT NULL,     -- bytes of the file, or of the text extracted
    width       INTEGER,              -- thumbnails: pixels
    height      INTEGER,
    generator   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (content_id, kind, variant)
) STRICT, WITHOUT ROWID;

-- Media metadata of a content. Dimensions as displayed (EXIF orientation applied); taken_at in
-- nanoseconds since the epoch (EXIF DateTimeOriginal with its offset, else in the daemon's zone).
CREATE TABLE media (
    content_id   INTEGER PRIMARY KEY,
    width        INTEGER,
    height       INTEGER,
    taken_at     INTEGER,
    make         TEXT,
    model        TEXT,
    lens         TEXT,
    latitude     REAL,
    longitude    REAL,
    orientation  INTEGER
) STRICT;

-- Extracted text (at most 1 MiB per content), full-text indexed; rowid = content id.
CREATE VIRTUAL TABLE content_text USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');

-- Contents whose sidecars may have lost their last file.
CREATE TABLE sidecar_gc (
    content_id  INTEGER PRIMARY KEY
) STRICT;

CREATE TRIGGER entry_content_sidecar_gc AFTER DELETE ON entry_content
WHEN EXISTS (SELECT 1 FROM sidecars WHERE content_id = OLD.content_id)
 AND NOT EXISTS (SELECT 1 FROM entry_content WHERE content_id = OLD.content_id)
BEGIN
    INSERT OR IGNORE INTO sidecar_gc (content_id) VALUES (OLD.content_id);
END;

CREATE TRIGGER entry_content_sidecar_gc_moved AFTER UPDATE OF content_id ON entry_content
WHEN OLD.content_id != NEW.content_id
 AND EXISTS (SELECT 1 FROM sidecars WHERE content_id = OLD.content_id)
 AND NOT EXISTS (SELECT 1 FROM entry_content WHERE content_id = OLD.content_id)
BEGIN
    INSERT OR IGNORE INTO sidecar_gc (content_id) VALUES (OLD.content_id);
END;
