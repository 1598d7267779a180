-- Email, SMS and magic-link factors: where codes go, the challenges sent to them, the
-- per-destination send throttle, and the queue of outgoing messages. Times are Unix
-- seconds (UTC).

-- The email address or E.164 phone number of an email, SMS or magic-link factor.
ALTER TABLE factors ADD COLUMN destination TEXT;

-- A one-time code or link sent for one purpose: `enroll` (confirm a new factor),
-- `login` (second factor of one login, bound to its MFA token) or `sign_in` (a
-- magic link as the first factor). Only keyed hashes of codes and link tokens are kept.
CREATE TABLE challenges (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    factor_id      TEXT REFERENCES factors (id) ON DELETE CASCADE,
    purpose        TEXT NOT NULL,
    -- `code` or `link`.
    kind           TEXT NOT NULL,
    secret_hash    BLOB NOT NULL,
    mfa_token_hash BLOB,
    attempts       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    -- A link opened and confirmed by its recipient.
    confirmed_at   INTEGER,
    -- Spent, or replaced by a newer challenge for the same factor and purpose.
    used_at        INTEGER
);
CREATE INDEX challenges_factor ON challenges (factor_id, purpose);
CREATE INDEX challenges_user ON challenges (user_id, purpose);
CREATE INDEX challenges_secret ON challenges (secret_hash);

-- Sends per destination (keyed hash of the address or number): the last send, and the
-- count in the current hour-long window.
CREATE TABLE send_throttle (
    destination_hash BLOB PRIMARY KEY,
    last_sent_at     INTEGER NOT NULL,
    window_start     INTEGER NOT NULL,
    window_count     INTEGER NOT NULL
);

-- Outgoing email and SMS. The message (recipient, subject, bodies) is sealed under the
-- master key, since it holds codes and links. A worker leases due messages, so several
-- instances never send one twice at once, and retries failures with backoff.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    user_id         TEXT,
    payload_sealed  BLOB NOT NULL,
    payload_nonce   BLOB NOT NULL,
    payload_key_id  TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
