//! The storage interface, split by concern. [`Store`] is all of them together; the
//! service holds an `Arc<dyn Store>`.

use async_trait::async_trait;
use latchkey_core::UnixTime;

use crate::*;

/// Everything the service stores.
pub trait Store:
    AccountStore
    + AccountTokenStore
    + FactorStore
    + LoginThrottleStore
    + OrganizationStore
    + DeliveryStore
    + AuditStore
    + WebhookStore
    + KeyStore
    + Send
    + Sync
    + 'static
{
}

impl<
    T: AccountStore
        + AccountTokenStore
        + FactorStore
        + LoginThrottleStore
        + OrganizationStore
        + DeliveryStore
        + AuditStore
        + WebhookStore
        + KeyStore
        + Send
        + Sync
        + 'static,
> Store for T
{
}

#[async_trait]
/// Accounts: users, sessions with their refresh tokens, API keys and signing keys.
pub trait AccountStore: Send + Sync {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// The pool's connections now, and the time one takes to acquire (for metrics).
    async fn pool_probe(&self) -> StoreResult<PoolProbe>;

    async fn create_user(&self, user: &NewUser) -> StoreResult<User>;
    /// Adds `users` and their `factors` (stored active, confirmed when created) in one
    /// transaction, many rows per statement: for bulk loads (the benchmark's million
    /// users). Any conflict (an address taken) fails the whole import.
    async fn import_users(&self, users: &[NewUser], factors: &[NewFactor]) -> StoreResult<()>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email_normalized: &str) -> StoreResult<Option<User>>;
    /// Users in id (creation) order, starting after `after`.
    async fn list_users(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<User>>;
    /// Deletes the user and, by cascade, everything that belongs to them.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
    /// Disables the user as of `disabled_at`, or enables them again (`None`); false when
    /// there is no such user.
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled_at: Option<UnixTime>,
        now: UnixTime,
    ) -> StoreResult<bool>;

    /// Creates a session together with its first refresh token.
    async fn create_session(&self, session: &NewSession, refresh_token_hash: &[u8]) -> StoreResult<()>;
    /// The session if it exists, is not revoked and has not expired at `now`.
    async fn active_session(&self, id: &str, now: UnixTime) -> StoreResult<Option<Session>>;
    /// Spends a refresh token and issues its successor. A token that was already
    /// spent revokes its whole session.
    async fn rotate_refresh_token(&self, rotation: &RefreshRotation<'_>) -> StoreResult<RefreshOutcome>;
    async fn revoke_session(&self, id: &str, now: UnixTime) -> StoreResult<bool>;
    /// Moves a live session's idle deadline to `now + idle_timeout_secs`, never past
    /// its absolute expiry: a hosted page's session stays open while it is used.
    async fn touch_session(&self, id: &str, now: UnixTime, idle_timeout_secs: i64) -> StoreResult<bool>;
    /// Keeps the keyed hash of a one-time exchange code for the session `session_id`,
    /// spendable until `expires_at`.
    async fn create_exchange_code(
        &self,
        code_hash: &[u8],
        session_id: &str,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<()>;
    /// Spends an exchange code: the session it was made for, if the code is unspent and
    /// unexpired at `now`. Of concurrent spenders exactly one gets it.
    async fn spend_exchange_code(&self, code_hash: &[u8], now: UnixTime) -> StoreResult<Option<String>>;
    /// The user's live sessions at `now`, newest first.
    async fn user_sessions(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<Session>>;
    /// Revokes the session `id` if it is the user's and live; false otherwise.
    async fn revoke_user_session(&self, user_id: &str, id: &str, now: UnixTime) -> StoreResult<bool>;
    /// Raises a live session to `aal` with the methods `amr`, as of `auth_time`, and
    /// clears its `mfa_pending` mark.
    async fn elevate_session(
        &self,
        id: &str,
        aal: &str,
        amr: &[String],
        auth_time: UnixTime,
    ) -> StoreResult<bool>;
    /// Revokes every live session of the user except `keep` (all of them with `None`);
    /// returns how many.
    async fn revoke_other_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<u64>;
    /// Deletes sessions that expired or were revoked before `before`.
    async fn purge_sessions(&self, before: UnixTime) -> StoreResult<u64>;

    async fn create_api_key(&self, key: &NewApiKey) -> StoreResult<()>;
    /// The key with this hash, unless it has been revoked.
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<ApiKey>>;
    /// The key with this id, unless it has been revoked.
    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    async fn revoke_api_key(&self, id: &str, now: UnixTime) -> StoreResult<bool>;

    /// Stores `key` as the active signing key unless another key is already active;
    /// returns whether it was stored.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
    /// Makes `key` the active signing key (signing from its `signs_from`); the key it
    /// replaces stays in the key set until `retire_at`. One transaction.
    async fn rotate_signing_key(&self, key: &SigningKeyRecord, retire_at: UnixTime) -> StoreResult<()>;
    /// All signing keys not retired at `now`, the active one first.
    async fn signing_keys(&self, now: UnixTime) -> StoreResult<Vec<SigningKeyRecord>>;
}

/// Tokens and codes that change an account: password resets, recovery links and
/// address changes. Spending one and making its change is one transaction, so of
/// concurrent spenders exactly one changes anything.
#[async_trait]
pub trait AccountTokenStore: Send + Sync {
    /// Stores a token; the user's open tokens of the same purpose are spent (a new
    /// link or code replaces the old one).
    async fn create_account_token(&self, token: &NewAccountToken) -> StoreResult<()>;
    /// The open, unexpired token of `purpose` with this hash (a look that changes nothing).
    async fn account_token(
        &self,
        secret_hash: &[u8],
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> StoreResult<Option<AccountToken>>;
    /// Counts an attempt at the user's newest open token of `purpose` (a code), unless
    /// it has reached `max_attempts`, and returns it for checking.
    async fn attempt_account_code(
        &self,
        user_id: &str,
        purpose: AccountTokenPurpose,
        max_attempts: i64,
        now: UnixTime,
    ) -> StoreResult<Option<AccountToken>>;
    /// Spends an open, unexpired token that is usable at `now`; true for exactly one caller.
    async fn spend_account_token(&self, id: &str, now: UnixTime) -> StoreResult<bool>;
    /// Spends every open token of the user with `purpose`; returns how many.
    async fn cancel_account_tokens(
        &self,
        user_id: &str,
        purpose: AccountTokenPurpose,
        now: UnixTime,
    ) -> StoreResult<u64>;
    /// Spends the reset token `token_id` and in the same transaction gives its user the
    /// password `password_hash`, revokes every session and forgets every remembered
    /// device; false (nothing changed) when the token cannot be spent.
    async fn reset_password(&self, token_id: &str, password_hash: &str, now: UnixTime) -> StoreResult<bool>;
    /// Gives the user the password `password_hash` and revokes every session but
    /// `keep`; false when there is no such user.
    async fn change_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Spends the address-change token `token_id` and in the same transaction gives its
    /// user `address`; the user's email (or SMS) factors that sent to the old address
    /// send to the new one. `None` (nothing changed) when the token cannot be spent;
    /// `EmailTaken` when another account has the address.
    async fn change_address(
        &self,
        token_id: &str,
        address: NewAddress<'_>,
        now: UnixTime,
    ) -> StoreResult<Option<AddressChanged>>;
    /// Deletes tokens that expired or were spent before `before`.
    async fn purge_account_tokens(&self, before: UnixTime) -> StoreResult<u64>;
}

/// Second factors, recovery codes, the brute-force guard, MFA tokens, challenges and
/// remembered devices. Activating a factor, removing one and removing all of them also
/// forget the user's remembered devices: a device is remembered under one set of
/// factors.
#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Stores a pending factor, replacing the user's pending factor of the same type.
    async fn create_pending_factor(&self, factor: &NewFactor) -> StoreResult<Factor>;
    /// The user's factor with this id: active, or pending and not expired at `now`.
    async fn factor(&self, user_id: &str, factor_id: &str, now: UnixTime) -> StoreResult<Option<Factor>>;
    /// The user's active TOTP factors, oldest first: all a code check needs.
    async fn active_totp_factors(&self, user_id: &str) -> StoreResult<Vec<Factor>>;
    /// The user's active factors and unexpired pending ones, oldest first.
    async fn factors(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<Factor>>;
    /// Confirms a pending, unexpired factor. With `step`, the TOTP step of the
    /// confirming code is recorded, so that code cannot be used again.
    async fn activate_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        step: Option<i64>,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Marks a pending, unexpired factor's code verified (recording the TOTP step of
    /// that code, like [`activate_factor`](Self::activate_factor)) without activating it.
    async fn verify_pending_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        step: Option<i64>,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Activates a pending, unexpired factor whose code was verified.
    async fn activate_verified_factor(
        &self,
        user_id: &str,
        factor_id: &str,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Records an accepted TOTP step if it is later than the last one: the single
    /// conditional update that makes a code usable once, whoever else tries it.
    async fn record_totp_step(&self, factor_id: &str, step: i64, now: UnixTime) -> StoreResult<bool>;
    async fn rename_factor(&self, user_id: &str, factor_id: &str, friendly_name: &str) -> StoreResult<bool>;
    /// Removes a factor; removing the last active one removes the recovery codes too.
    async fn delete_factor(&self, user_id: &str, factor_id: &str) -> StoreResult<FactorRemoval>;
    /// Removes every factor and recovery code and clears the brute-force guard
    /// (administrator reset); returns how many factors were removed.
    async fn delete_all_factors(&self, user_id: &str) -> StoreResult<u64>;

    /// Replaces the user's recovery codes with a new set of hashes.
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        code_hashes: &[Vec<u8>],
        now: UnixTime,
    ) -> StoreResult<()>;
    /// Spends a recovery code; true for exactly one caller.
    async fn consume_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<bool>;
    async fn recovery_codes_remaining(&self, user_id: &str) -> StoreResult<i64>;

    /// Counts an attempt at a second factor before it is checked, atomically with the
    /// decision whether it may be made at all.
    async fn claim_second_factor_attempt(
        &self,
        user_id: &str,
        now: UnixTime,
        policy: &latchkey_core::lockout::LockoutPolicy,
    ) -> StoreResult<AttemptClaim>;
    /// Decides a second-factor attempt whose code the caller has checked, in one
    /// transaction (on SQLite, one shared with the attempts waiting beside it): the
    /// claim, the step, the reset and the audit rows. Returns the rows written.
    async fn decide_second_factor_attempt(
        &self,
        attempt: SecondFactorAttempt,
    ) -> StoreResult<(AttemptOutcome, Vec<AuditEvent>)>;
    /// A successful second factor: the failure count starts again.
    async fn reset_second_factor_failures(&self, user_id: &str) -> StoreResult<()>;
    async fn second_factor_guard(&self, user_id: &str) -> StoreResult<Option<GuardState>>;

    async fn create_mfa_token(&self, token: &NewMfaToken) -> StoreResult<()>;
    /// The unused, unexpired MFA token with this hash.
    async fn mfa_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<Option<MfaToken>>;
    /// Spends an MFA token; true for exactly one caller.
    async fn consume_mfa_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<bool>;

    /// Stores a challenge. Older challenges still open for the same factor (or, for
    /// sign-in links, the same user) and purpose are spent: a resend invalidates them.
    async fn create_challenge(&self, challenge: &NewChallenge) -> StoreResult<()>;
    /// Counts an attempt at the live code challenge `query` names, unless it has
    /// reached `max_attempts`, and returns it (with its code hash) for checking.
    async fn attempt_code_challenge(
        &self,
        query: &CodeChallengeQuery<'_>,
        max_attempts: i64,
        now: UnixTime,
    ) -> StoreResult<Option<Challenge>>;
    /// Spends a challenge; true for exactly one caller. With `confirmed`, only a
    /// challenge whose link was confirmed can be spent.
    async fn spend_challenge(&self, id: &str, confirmed: bool, now: UnixTime) -> StoreResult<bool>;
    /// Marks the open link challenge with this token hash confirmed and returns it;
    /// `Some` for exactly one caller.
    async fn confirm_link_challenge(
        &self,
        secret_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<Option<Challenge>>;
    /// The open link challenge with this token hash (a look that changes nothing).
    async fn link_challenge(&self, secret_hash: &[u8], now: UnixTime) -> StoreResult<Option<Challenge>>;
    /// The user's challenge with this id, whatever its state.
    async fn challenge(&self, user_id: &str, id: &str) -> StoreResult<Option<Challenge>>;

    /// Stores a WebAuthn ceremony in progress.
    async fn create_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Spends the live ceremony whose challenge has this hash and returns it; `None`
    /// when there is none, it expired, or it was spent (by one conditional statement,
    /// so of concurrent finishes only one gets it).
    async fn take_ceremony(&self, challenge_hash: &[u8], now: UnixTime) -> StoreResult<Option<Ceremony>>;
    /// Gives a pending WebAuthn factor its credential (id, the authenticator's AAGUID
    /// when it reported one, and the sealed credential); `CredentialTaken` when any
    /// factor already has that credential id.
    async fn set_factor_credential(
        &self,
        user_id: &str,
        factor_id: &str,
        credential_id: &[u8],
        aaguid: Option<&str>,
        credential: &StoredSecret,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Replaces an active WebAuthn factor's sealed credential after a use (its
    /// signature counter moved) and records the use.
    async fn update_factor_credential(
        &self,
        factor_id: &str,
        credential: &StoredSecret,
        now: UnixTime,
    ) -> StoreResult<()>;
    /// The factor, of any user, whose credential has this id.
    async fn factor_by_credential(&self, credential_id: &[u8], now: UnixTime) -> StoreResult<Option<Factor>>;

    /// Remembers a device whose token has hash `token_hash`.
    async fn remember_device(&self, device: &RememberedDevice, token_hash: &[u8]) -> StoreResult<()>;
    /// The user's unexpired remembered device with this token hash; its last use is
    /// recorded.
    async fn use_remembered_device(
        &self,
        user_id: &str,
        token_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<Option<RememberedDevice>>;
    /// The user's unexpired remembered device with this token hash, leaving it as it is.
    async fn remembered_device(
        &self,
        user_id: &str,
        token_hash: &[u8],
        now: UnixTime,
    ) -> StoreResult<Option<RememberedDevice>>;
    /// The user's unexpired remembered devices, oldest first.
    async fn remembered_devices(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<RememberedDevice>>;
    /// Forgets one of the user's remembered devices (`Some(id)`) or all of them;
    /// returns how many were forgotten.
    async fn forget_devices(&self, user_id: &str, device_id: Option<&str>) -> StoreResult<u64>;

    /// Deletes expired pending factors, spent or expired MFA tokens and challenges,
    /// and expired remembered devices.
    async fn purge_expired_factors(&self, now: UnixTime) -> StoreResult<u64>;
}

/// First-factor throttling (DESIGN rule 16): failure counts per account, trusted
/// device and client IP.
#[async_trait]
pub trait LoginThrottleStore: Send + Sync {
    /// Counts a first-factor attempt against every key, in one transaction, unless one
    /// of them is delayed at `now` (then nothing is counted).
    async fn claim_login_attempt(&self, keys: &[ThrottleKey<'_>], now: UnixTime) -> StoreResult<LoginClaim>;
    /// Settles a claimed attempt that succeeded: `reset` starts its count again, and
    /// each of `forgive` takes this attempt back (and any delay it started).
    async fn login_succeeded(&self, reset: &[u8], forgive: &[&[u8]]) -> StoreResult<()>;
    /// Deletes first-factor counts whose last attempt was before `before` and that
    /// delay nothing any more.
    async fn purge_login_throttle(&self, before: UnixTime, now: UnixTime) -> StoreResult<u64>;
}

/// Organisations (the Flashback surface's): a user's membership and role, whether an
/// organisation enforces MFA, and the factor type a user prefers.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// The user's organisation, their role in it and whether it enforces MFA.
    async fn membership(&self, user_id: &str) -> StoreResult<Option<Membership>>;
    /// Puts the user in `org_id` (created if new) with `role`, or takes them out of
    /// their organisation (`None`).
    async fn set_membership(
        &self,
        user_id: &str,
        member: Option<(&str, OrgRole)>,
        now: UnixTime,
    ) -> StoreResult<()>;
    /// Turns the organisation's MFA enforcement on or off; `false` when it does not exist.
    async fn set_mfa_enforced(&self, org_id: &str, enforced: bool, now: UnixTime) -> StoreResult<bool>;
    /// The factor type the user prefers to be asked for first, as stored.
    async fn preferred_factor_type(&self, user_id: &str) -> StoreResult<Option<String>>;
    async fn set_preferred_factor_type(&self, user_id: &str, factor_type: Option<&str>) -> StoreResult<()>;
}

/// Outgoing messages: the send throttle and the delivery queue.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Counts a send on every key (a destination, a user, a client IP, a channel) if
    /// all their limits allow one now; otherwise counts nothing.
    async fn claim_send(&self, keys: &[SendKey<'_>], now: UnixTime) -> StoreResult<SendClaim>;

    async fn enqueue_message(&self, message: &NewMessage, now: UnixTime) -> StoreResult<()>;
    /// Leases the message that has been due longest, for `lease_secs`, counting the
    /// attempt. A message whose lease ran out (its worker died) is due again.
    async fn lease_message(&self, now: UnixTime, lease_secs: i64) -> StoreResult<Option<QueuedMessage>>;
    async fn message_sent(&self, id: &str, now: UnixTime) -> StoreResult<()>;
    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    async fn message_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<UnixTime>,
        now: UnixTime,
    ) -> StoreResult<()>;
    async fn outbox_counts(&self) -> StoreResult<OutboxCounts>;
    /// Deletes sent and abandoned messages finished before `messages_before`, and
    /// throttle records without a send since `throttle_before`.
    async fn purge_delivery(&self, messages_before: UnixTime, throttle_before: UnixTime) -> StoreResult<u64>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Events matching the filter, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEvent>>;
}

/// Webhook endpoints and their delivery attempts.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(&self, endpoint: &WebhookEndpoint) -> StoreResult<()>;
    async fn webhooks(&self) -> StoreResult<Vec<WebhookEndpoint>>;
    async fn webhook(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>>;
    /// Deletes the endpoint and its attempts; false when there was none.
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Replaces the endpoint's sealed secrets; false when there is no such endpoint.
    async fn set_webhook_secrets(&self, id: &str, secrets: &StoredSecret) -> StoreResult<bool>;
    async fn record_webhook_attempt(&self, attempt: &WebhookAttempt) -> StoreResult<()>;
    /// The endpoint's latest attempts, newest first.
    async fn webhook_attempts(&self, endpoint_id: &str, limit: u32) -> StoreResult<Vec<WebhookAttempt>>;
    /// Deletes attempts made before `before`.
    async fn purge_webhook_attempts(&self, before: UnixTime) -> StoreResult<u64>;
}

/// The service's own sealed secrets, and re-sealing every sealed value under a new
/// master key.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn server_secret(&self, name: &str) -> StoreResult<Option<StoredSecret>>;
    /// Stores `secret` under `name` unless one is there; false when one was.
    async fn insert_server_secret(
        &self,
        name: &str,
        secret: &StoredSecret,
        now: UnixTime,
    ) -> StoreResult<bool>;
    /// Up to `limit` values of `table` not sealed under `key_id`.
    async fn sealed_values(
        &self,
        table: SealedTable,
        key_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>>;
    /// Replaces `value`'s sealed secret with `resealed`, unless the row changed since
    /// it was read (then false: a later pass finds it again).
    async fn reseal(&self, value: &SealedValue, resealed: &StoredSecret) -> StoreResult<bool>;
}
