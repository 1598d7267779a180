//! The hosted pages a person opens in a browser, rendered by the server (askama
//! templates in `templates/pages/`, words from `messages/`): sign-in (`login.rs`), its
//! second step (`verify.rs`), security settings (`account.rs`) with the
//! re-authentication they need (`reauth.rs`), sign-up (`signup.rs`), a forgotten
//! password's reset (`password.rs`), the page a recovery link opens (`recover.rs`) and
//! the page a magic link opens (`magic_link.rs`). They call the service layer as the
//! API does, so the same lockout, replay and enumeration rules hold; `guard.rs` keeps
//! them safe (signed session cookie, CSRF tokens, same-origin POSTs) and every answer
//! carries a strict Content-Security-Policy. One style sheet and one script, served from the binary.

mod account;
mod guard;
mod i18n;
mod login;
mod magic_link;
mod password;
mod reauth;
mod recover;
pub mod return_to;
mod script;
mod signup;
mod verify;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;

pub use guard::Browser;
use i18n::Text;

use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The magic-link page, documented in the native document.
pub fn routes() -> OpenApiRouter<AppState> {
    magic_link::routes()
}

/// Whether `path` is one of the pages' (for answers made before routing, and metrics).
pub fn owns(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    path == "/"
        || matches!(
            first,
            "login"
                | "signup"
                | "logout"
                | "account"
                | "recover"
                | "reset-password"
                | "magic-link"
                | "assets"
        )
}

/// The sign-in and account pages, with their style sheet and script.
pub fn site() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/account/security") }))
        .route("/assets/pages.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/assets/pages.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .merge(login::routes())
        .merge(verify::routes())
        .merge(account::routes())
        .merge(reauth::routes())
        .merge(signup::routes())
        .merge(password::routes())
        .merge(recover::routes())
}

const STYLE: &str = include_str!("../../assets/pages/pages.css");
const SCRIPT: &str = include_str!("../../assets/pages/pages.js");

fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// What every page shows around its content, and what its forms and script need.
pub struct Chrome<'a> {
    pub t: Text,
    pub lang: &'static str,
    pub issuer: &'a str,
    pub csrf: String,
    /// Whether the page offers signing out.
    pub signed_in: bool,
}

impl<'a> Chrome<'a> {
    pub fn new(state: &'a AppState, browser: &Browser) -> Self {
        Self {
            t: browser.lang.text(),
            lang: browser.lang.tag(),
            issuer: &state.config.totp.issuer,
            csrf: browser.csrf(state),
            signed_in: false,
        }
    }

    pub fn signed_in(self) -> Self {
        Self { signed_in: true, ..self }
    }
}

/// The pages' Content-Security-Policy: our own script, style and images (the QR code
/// is a `data:` image) only, no inline script, no framing; forms post here, or (the
/// redirect after sign-in) to an allowed app's origin, which Chromium checks too.
fn content_security_policy(state: &AppState) -> String {
    let mut form_action = String::from("'self'");
    let mut targets = state.config.web.allowed_return_urls.clone();
    // A sign-in link's confirmation redirects there after its form post.
    targets.extend(state.config.magic_link.redirect_url.iter().cloned());
    if let Ok(allowed) = return_to::Allowed::parse(&targets) {
        for origin in allowed.origins() {
            form_action.push(' ');
            form_action.push_str(&origin);
        }
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Adds the headers every page carries.
fn with_page_headers(state: &AppState, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(state)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    // Nothing of a page's address (a link's token) leaves for another site; our own
    // posts keep their origin for the same-origin check.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// An HTML page with the page headers and the browser's cookies.
pub fn render(state: &AppState, browser: &Browser, status: StatusCode, page: &impl Template) -> Response {
    let response = match page.render() {
        Ok(html) => {
            let mut response = (status, html).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        Err(error) => {
            return ApiError::internal(anyhow::anyhow!("a page template failed to render: {error}"))
                .into_response();
        }
    };
    browser.finish(with_page_headers(state, response))
}

/// A 303 to `location`, with the page headers and the browser's cookies.
pub fn redirect(state: &AppState, browser: &Browser, location: &str) -> Response {
    browser.finish(with_page_headers(state, Redirect::to(location).into_response()))
}

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    c: Chrome<'a>,
    heading: &'a str,
    body: &'a str,
    /// A link onwards: its address and words.
    next: Option<(&'a str, &'a str)>,
}

/// A page with a heading and a sentence (an error, or a step done), by message keys.
pub fn message(
    state: &AppState,
    browser: &Browser,
    status: StatusCode,
    heading: &str,
    body: &str,
) -> Response {
    let t = browser.lang.text();
    let next = Some(("/login", t.get("common.to_sign_in")));
    let page =
        MessagePage { c: Chrome::new(state, browser), heading: t.get(heading), body: t.get(body), next };
    render(state, browser, status, &page)
}

/// Whether a request is a browser's navigation (it asks for HTML), not an API call.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The page for an address that leads nowhere.
pub fn not_found(state: &AppState, browser: &Browser) -> Response {
    message(state, browser, StatusCode::NOT_FOUND, "errors.not_found_title", "errors.not_found_body")
}

/// The page for a POST that is not from one of our pages or lacks its token.
pub fn forbidden(state: &AppState, browser: &Browser) -> Response {
    message(state, browser, StatusCode::FORBIDDEN, "errors.csrf_title", "errors.csrf_body")
}

/// The page for a service error nothing more specific handles.
pub fn failure(state: &AppState, browser: &Browser, error: &ApiError) -> Response {
    let (heading, body) = if error.code.status().is_server_error() {
        error.log_cause();
        ("errors.server_title", "errors.server_body")
    } else {
        ("errors.generic_title", explain(error))
    };
    message(state, browser, error.code.status(), heading, body)
}

/// What a refused step tells the person, as a message key. Every page shows an error
/// through here, so this is where its internal cause (a fault, never sent) is logged,
/// as every surface does before answering.
pub fn explain(error: &ApiError) -> &'static str {
    error.log_cause();
    if error.code.status().is_server_error() {
        return "errors.server_body";
    }
    match error.code {
        ErrorCode::InvalidCredentials => "errors.wrong_password",
        ErrorCode::InvalidCode => "errors.wrong_code",
        ErrorCode::InvalidCredential => "errors.passkey_refused",
        ErrorCode::TooManyAttempts | ErrorCode::SecondFactorLocked => "errors.locked",
        ErrorCode::RateLimited => "errors.rate_limited",
        ErrorCode::InvalidMfaToken => "errors.login_expired",
        ErrorCode::ChallengePending => "errors.link_not_confirmed",
        ErrorCode::InvalidChallenge => "errors.code_expired",
        ErrorCode::InvalidEmail => "errors.invalid_email",
        ErrorCode::WeakPassword => "errors.weak_password",
        ErrorCode::InvalidPhone | ErrorCode::PhoneNotAllowed | ErrorCode::InvalidField => {
            "errors.invalid_destination"
        }
        ErrorCode::InvalidFriendlyName => "errors.invalid_name",
        ErrorCode::CredentialAlreadyRegistered => "errors.passkey_registered",
        ErrorCode::FactorNotFound | ErrorCode::NotFound => "errors.not_found",
        ErrorCode::TooManyFactors => "errors.too_many_factors",
        ErrorCode::MfaSetupRequired => "errors.setup_required",
        ErrorCode::SecondFactorRequired => "reset.second_factor_needed",
        ErrorCode::ChallengeNotApplicable => "reset.factor_not_allowed",
        ErrorCode::InvalidLink => "reset.gone_body",
        _ => "errors.generic_body",
    }
}

/// A page that answers a refused step carries the step's wait (a lockout, a send
/// throttle) as `Retry-After`, as the API's answer would.
pub fn with_wait(mut response: Response, error: Option<&ApiError>) -> Response {
    if let Some(seconds) = error.and_then(|e| e.retry_after) {
        response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// The fields every form posts; a form with no others is read as this alone.
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// A page's query string, its defaults where it is absent or malformed.
pub fn query<T: DeserializeOwned + Default>(uri: &axum::http::Uri) -> T {
    uri.query().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default()
}

/// A form body (`application/x-www-form-urlencoded`), or `None` when it is not one.
pub fn form<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Option<T> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form { serde_urlencoded::from_bytes(body).ok() } else { None }
}

/// The page for a form that is missing or malformed.
pub fn bad_form(state: &AppState, browser: &Browser) -> Response {
    message(state, browser, StatusCode::BAD_REQUEST, "errors.generic_title", "errors.bad_form")
}

/// An empty form field is no value.
pub fn filled(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}
