-- 0004: CLIP embedding spaces for search by description (photobox/search/vectors.py).
--
-- The vectors themselves live in one sqlite-vec table per space, vec_space_<id>, created by
-- vectors.create_space() and not here: a vec0 table declares its dimension (float[512],
-- float[768]…) and the dimension is only known once a model is chosen. The name carries the
-- integer id only, never a model name. One table per space also makes retiring a space one
-- DROP TABLE instead of deleting a million rows, and keeps a scan of one space off the other's pages.

-- One row per model's embedding space. Search uses the single 'active' space; a new model
-- fills a 'building' space in the background and only replaces the active one once complete.
CREATE TABLE embedding_spaces (
    id            INTEGER PRIMARY KEY,
    model         TEXT NOT NULL,            -- name@revision of the model (photobox.ml.registry)
    dim           INTEGER NOT NULL CHECK (dim BETWEEN 1 AND 8192),
    state         TEXT NOT NULL DEFAULT 'building' CHECK (state IN ('building', 'active', 'retired')),
    -- Bumped by every write to the space's vectors; the in-memory search index compares it
    -- with the version it has seen, so an unchanged space costs one lookup per search.
    version       INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    activated_at  REAL,
    retired_at    REAL
) STRICT;
-- At most one active and one building space at a time.
CREATE UNIQUE INDEX embedding_spaces_one_per_state ON embedding_spaces(state) WHERE state != 'retired';

-- Which assets have a vector in which space, and the space version of the last change.
-- present: 1 the vector is in vec_space_<id>; 0 it was deleted; -1 the asset row was deleted
-- (by the trigger below) and its vector still waits in vec_space_<id> for vectors.sweep().
-- This answers "which assets still need an embedding" and "how many are done" without
-- touching the vector table, and lets the in-memory index catch up on just what changed
-- (rows with version > the version it has seen), deletions included.
CREATE TABLE embedding_entries (
    space_id  INTEGER NOT NULL REFERENCES embedding_spaces(id) ON DELETE CASCADE,
    asset_id  INTEGER NOT NULL,
    version   INTEGER NOT NULL,
    present   INTEGER NOT NULL CHECK (present IN (-1, 0, 1)),
    PRIMARY KEY (space_id, asset_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX embedding_entries_changes ON embedding_entries(space_id, version);
CREATE INDEX embedding_entries_orphans ON embedding_entries(space_id) WHERE present = -1;

-- Deleting an asset marks its vectors gone in every space, whoever deletes it. Without this
-- an asset id SQLite hands out again (INTEGER PRIMARY KEY reuses the largest id once it is
-- deleted) would inherit the deleted photo's embedding and never be embedded itself.
-- A trigger cannot name vec_space_<id>, so the vectors themselves are removed by sweep().
CREATE TRIGGER assets_embeddings_orphaned AFTER DELETE ON assets
BEGIN
    UPDATE embedding_spaces SET version = version + 1
     WHERE state != 'retired'
       AND EXISTS (SELECT 1 FROM embedding_entries e
                    WHERE e.space_id = embedding_spaces.id AND e.asset_id = OLD.id AND e.present = 1);
    UPDATE embedding_entries
       SET present = -1,
           version = (SELECT s.version FROM embedding_spaces s WHERE s.id = embedding_entries.space_id)
     WHERE space_id IN (SELECT id FROM embedding_spaces WHERE state != 'retired')
       AND asset_id = OLD.id AND present = 1;
END;
