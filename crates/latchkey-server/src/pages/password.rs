//! A forgotten password: `/login/forgot` asks for the address and emails a reset link
//! (the same answer for every address); `/reset-password` is where the link leads. It
//! takes the new password and, for an account with a second factor, one proof of it in
//! the same form: an authenticator code, a code sent by text (or to another address), a
//! passkey, or a recovery code. The service decides which factors count and spends the
//! link; the page shows its answer.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use latchkey_store::Factor;
use secrecy::SecretString;
use serde::Deserialize;

use super::guard::Browser;
use super::verify::{Choice, choices};
use super::{Chrome, bad_form, explain, filled, forbidden, form, message, render, script, with_wait};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::login::Challenged;
use crate::service::password_changes::{self, ResetProof, ResetTerms};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/forgot", get(show_forgot).post(forgot))
        .route("/reset-password", get(show_reset).post(reset))
        .route("/reset-password/send", post(send))
        .route("/reset-password/passkey/options", post(passkey_options))
}

#[derive(Template)]
#[template(path = "pages/forgot.html")]
struct ForgotPage<'a> {
    c: Chrome<'a>,
    email: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

async fn show_forgot(State(state): State<AppState>, browser: Browser) -> Response {
    let page = ForgotPage { c: Chrome::new(&state, &browser), email: "", error: None, notice: None };
    render(&state, &browser, StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    csrf: String,
    email: String,
}

/// The same answer whether or not the address has an account.
async fn forgot(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(ForgotForm { csrf, email }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    let t = browser.lang.text();
    let outcome = password_changes::forgot(&state, &email, &browser.meta).await;
    let (status, error, notice) = match &outcome {
        Ok(()) => (StatusCode::OK, None, Some(t.get("forgot.sent"))),
        Err(error) => (error.code.status(), Some(t.get(explain(error))), None),
    };
    let page = ForgotPage { c: Chrome::new(&state, &browser), email: &email, error, notice };
    with_wait(render(&state, &browser, status, &page), outcome.as_ref().err())
}

#[derive(Template)]
#[template(path = "pages/reset.html")]
struct ResetPage<'a> {
    c: Chrome<'a>,
    token: &'a str,
    email: &'a str,
    /// `none` (no second factor needed), `totp`, `email`, `sms`, `webauthn` or `recovery`.
    kind: &'a str,
    factor_id: &'a str,
    /// Where a sent code went, once it was sent.
    sent_to: Option<&'a str>,
    choices: Vec<Choice>,
    error: Option<&'a str>,
    retry_after: Option<i64>,
}

/// What the page shows besides the terms: the chosen factor, and a step's outcome.
#[derive(Default)]
struct Shown<'a> {
    /// The factor's id or `recovery`; the first factor that counts when absent.
    factor: Option<&'a str>,
    sent_to: Option<&'a str>,
    error: Option<&'a ApiError>,
}

fn link_gone(state: &AppState, browser: &Browser) -> Response {
    message(state, browser, StatusCode::GONE, "link.gone_title", "reset.gone_body")
}

/// The page, or for a service error the page that fits it.
fn reset_page(
    state: &AppState,
    browser: &Browser,
    token: &str,
    terms: Result<ResetTerms, ApiError>,
    shown: Shown<'_>,
) -> Response {
    let terms = match terms {
        Ok(terms) => terms,
        Err(error) if error.code == ErrorCode::InvalidLink => return link_gone(state, browser),
        Err(error) => return super::failure(state, browser, &error),
    };
    let t = browser.lang.text();
    let chosen: Option<&Factor> = match shown.factor {
        Some("recovery") => None,
        Some(id) => terms.factors.iter().find(|f| f.id == id).or(terms.factors.first()),
        None => terms.factors.first(),
    };
    let (kind, factor_id, listed) = if !terms.second_factor_required {
        ("none", "", Vec::new())
    } else {
        let kind = chosen.map_or("recovery", |f| f.factor_type.as_str());
        (kind, chosen.map_or("recovery", |f| f.id.as_str()), choices(&t, &terms.factors, chosen))
    };
    let status = shown.error.map_or(StatusCode::OK, |e| e.code.status());
    let page = ResetPage {
        c: Chrome::new(state, browser),
        token,
        email: &terms.user.email,
        kind,
        factor_id,
        sent_to: shown.sent_to,
        choices: listed,
        error: shown.error.map(|e| t.get(explain(e))),
        retry_after: shown.error.and_then(|e| e.retry_after),
    };
    with_wait(render(state, browser, status, &page), shown.error)
}

#[derive(Deserialize, Default)]
struct ResetQuery {
    token: Option<String>,
    factor: Option<String>,
}

async fn show_reset(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    let query: ResetQuery = super::query(&uri);
    let token = query.token.unwrap_or_default();
    let terms = password_changes::terms(&state, &token).await;
    let shown = Shown { factor: filled(&query.factor), ..Shown::default() };
    reset_page(&state, &browser, &token, terms, shown)
}

#[derive(Deserialize)]
struct SendForm {
    #[serde(default)]
    csrf: String,
    token: String,
    factor: String,
}

/// Sends the chosen factor's code (a text, or an email to another address).
async fn send(State(state): State<AppState>, browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let Some(SendForm { csrf, token, factor }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    let sent = password_changes::reset_challenge(&state, &token, &factor, &browser.meta).await;
    let terms = password_changes::terms(&state, &token).await;
    match &sent {
        Ok((_, Challenged::Sent(sent))) => {
            let shown = Shown { factor: Some(&factor), sent_to: Some(&sent.sent_to), error: None };
            reset_page(&state, &browser, &token, terms, shown)
        }
        Ok((_, Challenged::Webauthn(_))) => bad_form(&state, &browser),
        Err(error) => {
            let shown = Shown { factor: Some(&factor), sent_to: None, error: Some(error) };
            reset_page(&state, &browser, &token, terms, shown)
        }
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    csrf: String,
    token: String,
    #[serde(default)]
    password: String,
    /// The factor's id, `recovery`, or empty (no second factor needed).
    #[serde(default)]
    factor: String,
    code: Option<String>,
    /// A passkey's answer (`PublicKeyCredential.toJSON()`), as JSON text.
    credential: Option<String>,
    /// The address a code was sent to, shown again after a wrong code.
    sent_to: Option<String>,
}

async fn reset(State(state): State<AppState>, browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let Some(posted) = form::<ResetForm>(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &posted.csrf) {
        return forbidden(&state, &browser);
    }
    let credential = match filled(&posted.credential).map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(credential)) => Some(credential),
        Some(Err(_)) => return bad_form(&state, &browser),
        None => None,
    };
    let code = filled(&posted.code);
    let proof = match (posted.factor.as_str(), code, &credential) {
        ("" | "none", ..) => None,
        ("recovery", Some(code), _) => Some(ResetProof::RecoveryCode(code)),
        (factor_id, _, Some(credential)) => {
            Some(ResetProof::Credential { factor_id: Some(factor_id), credential })
        }
        (factor_id, Some(code), None) => Some(ResetProof::Code { factor_id, code }),
        (_, None, None) => None,
    };
    let password = SecretString::from(posted.password);
    match password_changes::reset(&state, &posted.token, password, proof, &browser.meta).await {
        Ok(()) => message(&state, &browser, StatusCode::OK, "reset.done_title", "reset.done_body"),
        Err(error) if error.code == ErrorCode::InvalidLink => link_gone(&state, &browser),
        Err(error) => {
            let terms = password_changes::terms(&state, &posted.token).await;
            let shown = Shown {
                factor: Some(posted.factor.as_str()).filter(|f| !f.is_empty()),
                sent_to: filled(&posted.sent_to),
                error: Some(&error),
            };
            reset_page(&state, &browser, &posted.token, terms, shown)
        }
    }
}

#[derive(Deserialize)]
struct PasskeyOptionsBody {
    token: String,
    factor_id: String,
}

/// The chosen passkey's request options, bound to this reset link.
async fn passkey_options(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let PasskeyOptionsBody { token, factor_id } = match script::parse(&state, &browser, &headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let started = password_changes::reset_challenge(&state, &token, &factor_id, &browser.meta).await;
    script::request_options(&browser.lang.text(), started)
}
