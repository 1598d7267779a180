//! `/account/security`: the signed-in person's factors (add an authenticator app with
//! its QR code, an email address or phone number, a passkey; rename; remove), their
//! recovery codes (how many are left; a new set, shown once), remembered devices and
//! sessions, each revocable. Changes to factors and codes need a recent second factor
//! (`reauth::require_recent_authentication`); without one the person is sent to
//! `/account/reauth` first.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use latchkey_core::factor::FactorType;
use latchkey_store::Session;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::guard::Browser;
use super::login::to_sign_in;
use super::script;
use super::verify::factor_label;
use super::{Chrome, CsrfOnly, bad_form, explain, failure, filled, forbidden, form, redirect, render};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::factors::{Enrolment, RecoveryCodes};
use crate::service::reauth::{self, Authorized};
use crate::service::{accounts, challenges, devices, enrolment, factors, recovery_codes, sessions};
use crate::state::AppState;

const HOME: &str = "/account/security";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(HOME, get(show))
        .route("/account/factors/totp", post(add_totp))
        .route("/account/factors/contact", post(add_contact))
        .route("/account/factors/confirm", post(confirm))
        .route("/account/factors/rename", post(rename))
        .route("/account/factors/remove", post(remove))
        .route("/account/passkeys/options", post(passkey_options))
        .route("/account/recovery-codes", post(regenerate_codes))
        .route("/account/devices/forget", post(forget_device))
        .route("/account/sessions/end", post(end_session))
}

/// One line of a list on the page.
struct Row {
    id: String,
    label: String,
    detail: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "pages/security.html")]
struct SecurityPage<'a> {
    c: Chrome<'a>,
    email: &'a str,
    factors: Vec<Row>,
    /// Unspent recovery codes; `None` without a factor (there are none then).
    recovery_left: Option<i64>,
    devices: Vec<Row>,
    sessions: Vec<Row>,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    /// What was just done, as a message key under `done.`.
    done: Option<String>,
}

/// The session a page was opened from, or the answer that sends the browser to sign in.
pub async fn require_session(
    state: &AppState,
    browser: &Browser,
    back_to: &str,
) -> Result<Session, Response> {
    match browser.session(state).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(to_sign_in(state, browser, back_to)),
        Err(error) => Err(failure(state, browser, &error)),
    }
}

/// A signed-in form post: its session and fields, once the CSRF token and origin held.
pub async fn posted<T: DeserializeOwned>(
    state: &AppState,
    browser: &Browser,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Session, T), Response> {
    let (Some(CsrfOnly { csrf }), Some(fields)) = (form::<CsrfOnly>(headers, body), form::<T>(headers, body))
    else {
        return Err(bad_form(state, browser));
    };
    if !browser.may_post(state, &csrf) {
        return Err(forbidden(state, browser));
    }
    let session = require_session(state, browser, HOME).await?;
    Ok((session, fields))
}

/// Leave for a sensitive change, or the way to `/account/reauth`.
async fn authorize(state: &AppState, browser: &Browser, session: &Session) -> Result<Authorized, Response> {
    match reauth::require_recent_authentication(state, session, None).await {
        Ok(by) => Ok(by),
        Err(error) if error.code == ErrorCode::ReauthenticationRequired => {
            Err(redirect(state, browser, "/account/reauth"))
        }
        Err(error) => Err(failure(state, browser, &error)),
    }
}

fn when(time: i64) -> String {
    let text = crate::clock::rfc3339(time);
    text.replacen('T', " ", 1).trim_end_matches('Z').to_owned() + " UTC"
}

async fn security_page(
    state: &AppState,
    browser: &Browser,
    session: &Session,
    notice: Option<&str>,
    error: Option<&ApiError>,
) -> Result<Response, ApiError> {
    let t = browser.lang.text();
    let user = accounts::session_user(state, &session.user_id).await?;
    let factors = factors::active_factors(state, &user.id).await?;
    let recovery_left =
        if factors.is_empty() { None } else { Some(recovery_codes::remaining(state, &user.id).await?) };
    let factors = factors
        .iter()
        .map(|f| Row {
            id: f.id.clone(),
            label: factor_label(&t, f),
            detail: t.with("account.added_on", "when", &when(f.created_at)),
            current: false,
        })
        .collect();
    let devices = devices::list(state, &user.id)
        .await?
        .into_iter()
        .map(|d| Row {
            id: d.id,
            label: d.user_agent.unwrap_or_else(|| t.get("account.unknown_browser").to_owned()),
            detail: t.with("account.remembered_until", "when", &when(d.expires_at)),
            current: false,
        })
        .collect();
    let sessions = sessions::list(state, &user.id)
        .await?
        .into_iter()
        .map(|s| Row {
            current: s.id == session.id,
            label: t.with("account.signed_in_on", "when", &when(s.created_at)),
            detail: s.amr.join(" + "),
            id: s.id,
        })
        .collect();
    let page = SecurityPage {
        c: Chrome::new(state, browser).signed_in(),
        email: &user.email,
        factors,
        recovery_left,
        devices,
        sessions,
        notice,
        error: error.map(|e| t.get(explain(e))),
    };
    let status = error.map_or(StatusCode::OK, |e| e.code.status());
    Ok(render(state, browser, status, &page))
}

async fn show(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    let query: ShowQuery = super::query(&uri);
    let session = match require_session(&state, &browser, HOME).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let t = browser.lang.text();
    let notice = query.done.as_deref().and_then(|done| done_key(done)).map(|key| t.get(key));
    security_page(&state, &browser, &session, notice, None)
        .await
        .unwrap_or_else(|e| failure(&state, &browser, &e))
}

/// The notice for `?done=`, among the known ones only.
fn done_key(done: &str) -> Option<&'static str> {
    Some(match done {
        "factor_added" => "done.factor_added",
        "factor_removed" => "done.factor_removed",
        "factor_renamed" => "done.factor_renamed",
        "device_forgotten" => "done.device_forgotten",
        "session_ended" => "done.session_ended",
        "confirmed" => "done.confirmed",
        _ => return None,
    })
}

/// Back to the settings with a notice.
fn done(state: &AppState, browser: &Browser, what: &str) -> Response {
    redirect(state, browser, &format!("{HOME}?done={what}"))
}

/// The settings page again with `error`, or the error page when even that fails.
async fn refused(state: &AppState, browser: &Browser, session: &Session, error: &ApiError) -> Response {
    security_page(state, browser, session, None, Some(error))
        .await
        .unwrap_or_else(|e| failure(state, browser, &e))
}

#[derive(Template)]
#[template(path = "pages/setup.html")]
struct SetupPage<'a> {
    c: Chrome<'a>,
    factor_id: &'a str,
    /// The QR code (a PNG as a `data:` URL) and the secret, for an authenticator app.
    qr: Option<String>,
    secret: Option<&'a str>,
    /// Where a code was sent, for an email address or phone number.
    sent_to: Option<&'a str>,
    error: Option<&'a str>,
}

fn setup_page(state: &AppState, browser: &Browser, page: SetupPage<'_>, status: StatusCode) -> Response {
    render(state, browser, status, &page)
}

#[derive(Deserialize)]
struct AddTotp {
    name: Option<String>,
}

async fn add_totp(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, AddTotp { name }) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let by = match authorize(&state, &browser, &session).await {
        Ok(by) => by,
        Err(response) => return response,
    };
    let enrolled = async {
        let user = accounts::session_user(&state, &session.user_id).await?;
        let name = filled(&name).map(str::to_owned);
        enrolment::enroll_totp(&state, &by, &user, name, &browser.meta).await
    };
    match enrolled.await {
        Ok(setup) => {
            let page = SetupPage {
                c: Chrome::new(&state, &browser).signed_in(),
                factor_id: &setup.factor.id,
                qr: Some(setup.qr_png.to_string()),
                secret: Some(setup.secret.as_str()),
                sent_to: None,
                error: None,
            };
            setup_page(&state, &browser, page, StatusCode::OK)
        }
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct AddContact {
    /// `email` or `sms`.
    kind: String,
    destination: String,
    name: Option<String>,
}

async fn add_contact(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, AddContact { kind, destination, name }) =
        match posted(&state, &browser, &headers, &body).await {
            Ok(posted) => posted,
            Err(response) => return response,
        };
    let factor_type = match kind.as_str() {
        "email" => FactorType::Email,
        "sms" => FactorType::Sms,
        _ => return bad_form(&state, &browser),
    };
    let by = match authorize(&state, &browser, &session).await {
        Ok(by) => by,
        Err(response) => return response,
    };
    let enrolled = async {
        let user = accounts::session_user(&state, &session.user_id).await?;
        let (email, phone) = match factor_type {
            FactorType::Sms => (None, Some(destination.as_str())),
            _ => (Some(destination.as_str()), None),
        };
        let destination = challenges::contact_destination(&state, &user, factor_type, email, phone)?;
        let name = filled(&name).map(str::to_owned);
        enrolment::enroll_contact(&state, &by, &user, factor_type, destination, name, &browser.meta).await
    };
    match enrolled.await {
        Ok((factor, sent)) => {
            let page = SetupPage {
                c: Chrome::new(&state, &browser).signed_in(),
                factor_id: &factor.id,
                qr: None,
                secret: None,
                sent_to: Some(&sent.sent_to),
                error: None,
            };
            setup_page(&state, &browser, page, StatusCode::OK)
        }
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Template)]
#[template(path = "pages/codes.html")]
struct CodesPage<'a> {
    c: Chrome<'a>,
    codes: Vec<String>,
    /// The codes as one text, for the download.
    text: String,
}

fn codes_page(state: &AppState, browser: &Browser, codes: Vec<String>) -> Response {
    let text = codes.join("\n") + "\n";
    let page = CodesPage { c: Chrome::new(state, browser).signed_in(), codes, text };
    render(state, browser, StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct Confirm {
    factor_id: String,
    code: Option<String>,
    /// A passkey's registration answer, as JSON text.
    credential: Option<String>,
}

/// Confirms a factor being added: with a code from it, or a passkey's answer. The
/// first factor comes with recovery codes, shown once.
async fn confirm(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, Confirm { factor_id, code, credential }) =
        match posted(&state, &browser, &headers, &body).await {
            Ok(posted) => posted,
            Err(response) => return response,
        };
    let credential = filled(&credential).and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let proof = match &credential {
        Some(credential) => Enrolment::Credential(credential),
        None => Enrolment::Code(filled(&code).unwrap_or_default()),
    };
    let codes = RecoveryCodes::IssueWithFirstFactor;
    match factors::confirm(&state, &session, &factor_id, proof, codes, &browser.meta).await {
        Ok((_, Some(codes))) => codes_page(&state, &browser, codes),
        Ok((_, None)) => done(&state, &browser, "factor_added"),
        Err(error) if credential.is_none() && error.code == ErrorCode::InvalidCode => {
            let t = browser.lang.text();
            let page = SetupPage {
                c: Chrome::new(&state, &browser).signed_in(),
                factor_id: &factor_id,
                qr: None,
                secret: None,
                sent_to: None,
                error: Some(t.get(explain(&error))),
            };
            setup_page(&state, &browser, page, error.code.status())
        }
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct Rename {
    factor_id: String,
    name: String,
}

async fn rename(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, Rename { factor_id, name }) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match factors::rename(&state, &session.user_id, &factor_id, &name).await {
        Ok(_) => done(&state, &browser, "factor_renamed"),
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct FactorId {
    factor_id: String,
}

async fn remove(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, FactorId { factor_id }) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let by = match authorize(&state, &browser, &session).await {
        Ok(by) => by,
        Err(response) => return response,
    };
    match factors::remove(&state, &by, &factor_id, &browser.meta).await {
        Ok(()) => done(&state, &browser, "factor_removed"),
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct Nothing {}

async fn regenerate_codes(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, Nothing {}) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let by = match authorize(&state, &browser, &session).await {
        Ok(by) => by,
        Err(response) => return response,
    };
    match recovery_codes::regenerate(&state, &by, &browser.meta).await {
        Ok(codes) => codes_page(&state, &browser, codes),
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct DeviceId {
    device_id: String,
}

async fn forget_device(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, DeviceId { device_id }) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match devices::forget(&state, &session.user_id, Some(&device_id), &browser.meta).await {
        Ok(_) => done(&state, &browser, "device_forgotten"),
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct SessionId {
    session_id: String,
}

/// Ends one of the person's sessions; ending this one signs the browser out.
async fn end_session(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, SessionId { session_id }) = match posted(&state, &browser, &headers, &body).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match sessions::end(&state, &session.user_id, &session_id, &browser.meta).await {
        Ok(()) if session_id == session.id => redirect(&state, &browser, "/login?notice=signed_out"),
        Ok(()) => done(&state, &browser, "session_ended"),
        Err(error) => refused(&state, &browser, &session, &error).await,
    }
}

#[derive(Deserialize)]
struct PasskeyOptionsBody {
    name: Option<String>,
}

/// Starts adding a passkey: a pending factor and the options for
/// `navigator.credentials.create`; the answer goes to `/account/factors/confirm`.
async fn passkey_options(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t = browser.lang.text();
    let PasskeyOptionsBody { name } = match script::parse(&state, &browser, &headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let session = match script::session(&state, &browser).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let by = match reauth::require_recent_authentication(&state, &session, None).await {
        Ok(by) => by,
        Err(error) if error.code == ErrorCode::ReauthenticationRequired => {
            return script::refusal(StatusCode::FORBIDDEN, t.get("reauth.needed"), Some("/account/reauth"));
        }
        Err(error) => return script::refused(&t, &error),
    };
    let started = async {
        let user = accounts::session_user(&state, &session.user_id).await?;
        enrolment::enroll_webauthn(&state, &by, &user, filled(&name).map(str::to_owned), &browser.meta).await
    };
    match started.await {
        Ok((factor, options)) => {
            Json(json!({ "factor_id": factor.id, "creation_options": options })).into_response()
        }
        Err(error) => script::refused(&t, &error),
    }
}
