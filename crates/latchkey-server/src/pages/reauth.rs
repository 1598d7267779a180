//! `/account/reauth`: "confirm it's you" before a sensitive change. A person with a
//! second factor proves one again (a code from their app, a code sent to them, a
//! passkey or a recovery code; sent codes and passkey ceremonies are bound to this
//! session); one without a factor gives their password. Either way the session's
//! time of authentication becomes now (`reauth::step_up`, `reauth::confirm_password`),
//! under the same lockout as every other second factor.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use latchkey_core::factor::FactorType;
use latchkey_store::Session;
use secrecy::SecretString;
use serde::Deserialize;

use super::account::{posted, require_session};
use super::guard::Browser;
use super::script;
use super::verify::{Choice, choices};
use super::{Chrome, explain, failure, filled, redirect, render, with_wait};
use crate::http::error::ApiError;
use crate::service::login::{self, Challenged, FactorChoice};
use crate::service::second_factor::Proof;
use crate::service::{factors, reauth, webauthn};
use crate::state::AppState;

const PATH: &str = "/account/reauth";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(show).post(confirm))
        .route("/account/reauth/send", post(send))
        .route("/account/reauth/passkey/options", post(passkey_options))
}

#[derive(Template)]
#[template(path = "pages/reauth.html")]
struct ReauthPage<'a> {
    c: Chrome<'a>,
    /// Without factors: the password form.
    choices: Vec<Choice>,
    /// `totp`, `email`, `sms`, `webauthn`, `recovery`, or `password`.
    kind: &'a str,
    factor_id: &'a str,
    sent_to: Option<&'a str>,
    error: Option<&'a str>,
    retry_after: Option<i64>,
}

#[derive(Default)]
struct Shown<'a> {
    sent_to: Option<&'a str>,
    error: Option<&'a ApiError>,
}

async fn page(
    state: &AppState,
    browser: &Browser,
    session: &Session,
    chosen: Option<&str>,
    shown: Shown<'_>,
) -> Result<Response, ApiError> {
    let t = browser.lang.text();
    // A magic link proves nothing here: its page has no session to raise.
    let factors: Vec<_> = factors::active_factors(state, &session.user_id)
        .await?
        .into_iter()
        .filter(|f| f.factor_type != FactorType::MagicLink)
        .collect();
    let has_factor = factors::has_active(state, &session.user_id, None).await?;
    let current = match chosen {
        Some("recovery") => None,
        Some(id) => factors.iter().find(|f| f.id == id).or(factors.first()),
        None => factors.first(),
    };
    let (choices, kind) = if has_factor {
        (choices(&t, &factors, current), current.map_or("recovery", |f| f.factor_type.as_str()))
    } else {
        (Vec::new(), "password")
    };
    let page = ReauthPage {
        c: Chrome::new(state, browser).signed_in(),
        choices,
        kind,
        factor_id: current.map_or("", |f| f.id.as_str()),
        sent_to: shown.sent_to,
        error: shown.error.map(|e| t.get(explain(e))),
        retry_after: shown.error.and_then(|e| e.retry_after),
    };
    let status = shown.error.map_or(StatusCode::OK, |e| e.code.status());
    Ok(with_wait(render(state, browser, status, &page), shown.error))
}

#[derive(Deserialize, Default)]
struct ReauthQuery {
    factor: Option<String>,
}

async fn show(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    let query: ReauthQuery = super::query(&uri);
    let session = match require_session(&state, &browser, PATH).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    page(&state, &browser, &session, filled(&query.factor), Shown::default())
        .await
        .unwrap_or_else(|e| failure(&state, &browser, &e))
}

#[derive(Deserialize)]
struct ReauthForm {
    /// A factor's id, `recovery`, or `password`.
    factor_id: String,
    code: Option<String>,
    credential: Option<String>,
    password: Option<String>,
    sent_to: Option<String>,
}

async fn confirm(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, form) = match posted::<ReauthForm>(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let binding = webauthn::session_binding(&state, &session.id);
    let code = filled(&form.code).unwrap_or_default();
    let credential = filled(&form.credential).and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let outcome = if form.factor_id == "password" {
        let password = SecretString::from(form.password.clone().unwrap_or_default());
        reauth::confirm_password(&state, &session, password, &browser.meta).await
    } else {
        let proof = if form.factor_id == "recovery" {
            Proof::RecoveryCode(code)
        } else if let Some(credential) = &credential {
            Proof::Credential { factor_id: Some(&form.factor_id), credential, login: Some(&binding) }
        } else {
            Proof::Code { factor_id: &form.factor_id, code, login: Some(&binding) }
        };
        reauth::step_up(&state, &session, proof, &browser.meta).await.map(|_| ())
    };
    match outcome {
        Ok(()) => redirect(&state, &browser, "/account/security?done=confirmed"),
        Err(error) => {
            let chosen = (form.factor_id != "password").then_some(form.factor_id.as_str());
            let shown = Shown { sent_to: filled(&form.sent_to), error: Some(&error) };
            page(&state, &browser, &session, chosen, shown)
                .await
                .unwrap_or_else(|e| failure(&state, &browser, &e))
        }
    }
}

#[derive(Deserialize)]
struct SendForm {
    factor_id: String,
}

/// Sends a code to the chosen email or SMS factor, for this session only.
async fn send(State(state): State<AppState>, browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let (session, SendForm { factor_id }) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let chosen = Some(factor_id.as_str());
    let shown = match login::challenge_waiting(&state, &session, FactorChoice::Id(&factor_id), &browser.meta)
        .await
    {
        Ok((_, Challenged::Sent(sent))) => {
            return page(
                &state,
                &browser,
                &session,
                chosen,
                Shown { sent_to: Some(&sent.sent_to), error: None },
            )
            .await
            .unwrap_or_else(|e| failure(&state, &browser, &e));
        }
        Ok((_, Challenged::Webauthn(_))) => Shown::default(),
        Err(error) => {
            return page(&state, &browser, &session, chosen, Shown { sent_to: None, error: Some(&error) })
                .await
                .unwrap_or_else(|e| failure(&state, &browser, &e));
        }
    };
    page(&state, &browser, &session, chosen, shown).await.unwrap_or_else(|e| failure(&state, &browser, &e))
}

#[derive(Deserialize)]
struct PasskeyOptionsBody {
    factor_id: String,
}

/// Options for confirming with a passkey factor, bound to this session.
async fn passkey_options(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let PasskeyOptionsBody { factor_id } = match script::parse(&state, &browser, &headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let session = match script::session(&state, &browser).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let choice = FactorChoice::Id(&factor_id);
    let challenged = login::challenge_waiting(&state, &session, choice, &browser.meta).await;
    script::request_options(&browser.lang.text(), challenged)
}
