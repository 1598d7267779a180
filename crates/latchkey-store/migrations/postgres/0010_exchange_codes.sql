-- One-time codes the hosted pages hand to an app with the redirect after sign-in; the
-- app exchanges one (once, within a minute) at POST /v1/auth/exchange for tokens of a
-- new session with the signed-in session's level and methods. Only the keyed hash of
-- a code is kept. Times are Unix seconds (UTC).
CREATE TABLE exchange_codes (
    code_hash  BYTEA PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX exchange_codes_expiry ON exchange_codes (expires_at);
