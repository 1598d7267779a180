-- Two-step factor confirmation (Lerian: a verified passcode, then enabling) and
-- remembered devices. Times are Unix seconds (UTC).

-- When a pending factor's code was verified; enabling it then needs a recovery code.
ALTER TABLE factors ADD COLUMN verified_at INTEGER;

-- A device on which the user proved a second factor and asked to be remembered: its
-- token (only a keyed hash is kept) skips the second factor at password login until
-- it expires or the user's factors change.
CREATE TABLE remembered_devices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX remembered_devices_user ON remembered_devices (user_id);
