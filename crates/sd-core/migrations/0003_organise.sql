-- Schema 3: tags, favourites, hidden flags and notes, on an entry or on content (every copy).
-- Invariants:
--   * tags form a forest; sibling names are unique (top-level tags count as siblings).
--   * an assignment or metadata row targets exactly one of entry_id / content_id.
--   * deleting a tag deletes its children and every assignment of them (ON DELETE CASCADE);
--     deleting an entry deletes what was attached to the entry (trigger below); what is attached
--     to content stays while the content row exists, and content rows that carry tags or
--     metadata are kept even when no file points at them any more.

CREATE TABLE tags (
    id          INTEGER PRIMARY KEY,
    parent_id   INTEGER REFERENCES tags(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    color       TEXT,
    namespace   TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX tags_siblings ON tags(coalesce(parent_id, 0), name);

CREATE TABLE tag_assignments (
    tag_id      INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    entry_id    INTEGER,
    content_id  INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK ((entry_id IS NULL) <> (content_id IS NULL))
) STRICT;
CREATE UNIQUE INDEX tag_assignments_entry ON tag_assignments(entry_id, tag_id) WHERE entry_id IS NOT NULL;
CREATE UNIQUE INDEX tag_assignments_content ON tag_assignments(content_id, tag_id) WHERE content_id IS NOT NULL;
CREATE INDEX tag_assignments_tag ON tag_assignments(tag_id);

CREATE TABLE user_metadata (
    entry_id    INTEGER,
    content_id  INTEGER,
    favorite    INTEGER NOT NULL DEFAULT 0,
    hidden      INTEGER NOT NULL DEFAULT 0,
    note        TEXT,
    updated_at  INTEGER NOT NULL,
    CHECK ((entry_id IS NULL) <> (content_id IS NULL))
) STRICT;
CREATE UNIQUE INDEX user_metadata_entry ON user_metadata(entry_id) WHERE entry_id IS NOT NULL;
CREATE UNIQUE INDEX user_metadata_content ON user_metadata(content_id) WHERE content_id IS NOT NULL;

CREATE TRIGGER entries_drop_organise AFTER DELETE ON entries
BEGIN
    DELETE FROM tag_assignments WHERE entry_id = OLD.id;
    DELETE FROM user_metadata WHERE entry_id = OLD.id;
END;
