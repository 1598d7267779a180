-- A session that passed its first factor for a user with a second factor, on a surface
-- whose clients expect a session before MFA (Prisme.ai). It opens nothing but that
-- surface's MFA step until the second factor clears the mark.
ALTER TABLE sessions ADD COLUMN mfa_pending BIGINT NOT NULL DEFAULT 0;
