//! Login after the first factor: either a session, or (for a user with an active
//! second factor) an `mfa_token` that only the second-factor endpoints accept, then
//! the second factor that turns it into an `aal2` session.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::factor::{FactorStatus, FactorType};
use latchkey_core::login::{AfterFirstFactor, after_first_factor};
use latchkey_core::session::{Aal, Amr, after_second_factor};
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::{ChallengePurpose, Factor, MfaToken, NewMfaToken, Session, User};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::random;
use crate::service::audit::{self, Event};
use crate::service::challenges::{self, Send, Sent};
use crate::service::second_factor::{self, Proof, Verified};
use crate::service::sessions::{self, IssuedTokens, Lifetime};
use crate::service::{accounts, devices, factors, organizations, webauthn};
use crate::state::AppState;

/// The second step a client must take.
pub struct MfaChallenge {
    pub mfa_token: String,
    pub expires_in: i64,
    pub factors: Vec<Factor>,
}

pub enum LoginStep {
    Session(IssuedTokens),
    MfaRequired(MfaChallenge),
}

/// Continues a login whose first factor (`amr`) succeeded just now. A user with an
/// active factor gets an MFA token, unless `device` is the token of a device they
/// asked to be remembered: that login gets an `aal2` session whose `amr` lists only
/// the first factor, so re-authentication for sensitive changes still needs a second
/// factor proven in the session. A member of an organisation that enforces MFA who has
/// no factor gets `mfa_setup_required`: they set one up through a surface whose
/// session can wait for it (Flashback), never past it.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn after_first(
    state: &AppState,
    user_id: &str,
    amr: &[Amr],
    device: Option<&str>,
    meta: &ClientMeta,
) -> Result<LoginStep, ApiError> {
    let now = state.now();
    let factors = factors::active_factors(state, user_id).await?;
    if factors.is_empty() && organizations::enforced(state, user_id).await? {
        return Err(ErrorCode::MfaSetupRequired.into());
    }
    match after_first_factor(factors.len()) {
        AfterFirstFactor::Session => {
            Ok(LoginStep::Session(sessions::start(state, user_id, Aal::Aal1, amr, now, false, meta).await?))
        }
        AfterFirstFactor::SecondFactorRequired => {
            if let Some(device) = device
                && devices::recognise(state, user_id, device, meta).await?
            {
                let tokens = sessions::start(state, user_id, Aal::Aal2, amr, now, false, meta).await?;
                return Ok(LoginStep::Session(tokens));
            }
            let mfa_token = TokenKind::Mfa.encode(&random::bytes::<TOKEN_BYTES>());
            let ttl = state.config.mfa.mfa_token_ttl_secs;
            state
                .store
                .create_mfa_token(&NewMfaToken {
                    token_hash: state.keys.hashing.hash(HashPurpose::MfaToken, mfa_token.as_bytes()).to_vec(),
                    user_id: user_id.to_owned(),
                    amr: amr.iter().map(|m| m.as_str().to_owned()).collect(),
                    auth_time: now,
                    created_at: now,
                    expires_at: now + ttl,
                })
                .await?;
            Ok(LoginStep::MfaRequired(MfaChallenge { mfa_token, expires_in: ttl, factors }))
        }
    }
}

/// [`after_first`] for a password that was just checked: what every surface's password
/// login continues with.
pub async fn after_password(
    state: &AppState,
    user_id: &str,
    device: Option<&str>,
    meta: &ClientMeta,
) -> Result<LoginStep, ApiError> {
    after_first(state, user_id, &[Amr::Pwd], device, meta).await
}

/// A password login for a surface whose session waits in place for its second factor
/// (Prisme.ai, Flashback): an `aal1` session, marked as waiting when the user has an
/// active factor (or must set one up: their organisation enforces MFA), which opens
/// nothing but that surface's MFA steps until `sessions::raise` clears the mark. Its
/// `lifetime` is the surface's (Prisme.ai's sessions last, having no refresh).
/// Returns the tokens and whether the session waits.
pub async fn with_waiting_session(
    state: &AppState,
    user_id: &str,
    lifetime: Lifetime,
    meta: &ClientMeta,
) -> Result<(IssuedTokens, bool), ApiError> {
    let waiting = match after_first_factor(factors::active_factors(state, user_id).await?.len()) {
        AfterFirstFactor::Session => organizations::setup_required(state, user_id).await?,
        AfterFirstFactor::SecondFactorRequired => true,
    };
    let now = state.now();
    let tokens =
        sessions::start_for(state, user_id, Aal::Aal1, &[Amr::Pwd], now, waiting, lifetime, meta).await?;
    Ok((tokens, waiting))
}

/// Finishes a login that waited in its session (Flashback's) once `verified` proved the
/// second factor: the waiting session ends and a new `aal2` session begins, so the
/// limited token the login gave opens nothing more.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %session.id))]
pub async fn replace_waiting_session(
    state: &AppState,
    session: &Session,
    verified: &Verified,
    meta: &ClientMeta,
) -> Result<IssuedTokens, ApiError> {
    if verified.user_id() != session.user_id {
        return Err(ApiError::internal(anyhow::anyhow!("a second factor proven for another user")));
    }
    let amr = after_second_factor(&session.amr, verified.method.amr());
    let tokens = sessions::start(state, &session.user_id, Aal::Aal2, &amr, state.now(), false, meta).await?;
    sessions::logout(state, &session.id).await?;
    Ok(tokens)
}

/// Which of the user's active factors a login step means: one by id, or (for
/// surfaces that name factor types) the newest of a type.
#[derive(Debug, Clone, Copy)]
pub enum FactorChoice<'a> {
    Id(&'a str),
    Type(FactorType),
}

/// The user's active factor `choice` names.
async fn chosen_factor(
    state: &AppState,
    user_id: &str,
    choice: FactorChoice<'_>,
) -> Result<Factor, ApiError> {
    let now = state.now();
    let factor = match choice {
        FactorChoice::Id(id) => {
            state.store.factor(user_id, id, now).await?.filter(|f| f.status == FactorStatus::Active)
        }
        FactorChoice::Type(factor_type) => factors::active_factors(state, user_id)
            .await?
            .into_iter()
            .rev()
            .find(|f| f.factor_type == factor_type),
    };
    factor.ok_or_else(|| ErrorCode::FactorNotFound.into())
}

/// What a client finishing a login presents.
pub enum LoginProof<'a> {
    /// A code for one factor: from the authenticator app, or the one sent by
    /// [`challenge`]. A TOTP code chosen by type fits any of the user's TOTP factors.
    Code {
        factor: FactorChoice<'a>,
        code: &'a str,
    },
    RecoveryCode(&'a str),
    /// The browser's answer to [`webauthn_options`] for a WebAuthn factor.
    Credential {
        factor_id: &'a str,
        credential: &'a serde_json::Value,
    },
    /// A magic link sent by [`challenge`] and confirmed by its recipient.
    Link {
        challenge_id: &'a str,
    },
}

/// The live MFA token `mfa_token` and its hash.
async fn mfa_token(state: &AppState, mfa_token: &str) -> Result<(MfaToken, [u8; 32]), ApiError> {
    let mfa_token = mfa_token.trim();
    if !TokenKind::Mfa.is_well_formed(mfa_token) {
        return Err(ErrorCode::InvalidMfaToken.into());
    }
    let hash = state.keys.hashing.hash(HashPurpose::MfaToken, mfa_token.as_bytes());
    let token = state.store.mfa_token(&hash, state.now()).await?.ok_or(ErrorCode::InvalidMfaToken)?;
    Ok((token, hash))
}

/// For a login whose user has one second factor and it sends codes (email or SMS):
/// sends its first code at once, for surfaces whose password step promises one (Lerian's
/// password grant; its challenge endpoint is for a new code). A send the throttle
/// refuses is left to that endpoint. Returns whether a code went out.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn send_first_code(
    state: &AppState,
    login: &MfaChallenge,
    meta: &ClientMeta,
) -> Result<bool, ApiError> {
    let [factor] = login.factors.as_slice() else { return Ok(false) };
    if !matches!(factor.factor_type, FactorType::Email | FactorType::Sms) {
        return Ok(false);
    }
    match challenge(state, &login.mfa_token, FactorChoice::Id(&factor.id), meta).await {
        Ok(_) => Ok(true),
        Err(error) if error.code == ErrorCode::RateLimited => Ok(false),
        Err(error) => Err(error),
    }
}

/// The factors the login of `mfa_token_value` may finish with (what a page shows again
/// after the first step), without spending the token.
pub async fn waiting_factors(state: &AppState, mfa_token_value: &str) -> Result<Vec<Factor>, ApiError> {
    let (token, _) = mfa_token(state, mfa_token_value).await?;
    factors::active_factors(state, &token.user_id).await
}

/// What the second step of a login with a factor needs from the client.
pub enum Challenged {
    /// A code (email, SMS) or link (magic link) is on its way.
    Sent(Sent),
    /// For a WebAuthn factor: the `PublicKeyCredentialRequestOptions` for
    /// `navigator.credentials.get`.
    Webauthn(serde_json::Value),
}

/// Starts the second step of a login with one of the user's factors, bound to this
/// login: sends its code or link (asking again sends a new one and voids the old), or
/// for a WebAuthn factor starts the ceremony. A TOTP factor needs nothing.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn challenge(
    state: &AppState,
    mfa_token_value: &str,
    factor: FactorChoice<'_>,
    meta: &ClientMeta,
) -> Result<(Factor, Challenged), ApiError> {
    let (token, hash) = mfa_token(state, mfa_token_value).await?;
    challenge_for(state, &token.user_id, factor, &hash, meta).await
}

/// [`challenge`] for a login that waits in its session (Flashback's): the code, link
/// or ceremony is bound to the session.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %session.id))]
pub async fn challenge_waiting(
    state: &AppState,
    session: &Session,
    factor: FactorChoice<'_>,
    meta: &ClientMeta,
) -> Result<(Factor, Challenged), ApiError> {
    let binding = webauthn::session_binding(state, &session.id);
    challenge_for(state, &session.user_id, factor, &binding, meta).await
}

/// The second step's start for the login `login` (an MFA token's hash, a waiting
/// session's binding, or a password reset's token hash) of `user_id`.
pub async fn challenge_for(
    state: &AppState,
    user_id: &str,
    factor: FactorChoice<'_>,
    login: &[u8],
    meta: &ClientMeta,
) -> Result<(Factor, Challenged), ApiError> {
    let factor = chosen_factor(state, user_id, factor).await?;
    if factor.factor_type == FactorType::Webauthn {
        let options = webauthn::start_authentication(state, &factor, login).await?;
        return Ok((factor, Challenged::Webauthn(options)));
    }
    if !factor.factor_type.is_restricted() {
        return Err(ErrorCode::ChallengeNotApplicable.into());
    }
    let to = challenges::destination(&factor)?;
    let send = Send { destination: to, channel: challenges::channel(&factor), user_id: Some(user_id), meta };
    challenges::claim_send(state, send).await?;
    let login = Some(login.to_vec());
    let sent = if factor.factor_type == FactorType::MagicLink {
        challenges::send_link(state, user_id, to, Some(&factor), ChallengePurpose::Login, login, meta).await?
    } else {
        challenges::send_code(state, &factor, ChallengePurpose::Login, login, meta).await?
    };
    Ok((factor, Challenged::Sent(sent)))
}

/// The second factor of a login that waits in its session, proven by the token of the
/// link [`challenge_waiting`] sent (a client that reads the link itself, as Flashback's
/// does): the link must be this session's, and it is spent.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = %session.id))]
pub async fn verify_waiting_link(
    state: &AppState,
    session: &Session,
    token: &str,
    meta: &ClientMeta,
) -> Result<Verified, ApiError> {
    let challenge = challenges::confirm_link(state, token)
        .await?
        .filter(|c| c.user_id == session.user_id && c.purpose == ChallengePurpose::Login)
        .ok_or(ErrorCode::InvalidChallenge)?;
    let binding = webauthn::session_binding(state, &session.id);
    second_factor::verify_link(state, &session.user_id, &challenge.id, &binding, meta).await
}

/// Completes a login with its second factor; the `mfa_token` is spent on success.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn complete(
    state: &AppState,
    mfa_token_value: &str,
    proof: LoginProof<'_>,
    meta: &ClientMeta,
) -> Result<IssuedTokens, ApiError> {
    let (token, hash) = mfa_token(state, mfa_token_value).await?;
    let user_id = token.user_id.as_str();
    let verified = match proof {
        LoginProof::Code { factor: FactorChoice::Type(FactorType::Totp), code } => {
            // Like the other types: naming a type the user lacks is not a guess.
            if !factors::has_active(state, user_id, Some(FactorType::Totp)).await? {
                return Err(ErrorCode::FactorNotFound.into());
            }
            second_factor::verify(state, user_id, Proof::AnyTotp { code }, meta, None).await?
        }
        LoginProof::Code { factor: FactorChoice::Id(factor_id), code } => {
            let proof = Proof::Code { factor_id, code, login: Some(&hash) };
            second_factor::verify(state, user_id, proof, meta, None).await?
        }
        LoginProof::Code { factor: choice @ FactorChoice::Type(_), code } => {
            let factor = chosen_factor(state, user_id, choice).await?;
            let proof = Proof::Code { factor_id: &factor.id, code, login: Some(&hash) };
            second_factor::verify(state, user_id, proof, meta, None).await?
        }
        LoginProof::RecoveryCode(code) => {
            second_factor::verify(state, user_id, Proof::RecoveryCode(code), meta, None).await?
        }
        LoginProof::Credential { factor_id, credential } => {
            let proof = Proof::Credential { factor_id: Some(factor_id), credential, login: Some(&hash) };
            second_factor::verify(state, user_id, proof, meta, None).await?
        }
        LoginProof::Link { challenge_id } => {
            second_factor::verify_link(state, user_id, challenge_id, &hash, meta).await?
        }
    };
    if !state.store.consume_mfa_token(&hash, state.now()).await? {
        return Err(ErrorCode::InvalidMfaToken.into());
    }
    let amr = after_second_factor(&token.amr, verified.method.amr());
    sessions::start(state, &token.user_id, Aal::Aal2, &amr, state.now(), false, meta).await
}

/// Signs in with a passkey alone, which is both factors: the browser's answer to
/// `webauthn::start_sign_in`. Gives an `aal2` session whose `amr` is `hwk` (or `swk`
/// for a passkey that may be synced), and the account. Failed answers count toward the
/// second-factor guard of the credential's owner, like any failed second factor.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn with_passkey(
    state: &AppState,
    credential: &serde_json::Value,
    meta: &ClientMeta,
) -> Result<(IssuedTokens, User), ApiError> {
    let sign_in = match webauthn::read_sign_in(state, credential).await? {
        Ok(sign_in) => sign_in,
        Err(refusal) => {
            audit::record(state, Event::about("login.failed", None, meta).failed()).await;
            return Err(refusal.error());
        }
    };
    let user = accounts::by_id(state, &sign_in.factor.user_id).await?;
    if user.disabled_at.is_some() {
        return Err(ErrorCode::InvalidCredentials.into());
    }
    let factor_id = sign_in.factor.id.clone();
    let failures = second_factor::claim_attempt(state, &user.id, meta).await?;
    match sign_in.check(state).await? {
        Ok(signed) => {
            second_factor::succeeded(state, &user.id, meta).await?;
            let event = Event::new("mfa.verified", &user.id, meta).factor(&factor_id, FactorType::Webauthn);
            audit::record(state, event).await;
            audit::record(state, Event::new("login.succeeded", &user.id, meta)).await;
            let amr = [second_factor::Method::Webauthn { synced: signed.asserted.synced }.amr()];
            let tokens = sessions::start(state, &user.id, Aal::Aal2, &amr, state.now(), false, meta).await?;
            Ok((tokens, user))
        }
        Err(refusal) => {
            let kind = match refusal {
                webauthn::Refusal::CounterRegressed => "webauthn.counter_regressed",
                _ => "mfa.failed",
            };
            let event = Event::new(kind, &user.id, meta).factor(&factor_id, FactorType::Webauthn);
            second_factor::failed(state, &user.id, failures, second_factor::Attempt::Setup, event).await;
            Err(refusal.error())
        }
    }
}

/// A login whose client sends the second factor with the first in one request
/// (Mudbase's `totpToken`): a user without an active factor gets an `aal1` session
/// and `proof` is ignored; a user with one needs `proof` (else `second_factor_required`),
/// checked by the same path as every second factor. Returns the tokens and whether the
/// user has MFA.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn in_one_step(
    state: &AppState,
    user_id: &str,
    proof: Option<Proof<'_>>,
    meta: &ClientMeta,
) -> Result<(IssuedTokens, bool), ApiError> {
    let now = state.now();
    let factors = factors::active_factors(state, user_id).await?;
    if factors.is_empty() && organizations::enforced(state, user_id).await? {
        return Err(ErrorCode::MfaSetupRequired.into());
    }
    match after_first_factor(factors.len()) {
        AfterFirstFactor::Session => {
            Ok((sessions::start(state, user_id, Aal::Aal1, &[Amr::Pwd], now, false, meta).await?, false))
        }
        AfterFirstFactor::SecondFactorRequired => {
            let proof = proof.ok_or(ErrorCode::SecondFactorRequired)?;
            let verified = second_factor::verify(state, user_id, proof, meta, None).await?;
            let amr = after_second_factor(&[Amr::Pwd.as_str().to_owned()], verified.method.amr());
            Ok((sessions::start(state, user_id, Aal::Aal2, &amr, state.now(), false, meta).await?, true))
        }
    }
}
