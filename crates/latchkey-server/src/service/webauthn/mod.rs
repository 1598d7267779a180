//! Passkeys and security keys (WebAuthn, DESIGN rule 13), on `webauthn-rs`.
//!
//! A ceremony (registration or authentication) has two halves: the options the browser
//! passes to `navigator.credentials.create` or `.get`, and the library's state, which
//! stays on the server: sealed under the master key (rule 9) with its purpose and user
//! as associated data, stored under the keyed hash of the challenge, and spent by one
//! conditional statement when the browser's answer comes back, so two instances
//! finishing the same ceremony cannot both succeed. The answer names its ceremony
//! itself: its `clientDataJSON` carries the challenge. A ceremony lives 5 minutes.
//!
//! A registered credential (its public key and signature counter) is sealed in its
//! factor like a TOTP secret; its id is stored in the clear, unique across every
//! account.

mod authenticators;
mod credential;
mod relying_party;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::crypto::HashPurpose;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_store::{Ceremony, CeremonyPurpose, Factor, StoreError, User};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PublicKeyCredential,
    RegisterPublicKeyCredential,
};

pub use self::authenticators::model_name;
pub use self::credential::{Refusal, parse_credential};
use self::credential::{aaguid_of, challenge_of};
pub use self::relying_party::RelyingParty;
use self::relying_party::{Authentication, Registration};
use crate::http::error::{ApiError, ErrorCode};
use crate::keys;
use crate::state::AppState;

/// How long a ceremony may take, in seconds.
pub const CEREMONY_TTL_SECS: i64 = 300;

/// A ceremony was found and spent: the library state and whose it was.
struct Spent<T> {
    ceremony: Ceremony,
    state: T,
}

pub(crate) fn ceremony_context(purpose: CeremonyPurpose, user_id: Option<&str>) -> Vec<u8> {
    format!("webauthn-ceremony:{}:{}", purpose.as_str(), user_id.unwrap_or("-")).into_bytes()
}

/// The associated data binding a sealed credential to its owner and factor.
pub(crate) fn credential_context(user_id: &str, factor_id: &str) -> Vec<u8> {
    format!("webauthn:{user_id}:{factor_id}").into_bytes()
}

fn challenge_hash(state: &AppState, challenge: &[u8]) -> Vec<u8> {
    state.keys.hashing.hash(HashPurpose::WebauthnChallenge, challenge).to_vec()
}

/// The WebAuthn user handle of a user: their id, which is a UUID.
fn user_handle(user: &User) -> Result<Uuid, ApiError> {
    Uuid::parse_str(&user.id).map_err(ApiError::internal)
}

/// Stores the server's half of a ceremony whose challenge is `challenge`.
async fn remember<T: Serialize>(
    state: &AppState,
    challenge: &[u8],
    purpose: CeremonyPurpose,
    user_id: Option<&str>,
    factor_id: Option<&str>,
    mfa_token_hash: Option<&[u8]>,
    library_state: &T,
) -> Result<(), ApiError> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(library_state).map_err(ApiError::internal)?);
    let sealed = keys::seal_secret(&state.keys, &json, &ceremony_context(purpose, user_id))
        .map_err(ApiError::internal)?;
    let now = state.now();
    state
        .store
        .create_ceremony(&Ceremony {
            challenge_hash: challenge_hash(state, challenge),
            purpose,
            user_id: user_id.map(str::to_owned),
            factor_id: factor_id.map(str::to_owned),
            mfa_token_hash: mfa_token_hash.map(<[u8]>::to_vec),
            state: sealed,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECS,
        })
        .await?;
    Ok(())
}

/// Spends the ceremony `client_data_json` answers, if it is live and for `purpose`.
async fn spend<T: DeserializeOwned>(
    state: &AppState,
    client_data_json: &[u8],
    purpose: CeremonyPurpose,
) -> Result<Result<Spent<T>, Refusal>, ApiError> {
    let Some(challenge) = challenge_of(client_data_json) else { return Ok(Err(Refusal::Malformed)) };
    let Some(ceremony) = state.store.take_ceremony(&challenge_hash(state, &challenge), state.now()).await?
    else {
        return Ok(Err(Refusal::UnknownChallenge));
    };
    if ceremony.purpose != purpose {
        return Ok(Err(Refusal::WrongCeremony));
    }
    let context = ceremony_context(purpose, ceremony.user_id.as_deref());
    let json = keys::open_secret(&state.keys, &ceremony.state, &context).map_err(ApiError::internal)?;
    // A ceremony an older version started may be in a shape this one no longer reads:
    // the browser starts again, as after an expiry.
    let Ok(library_state) = serde_json::from_slice(&json) else {
        tracing::warn!(purpose = purpose.as_str(), "a WebAuthn ceremony in an unreadable shape was dropped");
        return Ok(Err(Refusal::UnknownChallenge));
    };
    Ok(Ok(Spent { ceremony, state: library_state }))
}

/// The user's WebAuthn credentials, opened.
fn open_passkey(state: &AppState, factor: &Factor) -> Result<Passkey, ApiError> {
    let stored = factor
        .secret
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a WebAuthn factor without its credential")))?;
    let json = keys::open_secret(&state.keys, stored, &credential_context(&factor.user_id, &factor.id))
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&json).map_err(ApiError::internal)
}

fn seal_passkey(
    state: &AppState,
    factor: &Factor,
    passkey: &Passkey,
) -> Result<latchkey_store::StoredSecret, ApiError> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(passkey).map_err(ApiError::internal)?);
    keys::seal_secret(&state.keys, &json, &credential_context(&factor.user_id, &factor.id))
        .map_err(ApiError::internal)
}

/// Starts registering a credential for the pending WebAuthn factor `factor` of `user`;
/// returns the `PublicKeyCredentialCreationOptions` for `navigator.credentials.create`.
/// The user's other credentials are excluded, and a resident key (a passkey that can
/// sign in without a username) is asked for where the authenticator can hold one.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user.id, factor_id = %factor.id))]
pub async fn start_registration(state: &AppState, user: &User, factor: &Factor) -> Result<Value, ApiError> {
    let existing = state
        .store
        .factors(&user.id, state.now())
        .await?
        .into_iter()
        .filter_map(|f| f.credential_id)
        .collect();
    let (options, registration) = state
        .webauthn
        .start_registration(user_handle(user)?, &user.email, existing)
        .map_err(ApiError::internal)?;
    let challenge = options.public_key.challenge.to_vec();
    remember(
        state,
        &challenge,
        CeremonyPurpose::Register,
        Some(&user.id),
        Some(&factor.id),
        None,
        &registration,
    )
    .await?;
    let mut options = serde_json::to_value(&options.public_key).map_err(ApiError::internal)?;
    // A discoverable credential where the authenticator can keep one, so the passkey
    // can also sign in without a username; the server's checks do not depend on it.
    if let Some(selection) = options.get_mut("authenticatorSelection").and_then(Value::as_object_mut) {
        selection.insert("residentKey".into(), json!("preferred"));
    }
    Ok(options)
}

/// Finishes registering `credential` for the pending factor `factor`: on success the
/// factor holds the sealed credential (still pending; the caller activates it).
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor.id))]
pub async fn finish_registration(
    state: &AppState,
    factor: &Factor,
    credential: &Value,
) -> Result<Result<(), Refusal>, ApiError> {
    let answer: RegisterPublicKeyCredential = parse_credential(credential)?;
    let spent =
        match spend::<Registration>(state, &answer.response.client_data_json, CeremonyPurpose::Register)
            .await?
        {
            Ok(spent) => spent,
            Err(refusal) => return Ok(Err(refusal)),
        };
    if spent.ceremony.user_id.as_deref() != Some(factor.user_id.as_str())
        || spent.ceremony.factor_id.as_deref() != Some(factor.id.as_str())
    {
        return Ok(Err(Refusal::WrongCeremony));
    }
    let passkey = match state.webauthn.finish_registration(&answer, &spent.state) {
        Ok(passkey) => passkey,
        Err(error) => {
            tracing::info!(%error, "a WebAuthn registration was refused");
            return Ok(Err(Refusal::of(&error)));
        }
    };
    let sealed = seal_passkey(state, factor, &passkey)?;
    let aaguid = aaguid_of(&answer.response.attestation_object);
    match state
        .store
        .set_factor_credential(
            &factor.user_id,
            &factor.id,
            passkey.cred_id(),
            aaguid.as_deref(),
            &sealed,
            state.now(),
        )
        .await
    {
        Ok(true) => Ok(Ok(())),
        Ok(false) => Err(ErrorCode::FactorNotFound.into()),
        Err(StoreError::CredentialTaken) => Err(ErrorCode::CredentialAlreadyRegistered.into()),
        Err(other) => Err(other.into()),
    }
}

/// Starts authenticating with the active WebAuthn factor `factor` as the second factor
/// of the login whose MFA token hashes to `login`; returns the
/// `PublicKeyCredentialRequestOptions` for `navigator.credentials.get`.
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor.id))]
pub async fn start_authentication(
    state: &AppState,
    factor: &Factor,
    login: &[u8],
) -> Result<Value, ApiError> {
    let passkey = open_passkey(state, factor)?;
    let (options, authentication) =
        state.webauthn.start_authentication(&[passkey]).map_err(ApiError::internal)?;
    let challenge = options.public_key.challenge.to_vec();
    remember(
        state,
        &challenge,
        CeremonyPurpose::Login,
        Some(&factor.user_id),
        Some(&factor.id),
        Some(login),
        &authentication,
    )
    .await?;
    serde_json::to_value(&options.public_key).map_err(ApiError::internal)
}

/// What binds a ceremony to a login that waits in its session (Flashback's): the
/// keyed hash of the session's id, in the place an MFA token's hash takes.
pub fn session_binding(state: &AppState, session_id: &str) -> Vec<u8> {
    state
        .keys
        .hashing
        .hash(HashPurpose::WebauthnChallenge, format!("session:{session_id}").as_bytes())
        .to_vec()
}

/// Starts authenticating `user_id` with any of their active WebAuthn factors: for an
/// app that checks the first factor itself (the sidecar, `login: None`), or for the
/// login `login` names; returns the `PublicKeyCredentialRequestOptions`, or
/// `mfa_not_enabled` when they have none.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn start_any_authentication(
    state: &AppState,
    user_id: &str,
    login: Option<&[u8]>,
) -> Result<Value, ApiError> {
    let keys = passkeys(state, user_id).await?;
    if keys.is_empty() {
        return Err(
            ApiError::new(ErrorCode::MfaNotEnabled).with_message("The user has no active WebAuthn factor.")
        );
    }
    let (options, authentication) = state.webauthn.start_authentication(&keys).map_err(ApiError::internal)?;
    let challenge = options.public_key.challenge.to_vec();
    remember(state, &challenge, CeremonyPurpose::Login, Some(user_id), None, login, &authentication).await?;
    serde_json::to_value(&options.public_key).map_err(ApiError::internal)
}

/// The credential id an authentication answer names (its `rawId`).
pub fn credential_id(credential: &Value) -> Result<Vec<u8>, ApiError> {
    let answer: PublicKeyCredential = parse_credential(credential)?;
    Ok(answer.get_credential_id().to_vec())
}

/// A WebAuthn assertion that passed.
#[derive(Debug, Clone, Copy)]
pub struct Asserted {
    /// The credential may be synced between devices (a backup-eligible passkey): a
    /// software-protected key in RFC 8176's terms, `swk`, rather than `hwk`.
    pub synced: bool,
}

/// Checks `credential` as the second factor of the login `login` with the active
/// factor `factor`; on success its signature counter is stored.
#[tracing::instrument(level = "debug", skip_all, fields(factor_id = %factor.id))]
pub async fn finish_authentication(
    state: &AppState,
    factor: &Factor,
    credential: &Value,
    login: Option<&[u8]>,
) -> Result<Result<Asserted, Refusal>, ApiError> {
    let answer: PublicKeyCredential = parse_credential(credential)?;
    let spent =
        match spend::<Authentication>(state, &answer.response.client_data_json, CeremonyPurpose::Login)
            .await?
        {
            Ok(spent) => spent,
            Err(refusal) => return Ok(Err(refusal)),
        };
    // A login's ceremony names its factor; the sidecar's allows any of the user's.
    if spent.ceremony.user_id.as_deref() != Some(factor.user_id.as_str())
        || spent.ceremony.factor_id.as_deref().is_some_and(|id| id != factor.id)
        || spent.ceremony.mfa_token_hash.as_deref() != login
    {
        return Ok(Err(Refusal::WrongCeremony));
    }
    let result = match state.webauthn.finish_authentication(&answer, &spent.state) {
        Ok(result) => result,
        Err(error) => {
            tracing::info!(%error, "a WebAuthn assertion was refused");
            return Ok(Err(Refusal::of(&error)));
        }
    };
    let mut passkey = open_passkey(state, factor)?;
    if result.cred_id() != passkey.cred_id() {
        return Ok(Err(Refusal::BadSignature));
    }
    passkey.update_credential(&result);
    state
        .store
        .update_factor_credential(&factor.id, &seal_passkey(state, factor, &passkey)?, state.now())
        .await?;
    Ok(Ok(Asserted { synced: result.backup_eligible() }))
}

/// The server's half of a sign-in with a passkey alone: for an account named by its
/// address, its credentials; for nobody in particular, any discoverable credential.
#[derive(Serialize, Deserialize)]
enum SignInState {
    Named(PasskeyAuthentication),
    Discoverable(DiscoverableAuthentication),
}

/// What a browser needs to sign in with a passkey.
pub struct SignInOptions {
    /// `PublicKeyCredentialRequestOptions`, JSON form.
    pub options: Value,
    /// `conditional` when the browser may offer the user's passkeys in the address
    /// field's autofill (no address was given).
    pub mediation: Option<&'static str>,
}

/// The active WebAuthn factors of `user_id`, with their credentials opened.
async fn passkeys(state: &AppState, user_id: &str) -> Result<Vec<Passkey>, ApiError> {
    let mut keys = Vec::new();
    for factor in state.store.factors(user_id, state.now()).await? {
        if factor.factor_type == FactorType::Webauthn && factor.status == FactorStatus::Active {
            keys.push(open_passkey(state, &factor)?);
        }
    }
    Ok(keys)
}

/// Starts a sign-in with a passkey alone. With `email` (already normalised), the
/// account's credentials are allowed; an address without an account or without a
/// passkey gets a credential id derived from the address instead, so the answer does
/// not tell who has one. Without `email`, any discoverable credential may answer
/// (conditional UI).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start_sign_in(state: &AppState, email: Option<&str>) -> Result<SignInOptions, ApiError> {
    let account = match email {
        Some(email) => state.store.user_by_email(email).await?.filter(|u| u.disabled_at.is_none()),
        None => None,
    };
    let keys = match &account {
        Some(user) => passkeys(state, &user.id).await?,
        None => Vec::new(),
    };
    if !keys.is_empty() {
        let (options, authentication) =
            state.webauthn.library.start_passkey_authentication(&keys).map_err(ApiError::internal)?;
        let challenge = options.public_key.challenge.to_vec();
        let user_id = account.as_ref().map(|u| u.id.as_str());
        remember(
            state,
            &challenge,
            CeremonyPurpose::SignIn,
            user_id,
            None,
            None,
            &SignInState::Named(authentication),
        )
        .await?;
        let options = serde_json::to_value(&options.public_key).map_err(ApiError::internal)?;
        return Ok(SignInOptions { options, mediation: None });
    }
    let (options, authentication) =
        state.webauthn.library.start_discoverable_authentication().map_err(ApiError::internal)?;
    let challenge = options.public_key.challenge.to_vec();
    remember(
        state,
        &challenge,
        CeremonyPurpose::SignIn,
        None,
        None,
        None,
        &SignInState::Discoverable(authentication),
    )
    .await?;
    let mut json = serde_json::to_value(&options.public_key).map_err(ApiError::internal)?;
    match email {
        Some(email) => {
            // As many credentials as most accounts have: one, derived from the address.
            let decoy =
                state.keys.hashing.hash(HashPurpose::WebauthnChallenge, format!("decoy:{email}").as_bytes());
            json["allowCredentials"] =
                json!([{ "type": "public-key", "id": URL_SAFE_NO_PAD.encode(&decoy[..16]) }]);
            // Shaped like a named account's options, which ask for no extensions.
            if let Some(fields) = json.as_object_mut() {
                fields.remove("extensions");
            }
            Ok(SignInOptions { options: json, mediation: None })
        }
        None => Ok(SignInOptions { options: json, mediation: Some("conditional") }),
    }
}

/// The factor whose credential answered a sign-in, and what the answer proved.
pub struct SignedIn {
    pub factor: Factor,
    pub asserted: Asserted,
}

/// A sign-in answer, read: the ceremony it answers is spent and its credential's
/// factor found, but the signature is not checked yet (the caller counts the attempt
/// against the factor's owner first, then calls [`SignIn::check`]).
pub struct SignIn {
    answer: PublicKeyCredential,
    library_state: SignInState,
    ceremony_user: Option<String>,
    pub factor: Factor,
}

/// Reads a sign-in answer: `Ok(Err(refusal))` for an unknown or spent ceremony or a
/// credential no active factor holds.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn read_sign_in(state: &AppState, credential: &Value) -> Result<Result<SignIn, Refusal>, ApiError> {
    let answer: PublicKeyCredential = parse_credential(credential)?;
    let spent = match spend::<SignInState>(state, &answer.response.client_data_json, CeremonyPurpose::SignIn)
        .await?
    {
        Ok(spent) => spent,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let factor = state
        .store
        .factor_by_credential(answer.get_credential_id(), state.now())
        .await?
        .filter(|f| f.status == FactorStatus::Active && f.factor_type == FactorType::Webauthn);
    let Some(factor) = factor else { return Ok(Err(Refusal::BadSignature)) };
    Ok(Ok(SignIn { answer, library_state: spent.state, ceremony_user: spent.ceremony.user_id, factor }))
}

impl SignIn {
    /// Checks the answer's signature (and user verification, origin, counter) against
    /// the factor's credential; on success its counter is stored.
    pub async fn check(self, state: &AppState) -> Result<Result<SignedIn, Refusal>, ApiError> {
        let passkey = open_passkey(state, &self.factor)?;
        let result = match self.library_state {
            SignInState::Named(authentication) => {
                if self.ceremony_user.as_deref() != Some(self.factor.user_id.as_str()) {
                    return Ok(Err(Refusal::WrongCeremony));
                }
                state.webauthn.library.finish_passkey_authentication(&self.answer, &authentication)
            }
            SignInState::Discoverable(authentication) => {
                let handle = state
                    .webauthn
                    .library
                    .identify_discoverable_authentication(&self.answer)
                    .map(|(uuid, _)| uuid);
                if handle.ok().map(|uuid| uuid.to_string()).as_deref() != Some(self.factor.user_id.as_str()) {
                    return Ok(Err(Refusal::WrongCeremony));
                }
                state.webauthn.library.finish_discoverable_authentication_v2(
                    &self.answer,
                    authentication,
                    &passkey,
                )
            }
        };
        let result = match result {
            Ok(result) => result,
            Err(error) => {
                tracing::info!(%error, "a passkey sign-in was refused");
                return Ok(Err(Refusal::of(&error)));
            }
        };
        let mut passkey = passkey;
        passkey.update_credential(&result);
        state
            .store
            .update_factor_credential(
                &self.factor.id,
                &seal_passkey(state, &self.factor, &passkey)?,
                state.now(),
            )
            .await?;
        Ok(Ok(SignedIn { factor: self.factor, asserted: Asserted { synced: result.backup_eligible() } }))
    }
}
