-- 0007 (shares): share links to an album or to a stored selection of assets.
-- Like sessions and API keys, only a SHA-256 of the link token is stored: a leaked backup
-- does not hand out live links. The link is shown once, right after it is made; "new link"
-- replaces the token (the old link stops working at once).

CREATE TABLE shares (
    id              INTEGER PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('album', 'assets')),
    album_id        INTEGER REFERENCES albums(id) ON DELETE CASCADE,
    title           TEXT NOT NULL DEFAULT '',
    password_hash   TEXT,                         -- argon2id PHC string, NULL: no password
    allow_download  INTEGER NOT NULL DEFAULT 0,   -- originals and the zip of all
    show_metadata   INTEGER NOT NULL DEFAULT 0,   -- 0: no GPS, camera or file names leave photobox
    expires_at      REAL,                         -- NULL: never
    revoked_at      REAL,
    created_at      REAL NOT NULL,
    token_at        REAL NOT NULL,                -- when the current token was made
    views           INTEGER NOT NULL DEFAULT 0,
    last_viewed_at  REAL,
    CHECK ((kind = 'album') = (album_id IS NOT NULL))
) STRICT;
CREATE INDEX shares_album ON shares(album_id) WHERE album_id IS NOT NULL;

-- The assets of a selection share, in timeline order (sort_ts follows the asset, as for albums).
CREATE TABLE share_assets (
    share_id  INTEGER NOT NULL REFERENCES shares(id) ON DELETE CASCADE,
    asset_id  INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    sort_ts   REAL NOT NULL,
    PRIMARY KEY (share_id, asset_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX share_assets_order ON share_assets(share_id, sort_ts DESC, asset_id DESC);
CREATE INDEX share_assets_asset ON share_assets(asset_id);

CREATE TRIGGER share_assets_follow_sort_ts AFTER UPDATE OF sort_ts ON assets
WHEN NEW.sort_ts IS NOT OLD.sort_ts
BEGIN
    UPDATE share_assets SET sort_ts = NEW.sort_ts WHERE asset_id = NEW.id;
END;
