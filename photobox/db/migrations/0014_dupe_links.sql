-- 0013 (duplicates at scale): links between look-alikes form a spanning forest, plus each photo's
-- 10 closest, instead of a row per pair, a photo is looked up through indexes instead of a read of every hash, a queue kept
-- by triggers says what to look at again, and "not duplicates" is stored per photo, not per pair.
-- Why: 2,013 look-alike undated images made 1,999,078 pair rows (+92 MB) and a 96 s job, and
-- each batch read every stored hash (3-3.6 s at 1M assets).

-- Photos connected through accepted look-alikes are connected by these links, nearest first,
-- with at most one link fewer than photos (photobox/duplicates/links.py). No foreign keys on
-- purpose: the links of a deleted photo must stay until the job has searched the pieces they
-- held together (the delete trigger below queues it); the job removes them.
CREATE TABLE dupe_links (
    a         INTEGER NOT NULL,
    b         INTEGER NOT NULL,
    distance  INTEGER NOT NULL,             -- pHash + dHash Hamming distance
    PRIMARY KEY (a, b),
    CHECK (a < b)
) STRICT, WITHOUT ROWID;
CREATE INDEX dupe_links_b ON dupe_links(b);

-- Each photo's NEAREST = 10 closest matches when it was last searched: what grouping chooses
-- from, closest first, when it must keep photos apart. No foreign keys either (same reason).
CREATE TABLE dupe_nearest (
    asset_id      INTEGER NOT NULL,
    neighbour_id  INTEGER NOT NULL,
    distance      INTEGER NOT NULL,
    PRIMARY KEY (asset_id, neighbour_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX dupe_nearest_back ON dupe_nearest(neighbour_id);

-- Multi-index hashing (photobox/duplicates/index.py): the pHash's four 16-bit bands, each
-- with the whole pHash so a lookup is answered from the index alone. The expressions must
-- stay exactly as the lookup writes them.
CREATE INDEX dupe_hashes_band0 ON dupe_hashes((phash & 65535), phash);
CREATE INDEX dupe_hashes_band1 ON dupe_hashes(((phash >> 16) & 65535), phash);
CREATE INDEX dupe_hashes_band2 ON dupe_hashes(((phash >> 32) & 65535), phash);
CREATE INDEX dupe_hashes_band3 ON dupe_hashes(((phash >> 48) & 65535), phash);

-- "Not duplicates": the photos of a dismissed group, as one set; two photos that share a set
-- are never grouped together again.
CREATE TABLE dupe_dismissals (
    set_id      INTEGER NOT NULL,
    asset_id    INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    PRIMARY KEY (set_id, asset_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX dupe_dismissals_asset ON dupe_dismissals(asset_id, set_id);

-- The dismissed pairs came from "Not duplicates" on a group: every pair of it, with one time.
-- Pairs with one time that make up every pair of their photos become one set; any other
-- pair becomes a set of its own (exactly what it said).
CREATE TEMP TABLE old_members AS
    SELECT created_at, a AS asset_id FROM dupe_dismissed UNION SELECT created_at, b FROM dupe_dismissed;
CREATE TEMP TABLE old_sets AS
    SELECT p.created_at, row_number() OVER (ORDER BY p.created_at) AS set_id, p.pairs = m.n * (m.n - 1) / 2 AS whole
    FROM (SELECT created_at, count(*) AS pairs FROM dupe_dismissed GROUP BY created_at) p
    JOIN (SELECT created_at, count(*) AS n FROM old_members GROUP BY created_at) m ON m.created_at = p.created_at;
INSERT INTO dupe_dismissals (set_id, asset_id, created_at)
    SELECT s.set_id, m.asset_id, s.created_at FROM old_sets s JOIN old_members m ON m.created_at = s.created_at
    WHERE s.whole;
WITH loose AS (
    SELECT d.a, d.b, d.created_at, (SELECT count(*) FROM old_sets) + row_number() OVER (ORDER BY d.a, d.b) AS set_id
    FROM dupe_dismissed d JOIN old_sets s ON s.created_at = d.created_at WHERE NOT s.whole)
INSERT INTO dupe_dismissals (set_id, asset_id, created_at)
    SELECT set_id, a, created_at FROM loose UNION ALL SELECT set_id, b, created_at FROM loose;
DROP TABLE old_members;
DROP TABLE old_sets;
DROP TABLE dupe_dismissed;

-- What the dupes job has to look at again, in order. A photo queued again gets a new seq
-- (REPLACE), so the job, which takes off only the entries it read, never drops a change
-- that came in while it worked.
-- No foreign key: a deleted photo stays queued, so the job undoes its links.
CREATE TABLE dupe_dirty (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id  INTEGER NOT NULL UNIQUE
) STRICT;

CREATE TRIGGER dupe_dirty_insert AFTER INSERT ON assets WHEN NEW.thumb_version > 0
BEGIN
    INSERT OR REPLACE INTO dupe_dirty (asset_id) VALUES (NEW.id);
END;

-- What the pair rule and the hashes depend on: the thumbnail, the capture time, and whether
-- the photo can be a duplicate at all (trash, kind, the video half of a Live Photo).
CREATE TRIGGER dupe_dirty_update
AFTER UPDATE OF thumb_version, trashed_at, kind, motion_of, sort_ts, taken_at, taken_at_source ON assets
WHEN NEW.thumb_version > 0 AND (NEW.thumb_version IS NOT OLD.thumb_version OR NEW.trashed_at IS NOT OLD.trashed_at
    OR NEW.kind IS NOT OLD.kind OR NEW.motion_of IS NOT OLD.motion_of OR NEW.sort_ts IS NOT OLD.sort_ts
    OR NEW.taken_at IS NOT OLD.taken_at OR NEW.taken_at_source IS NOT OLD.taken_at_source)
BEGIN
    INSERT OR REPLACE INTO dupe_dirty (asset_id) VALUES (NEW.id);
END;

-- A deleted photo with links or a group stays queued (its links go when the job has searched
-- what they held together), and its group goes now: the group's id is this photo's id, which
-- SQLite may give to the next new photo.
CREATE TRIGGER dupe_dirty_delete BEFORE DELETE ON assets
WHEN EXISTS (SELECT 1 FROM dupe_links WHERE a = OLD.id) OR EXISTS (SELECT 1 FROM dupe_links WHERE b = OLD.id)
    OR EXISTS (SELECT 1 FROM dupe_members WHERE asset_id = OLD.id)
BEGIN
    INSERT OR REPLACE INTO dupe_dirty (asset_id) VALUES (OLD.id);
    DELETE FROM dupe_groups WHERE id IN (SELECT group_id FROM dupe_members WHERE asset_id = OLD.id);
END;

-- Queue what the previous version had left: photos with a thumbnail not hashed yet, photos
-- in the trash that still have a group, and every photo of a stored pair: searched again,
-- they make the forest (pairs were stored only for look-alikes: a small part of a library).
INSERT OR REPLACE INTO dupe_dirty (asset_id)
    SELECT a.id FROM assets a LEFT JOIN dupe_hashes h ON h.asset_id = a.id
    WHERE a.kind = 'image' AND a.trashed_at IS NULL AND a.motion_of IS NULL AND a.thumb_version > 0
      AND (h.asset_id IS NULL OR h.thumb_version != a.thumb_version);
INSERT OR REPLACE INTO dupe_dirty (asset_id)
    SELECT m.asset_id FROM dupe_members m JOIN assets a ON a.id = m.asset_id WHERE a.trashed_at IS NOT NULL;
INSERT OR REPLACE INTO dupe_dirty (asset_id)
    SELECT a FROM dupe_pairs UNION SELECT b FROM dupe_pairs;
DROP TABLE dupe_pairs;

-- The previous job's "changed since" stamp: the queue replaces it.
DELETE FROM meta WHERE key = 'dupes_grouped_at';
