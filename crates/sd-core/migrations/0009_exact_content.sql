-- Schema 9: a content identity holds only files with identical bytes.
-- The sampled cas_id (BRIEF §3) covers every byte of a file up to 100 KiB; above that two files
-- can share it and still differ ("near-duplicates": same size, same sampled ranges, different
-- bytes elsewhere). Such a content identity is split by full-file BLAKE3 (copies.rs):
-- Invariants:
--   * integrity: the full-file BLAKE3 that every confirmed member of this identity has; NULL
--     until confirmed, and always NULL for files up to 100 KiB (their cas_id is exact).
--     A member whose entry_content.integrity differs from it is moved out at once; a member
--     whose integrity is NULL is *unconfirmed*: never counted or shown as a copy, and content
--     tags and metadata do not reach it.
--   * split_from: for an identity split off a cas_id row, that row's id (the cas_key). Its own
--     id is the cas_key of its integrity hash; its digest (and so its cas_id and UUID) stay the
--     sampled ones. The content phase always links a new file to the cas_id row; confirmation
--     then moves it to the split identity with its bytes, if there is one.
ALTER TABLE content_identities ADD COLUMN integrity BLOB;
ALTER TABLE content_identities ADD COLUMN split_from INTEGER;
CREATE INDEX content_identities_split ON content_identities(split_from) WHERE split_from IS NOT NULL;
