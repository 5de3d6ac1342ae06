-- Schema 8: organisation that left with a file. When a scan deletes an entry that carries tags,
-- a favourite, a hidden flag or a note on the entry itself (a file moved out of the location,
-- perhaps into another location of this library that a later scan sees), the organisation is
-- kept here under the file's identity (filesystem, inode, birth time or mtime) instead of being
-- dropped. When any scan indexes the same file again, it gets it back and the row goes.
-- Rows older than 30 days are purged.
CREATE TABLE departed (
    id           INTEGER PRIMARY KEY,
    dev          INTEGER NOT NULL,
    inode        INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    btime        INTEGER,
    mtime        INTEGER,
    organise     TEXT NOT NULL,      -- JSON: {"tags": [tag ids], "favorite", "hidden", "note"}
    departed_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX departed_inode ON departed(inode);
