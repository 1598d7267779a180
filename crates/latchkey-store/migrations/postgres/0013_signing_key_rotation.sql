-- Signing-key rotation: a new key is published (in the key set, so every instance can
-- verify its tokens) before it signs, from `signs_from`; the key it replaces keeps
-- verifying until `retired_at`, when every token it signed has expired.
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT;
UPDATE signing_keys SET signs_from = created_at;
