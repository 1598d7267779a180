//! The records the store reads and writes.

mod delivery;
mod lifecycle;

pub use delivery::*;
pub use lifecycle::*;

use latchkey_core::UnixTime;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_core::login::ThrottlePolicy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub phone: Option<String>,
    /// PHC string of the Argon2id hash; `None` for accounts without a password.
    pub password_hash: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub disabled_at: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub email_normalized: String,
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub aal: String,
    /// RFC 8176 method names, in the order they were used.
    pub amr: Vec<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub idle_expires_at: UnixTime,
    pub expires_at: UnixTime,
    /// The user has a second factor this session has not passed yet.
    pub mfa_pending: bool,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub aal: String,
    pub amr: Vec<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub idle_expires_at: UnixTime,
    pub expires_at: UnixTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub mfa_pending: bool,
}

/// One use of a refresh token.
#[derive(Debug, Clone)]
pub struct RefreshRotation<'a> {
    pub presented_hash: &'a [u8],
    pub successor_hash: &'a [u8],
    pub now: UnixTime,
    /// The idle timeout in seconds; the session's idle deadline restarts from `now`.
    pub idle_timeout_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was spent and its successor stored; the session is live.
    Rotated(Session),
    /// The token had already been spent: its session is now revoked.
    Reused { session_id: String },
    /// No such token, or its session is revoked or expired.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub key_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: UnixTime,
}

/// A token-signing key pair with its private half sealed under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    pub sealed_private: Vec<u8>,
    pub nonce: Vec<u8>,
    pub master_key_id: String,
    /// The newest key: the one that signs from `signs_from` on.
    pub active: bool,
    pub created_at: UnixTime,
    /// When it starts signing (a rotated-in key is published a little before).
    pub signs_from: UnixTime,
    /// When it leaves the key set (a rotated-out key, once its tokens have expired).
    pub retired_at: Option<UnixTime>,
}

/// A secret sealed under the master key (see `latchkey_core::crypto::Sealed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub sealed: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_id: String,
}

/// How a TOTP factor makes its codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpSettings {
    pub algorithm: String,
    pub digits: i64,
    pub period: i64,
}

/// A second factor. `status` is `pending` until confirmed, then `active`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub factor_type: FactorType,
    pub status: FactorStatus,
    pub friendly_name: Option<String>,
    pub secret: Option<StoredSecret>,
    pub totp: Option<TotpSettings>,
    /// The last accepted TOTP time step.
    pub last_step: Option<i64>,
    /// Where codes or links go: an email address or an E.164 phone number.
    pub destination: Option<String>,
    pub created_at: UnixTime,
    pub confirmed_at: Option<UnixTime>,
    pub last_used_at: Option<UnixTime>,
    /// When a pending factor lapses; `None` once active.
    pub expires_at: Option<UnixTime>,
    /// When a pending factor's code was verified, for surfaces that enable it in a
    /// separate step.
    pub verified_at: Option<UnixTime>,
    /// A WebAuthn factor's credential id, once its registration finished.
    pub credential_id: Option<Vec<u8>>,
    /// The AAGUID (authenticator model) a WebAuthn factor's authenticator reported.
    pub aaguid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewFactor {
    pub id: String,
    pub user_id: String,
    pub factor_type: FactorType,
    pub friendly_name: Option<String>,
    pub secret: Option<StoredSecret>,
    pub totp: Option<TotpSettings>,
    pub destination: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// The result of removing one factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactorRemoval {
    pub removed: bool,
    /// Active factors the user still has; at zero their recovery codes are gone too.
    pub active_remaining: i64,
}

/// The answer to "may this user try a second factor now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClaim {
    /// Go ahead; the attempt is counted as the `failures`-th consecutive failure until
    /// a success resets the count.
    Granted { failures: i64 },
    /// Too many recent failures: wait until `until`.
    Blocked { until: UnixTime },
    /// Too many failures in all: only an administrator can unlock.
    Locked,
}

/// A second-factor attempt decided in one transaction: the guard's claim, spending
/// what the code proved, the guard's reset on success and the audit rows all commit
/// together, or none does.
pub struct SecondFactorAttempt {
    pub user_id: String,
    pub now: UnixTime,
    pub policy: latchkey_core::lockout::LockoutPolicy,
    /// What the caller's check found the code to prove, spent only if the guard grants
    /// the attempt; `None` when the code proved nothing.
    pub spend: Option<TotpSpend>,
    /// The audit rows for the outcome, written in the same transaction.
    pub audit: AuditFor,
}

/// Makes the audit rows of an attempt once its outcome is known (again, with fresh ids,
/// if a shared transaction is rolled back and the attempt decided alone).
pub type AuditFor = Box<dyn Fn(&AttemptOutcome) -> Vec<AuditEvent> + Send + Sync>;

/// A TOTP step to record for a factor: the conditional write that lets a code be used
/// once, whoever else tries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpSpend {
    pub factor_id: String,
    pub step: i64,
}

/// How a [`SecondFactorAttempt`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Too many recent failures: nothing was checked or counted.
    Blocked { until: UnixTime },
    /// Too many failures in all: nothing was checked or counted.
    Locked,
    /// The code's step is recorded and the failure count is back at zero.
    Accepted,
    /// Counted as the `failures`-th consecutive failure. `replayed` when the code was
    /// right but its step had been recorded first by another attempt.
    Refused { failures: i64, replayed: bool },
}

/// One count a first-factor attempt is judged by: the keyed hash it is kept under
/// and the policy for that kind of key.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleKey<'a> {
    pub hash: &'a [u8],
    pub policy: ThrottlePolicy,
}

/// The answer to "may this client try a first factor now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginClaim {
    /// Counted as a failure on every key until the attempt succeeds.
    Granted,
    /// One of the keys is delayed until `until`; nothing was counted.
    Throttled { until: UnixTime },
}

/// The brute-force guard's state for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardState {
    pub failures: i64,
    pub blocked_until: UnixTime,
}

/// A short-lived token proving the first factor, exchanged for a session after the
/// second.
#[derive(Debug, Clone)]
pub struct NewMfaToken {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub amr: Vec<String>,
    pub auth_time: UnixTime,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A device remembered after a second factor: its token skips the second factor at
/// password login until `expires_at` or until the user's factors change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedDevice {
    pub id: String,
    pub user_id: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaToken {
    pub user_id: String,
    pub amr: Vec<String>,
    pub auth_time: UnixTime,
    pub expires_at: UnixTime,
}

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Confirms a new factor's destination.
    Enroll,
    /// The second factor of one login (bound to its MFA token).
    Login,
    /// A magic link as the first factor.
    SignIn,
}

impl ChallengePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Login => "login",
            Self::SignIn => "sign_in",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Enroll, Self::Login, Self::SignIn].into_iter().find(|p| p.as_str() == text)
    }
}

/// A code to type in, or a link to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Code,
    Link,
}

impl ChallengeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Link => "link",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewChallenge {
    pub id: String,
    pub user_id: String,
    pub factor_id: Option<String>,
    pub purpose: ChallengePurpose,
    pub kind: ChallengeKind,
    pub secret_hash: Vec<u8>,
    pub mfa_token_hash: Option<Vec<u8>>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A challenge as stored; `secret_hash` is the keyed hash of its code or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub user_id: String,
    pub factor_id: Option<String>,
    pub purpose: ChallengePurpose,
    pub kind: ChallengeKind,
    pub secret_hash: Vec<u8>,
    pub mfa_token_hash: Option<Vec<u8>>,
    pub attempts: i64,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub confirmed_at: Option<UnixTime>,
    pub used_at: Option<UnixTime>,
}

/// Which live code challenge an attempt is at.
#[derive(Debug, Clone, Copy)]
pub struct CodeChallengeQuery<'a> {
    pub user_id: &'a str,
    pub factor_id: &'a str,
    pub purpose: ChallengePurpose,
    /// For login challenges: the MFA token of the login that asked for the code.
    pub mfa_token_hash: Option<&'a [u8]>,
}

/// The connection pool at one moment, and how long taking a connection from it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolProbe {
    /// Connections open, in use or idle.
    pub size: u32,
    pub idle: u32,
    pub max: u32,
    /// How long acquiring one connection took just now.
    pub acquire: std::time::Duration,
}

/// Something that happened, for the audit log. Never holds codes or secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub occurred_at: UnixTime,
    pub user_id: Option<String>,
    pub event_type: String,
    /// `success` or `failure` (or another word the event type defines).
    pub outcome: String,
    pub factor_id: Option<String>,
    pub factor_type: Option<String>,
    /// Who acted when it was not the user: `api_key:<id>`, `cli`, `system`.
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Why an administrator acted, in their words.
    pub reason: Option<String>,
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<UnixTime>,
    pub until: Option<UnixTime>,
    pub limit: u32,
}

/// What a WebAuthn ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Registering the credential of a pending factor.
    Register,
    /// The second factor of a login (bound to its MFA token).
    Login,
    /// A passkey alone, as both factors, for a user not yet known.
    SignIn,
}

impl CeremonyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::SignIn => "sign_in",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Register, Self::Login, Self::SignIn].into_iter().find(|p| p.as_str() == text)
    }
}

/// The server's half of a WebAuthn ceremony, found by the keyed hash of its challenge.
#[derive(Debug, Clone)]
pub struct Ceremony {
    pub challenge_hash: Vec<u8>,
    pub purpose: CeremonyPurpose,
    pub user_id: Option<String>,
    pub factor_id: Option<String>,
    pub mfa_token_hash: Option<Vec<u8>>,
    /// The library's ceremony state, sealed.
    pub state: StoredSecret,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgRole {
    Owner,
    Administrator,
    Member,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Administrator => "administrator",
            Self::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Self::Owner),
            "administrator" => Some(Self::Administrator),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Owners and administrators manage the organisation's members.
    pub fn manages(self) -> bool {
        matches!(self, Self::Owner | Self::Administrator)
    }
}

/// A user's place in an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org_id: String,
    pub role: OrgRole,
    /// The organisation requires a second factor of every member.
    pub mfa_enforced: bool,
}

/// The tables that hold values sealed under the master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedTable {
    /// TOTP secrets and WebAuthn credentials.
    Factors,
    /// Queued email, SMS and webhook messages.
    Outbox,
    /// WebAuthn ceremonies in progress.
    Ceremonies,
    /// Token-signing keys.
    SigningKeys,
    /// Webhook endpoints' secrets.
    Webhooks,
    /// The service's own secrets (the hashing key).
    ServerSecrets,
}

impl SealedTable {
    pub const ALL: [Self; 6] = [
        Self::ServerSecrets,
        Self::SigningKeys,
        Self::Factors,
        Self::Webhooks,
        Self::Outbox,
        Self::Ceremonies,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Factors => "factors",
            Self::Outbox => "outbox",
            Self::Ceremonies => "webauthn_ceremonies",
            Self::SigningKeys => "signing_keys",
            Self::Webhooks => "webhook_endpoints",
            Self::ServerSecrets => "server_secrets",
        }
    }
}

/// One sealed value, with what its context (associated data) is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub table: SealedTable,
    /// The row's key (text keys as their bytes).
    pub id: Vec<u8>,
    /// The owning user, where the context names one.
    pub user_id: Option<String>,
    /// The factor type or the ceremony purpose, where the context depends on it.
    pub kind: Option<String>,
    pub secret: StoredSecret,
}
