//! `/signup`: creating an account on the hosted pages, when `signup_enabled`. The
//! answer is the API's: the same for an address that already has an account, so the
//! page tells nobody who is registered; the person then signs in as usual.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use secrecy::SecretString;
use serde::Deserialize;

use super::guard::Browser;
use super::login::checked_return_to;
use super::return_to::ReturnTo;
use super::{Chrome, bad_form, explain, forbidden, form, message, redirect, render};
use crate::service::accounts;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/signup", get(show).post(sign_up))
}

#[derive(Template)]
#[template(path = "pages/signup.html")]
struct SignupPage<'a> {
    c: Chrome<'a>,
    email: &'a str,
    return_to: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct SignupQuery {
    return_to: Option<String>,
}

fn closed(state: &AppState, browser: &Browser) -> Response {
    message(state, browser, StatusCode::NOT_FOUND, "signup.closed_title", "signup.closed_body")
}

async fn show(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    if !state.config.signup_enabled {
        return closed(&state, &browser);
    }
    let query: SignupQuery = super::query(&uri);
    let return_to = checked_return_to(&state, query.return_to.as_deref()).ok().flatten();
    let return_to = return_to.as_ref().map_or("", ReturnTo::as_str);
    let page = SignupPage { c: Chrome::new(&state, &browser), email: "", return_to, error: None };
    render(&state, &browser, StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct SignupForm {
    #[serde(default)]
    csrf: String,
    email: String,
    password: String,
    return_to: Option<String>,
}

async fn sign_up(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(SignupForm { csrf, email, password, return_to }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    if !state.config.signup_enabled {
        return closed(&state, &browser);
    }
    let return_to = checked_return_to(&state, return_to.as_deref()).ok().flatten();
    match accounts::signup(&state, &email, SecretString::from(password)).await {
        Ok(()) => {
            let mut query = vec![("notice", "signed_up")];
            if let Some(destination) = &return_to {
                query.push(("return_to", destination.as_str()));
            }
            let query = serde_urlencoded::to_string(&query).unwrap_or_default();
            redirect(&state, &browser, &format!("/login?{query}"))
        }
        Err(error) => {
            let t = browser.lang.text();
            let page = SignupPage {
                c: Chrome::new(&state, &browser),
                email: &email,
                return_to: return_to.as_ref().map_or("", ReturnTo::as_str),
                error: Some(t.get(explain(&error))),
            };
            render(&state, &browser, error.code.status(), &page)
        }
    }
}
