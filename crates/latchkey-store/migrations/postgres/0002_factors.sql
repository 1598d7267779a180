-- Second factors, recovery codes, the per-user brute-force guard, MFA tokens and the
-- audit log. Times are Unix seconds (UTC).

CREATE TABLE factors (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    factor_type    TEXT NOT NULL,
    status         TEXT NOT NULL,
    friendly_name  TEXT,
    -- The factor's secret (a TOTP key), sealed under the master key.
    secret_sealed  BYTEA,
    secret_nonce   BYTEA,
    secret_key_id  TEXT,
    algorithm      TEXT,
    digits         BIGINT,
    period         BIGINT,
    -- The last accepted TOTP time step; a step at or below it is a replay.
    last_step      BIGINT,
    created_at     BIGINT NOT NULL,
    confirmed_at   BIGINT,
    last_used_at   BIGINT,
    -- Pending factors expire; active ones do not.
    expires_at     BIGINT
);
CREATE INDEX factors_user_id ON factors (user_id);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Consecutive second-factor failures per user, across sessions, IPs and instances.
CREATE TABLE mfa_guards (
    user_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    failures      BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);

CREATE TABLE mfa_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr        TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Events outlive the users they are about, so there is no foreign key.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    user_id     TEXT,
    event_type  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    factor_id   TEXT,
    factor_type TEXT,
    actor       TEXT,
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX audit_events_user ON audit_events (user_id, occurred_at);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
