//! The JSON calls the pages' script makes (the options for a passkey ceremony): their
//! CSRF token rides in `X-CSRF-Token`; a refusal is `{"message", "location"}`, the
//! words to show and, when the person must go elsewhere first, where.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use latchkey_store::{Factor, Session};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::explain;
use super::guard::Browser;
use super::i18n::Text;
use crate::http::error::ApiError;
use crate::service::login::Challenged;
use crate::state::AppState;

/// A refusal: `message` to show, and `location` to go to instead.
pub fn refusal(status: StatusCode, message: &str, location: Option<&str>) -> Response {
    (status, Json(json!({ "message": message, "location": location }))).into_response()
}

/// A service error as a refusal.
pub fn refused(t: &Text, error: &ApiError) -> Response {
    refusal(error.code.status(), t.get(explain(error)), None)
}

/// The call's JSON body, once its token and origin held.
#[allow(clippy::result_large_err, reason = "the refusal is the answer, sent at once")]
pub fn parse<T: DeserializeOwned>(
    state: &AppState,
    browser: &Browser,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    let t = browser.lang.text();
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !browser.may_post(state, token) {
        return Err(refusal(StatusCode::FORBIDDEN, t.get("errors.csrf_body"), None));
    }
    serde_json::from_slice(body).map_err(|_| refusal(StatusCode::BAD_REQUEST, t.get("errors.bad_form"), None))
}

/// The signed-in session the call comes from.
pub async fn session(state: &AppState, browser: &Browser) -> Result<Session, Response> {
    let t = browser.lang.text();
    match browser.session(state).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(refusal(StatusCode::UNAUTHORIZED, t.get("errors.login_expired"), Some("/login"))),
        Err(error) => Err(refused(&t, &error)),
    }
}

/// The options a passkey factor's challenge gave, for `navigator.credentials.get`.
pub fn request_options(t: &Text, challenged: Result<(Factor, Challenged), ApiError>) -> Response {
    match challenged {
        Ok((_, Challenged::Webauthn(options))) => Json(json!({ "request_options": options })).into_response(),
        Ok((_, Challenged::Sent(_))) => refusal(StatusCode::BAD_REQUEST, t.get("errors.bad_form"), None),
        Err(error) => refused(t, &error),
    }
}
