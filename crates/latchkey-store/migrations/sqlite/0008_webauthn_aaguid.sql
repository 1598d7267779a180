-- The AAGUID of a WebAuthn factor's authenticator model, as its attestation reports
-- it (lowercase UUID text), when the authenticator names one: listings show the model's
-- name where it is known (a passkey provider, a security key). NULL for other factors
-- and for authenticators that report none.
ALTER TABLE factors ADD COLUMN aaguid TEXT;
