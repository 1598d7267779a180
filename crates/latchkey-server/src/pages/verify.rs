//! `/login/verify`: the second step of a sign-in. It shows the factor the person
//! prefers (else the one they used last), a switcher to their other factors and to a recovery
//! code, "remember this device", and the lockout's wait as a countdown. The login's
//! MFA token waits in a short-lived cookie; the service decides everything else.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use latchkey_core::factor::FactorType;
use latchkey_store::Factor;
use serde::Deserialize;

use super::guard::{self, Browser};
use super::i18n::Text;
use super::login::{checked_return_to, signed_in};
use super::return_to::ReturnTo;
use super::script;
use super::{Chrome, bad_form, explain, filled, forbidden, form, redirect, render, with_wait};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::login::{self, Challenged, FactorChoice, LoginProof};
use crate::service::{devices, factors};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/verify", get(show).post(verify))
        .route("/login/verify/send", post(send))
        .route("/login/verify/passkey/options", post(passkey_options))
}

/// How long the page waits before offering to send a code again.
const RESEND_AFTER_SECS: i64 = 30;

/// One way to pass the step, in the switcher.
pub struct Choice {
    /// The factor's id, or `recovery`.
    pub id: String,
    pub label: String,
    pub selected: bool,
}

/// The switcher: each of `factors`, then a recovery code; `current` (`None`: the
/// recovery code) is selected.
pub fn choices(t: &Text, factors: &[Factor], current: Option<&Factor>) -> Vec<Choice> {
    let mut choices: Vec<Choice> = factors
        .iter()
        .map(|f| Choice {
            id: f.id.clone(),
            label: factor_label(t, f),
            selected: current.is_some_and(|c| c.id == f.id),
        })
        .collect();
    let recovery =
        Choice { id: "recovery".into(), label: t.get("factor.recovery").into(), selected: current.is_none() };
    choices.push(recovery);
    choices
}

#[derive(Template)]
#[template(path = "pages/verify.html")]
struct VerifyPage<'a> {
    c: Chrome<'a>,
    return_to: &'a str,
    choices: Vec<Choice>,
    /// `totp`, `email`, `sms`, `magic_link`, `webauthn` or `recovery`.
    kind: &'a str,
    factor_id: &'a str,
    /// The masked destination, once a code or link was sent.
    sent_to: Option<&'a str>,
    challenge_id: Option<&'a str>,
    error: Option<&'a str>,
    /// The lockout's wait, in seconds, shown as a countdown.
    retry_after: Option<i64>,
    remember_days: i64,
    resend_after: i64,
}

/// A factor's name on the page: its kind, and the name the person gave it.
pub fn factor_label(t: &Text, factor: &Factor) -> String {
    let kind = t.get(kind_key(factor.factor_type));
    match &factor.friendly_name {
        Some(name) => format!("{kind} · {name}"),
        None => kind.to_owned(),
    }
}

pub fn kind_key(factor_type: FactorType) -> &'static str {
    match factor_type {
        FactorType::Totp => "factor.totp",
        FactorType::Email => "factor.email",
        FactorType::Sms => "factor.sms",
        FactorType::MagicLink => "factor.magic_link",
        FactorType::Webauthn => "factor.webauthn",
    }
}

/// What the page shows besides the factor: what was sent, and what went wrong.
#[derive(Default)]
struct Shown<'a> {
    sent_to: Option<&'a str>,
    challenge_id: Option<&'a str>,
    error: Option<&'a ApiError>,
}

/// The step's page for the login of `mfa_token`, on `chosen` (a factor id or
/// `recovery`; else the preferred factor).
async fn page(
    state: &AppState,
    browser: &Browser,
    mfa_token: &str,
    chosen: Option<&str>,
    destination: Option<&ReturnTo>,
    shown: Shown<'_>,
) -> Response {
    let factors = match login::waiting_factors(state, mfa_token).await {
        Ok(factors) if !factors.is_empty() => factors,
        Ok(_) | Err(_) => return expired(state, browser, destination),
    };
    let preferred = match chosen {
        Some(_) => None,
        None => factors::preferred_type(state, &factors[0].user_id).await.ok().flatten(),
    };
    let current = match chosen {
        Some("recovery") => None,
        Some(id) => factors.iter().find(|f| f.id == id).or(factors.first()),
        // The person's chosen primary kind, else the factor they used last (a TOTP
        // code or passkey records its use; others their confirmation).
        None => preferred
            .and_then(|kind| factors.iter().find(|f| f.factor_type == kind))
            .or_else(|| factors.iter().max_by_key(|f| f.last_used_at)),
    };
    let t = browser.lang.text();
    let choices = choices(&t, &factors, current);
    let kind = current.map_or("recovery", |f| f.factor_type.as_str());
    let status = shown.error.map_or(StatusCode::OK, |e| e.code.status());
    let page = VerifyPage {
        c: Chrome::new(state, browser),
        return_to: destination.map_or("", ReturnTo::as_str),
        choices,
        kind,
        factor_id: current.map_or("recovery", |f| f.id.as_str()),
        sent_to: shown.sent_to,
        challenge_id: shown.challenge_id,
        error: shown.error.map(|e| t.get(explain(e))),
        retry_after: shown.error.and_then(|e| e.retry_after),
        remember_days: state.config.mfa.remember_device_days,
        resend_after: RESEND_AFTER_SECS,
    };
    with_wait(render(state, browser, status, &page), shown.error)
}

/// The login is over (its token expired or was spent): back to the start.
fn expired(state: &AppState, browser: &Browser, destination: Option<&ReturnTo>) -> Response {
    let mut query = vec![("notice", "expired")];
    if let Some(destination) = destination {
        query.push(("return_to", destination.as_str()));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let mut response = redirect(state, browser, &format!("/login?{query}"));
    guard::add_cookie(&mut response, &guard::set_cookie(browser.secure, guard::LOGIN, "", 0));
    response
}

#[derive(Deserialize, Default)]
struct VerifyQuery {
    factor: Option<String>,
    return_to: Option<String>,
}

async fn show(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    let query: VerifyQuery = super::query(&uri);
    let destination = checked_return_to(&state, query.return_to.as_deref()).ok().flatten();
    let Some(mfa_token) = browser.cookie(guard::LOGIN) else {
        return expired(&state, &browser, destination.as_ref());
    };
    page(&state, &browser, mfa_token, filled(&query.factor), destination.as_ref(), Shown::default()).await
}

#[derive(Deserialize)]
struct SendForm {
    #[serde(default)]
    csrf: String,
    factor_id: String,
    return_to: Option<String>,
}

/// Sends the chosen factor's code or link (again: the old one stops working).
async fn send(State(state): State<AppState>, browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let Some(SendForm { csrf, factor_id, return_to }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    let destination = checked_return_to(&state, return_to.as_deref()).ok().flatten();
    let Some(mfa_token) = browser.cookie(guard::LOGIN) else {
        return expired(&state, &browser, destination.as_ref());
    };
    let chosen = Some(factor_id.as_str());
    match login::challenge(&state, mfa_token, FactorChoice::Id(&factor_id), &browser.meta).await {
        Ok((_, Challenged::Sent(sent))) => {
            let shown =
                Shown { sent_to: Some(&sent.sent_to), challenge_id: Some(&sent.challenge_id), error: None };
            page(&state, &browser, mfa_token, chosen, destination.as_ref(), shown).await
        }
        Ok((_, Challenged::Webauthn(_))) => {
            page(&state, &browser, mfa_token, chosen, destination.as_ref(), Shown::default()).await
        }
        Err(error) if error.code == ErrorCode::InvalidMfaToken => {
            expired(&state, &browser, destination.as_ref())
        }
        Err(error) => {
            let shown = Shown { error: Some(&error), ..Shown::default() };
            page(&state, &browser, mfa_token, chosen, destination.as_ref(), shown).await
        }
    }
}

#[derive(Deserialize)]
struct VerifyForm {
    #[serde(default)]
    csrf: String,
    /// The factor's id, or `recovery`.
    factor_id: String,
    code: Option<String>,
    /// A magic link's challenge, once its recipient confirmed it.
    challenge_id: Option<String>,
    /// A passkey's answer, as JSON text.
    credential: Option<String>,
    sent_to: Option<String>,
    remember: Option<String>,
    return_to: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(form) = form::<VerifyForm>(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &form.csrf) {
        return forbidden(&state, &browser);
    }
    let destination = checked_return_to(&state, form.return_to.as_deref()).ok().flatten();
    let Some(mfa_token) = browser.cookie(guard::LOGIN) else {
        return expired(&state, &browser, destination.as_ref());
    };
    let code = filled(&form.code).unwrap_or_default();
    let credential = filled(&form.credential).and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let proof = if form.factor_id == "recovery" {
        LoginProof::RecoveryCode(code)
    } else if let Some(credential) = &credential {
        LoginProof::Credential { factor_id: &form.factor_id, credential }
    } else if let Some(challenge_id) = filled(&form.challenge_id).filter(|_| code.is_empty()) {
        LoginProof::Link { challenge_id }
    } else {
        LoginProof::Code { factor: FactorChoice::Id(&form.factor_id), code }
    };
    let tokens = match login::complete(&state, mfa_token, proof, &browser.meta).await {
        Ok(tokens) => tokens,
        Err(error) if error.code == ErrorCode::InvalidMfaToken => {
            return expired(&state, &browser, destination.as_ref());
        }
        Err(error) => {
            let shown = Shown {
                sent_to: filled(&form.sent_to),
                challenge_id: filled(&form.challenge_id),
                error: Some(&error),
            };
            let chosen = Some(form.factor_id.as_str());
            return page(&state, &browser, mfa_token, chosen, destination.as_ref(), shown).await;
        }
    };
    let mut response = signed_in(&state, &browser, &tokens.session_id, destination.as_ref()).await;
    if form.remember.is_some() {
        match devices::remember(&state, &tokens.user_id, &browser.meta).await {
            Ok(device) => {
                let cookie =
                    guard::set_cookie(browser.secure, guard::DEVICE, &device.token, device.max_age_secs);
                guard::add_cookie(&mut response, &cookie);
            }
            Err(error) => error.log_cause(),
        }
    }
    response
}

#[derive(Deserialize)]
struct PasskeyOptionsBody {
    factor_id: String,
}

/// Options for the second step with a passkey factor, bound to this login.
async fn passkey_options(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = browser.lang.text();
    let PasskeyOptionsBody { factor_id } = match script::parse(&state, &browser, &headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(mfa_token) = browser.cookie(guard::LOGIN) else {
        let expired = t.get("errors.login_expired");
        return script::refusal(StatusCode::UNAUTHORIZED, expired, Some("/login?notice=expired"));
    };
    let challenged = login::challenge(&state, mfa_token, FactorChoice::Id(&factor_id), &browser.meta).await;
    script::request_options(&t, challenged)
}
