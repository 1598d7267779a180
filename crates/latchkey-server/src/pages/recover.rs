//! `/recover`: the page a recovery link opens (an administrator's, or a self-service
//! one after its wait). GET only shows what will happen and a button, so a mail
//! scanner that fetches the link spends nothing; the POST removes the old factors and
//! signs the browser in on the security page, to set up a new one.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::guard::Browser;
use super::login::continue_with;
use super::{Chrome, bad_form, forbidden, form, message, render};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::recovery;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/recover", get(show).post(recover))
}

#[derive(Template)]
#[template(path = "pages/recover.html")]
struct RecoverPage<'a> {
    c: Chrome<'a>,
    token: &'a str,
}

/// The page for a link that cannot be used (now).
fn refused(state: &AppState, browser: &Browser, error: &ApiError) -> Response {
    match error.code {
        ErrorCode::InvalidLink | ErrorCode::RecoveryDisabled => {
            message(state, browser, StatusCode::GONE, "link.gone_title", "recover.gone_body")
        }
        ErrorCode::RecoveryWaiting => {
            message(state, browser, StatusCode::FORBIDDEN, "recover.waiting_title", "recover.waiting_body")
        }
        _ => super::failure(state, browser, error),
    }
}

#[derive(Deserialize, Default)]
struct RecoverQuery {
    token: Option<String>,
}

async fn show(State(state): State<AppState>, browser: Browser, uri: Uri) -> Response {
    let query: RecoverQuery = super::query(&uri);
    let token = query.token.unwrap_or_default();
    match recovery::check(&state, &token).await {
        Ok(()) => {
            let page = RecoverPage { c: Chrome::new(&state, &browser), token: &token };
            render(&state, &browser, StatusCode::OK, &page)
        }
        Err(error) => refused(&state, &browser, &error),
    }
}

#[derive(Deserialize)]
struct RecoverForm {
    #[serde(default)]
    csrf: String,
    token: String,
}

async fn recover(
    State(state): State<AppState>,
    browser: Browser,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(RecoverForm { csrf, token }) = form(&headers, &body) else {
        return bad_form(&state, &browser);
    };
    if !browser.may_post(&state, &csrf) {
        return forbidden(&state, &browser);
    }
    match recovery::redeem(&state, &token, &browser.meta).await {
        Ok(step) => continue_with(&state, &browser, step, None).await,
        Err(error) => refused(&state, &browser, &error),
    }
}
