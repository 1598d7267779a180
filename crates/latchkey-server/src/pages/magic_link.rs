//! `/magic-link`: the page a magic link opens. GET only shows a confirm button (mail
//! scanners that fetch links consume nothing); the POST from that page, carrying the
//! token and the pages' CSRF token, confirms the link. A second-factor link then lets
//! the waiting login finish; a sign-in link signs the browser in here (when
//! `magic_link.redirect_url` is the hosted `/login`) or redirects to
//! `magic_link.redirect_url` with the outcome in the URL fragment.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_store::ChallengePurpose;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::guard::Browser;
use super::login::{continue_with, links_sign_in_here};
use super::{Chrome, bad_form, forbidden, form, message, render};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::Query;
use crate::service::challenges;
use crate::service::login::LoginStep;
use crate::service::magic_link::{self, Confirmed};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, confirm))
}

#[derive(Template)]
#[template(path = "pages/magic_link.html")]
struct ConfirmPage<'a> {
    c: Chrome<'a>,
    /// Message keys: a sign-in, or a second factor.
    heading: &'a str,
    button: &'a str,
    requested: &'a str,
    token: &'a str,
}

fn link_not_valid(state: &AppState, browser: &Browser) -> Response {
    message(state, browser, StatusCode::GONE, "link.gone_title", "link.gone_body")
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
async fn show(State(state): State<AppState>, browser: Browser, Query(query): Query<LinkQuery>) -> Response {
    let token = query.token.unwrap_or_default();
    let challenge = match challenges::open_link(&state, &token).await {
        Ok(Some(challenge)) => challenge,
        Ok(None) => return link_not_valid(&state, &browser),
        Err(error) => return error.into_response(),
    };
    let (heading, button) = match challenge.purpose {
        ChallengePurpose::SignIn => ("link.sign_in_title", "link.sign_in_button"),
        ChallengePurpose::Login | ChallengePurpose::Enroll => ("link.confirm_title", "link.confirm_button"),
    };
    let t = browser.lang.text();
    let requested = t.with("link.requested", "when", &crate::clock::rfc3339(challenge.created_at));
    let page = ConfirmPage {
        c: Chrome::new(&state, &browser),
        heading: t.get(heading),
        button: t.get(button),
        requested: &requested,
        token: &token,
    };
    render(&state, &browser, StatusCode::OK, &page)
}

#[derive(Deserialize, ToSchema)]
struct ConfirmForm {
    token: String,
    /// The page's CSRF token.
    #[serde(default)]
    csrf: String,
}

/// The confirm button's form post. A second-factor link lets the waiting login
/// finish; a sign-in link signs the browser in on the hosted pages when
/// `magic_link.redirect_url` is their `/login`, else redirects there with the login's
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
    browser: Browser,
    body: Bytes,
) -> Response {
    let Some(form) = form::<ConfirmForm>(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &form.csrf) {
        return forbidden(&state, &browser);
    }
    let outcome = match magic_link::confirm(&state, &form.token, &browser.meta).await {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return link_not_valid(&state, &browser),
        Err(error) => return error.into_response(),
    };
    match outcome {
        Confirmed::SecondFactor => {
            message(&state, &browser, StatusCode::OK, "link.confirmed_title", "link.confirmed_body")
        }
        Confirmed::Enrolled => {
            message(&state, &browser, StatusCode::OK, "link.enrolled_title", "link.enrolled_body")
        }
        Confirmed::SignedIn(step) if links_sign_in_here(&state) => {
            continue_with(&state, &browser, step, None).await
        }
        Confirmed::SignedIn(step) => {
            let Some(redirect_url) = state.config.magic_link.redirect_url.as_deref() else {
                return link_not_valid(&state, &browser);
            };
            let fragment = match sign_in_fragment(step) {
                Ok(fragment) => fragment,
                Err(error) => return error.into_response(),
            };
            Redirect::to(&format!("{redirect_url}#{}", fragment.as_str())).into_response()
        }
    }
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
