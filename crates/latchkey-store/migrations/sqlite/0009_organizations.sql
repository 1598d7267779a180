-- Organisations, as the Flashback surface knows them: a user belongs to at most one,
-- with a role (owner, administrator or member), and an organisation may enforce MFA
-- for every member. Set through the native admin API and the CLI. Times are Unix
-- seconds (UTC).
CREATE TABLE organizations (
    id           TEXT PRIMARY KEY,
    mfa_enforced INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE organization_members (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX organization_members_org ON organization_members (org_id);

-- The second-factor type a user prefers to be asked for first (Flashback's primary
-- method): totp, email, sms, magic_link or webauthn; NULL for the oldest active one.
ALTER TABLE users ADD COLUMN preferred_factor_type TEXT;
