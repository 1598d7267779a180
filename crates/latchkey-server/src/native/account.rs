//! The account's lifecycle: `/v1/auth/password/*` (a forgotten password's reset),
//! `/v1/me/password`, `/v1/me/email`, `/v1/me/phone` (the signed-in user's changes),
//! and the way back for a user who lost every factor: `/v1/users/{id}/recovery` (an
//! administrator's link), `/v1/auth/recovery` (using it) and
//! `/v1/auth/recovery/request` (self-service, when turned on).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Accepted, ChallengeSent, LoginAnswer, challenge_sent};
use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AdminKey, AuthUser, ClientMeta, JsonBody, Path};
use crate::service::addresses::{self, Address, CodeSent};
use crate::service::password_changes::{self, ResetProof};
use crate::service::recovery::{self, Delivery};
use crate::service::{accounts, reauth};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(forgot_password))
        .routes(routes!(reset_challenge))
        .routes(routes!(reset_password))
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(confirm_email))
        .routes(routes!(change_phone))
        .routes(routes!(confirm_phone))
        .routes(routes!(issue_recovery))
        .routes(routes!(use_recovery))
        .routes(routes!(request_recovery))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ForgotPassword {
    #[schema(example = "ada@example.com")]
    email: String,
}

/// `POST /v1/auth/password/forgot`: emails a reset link (30 minutes, once) if the
/// address has an account; the same answer, as fast, for every address.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "auth",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "Accepted.", body = Accepted),
        (status = 422, description = "Not an email address.", body = ErrorBody),
        (status = 429, description = "Too many messages sent to this address.", body = ErrorBody),
    ))]
async fn forgot_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ForgotPassword>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    password_changes::forgot(&state, &body.email, &meta).await?;
    Ok(Accepted::answer(
        "If an account uses this address, a reset link is on its way. It expires in 30 minutes.",
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetChallenge {
    /// The token from the reset link.
    #[schema(value_type = String)]
    token: SecretString,
    /// One of the factors the reset's `second_factor_required` error lists.
    factor_id: String,
}

/// `POST /v1/auth/password/reset/challenge`: sends the code of the factor the reset
/// will be proven with (a text, or an email to an address other than the account's),
/// or returns a passkey's request options; bound to this reset link.
#[utoipa::path(post, path = "/v1/auth/password/reset/challenge", tag = "auth",
    request_body = ResetChallenge,
    responses(
        (status = 200, description = "Sent.", body = ChallengeSent),
        (status = 400, description = "The link is invalid, expired or used.", body = ErrorBody),
        (status = 422, description = "This factor cannot prove a reset, or needs no code sent.", body = ErrorBody),
        (status = 429, description = "Too many codes sent to this destination.", body = ErrorBody),
    ))]
async fn reset_challenge(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ResetChallenge>,
) -> Result<Json<ChallengeSent>, ApiError> {
    let (factor, challenged) =
        password_changes::reset_challenge(&state, body.token.expose_secret(), &body.factor_id, &meta).await?;
    Ok(Json(challenge_sent(factor, challenged)))
}

/// A new password from a reset link; for an account with two-step sign-in, with one
/// proof: `factor_id` and `code` (or `credential` for a passkey), or `recovery_code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    #[schema(value_type = String)]
    token: SecretString,
    #[schema(value_type = String)]
    new_password: SecretString,
    factor_id: Option<String>,
    #[schema(value_type = Option<String>)]
    code: Option<SecretString>,
    /// A passkey's answer to the reset challenge's `request_options`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
    #[schema(value_type = Option<String>)]
    recovery_code: Option<SecretString>,
}

/// `POST /v1/auth/password/reset`: sets the password; every session ends and every
/// remembered device is forgotten. The link works once.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "The password is set; log in with it."),
        (status = 400, description = "The link is invalid, expired or used.", body = ErrorBody),
        (status = 401, description = "The account needs a second factor with the new password (`details.factors`).", body = ErrorBody),
        (status = 403, description = "The second factor is locked.", body = ErrorBody),
        (status = 422, description = "A weak password, a wrong code, or a factor that cannot prove a reset.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ResetPassword>,
) -> Result<StatusCode, ApiError> {
    let several = || {
        ApiError::field(ErrorCode::InvalidField, "recovery_code")
            .with_message("Give `factor_id` with `code` or `credential`, or `recovery_code`: not several.")
    };
    let proof = match (&body.factor_id, &body.code, &body.credential, &body.recovery_code) {
        (None, None, None, None) => None,
        (Some(factor_id), Some(code), None, None) => {
            Some(ResetProof::Code { factor_id, code: code.expose_secret() })
        }
        (factor_id, None, Some(credential), None) => {
            Some(ResetProof::Credential { factor_id: factor_id.as_deref(), credential })
        }
        (None, None, None, Some(code)) => Some(ResetProof::RecoveryCode(code.expose_secret())),
        (Some(_), None, None, None) => return Err(ApiError::field(ErrorCode::MissingField, "code")),
        (None, Some(_), None, None) => return Err(ApiError::field(ErrorCode::MissingField, "factor_id")),
        _ => return Err(several()),
    };
    password_changes::reset(&state, body.token.expose_secret(), body.new_password, proof, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    /// The current password; without it, the session must have authenticated recently
    /// (with its second factor, for an account that has one).
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
    #[schema(value_type = String)]
    new_password: SecretString,
}

/// `POST /v1/me/password`: the signed-in user sets a new password; their other
/// sessions end.
#[utoipa::path(post, path = "/v1/me/password", tag = "me",
    request_body = ChangePassword,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed."),
        (status = 403, description = "A wrong current password, or no recent authentication.", body = ErrorBody),
        (status = 422, description = "The new password is too weak.", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords.", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let by = reauth::for_password_change(&state, &user.session, body.current_password, &meta).await?;
    password_changes::change(&state, &by, body.new_password, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeEmail {
    #[schema(example = "ada@example.org")]
    email: String,
    /// For an account without a second factor whose login is not recent.
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePhone {
    /// E.164, like `+14155550123`.
    #[schema(example = "+14155550123")]
    phone: String,
    #[schema(value_type = Option<String>)]
    current_password: Option<SecretString>,
}

/// A code went to the new address.
#[derive(Serialize, ToSchema)]
struct CodeSentView {
    /// The new address, masked.
    sent_to: String,
    expires_in: i64,
}

impl From<CodeSent> for CodeSentView {
    fn from(sent: CodeSent) -> Self {
        Self { sent_to: sent.sent_to, expires_in: sent.expires_in }
    }
}

/// `POST /v1/me/email`: sends a code to a new email address, which replaces the
/// account's when confirmed. Needs a recent authentication.
#[utoipa::path(post, path = "/v1/me/email", tag = "me",
    request_body = ChangeEmail,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A code went to the new address.", body = CodeSentView),
        (status = 403, description = "Re-authentication needed.", body = ErrorBody),
        (status = 409, description = "Another account uses this address.", body = ErrorBody),
        (status = 422, description = "Not an email address, or already the account's.", body = ErrorBody),
        (status = 429, description = "Too many codes sent.", body = ErrorBody),
    ))]
async fn change_email(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ChangeEmail>,
) -> Result<(StatusCode, Json<CodeSentView>), ApiError> {
    let by = reauth::require_recent_authentication(&state, &user.session, body.current_password).await?;
    let sent = addresses::start_email_change(&state, &by, &body.email, &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(sent.into())))
}

/// `POST /v1/me/phone`: sends a code to a new phone number, which replaces the
/// account's when confirmed. Needs a recent authentication.
#[utoipa::path(post, path = "/v1/me/phone", tag = "me",
    request_body = ChangePhone,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A code went to the new number.", body = CodeSentView),
        (status = 403, description = "Re-authentication needed.", body = ErrorBody),
        (status = 422, description = "Not an E.164 number, a country not allowed, or already the account's.", body = ErrorBody),
        (status = 429, description = "Too many codes sent.", body = ErrorBody),
    ))]
async fn change_phone(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ChangePhone>,
) -> Result<(StatusCode, Json<CodeSentView>), ApiError> {
    let by = reauth::require_recent_authentication(&state, &user.session, body.current_password).await?;
    let sent = addresses::start_phone_change(&state, &by, &body.phone, &meta).await?;
    Ok((StatusCode::ACCEPTED, Json(sent.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfirmCode {
    /// The code sent to the new address.
    #[schema(value_type = String, example = "123456")]
    code: SecretString,
}

/// The address the account now has.
#[derive(Serialize, ToSchema)]
struct AddressChangedView {
    /// The new address (email or phone number).
    address: String,
    /// Factors that sent to the old address and now send to the new one.
    moved_factors: u64,
}

async fn confirm(
    state: &AppState,
    user: &AuthUser,
    address: Address,
    code: &SecretString,
    meta: &ClientMeta,
) -> Result<Json<AddressChangedView>, ApiError> {
    let user_id = &user.session.user_id;
    let changed = addresses::confirm(state, user_id, address, code.expose_secret(), meta).await?;
    let account = accounts::session_user(state, user_id).await?;
    let now = match address {
        Address::Email => account.email,
        Address::Phone => account.phone.unwrap_or_default(),
    };
    Ok(Json(AddressChangedView { address: now, moved_factors: changed.moved_factors }))
}

/// `POST /v1/me/email/confirm`: the code from the new address's mailbox; the account
/// takes the address and the old one is told.
#[utoipa::path(post, path = "/v1/me/email/confirm", tag = "me",
    request_body = ConfirmCode,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed.", body = AddressChangedView),
        (status = 409, description = "Another account took the address meanwhile.", body = ErrorBody),
        (status = 422, description = "The code is wrong, expired or used.", body = ErrorBody),
    ))]
async fn confirm_email(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ConfirmCode>,
) -> Result<Json<AddressChangedView>, ApiError> {
    confirm(&state, &user, Address::Email, &body.code, &meta).await
}

/// `POST /v1/me/phone/confirm`: the code texted to the new number; the account takes
/// the number and the old one is told.
#[utoipa::path(post, path = "/v1/me/phone/confirm", tag = "me",
    request_body = ConfirmCode,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed.", body = AddressChangedView),
        (status = 422, description = "The code is wrong, expired or used.", body = ErrorBody),
    ))]
async fn confirm_phone(
    State(state): State<AppState>,
    user: AuthUser,
    meta: ClientMeta,
    JsonBody(body): JsonBody<ConfirmCode>,
) -> Result<Json<AddressChangedView>, ApiError> {
    confirm(&state, &user, Address::Phone, &body.code, &meta).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueRecovery {
    /// Why, for the audit log (1–500 characters).
    #[schema(example = "Ticket 4411: phone lost, identity checked by video call")]
    reason: String,
    /// `true` (default): the link is emailed to the account's address. `false`: it is
    /// in the answer, for you to hand over another way; the user is emailed a notice.
    #[serde(default = "default_true")]
    send_email: bool,
}

fn default_true() -> bool {
    true
}

/// A recovery link went out.
#[derive(Serialize, ToSchema)]
struct RecoveryIssued {
    expires_at: String,
    /// The address it was emailed to, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_to: Option<String>,
    /// The link, when `send_email` was `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

/// `POST /v1/users/{id}/recovery` (scope `users:write`): for a user who lost every
/// factor and recovery code. Every session ends now; the link, used once, removes the
/// old factors and signs the user in to set up a new one.
#[utoipa::path(post, path = "/v1/users/{id}/recovery", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = IssueRecovery,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Issued.", body = RecoveryIssued),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
        (status = 422, description = "No reason, or one too long.", body = ErrorBody),
    ))]
async fn issue_recovery(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<IssueRecovery>,
) -> Result<(StatusCode, Json<RecoveryIssued>), ApiError> {
    admin.require("users:write")?;
    accounts::by_id(&state, &id).await?;
    let delivery = if body.send_email { Delivery::Email } else { Delivery::ToAdministrator };
    let by = reauth::operator(&id, admin.actor());
    let issued = recovery::issue(&state, &by, &body.reason, delivery, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(RecoveryIssued {
            expires_at: rfc3339(issued.expires_at),
            sent_to: issued.sent_to,
            link: issued.link.map(|link| link.as_str().to_owned()),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UseRecovery {
    /// The token from the recovery link.
    #[schema(value_type = String)]
    token: SecretString,
}

/// `POST /v1/auth/recovery`: uses a recovery link. The user's factors, recovery codes
/// and remembered devices are removed, every session ends, and a new session starts
/// (`aal1`) to set up a new factor with.
#[utoipa::path(post, path = "/v1/auth/recovery", tag = "auth",
    request_body = UseRecovery,
    responses(
        (status = 200, description = "A session.", body = LoginAnswer),
        (status = 400, description = "The link is invalid, expired or used.", body = ErrorBody),
        (status = 403, description = "A self-service link still waiting, or self-service recovery turned off.", body = ErrorBody),
    ))]
async fn use_recovery(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<UseRecovery>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let step = recovery::redeem(&state, body.token.expose_secret(), &meta).await?;
    Ok(Json(step.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RequestRecovery {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(value_type = String)]
    password: SecretString,
}

/// `POST /v1/auth/recovery/request`: self-service recovery, when
/// `mfa.self_recovery_wait_secs` turns it on. With the right password, a link is
/// emailed that opens after the wait; every address of the account is told, and any
/// sign-in with a second factor before then cancels it.
#[utoipa::path(post, path = "/v1/auth/recovery/request", tag = "auth",
    request_body = RequestRecovery,
    responses(
        (status = 202, description = "Accepted.", body = Accepted),
        (status = 401, description = "Wrong email or password.", body = ErrorBody),
        (status = 403, description = "Self-service recovery is turned off.", body = ErrorBody),
        (status = 429, description = "Too many attempts.", body = ErrorBody),
    ))]
async fn request_recovery(
    State(state): State<AppState>,
    meta: ClientMeta,
    JsonBody(body): JsonBody<RequestRecovery>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    recovery::request(&state, &body.email, body.password, &meta).await?;
    Ok(Accepted::answer(
        "If the account has second factors, a recovery link is on its way; it opens after the \
                      waiting period, and every address of the account has been told.",
    ))
}
