-- 0002: libraries, their files, and assets (one original photo or video each).

-- A library is a root folder. Library 1 is photobox's own upload library (data_dir/library);
-- the others are external folders indexed in place and never written to.
CREATE TABLE libraries (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('upload', 'external')),
    root            TEXT NOT NULL,                 -- absolute path; '' for the upload library
    exclusions      TEXT NOT NULL DEFAULT '[]',    -- JSON list of glob patterns
    scan_minutes    INTEGER NOT NULL DEFAULT 360,  -- 0: scan only on demand
    last_scan_at    REAL,
    last_scan_stats TEXT,                          -- JSON: seen/new/changed/vanished/errors
    scan_generation INTEGER NOT NULL DEFAULT 0,    -- mark-and-sweep counter
    created_at      REAL NOT NULL
) STRICT;
INSERT INTO libraries (id, name, kind, root, scan_minutes, created_at)
VALUES (1, 'Uploads', 'upload', '', 0, unixepoch());

-- Every file photobox knows in a library. Scans compare size+mtime here to skip unchanged
-- files (rclip does the same) and find vanished ones by generation (mark and sweep).
CREATE TABLE library_files (
    id          INTEGER PRIMARY KEY,
    library_id  INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    rel_path    TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime       REAL NOT NULL,
    checksum    BLOB,                       -- SHA-1, once hashed
    asset_id    INTEGER REFERENCES assets(id) ON DELETE SET NULL,
    generation  INTEGER NOT NULL DEFAULT 0, -- the last scan that saw it
    state       TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'ok', 'duplicate', 'error', 'vanished')),
    error       TEXT,
    UNIQUE (library_id, rel_path)
) STRICT;
CREATE INDEX library_files_checksum ON library_files(checksum);
CREATE INDEX library_files_asset ON library_files(asset_id);

CREATE TABLE assets (
    id                INTEGER PRIMARY KEY,
    library_id        INTEGER NOT NULL REFERENCES libraries(id),
    rel_path          TEXT NOT NULL,            -- the original, relative to the library root
    original_name     TEXT NOT NULL,            -- the file name as uploaded or found
    checksum          BLOB NOT NULL,            -- SHA-1 of the bytes (what phone apps send)
    size              INTEGER NOT NULL,
    mtime             REAL NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('image', 'video')),
    mime              TEXT,
    -- When it was taken: local wall-clock time, its UTC offset when known, and which source won.
    taken_at          TEXT,
    tz_offset_min     INTEGER,
    taken_at_source   TEXT,
    sort_ts           REAL NOT NULL,            -- taken_at (local wall clock) as naive epoch seconds: the timeline order
    local_date        TEXT,                     -- YYYY-MM-DD of taken_at, for day/month grouping
    width             INTEGER,
    height            INTEGER,
    display_width     INTEGER,
    display_height    INTEGER,
    orientation       INTEGER,
    duration          REAL,
    video_rotation    INTEGER,
    video_codec       TEXT,
    audio_codec       TEXT,
    latitude          REAL,
    longitude         REAL,
    altitude          REAL,
    make              TEXT,
    model             TEXT,
    lens              TEXT,
    exposure_time     REAL,
    f_number          REAL,
    iso               INTEGER,
    focal_length      REAL,
    live_photo_id     TEXT,                     -- Apple ContentIdentifier
    motion_of         INTEGER REFERENCES assets(id) ON DELETE SET NULL, -- this video is the motion part of that still
    motion_state      TEXT,                     -- NULL | 'embedded' (extracted) | 'paired' (Live Photo MOV)
    placeholder       BLOB,                     -- thumbhash for the grid before the thumbnail loads
    thumb_version     INTEGER NOT NULL DEFAULT 0, -- bumps when derived files change: cache key
    rendition         TEXT,                     -- NULL | 'none' (plays as is) | 'ready' | 'failed'
    favorite          INTEGER NOT NULL DEFAULT 0,
    archived          INTEGER NOT NULL DEFAULT 0,
    trashed_at        REAL,
    offline           INTEGER NOT NULL DEFAULT 0, -- its file vanished from an external library
    description       TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}', -- everything the extractor read (JSON)
    error             TEXT,                     -- the last ingest problem, shown to the user
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    UNIQUE (library_id, rel_path)
) STRICT;
CREATE INDEX assets_checksum ON assets(checksum);
CREATE INDEX assets_live_photo ON assets(live_photo_id) WHERE live_photo_id IS NOT NULL;
-- The timeline: visible assets newest first, keyset-paginated on (sort_ts, id).
CREATE INDEX assets_timeline ON assets(sort_ts DESC, id DESC)
    WHERE trashed_at IS NULL AND archived = 0 AND motion_of IS NULL;
CREATE INDEX assets_trash ON assets(trashed_at) WHERE trashed_at IS NOT NULL;

-- Resumable browser uploads: bytes land in data/tmp/<id>.part; the row says how far it got.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,              -- random token chosen by the server
    file_name    TEXT NOT NULL,
    size         INTEGER NOT NULL,
    checksum     BLOB,                          -- SHA-1 the client announced, if any
    received     INTEGER NOT NULL DEFAULT 0,
    mtime        REAL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
) STRICT, WITHOUT ROWID;
