//! Magic links, as a second factor and as the first: GET shows a page and consumes
//! nothing, the POST from the page confirms once, links expire, the link's host comes
//! from the configuration, and sign-in answers do not reveal accounts.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HOST, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{TestApp, access};
use crate::mail;

on_both_backends!(magic_link_second_factor, magic_link_sign_in);
with_each_backend!(magic_link_sign_in_with_a_redirect, cookies_are_secure_when_the_public_url_is_https);

/// The page a link opens: status, body, and the CSRF cookie it set with the token its
/// form carries.
struct Page {
    status: StatusCode,
    html: String,
    csrf: Option<Csrf>,
}

/// The pages' CSRF cookie and the token made from it.
struct Csrf {
    /// `name=value` of the cookie.
    cookie: String,
    token: String,
}

async fn open(app: &TestApp, link: &str) -> Page {
    // Links point at the configured public URL; the test server listens elsewhere.
    let public = app.state.config.public_base();
    assert!(link.starts_with(public), "{link}");
    let response = app.client.get(link.replacen(public, &app.base, 1)).send().await.unwrap();
    let status = response.status();
    assert!(response.headers().contains_key("content-type"), "{link}: {status} {:?}", response.headers());
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(response.headers()["referrer-policy"], "same-origin");
    let cookie = response.headers().get(SET_COOKIE).map(|c| c.to_str().unwrap().to_owned());
    let https = app.state.config.public_url.starts_with("https://");
    // Every page sets the CSRF cookie for a browser without one.
    let cookie = cookie.unwrap_or_else(|| panic!("the page sets its CSRF cookie: {link}"));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert_eq!(cookie.contains("; Secure"), https, "Secure exactly when served over https: {cookie}");
    assert_eq!(cookie.starts_with("__Host-latchkey_csrf="), https, "the __Host- prefix on https: {cookie}");
    let html = response.text().await.unwrap();
    let csrf = (status == StatusCode::OK).then(|| {
        let token = html.split("name=\"csrf\" value=\"").nth(1).expect("the form's token").split('"').next();
        Csrf { cookie: cookie.split(';').next().unwrap().to_owned(), token: token.unwrap().to_owned() }
    });
    Page { status, html, csrf }
}

/// The newest magic link among the first `count` messages to `to`.
async fn latest_link(outbox: &std::path::Path, to: &str, count: usize) -> String {
    mail::wait_for(outbox, to, count)
        .await
        .into_iter()
        .rev()
        .find(|m| m.text.contains("/magic-link?token="))
        .expect("a message with a link")
        .link()
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).unwrap().to_owned()
}

async fn confirm(app: &TestApp, token: &str, csrf: &Csrf) -> reqwest::Response {
    confirm_with(app, token, Some(&csrf.cookie), &csrf.token).await
}

/// Posts the confirm form with `cookie` (`name=value`) and `csrf` in the form.
async fn confirm_with(app: &TestApp, token: &str, cookie: Option<&str>, csrf: &str) -> reqwest::Response {
    let mut request = app.client.post(app.url("/magic-link")).form(&[("token", token), ("csrf", csrf)]);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

async fn magic_link_second_factor(app: TestApp) {
    let tokens = app.user("maya@example.com").await;
    let outbox = app.outbox();
    let created = app.post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "magic_link" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let factor_id = created.body["id"].as_str().unwrap().to_owned();
    let code = mail::nth(&outbox, "maya@example.com", 1).await.code();
    let confirmed = app.confirm(&access(&tokens), &factor_id, &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);

    app.advance(61);
    let mfa_token = app.mfa_token("maya@example.com").await;
    // A spoofed Host header does not reach the link.
    let sent = app
        .send(
            app.client
                .post(app.url("/v1/auth/mfa/challenge"))
                .header(HOST, "evil.example")
                .json(&json!({ "mfa_token": mfa_token, "factor_id": factor_id })),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["expires_in"], 900);
    let challenge_id = sent.body["challenge_id"].as_str().unwrap().to_owned();
    let link = latest_link(&outbox, "maya@example.com", 3).await;
    assert!(link.starts_with(&format!("{}/magic-link?token=lkl_", app.state.config.public_base())), "{link}");
    assert!(mail::messages(&outbox).iter().all(|m| !m.text.contains("evil.example")));

    // GET only shows the page, as often as it is opened.
    let first = open(&app, &link).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.html.contains("Confirm your sign-in") && first.html.contains("<form method=\"post\""));
    let page = open(&app, &link).await;
    assert_eq!(page.status, StatusCode::OK, "a second look still works");
    let pending = app.mfa_verify(json!({ "mfa_token": mfa_token, "challenge_id": challenge_id })).await;
    assert_eq!(pending.code(), "challenge_pending");

    // The POST needs the page's CSRF token; then it confirms once.
    let token = token_of(&link);
    let csrf = page.csrf.unwrap();
    assert_eq!(
        confirm_with(&app, &token, Some(&csrf.cookie), "forged").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        confirm_with(&app, &token, None, &csrf.token).await.status(),
        StatusCode::FORBIDDEN,
        "no cookie"
    );
    let cookie_as_token = csrf.cookie.split_once('=').unwrap().1;
    let refused = confirm_with(&app, &token, Some(&csrf.cookie), cookie_as_token).await;
    assert_eq!(
        refused.status(),
        StatusCode::FORBIDDEN,
        "the token is the cookie's signature, not the cookie"
    );
    let done = confirm(&app, &token, &csrf).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Confirmed"));
    assert_eq!(confirm(&app, &token, &csrf).await.status(), StatusCode::GONE, "a second POST is refused");
    assert_eq!(open(&app, &link).await.status, StatusCode::GONE);

    let other_login = app.mfa_token("maya@example.com").await;
    let stolen = app.mfa_verify(json!({ "mfa_token": other_login, "challenge_id": challenge_id })).await;
    assert_eq!(stolen.code(), "invalid_challenge", "only the login that asked may claim it");
    let session = app.mfa_verify(json!({ "mfa_token": mfa_token, "challenge_id": challenge_id })).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.body["aal"], "aal2");
    let again = app.mfa_verify(json!({ "mfa_token": other_login, "challenge_id": challenge_id })).await;
    assert_eq!(again.code(), "invalid_challenge");

    // Links expire after 15 minutes.
    app.advance(61);
    let mfa_token = app.mfa_token("maya@example.com").await;
    let sent =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": mfa_token, "factor_id": factor_id })).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let link = latest_link(&outbox, "maya@example.com", 4).await;
    let page = open(&app, &link).await;
    assert_eq!(page.status, StatusCode::OK);
    app.advance(901);
    assert_eq!(open(&app, &link).await.status, StatusCode::GONE);
    assert_eq!(confirm(&app, &token_of(&link), &page.csrf.unwrap()).await.status(), StatusCode::GONE);
}

async fn magic_link_sign_in(app: TestApp) {
    // Without a redirect URL, sign-in links are off.
    let off = app.post("/v1/auth/magic-link", json!({ "email": "x@example.com" })).await;
    assert_eq!(off.code(), "magic_link_disabled");
}

async fn magic_link_sign_in_with_a_redirect(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.magic_link.redirect_url = Some("https://app.example/signed-in".into());
    })
    .await;
    app.signup("lena@example.com").await;
    let known = app.post("/v1/auth/magic-link", json!({ "email": "lena@example.com" })).await;
    let unknown = app.post("/v1/auth/magic-link", json!({ "email": "nobody@example.com" })).await;
    assert_eq!(known.status, StatusCode::ACCEPTED);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body), "no account is revealed");
    let throttled = app.post("/v1/auth/magic-link", json!({ "email": "nobody@example.com" })).await;
    assert_eq!(throttled.code(), "rate_limited", "unknown addresses are throttled alike");

    let link = mail::nth(&app.outbox(), "lena@example.com", 1).await.link();
    let page = open(&app, &link).await;
    assert!(page.html.contains("Sign in"));
    let response = confirm(&app, &token_of(&link), &page.csrf.unwrap()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let fragment = location.strip_prefix("https://app.example/signed-in#").unwrap();
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(fragment).unwrap();
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("aal").as_deref(), Some("aal1"));
    let me = app.get_bearer("/v1/me", &field("access_token").unwrap()).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "lena@example.com");

    // With a second factor, the link only yields an mfa_token.
    let tokens = app.login("lena@example.com").await;
    app.enroll_confirmed(&access(&tokens)).await;
    app.advance(61);
    app.post("/v1/auth/magic-link", json!({ "email": "lena@example.com" })).await;
    let link = latest_link(&app.outbox(), "lena@example.com", 3).await;
    let page = open(&app, &link).await;
    let response = confirm(&app, &token_of(&link), &page.csrf.unwrap()).await;
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.contains("mfa_required=true") && location.contains("mfa_token=lkm_"), "{location}");
    assert!(!location.contains("access_token"), "{location}");
}

/// DESIGN rule 14: behind an https public URL every cookie a page sets carries
/// `Secure` and the `__Host-` prefix (checked by `open`).
async fn cookies_are_secure_when_the_public_url_is_https(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.public_url = "https://login.example.com".into();
        c.magic_link.redirect_url = Some("https://app.example/signed-in".into());
    })
    .await;
    app.signup("sid@example.com").await;
    app.post("/v1/auth/magic-link", json!({ "email": "sid@example.com" })).await;
    let link = mail::nth(&app.outbox(), "sid@example.com", 1).await.link();
    assert!(link.starts_with("https://login.example.com/magic-link?token="), "{link}");
    let page = open(&app, &link).await;
    assert_eq!(page.status, StatusCode::OK);
    let response = confirm(&app, &token_of(&link), &page.csrf.unwrap()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    for cookie in response.headers().get_all(SET_COOKIE) {
        assert!(cookie.to_str().unwrap().contains("; Secure"), "{cookie:?}");
    }
}
