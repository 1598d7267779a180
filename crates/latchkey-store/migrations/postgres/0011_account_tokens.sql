-- One-time tokens and codes that change an account rather than sign in: a password
-- reset link, an administrator's recovery link (and the self-service one, usable only
-- after a waiting period), and the code that confirms a new email address or phone
-- number. Only the keyed hash of a token (or of a code with its row id) is kept.
-- Times are Unix seconds (UTC).
CREATE TABLE account_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- password_reset, recovery, self_recovery, email_change or phone_change.
    purpose     TEXT NOT NULL,
    secret_hash BYTEA NOT NULL UNIQUE,
    -- An address change's new address, which replaces the old one when it is confirmed.
    new_address TEXT,
    -- Wrong codes tried against it.
    attempts    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    -- Not spendable before this (the self-service recovery's waiting period).
    usable_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    -- Spent, cancelled, or replaced by a newer token of the same purpose.
    used_at     BIGINT
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expiry ON account_tokens (expires_at);

-- Why an administrator acted, in their words (a recovery link's reason).
ALTER TABLE audit_events ADD COLUMN reason TEXT;
