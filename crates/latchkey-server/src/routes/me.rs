//! `/v1/me`: the signed-in user.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::service::{accounts, factors};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/me", get(me))
}

async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Value>, ApiError> {
    let account = accounts::session_user(&state, &user.session.user_id).await?;
    let session = &user.session;
    let factors: Vec<Value> = factors::active_factors(&state, &account.id)
        .await?
        .into_iter()
        .map(|f| json!({ "id": f.id, "type": f.factor_type, "friendly_name": f.friendly_name }))
        .collect();
    let recovery_codes_remaining = state.store.recovery_codes_remaining(&account.id).await?;
    Ok(Json(json!({
        "id": account.id,
        "email": account.email,
        "phone": account.phone,
        "created_at": rfc3339(account.created_at),
        "mfa_enabled": !factors.is_empty(),
        "factors": factors,
        "recovery_codes_remaining": recovery_codes_remaining,
        "session": {
            "id": session.id,
            "aal": session.aal,
            "amr": session.amr,
            "auth_time": rfc3339(session.auth_time),
            "expires_at": rfc3339(session.expires_at),
        },
    })))
}
