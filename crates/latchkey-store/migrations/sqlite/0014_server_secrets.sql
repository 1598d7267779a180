-- Secrets of the service itself, sealed under the master key. `hashing`: the key of
-- every keyed hash (refresh tokens, API keys, recovery codes, sent codes), stored here
-- by the first master-key rotation so that the hashes made before it still match after.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    nonce      BLOB NOT NULL,
    key_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
