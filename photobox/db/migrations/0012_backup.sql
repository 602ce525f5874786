-- 0007 (backup): what the integrity check found. Rows are reports only: photobox never
-- deletes or changes a file because of them. A row is resolved when the file checks out
-- again (or an orphan is gone / adopted); the checkpoint of the running pass is in meta
-- ('integrity.state').
CREATE TABLE integrity_issues (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('missing', 'changed', 'unreadable', 'orphan')),
    library_id  INTEGER NOT NULL,
    rel_path    TEXT NOT NULL,
    asset_id    INTEGER REFERENCES assets(id) ON DELETE CASCADE,
    detail      TEXT NOT NULL DEFAULT '',
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    resolved_at REAL,
    UNIQUE (kind, library_id, rel_path)
) STRICT;
CREATE INDEX integrity_issues_open ON integrity_issues(id) WHERE resolved_at IS NULL;
CREATE INDEX integrity_issues_asset ON integrity_issues(asset_id);
