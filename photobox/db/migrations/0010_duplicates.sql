-- 0007 (duplicates): perceptual hashes, near-duplicate pairs and groups, "not duplicates"
-- decisions, and "On this day" memories.

-- One row per photo hashed from its thumbnail; thumb_version says which thumbnail, so a
-- regenerated thumbnail is hashed again.
CREATE TABLE dupe_hashes (
    asset_id       INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    phash          INTEGER NOT NULL,        -- 64-bit DCT hash (signed)
    dhash          INTEGER NOT NULL,        -- 64-bit gradient hash (signed)
    thumb_version  INTEGER NOT NULL,
    hashed_at      REAL NOT NULL
) STRICT;

-- Pairs that passed the pair rule (photobox/duplicates/detect.py); a < b. Groups are built
-- from these, so a rebuild never has to compare hashes again.
CREATE TABLE dupe_pairs (
    a         INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    b         INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    distance  INTEGER NOT NULL,             -- pHash + dHash Hamming distance
    PRIMARY KEY (a, b),
    CHECK (a < b)
) STRICT, WITHOUT ROWID;
CREATE INDEX dupe_pairs_b ON dupe_pairs(b);

-- "Not duplicates": pairs the user separated, kept forever and never suggested again.
CREATE TABLE dupe_dismissed (
    a           INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    b           INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    PRIMARY KEY (a, b),
    CHECK (a < b)
) STRICT, WITHOUT ROWID;

-- The current groups (rebuilt from dupe_pairs). A group's id is its smallest asset id, so
-- it stays the same across rebuilds while its members do; keyset-paginated on id.
CREATE TABLE dupe_groups (
    id          INTEGER PRIMARY KEY,
    keeper_id   INTEGER NOT NULL,           -- the suggested copy to keep
    size        INTEGER NOT NULL
) STRICT;

CREATE TABLE dupe_members (
    asset_id  INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    group_id  INTEGER NOT NULL REFERENCES dupe_groups(id) ON DELETE CASCADE
) STRICT;
CREATE INDEX dupe_members_group ON dupe_members(group_id);

-- "On this day": made once a day by the scheduler, so the home page reads a few rows.
CREATE TABLE memories (
    id          INTEGER PRIMARY KEY,
    day         TEXT NOT NULL,              -- the YYYY-MM-DD it was made for
    year        INTEGER NOT NULL,           -- the year the photos are from
    title       TEXT NOT NULL,              -- "3 years ago"
    cover_id    INTEGER REFERENCES assets(id) ON DELETE SET NULL,
    created_at  REAL NOT NULL,
    UNIQUE (day, year)
) STRICT;

CREATE TABLE memory_assets (
    memory_id  INTEGER NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    asset_id   INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    PRIMARY KEY (memory_id, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX memory_assets_asset ON memory_assets(asset_id);

-- Memories look photos up by month and day across years.
CREATE INDEX assets_month_day ON assets(substr(local_date, 6, 5), sort_ts)
    WHERE trashed_at IS NULL AND archived = 0 AND motion_of IS NULL AND kind = 'image';
