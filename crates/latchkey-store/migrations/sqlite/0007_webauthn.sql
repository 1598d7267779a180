-- Passkeys and security keys (WebAuthn, DESIGN rule 13). Times are Unix seconds (UTC).

-- A WebAuthn factor's credential id, set when its registration finishes. One
-- authenticator credential belongs to one factor of one account: a second
-- registration of it, by anyone, is refused. The credential itself (public key,
-- signature counter) is sealed in secret_sealed like a TOTP secret.
ALTER TABLE factors ADD COLUMN credential_id BLOB;
CREATE UNIQUE INDEX factors_credential_id ON factors (credential_id);

-- The server's half of a registration or authentication in progress, found by the
-- keyed hash of the challenge the browser signs, sealed, and spent by one conditional
-- statement so two instances finishing the same ceremony cannot both succeed.
-- purpose: register (user_id and factor_id), login (user_id, bound to the login's
-- mfa_token_hash) or sign_in (no user: a passkey alone, usernameless).
CREATE TABLE webauthn_ceremonies (
    challenge_hash BLOB PRIMARY KEY,
    purpose        TEXT NOT NULL,
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    factor_id      TEXT REFERENCES factors (id) ON DELETE CASCADE,
    mfa_token_hash BLOB,
    state_sealed   BLOB NOT NULL,
    state_nonce    BLOB NOT NULL,
    state_key_id   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);
