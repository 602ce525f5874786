-- 0001: the foundation: bookkeeping, the owner account, sessions, API keys and durable jobs.
-- Never edit this file once released; add 0002_… instead.

CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
) STRICT;

-- Small key/value facts about this installation (secret key, instance id, setup time).
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;

-- photobox has exactly one owner account: id is pinned to 1.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    username       TEXT NOT NULL,
    password_hash  TEXT NOT NULL,       -- argon2id, PHC string
    created_at     REAL NOT NULL,
    password_changed_at REAL NOT NULL
) STRICT;

-- Browser sessions. Only a SHA-256 of the cookie value is stored, so a leaked database
-- copy (e.g. a backup) does not hand out live sessions.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at   REAL NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    remote_addr  TEXT NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- API keys for scripts and phone apps; the secret is shown once and stored hashed.
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,          -- first characters, to recognise a key in the list
    key_hash      BLOB NOT NULL UNIQUE,
    scopes        TEXT NOT NULL DEFAULT 'all',
    created_at    REAL NOT NULL,
    last_used_at  REAL,
    revoked_at    REAL
) STRICT;

-- Durable jobs. One row per (kind, target): enqueueing the same work twice is a no-op.
-- Rows hold a name and small JSON args only, never file bytes (bugsink's snappea does the same).
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    target        TEXT NOT NULL DEFAULT '',
    args          TEXT NOT NULL DEFAULT '{}',
    priority      INTEGER NOT NULL DEFAULT 0,          -- higher runs first
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 5,
    run_after     REAL NOT NULL DEFAULT 0,             -- unix time; backoff after a failure
    owner         TEXT,                                -- host:pid of the process running it
    lease_until   REAL,                                -- a running job whose lease ran out is resumed
    error         TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    UNIQUE (kind, target)
) STRICT;
-- The scheduler's "what next" query: queued jobs of one kind by priority.
CREATE INDEX jobs_ready ON jobs(kind, state, priority DESC, run_after, id);
CREATE INDEX jobs_state ON jobs(state, kind);
