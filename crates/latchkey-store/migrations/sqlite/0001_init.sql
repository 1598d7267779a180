-- Users, sessions with their refresh tokens, API keys and token-signing keys.
-- Times are Unix seconds (UTC).

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL UNIQUE,
    phone            TEXT,
    password_hash    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    disabled_at      INTEGER
);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    aal             TEXT NOT NULL,
    amr             TEXT NOT NULL,
    auth_time       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    ip              TEXT,
    user_agent      TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   BLOB NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- At most one key holds active_slot = 1: the one new tokens are signed with. The
-- unique constraint lets concurrent first starts agree on a single key.
CREATE TABLE signing_keys (
    kid               TEXT PRIMARY KEY,
    algorithm         TEXT NOT NULL,
    public_key        BLOB NOT NULL,
    sealed_private    BLOB NOT NULL,
    nonce             BLOB NOT NULL,
    master_key_id     TEXT NOT NULL,
    active_slot       INTEGER UNIQUE,
    created_at        INTEGER NOT NULL,
    retired_at        INTEGER
);
