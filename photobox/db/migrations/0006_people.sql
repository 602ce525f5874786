-- 0006: people and their faces.
-- Face vectors live in a sqlite-vec table made at runtime (its dimension comes from the
-- recogniser model), like the CLIP spaces of 0004; this migration holds the plain data.

CREATE TABLE people (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL DEFAULT '',      -- '' until the user names them
    cover_face_id  INTEGER,                       -- a face of theirs the user picked (or the best)
    hidden         INTEGER NOT NULL DEFAULT 0,
    birth_date     TEXT,                          -- YYYY-MM-DD, to show ages
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL
) STRICT;

CREATE TABLE faces (
    id           INTEGER PRIMARY KEY,
    asset_id     INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    person_id    INTEGER REFERENCES people(id) ON DELETE SET NULL,
    -- Box in the upright image, as fractions of its width and height (0..1): independent of
    -- the preview size, so the viewer can draw it on any rendition.
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    score        REAL NOT NULL,
    landmarks    TEXT NOT NULL DEFAULT '[]',      -- JSON [[x, y] × 5], fractions like the box
    assigned_by  TEXT NOT NULL DEFAULT 'auto' CHECK (assigned_by IN ('auto', 'user')),
    model        TEXT NOT NULL,                   -- recogniser name@revision the vector came from
    created_at   REAL NOT NULL
) STRICT;
CREATE INDEX faces_asset ON faces(asset_id);
CREATE INDEX faces_person ON faces(person_id, asset_id);
CREATE INDEX faces_unassigned ON faces(id) WHERE person_id IS NULL;

-- What the user said, kept forever so no re-cluster undoes it: a face IS (must) or is NOT
-- (cannot) this person.
CREATE TABLE face_constraints (
    face_id    INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
    person_id  INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),
    created_at REAL NOT NULL,
    PRIMARY KEY (face_id, person_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX face_constraints_person ON face_constraints(person_id);

-- Which photos the face stage has looked at, with which detector/recogniser, so a photo
-- without faces is not scanned again and a model change can queue what it has not seen.
CREATE TABLE face_scans (
    asset_id    INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    model       TEXT NOT NULL,
    faces       INTEGER NOT NULL,
    scanned_at  REAL NOT NULL
) STRICT;
