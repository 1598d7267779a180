//! `/v1/me`: the signed-in user.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::AuthUser;
use crate::native::auth::FactorSummary;
use crate::service::{accounts, factors};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[derive(Serialize, ToSchema)]
struct Me {
    id: String,
    email: String,
    phone: Option<String>,
    created_at: String,
    mfa_enabled: bool,
    /// The active second factors.
    factors: Vec<FactorSummary>,
    recovery_codes_remaining: i64,
    session: SessionView,
}

#[derive(Serialize, ToSchema)]
struct SessionView {
    id: String,
    /// `aal1` or `aal2`.
    aal: String,
    /// How the session was authenticated (RFC 8176): `pwd`, `otp`, `mail`, `sms`, …
    amr: Vec<String>,
    auth_time: String,
    expires_at: String,
}

/// The signed-in user, their active factors and this session.
#[utoipa::path(get, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user.", body = Me),
        (status = 404, description = "The user no longer exists.", body = ErrorBody),
    ))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>, ApiError> {
    let account = accounts::session_user(&state, &user.session.user_id).await?;
    let session = user.session;
    let factors: Vec<FactorSummary> =
        factors::active_factors(&state, &account.id).await?.into_iter().map(FactorSummary::from).collect();
    let recovery_codes_remaining = state.store.recovery_codes_remaining(&account.id).await?;
    Ok(Json(Me {
        id: account.id,
        email: account.email,
        phone: account.phone,
        created_at: rfc3339(account.created_at),
        mfa_enabled: !factors.is_empty(),
        factors,
        recovery_codes_remaining,
        session: SessionView {
            id: session.id,
            aal: session.aal,
            amr: session.amr,
            auth_time: rfc3339(session.auth_time),
            expires_at: rfc3339(session.expires_at),
        },
    }))
}
