//! `/magic-link`: the page a magic link opens. GET only shows a confirm button (mail
//! scanners that fetch links consume nothing); the POST from that page, carrying the
//! token and a CSRF token tied to a cookie set by the GET, confirms the link. A
//! second-factor link then lets the waiting login finish; a sign-in link redirects to
//! `magic_link.redirect_url` with the outcome in the URL fragment.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::crypto::constant_time_eq;
use latchkey_store::ChallengePurpose;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ClientMeta, Query, cookie, secure_cookie_attribute};
use crate::random;
use crate::service::challenges;
use crate::service::login::LoginStep;
use crate::service::magic_link::{self, Confirmed};
use crate::state::AppState;

const CSRF_COOKIE: &str = "latchkey_csrf";

/// Scripts, frames, images and foreign form targets are all refused.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, confirm))
}

#[derive(Template)]
#[template(path = "pages/magic_link.html")]
struct ConfirmPage<'a> {
    issuer: &'a str,
    heading: &'a str,
    requested: &'a str,
    button: &'a str,
    token: &'a str,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    issuer: &'a str,
    heading: &'a str,
    body: &'a str,
}

/// An HTML answer with the page headers every Latchkey page carries.
fn page(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let Ok(html) = html else {
        return ApiError::internal(anyhow::anyhow!("a page template failed to render")).into_response();
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn message(state: &AppState, status: StatusCode, heading: &str, body: &str) -> Response {
    page(status, MessagePage { issuer: &state.config.totp.issuer, heading, body }.render())
}

fn link_not_valid(state: &AppState) -> Response {
    message(
        state,
        StatusCode::GONE,
        "This link no longer works",
        "It has expired or was already used. Ask for a new one where you were signing in.",
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LinkQuery {
    /// The token from the emailed link.
    token: Option<String>,
}

/// The page a magic link opens: a button that confirms it. Opening it consumes nothing.
#[utoipa::path(get, path = "/magic-link", tag = "pages",
    params(LinkQuery),
    responses(
        (status = 200, description = "The confirmation page; sets the CSRF cookie.", content_type = "text/html", body = String),
        (status = 400, description = "An invalid query string.", body = ErrorBody),
        (status = 410, description = "The link expired or was used.", content_type = "text/html", body = String),
    ))]
async fn show(State(state): State<AppState>, Query(query): Query<LinkQuery>) -> Response {
    let token = query.token.unwrap_or_default();
    let challenge = match challenges::open_link(&state, &token).await {
        Ok(Some(challenge)) => challenge,
        Ok(None) => return link_not_valid(&state),
        Err(error) => return error.into_response(),
    };
    let (heading, button) = match challenge.purpose {
        ChallengePurpose::SignIn => ("Sign in", "Sign in"),
        ChallengePurpose::Login | ChallengePurpose::Enroll => {
            ("Confirm your sign-in", "Yes, continue signing in")
        }
    };
    let requested = crate::clock::rfc3339(challenge.created_at);
    let csrf = Zeroizing::new(URL_SAFE_NO_PAD.encode(random::bytes::<32>()));
    let mut response = page(
        StatusCode::OK,
        ConfirmPage {
            issuer: &state.config.totp.issuer,
            heading,
            requested: &format!("at {requested}"),
            button,
            token: &token,
            csrf: &csrf,
        }
        .render(),
    );
    let secure = secure_cookie_attribute(&state.config.public_url);
    let cookie =
        format!("{CSRF_COOKIE}={}; Path=/; Max-Age=900; HttpOnly; SameSite=Strict{secure}", csrf.as_str());
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize, ToSchema)]
struct ConfirmForm {
    token: String,
    /// The value of the page's CSRF cookie.
    csrf: String,
}

/// The confirm button's form post. A second-factor link lets the waiting login
/// finish; a sign-in link redirects to `magic_link.redirect_url` with the login's
/// answer in the URL fragment.
#[utoipa::path(post, path = "/magic-link", tag = "pages",
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Confirmed: the login continues where it started.", content_type = "text/html", body = String),
        (status = 303, description = "Signed in: off to the configured redirect URL.",
            headers(("Location" = String, description = "The redirect URL with the outcome in the fragment."))),
        (status = 400, description = "The form is missing or malformed.", content_type = "text/html", body = String),
        (status = 403, description = "The CSRF token does not match the cookie.", content_type = "text/html", body = String),
        (status = 410, description = "The link expired or was used.", content_type = "text/html", body = String),
    ))]
async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form: Option<ConfirmForm> = if is_form { serde_urlencoded::from_bytes(&body).ok() } else { None };
    let Some(form) = form else {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "Something is missing",
            "Open the link from your email again.",
        );
    };
    let csrf_ok = cookie(&headers, CSRF_COOKIE).is_some_and(|expected| {
        !expected.is_empty() && constant_time_eq(expected.as_bytes(), form.csrf.as_bytes())
    });
    if !csrf_ok {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "Please try again",
            "This confirmation did not come from the page the link opened. Open the link from your email again.",
        );
    }
    let outcome = match magic_link::confirm(&state, &form.token, &meta).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return link_not_valid(&state),
        Err(error) => return error.into_response(),
    };
    let mut response = match outcome {
        Confirmed::SecondFactor => message(
            &state,
            StatusCode::OK,
            "Confirmed",
            "Go back to the window or device where you were signing in; it continues by itself.",
        ),
        Confirmed::Enrolled => message(
            &state,
            StatusCode::OK,
            "Sign-in links are on",
            "From now on, signing in asks for a link sent to this address. Sign in again where you were.",
        ),
        Confirmed::SignedIn(step) => {
            let Some(redirect_url) = state.config.magic_link.redirect_url.as_deref() else {
                return link_not_valid(&state);
            };
            let fragment = match sign_in_fragment(step) {
                Ok(fragment) => fragment,
                Err(error) => return error.into_response(),
            };
            Redirect::to(&format!("{redirect_url}#{}", fragment.as_str())).into_response()
        }
    };
    let secure = secure_cookie_attribute(&state.config.public_url);
    let expired = format!("{CSRF_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The sign-in outcome as a URL fragment: the fields of the login answer, with
/// non-string values (numbers, `true`, the factor list) written as JSON.
fn sign_in_fragment(step: LoginStep) -> Result<Zeroizing<String>, ApiError> {
    let body =
        serde_json::to_value(crate::native::auth::LoginAnswer::from(step)).map_err(ApiError::internal)?;
    let pairs: Vec<(&String, String)> = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => (key, text.clone()),
            other => (key, other.to_string()),
        })
        .collect();
    serde_urlencoded::to_string(&pairs).map(Zeroizing::new).map_err(ApiError::internal)
}
