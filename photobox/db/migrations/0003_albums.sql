-- 0003: albums, and indexes for the favourites, archive and trash views.

CREATE TABLE albums (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    cover_asset_id  INTEGER REFERENCES assets(id) ON DELETE SET NULL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
) STRICT;

-- sort_ts is copied from the asset (kept in step by a trigger) so an album page is one
-- index range scan in timeline order, however large the album.
CREATE TABLE album_assets (
    album_id  INTEGER NOT NULL REFERENCES albums(id) ON DELETE CASCADE,
    asset_id  INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    sort_ts   REAL NOT NULL,
    added_at  REAL NOT NULL,
    PRIMARY KEY (album_id, asset_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX album_assets_order ON album_assets(album_id, sort_ts DESC, asset_id DESC);
CREATE INDEX album_assets_asset ON album_assets(asset_id);

CREATE TRIGGER album_assets_follow_sort_ts AFTER UPDATE OF sort_ts ON assets
WHEN NEW.sort_ts IS NOT OLD.sort_ts
BEGIN
    UPDATE album_assets SET sort_ts = NEW.sort_ts WHERE asset_id = NEW.id;
END;

CREATE INDEX assets_favorites ON assets(sort_ts DESC, id DESC)
    WHERE favorite = 1 AND trashed_at IS NULL AND motion_of IS NULL;
CREATE INDEX assets_archive ON assets(sort_ts DESC, id DESC)
    WHERE archived = 1 AND trashed_at IS NULL AND motion_of IS NULL;
DROP INDEX assets_trash;
CREATE INDEX assets_trash ON assets(trashed_at DESC, id DESC) WHERE trashed_at IS NOT NULL;
-- Lets "has anything changed?" (the month-index cache key) be answered from an index.
CREATE INDEX assets_updated ON assets(updated_at);
