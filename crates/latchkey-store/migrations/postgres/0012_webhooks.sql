-- Webhook endpoints an administrator registered, and every attempt to deliver to them.
-- The events themselves travel through the outbox (channel `webhook`), one message per
-- event and endpoint. Times are Unix seconds (UTC).

-- An endpoint: where events go and which event types it wants (comma-separated). Its
-- signing secrets (the current one, and during a rotation the previous ones with the
-- time they stop signing) are sealed under the master key as one JSON list.
CREATE TABLE webhook_endpoints (
    id             TEXT PRIMARY KEY,
    url            TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    event_types    TEXT NOT NULL,
    secrets_sealed BYTEA NOT NULL,
    secrets_nonce  BYTEA NOT NULL,
    secrets_key_id TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- One delivery attempt: the HTTP status the endpoint answered (none when it could not
-- be reached) and, on failure, why, in words safe to show.
CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL,
    status       BIGINT,
    error        TEXT
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at);
