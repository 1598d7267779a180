-- First-factor throttling (DESIGN rule 16). Times are Unix seconds (UTC).

-- Failed first-factor attempts per key: the keyed hash of an account's address, of a
-- remembered device the account trusts, or of a client IP. An attempt is counted
-- before the password is checked and taken back when it succeeds, so concurrent
-- guesses see each other; past the free failures, attempts wait until blocked_until.
CREATE TABLE login_throttle (
    key_hash        BYTEA PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_attempt_at BIGINT NOT NULL,
    blocked_until   BIGINT NOT NULL
);
