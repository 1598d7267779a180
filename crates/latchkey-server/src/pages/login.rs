//! `/login`: email and password, a passkey (a button, and the browser's autofill on
//! the email field), or a sign-in link by email; then off to the second step, or
//! signed in and sent back where the person came from (`return_to`). `/logout` ends
//! the page session.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::guard::{self, Browser};
use super::return_to::{Allowed, ReturnTo};
use super::{
    Chrome, CsrfOnly, bad_form, explain, filled, forbidden, form, redirect, render, script, with_wait,
};
use crate::http::error::ApiError;
use crate::service::login::LoginStep;
use crate::service::login_throttle::Client;
use crate::service::{accounts, exchange, login, magic_link, sessions, webauthn};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(show).post(sign_in))
        .route("/login/link", post(email_link))
        .route("/login/passkey/options", post(passkey_options))
        .route("/login/passkey", post(passkey_sign_in))
        .route("/logout", get(show_logout).post(logout))
}

#[derive(Template)]
#[template(path = "pages/login.html")]
struct LoginPage<'a> {
    c: Chrome<'a>,
    email: &'a str,
    return_to: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
    /// Whether "email me a sign-in link" is offered.
    links: bool,
    /// Whether "create an account" is offered.
    signup: bool,
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    return_to: Option<String>,
    /// Why the person is here again: `signed_out`, `expired`.
    notice: Option<String>,
}

/// `return_to` as given, checked against `web.allowed_return_urls`: `Ok(None)` when
/// absent, `Err(())` when refused (and logged).
pub fn checked_return_to(state: &AppState, requested: Option<&str>) -> Result<Option<ReturnTo>, ()> {
    let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    let allowed = Allowed::parse(&state.config.web.allowed_return_urls).unwrap_or_default();
    match allowed.check(requested) {
        Some(destination) => Ok(Some(destination)),
        None => {
            let shown: String = requested.chars().take(200).collect();
            tracing::warn!(return_to = %shown.escape_debug(), "a return_to outside web.allowed_return_urls was refused");
            Err(())
        }
    }
}

fn refused_return_to(state: &AppState, browser: &Browser) -> Response {
    super::message(state, browser, StatusCode::BAD_REQUEST, "errors.return_to_title", "errors.return_to_body")
}

/// Whether sign-in links lead back to these pages (`magic_link.redirect_url` is our
/// own `/login`).
pub fn links_sign_in_here(state: &AppState) -> bool {
    let own = format!("{}/login", state.config.public_url.trim_end_matches('/'));
    state.config.magic_link.redirect_url.as_deref().is_some_and(|url| url.trim_end_matches('/') == own)
}

struct Shown<'a> {
    email: &'a str,
    return_to: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

fn login_page(state: &AppState, browser: &Browser, status: StatusCode, shown: Shown<'_>) -> Response {
    let page = LoginPage {
        c: Chrome::new(state, browser),
        email: shown.email,
        return_to: shown.return_to,
        error: shown.error,
        notice: shown.notice,
        links: links_sign_in_here(state),
        signup: state.config.signup_enabled,
    };
    render(state, browser, status, &page)
}

async fn show(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    let query: LoginQuery = super::query(&uri);
    let Ok(return_to) = checked_return_to(&state, query.return_to.as_deref()) else {
        return refused_return_to(&state, &browser);
    };
    let t = browser.lang.text();
    let notice = match query.notice.as_deref() {
        Some("signed_out") => Some(t.get("login.signed_out")),
        Some("signed_up") => Some(t.get("login.signed_up")),
        Some("expired") => Some(t.get("errors.login_expired")),
        _ => None,
    };
    let return_to = return_to.as_ref().map_or("", ReturnTo::as_str);
    login_page(&state, &browser, StatusCode::OK, Shown { email: "", return_to, error: None, notice })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    return_to: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(LoginForm { csrf, email, password, return_to }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    let Ok(destination) = checked_return_to(&state, return_to.as_deref()) else {
        return refused_return_to(&state, &browser);
    };
    let password = SecretString::from(password);
    let shown_return_to = destination.as_ref().map_or("", ReturnTo::as_str);
    let refused = |error: ApiError| {
        let t = browser.lang.text();
        let shown = Shown {
            email: &email,
            return_to: shown_return_to,
            error: Some(t.get(explain(&error))),
            notice: None,
        };
        with_wait(login_page(&state, &browser, error.code.status(), shown), Some(&error))
    };
    let user =
        match accounts::authenticate_password(&state, &email, password, Client::new(&browser.meta)).await {
            Ok(user) => user,
            Err(error) => return refused(error),
        };
    let device = browser.cookie(guard::DEVICE);
    match login::after_password(&state, &user.id, device, &browser.meta).await {
        Ok(step) => continue_with(&state, &browser, step, destination.as_ref()).await,
        Err(error) => refused(error),
    }
}

/// Where a first factor leads: signed in, or the second step with the login's MFA
/// token kept in a short-lived cookie.
pub async fn continue_with(
    state: &AppState,
    browser: &Browser,
    step: LoginStep,
    destination: Option<&ReturnTo>,
) -> Response {
    match step {
        LoginStep::Session(tokens) => signed_in(state, browser, &tokens.session_id, destination).await,
        LoginStep::MfaRequired(challenge) => {
            let query = destination
                .map(|d| {
                    format!(
                        "?{}",
                        serde_urlencoded::to_string([("return_to", d.as_str())]).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            let mut response = redirect(state, browser, &format!("/login/verify{query}"));
            let cookie =
                guard::set_cookie(browser.secure, guard::LOGIN, &challenge.mfa_token, challenge.expires_in);
            guard::add_cookie(&mut response, &cookie);
            response
        }
    }
}

/// The browser is signed in to the session `session_id`: the session cookie is set,
/// the login cookie cleared, and the browser sent on: to an app with a one-time
/// exchange code in the query, to one of our pages, or to the security settings.
pub async fn signed_in(
    state: &AppState,
    browser: &Browser,
    session_id: &str,
    destination: Option<&ReturnTo>,
) -> Response {
    let location = match destination {
        Some(ReturnTo::App(url)) => match exchange::issue(state, session_id).await {
            Ok(code) => {
                let mut url = url.clone();
                url.query_pairs_mut().append_pair("code", &code);
                url.to_string()
            }
            Err(error) => return super::failure(state, browser, &error),
        },
        Some(ReturnTo::Here(path)) => path.clone(),
        None => "/account/security".to_owned(),
    };
    let mut response = redirect(state, browser, &location);
    let value = guard::session_cookie_value(&state.keys.hashing, session_id);
    let max_age = state.config.sessions.absolute_timeout_secs;
    guard::add_cookie(&mut response, &guard::set_cookie(browser.secure, guard::SESSION, &value, max_age));
    guard::add_cookie(&mut response, &guard::set_cookie(browser.secure, guard::LOGIN, "", 0));
    response
}

#[derive(Deserialize)]
struct LinkForm {
    #[serde(default)]
    csrf: String,
    email: String,
    return_to: Option<String>,
}

/// "Email me a sign-in link": the same answer whether or not the address has an account.
async fn email_link(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(LinkForm { csrf, email, return_to }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    let return_to = checked_return_to(&state, return_to.as_deref()).ok().flatten();
    let shown_return_to = return_to.as_ref().map_or("", ReturnTo::as_str);
    let t = browser.lang.text();
    let (status, error, notice) = if links_sign_in_here(&state) {
        match magic_link::request(&state, &email, &browser.meta).await {
            Ok(()) => (StatusCode::OK, None, Some(t.get("login.link_sent"))),
            Err(error) => (error.code.status(), Some(t.get(explain(&error))), None),
        }
    } else {
        (StatusCode::FORBIDDEN, Some(t.get("errors.links_off")), None)
    };
    login_page(&state, &browser, status, Shown { email: &email, return_to: shown_return_to, error, notice })
}

#[derive(Deserialize)]
struct PasskeyOptionsBody {
    email: Option<String>,
}

/// Options for a passkey sign-in: for the typed address, or (no address: the
/// autofill) for any passkey of this site.
async fn passkey_options(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let PasskeyOptionsBody { email } = match script::parse(&state, &browser, &headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let email = filled(&email).and_then(|e| latchkey_core::email::Email::parse(e).ok()).map(|e| e.normalized);
    match webauthn::start_sign_in(&state, email.as_deref()).await {
        Ok(started) => Json(json!({ "request_options": started.options, "mediation": started.mediation }))
            .into_response(),
        Err(error) => script::refused(&browser.lang.text(), &error),
    }
}

#[derive(Deserialize)]
struct PasskeyForm {
    #[serde(default)]
    csrf: String,
    /// The browser's answer (`PublicKeyCredential.toJSON()`), as JSON text.
    credential: String,
    return_to: Option<String>,
}

/// A passkey alone signs in (it verified the user: both factors).
async fn passkey_sign_in(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(PasskeyForm { csrf, credential, return_to }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    let Ok(destination) = checked_return_to(&state, return_to.as_deref()) else {
        return refused_return_to(&state, &browser);
    };
    let Ok(credential) = serde_json::from_str::<serde_json::Value>(&credential) else {
        return bad_form(&state, &browser);
    };
    match login::with_passkey(&state, &credential, &browser.meta).await {
        Ok((tokens, _)) => signed_in(&state, &browser, &tokens.session_id, destination.as_ref()).await,
        Err(error) => {
            let t = browser.lang.text();
            let shown_return_to = destination.as_ref().map_or("", ReturnTo::as_str);
            let shown = Shown {
                email: "",
                return_to: shown_return_to,
                error: Some(t.get(explain(&error))),
                notice: None,
            };
            login_page(&state, &browser, error.code.status(), shown)
        }
    }
}

#[derive(Template)]
#[template(path = "pages/logout.html")]
struct LogoutPage<'a> {
    c: Chrome<'a>,
}

async fn show_logout(State(state): State<AppState>, browser: Browser) -> Response {
    let page = LogoutPage { c: Chrome::new(&state, &browser).signed_in() };
    render(&state, &browser, StatusCode::OK, &page)
}

/// Ends the page session (and only it: apps keep the sessions they exchanged for).
async fn logout(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(CsrfOnly { csrf }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    match browser.session(&state).await {
        Ok(Some(session)) => {
            if let Err(error) = sessions::logout(&state, &session.id).await {
                return super::failure(&state, &browser, &error);
            }
        }
        Ok(None) => {}
        Err(error) => return super::failure(&state, &browser, &error),
    }
    let mut response = redirect(&state, &browser, "/login?notice=signed_out");
    guard::add_cookie(&mut response, &guard::set_cookie(browser.secure, guard::SESSION, "", 0));
    response
}

/// Where a page that needs a session sends a browser without one.
pub fn to_sign_in(state: &AppState, browser: &Browser, back_to: &str) -> Response {
    let query = serde_urlencoded::to_string([("return_to", back_to)]).unwrap_or_default();
    redirect(state, browser, &format!("/login?{query}"))
}
