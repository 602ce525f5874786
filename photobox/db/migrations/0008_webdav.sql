-- 0007 (webdav): the virtual folder tree phone apps see under /dav/upload/.
-- A WebDAV client uploads "Camera/IMG_1234.JPG"; the bytes go through the normal ingest
-- pipeline (one asset per checksum) and this table remembers the name, size and time the
-- client used, so a PROPFIND lists what was uploaded and "upload only new" apps skip it.
-- Deleting an entry (DAV DELETE) never touches the asset; deleting the asset (trash, then
-- emptied) keeps the entry, so the phone does not upload the photo again.

CREATE TABLE dav_entries (
    id          INTEGER PRIMARY KEY,
    parent      TEXT NOT NULL,                 -- collection path without slashes at the ends: 'upload', 'upload/Camera'
    name        TEXT NOT NULL,                 -- one path segment, NFC
    is_dir      INTEGER NOT NULL DEFAULT 0 CHECK (is_dir IN (0, 1)),
    asset_id    INTEGER REFERENCES assets(id) ON DELETE SET NULL,
    made_asset  INTEGER NOT NULL DEFAULT 0,    -- 1: this upload created the asset (a MOVE may rename it)
    size        INTEGER NOT NULL DEFAULT 0,
    checksum    BLOB,                          -- SHA-1 of the uploaded bytes: the ETag
    mtime       REAL NOT NULL,                 -- the client's file time (X-OC-Mtime) or when it arrived
    created_at  REAL NOT NULL,
    UNIQUE (parent, name)
) STRICT;
CREATE INDEX dav_entries_asset ON dav_entries(asset_id) WHERE asset_id IS NOT NULL;
