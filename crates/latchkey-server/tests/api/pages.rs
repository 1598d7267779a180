//! The hosted pages over HTTP, as a browser sends them (cookies kept by hand, forms
//! url-encoded): the exchange code an app gets, the CSRF and origin checks, the
//! return_to check, the pages' headers, and the second step under the same lockout as
//! the API. `scripts/check-browser` runs the same pages in Chromium.

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, access};
use crate::mail;

on_both_backends_raw!(
    an_app_gets_a_session_through_a_one_time_code,
    posts_need_the_pages_token_and_origin,
    only_allowed_return_urls_are_followed,
    every_page_carries_a_strict_policy_and_no_inline_script,
    the_second_step_is_locked_out_as_the_api_is,
    a_forged_or_ended_session_cookie_opens_nothing,
    the_settings_add_rename_and_revoke,
    a_fault_shows_a_page_without_its_cause,
    a_forgotten_password_is_reset_on_the_pages_with_the_second_factor,
    a_recovery_link_signs_the_browser_in_to_set_up_a_new_factor,
);

const APP: &str = "https://app.example.com/callback";

/// The exchange code in a redirect to the app.
fn code_in(location: &str) -> String {
    url::Url::parse(location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
}

async fn app(db: latchkey_store::testing::TestDatabase) -> TestApp {
    TestApp::spawn_on(db, |config| config.web.allowed_return_urls = vec![APP.to_owned()]).await
}

/// A browser's cookie jar and the pages' CSRF token.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, String>,
    csrf: String,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request.header("cookie", self.cookie_header()).send().await.unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let (status, headers) = (response.status(), response.headers().clone());
        let html = response.text().await.unwrap();
        if let Some(token) = html.split("name=\"csrf\" value=\"").nth(1) {
            self.csrf = token.split('"').next().unwrap().to_owned();
        }
        Page { status, headers, html }
    }

    async fn get(&mut self, app: &TestApp, path: &str) -> Page {
        self.send(app.client.get(app.url(path))).await
    }

    async fn post(&mut self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        let csrf = self.csrf.clone();
        form[0] = ("csrf", &csrf);
        let request = app.client.post(app.url(path)).form(&form);
        self.send(request).await
    }

    /// Opens `/login` (for its token) and signs in with the password.
    async fn sign_in(&mut self, app: &TestApp, email: &str, return_to: &str) -> Page {
        self.get(app, "/login").await;
        self.post(app, "/login", &[("email", email), ("password", PASSWORD), ("return_to", return_to)]).await
    }
}

async fn an_app_gets_a_session_through_a_one_time_code(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let mut browser = Browser::default();
    let signed_in = browser.sign_in(&app, "ada@example.com", &format!("{APP}?state=xyz")).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.html);
    let location = url::Url::parse(signed_in.location()).unwrap();
    assert_eq!(&location[..url::Position::AfterPath], APP);
    let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "xyz", "the app's own query is kept");
    let session_cookie = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("latchkey_session="))
        .unwrap();
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );

    let code = &query["code"];
    let tokens = app.post("/v1/auth/exchange", json!({ "code": code })).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let me = app.get_bearer("/v1/me", &access(&tokens.body)).await;
    assert_eq!(me.body["email"], "ada@example.com");
    let again = app.post("/v1/auth/exchange", json!({ "code": code })).await;
    assert_eq!((again.status, again.code()), (StatusCode::UNAUTHORIZED, "invalid_exchange_code"));

    // A code waits a minute at most.
    let late = browser.sign_in(&app, "ada@example.com", APP).await;
    let late_code = code_in(late.location());
    app.advance(61);
    let expired = app.post("/v1/auth/exchange", json!({ "code": late_code })).await;
    assert_eq!(expired.code(), "invalid_exchange_code");

    // A code of a browser session that signed out opens nothing.
    let before = browser.sign_in(&app, "ada@example.com", APP).await;
    let code = code_in(before.location());
    browser.get(&app, "/account/security").await;
    let out = browser.post(&app, "/logout", &[]).await;
    assert_eq!(out.location(), "/login?notice=signed_out");
    let refused = app.post("/v1/auth/exchange", json!({ "code": code })).await;
    assert_eq!(refused.code(), "invalid_exchange_code");
    let malformed = app.post("/v1/auth/exchange", json!({ "code": "x".repeat(500) })).await;
    assert_eq!(malformed.code(), "invalid_exchange_code");
}

async fn posts_need_the_pages_token_and_origin(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let mut browser = Browser::default();
    browser.get(&app, "/login").await;
    let fields = [("email", "ada@example.com"), ("password", PASSWORD)];
    let no_token = browser.send(app.client.post(app.url("/login")).form(&fields)).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let mut stolen = Browser { csrf: browser.csrf.clone(), ..Browser::default() };
    let without_cookie = stolen.post(&app, "/login", &fields).await;
    assert_eq!(without_cookie.status, StatusCode::FORBIDDEN, "the token is worth nothing without its cookie");
    for (name, value) in
        [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site"), ("origin", "null")]
    {
        let mut form = vec![("csrf", browser.csrf.as_str())];
        form.extend_from_slice(&fields);
        let request = app.client.post(app.url("/login")).header(name, value).form(&form);
        assert_eq!(browser.send(request).await.status, StatusCode::FORBIDDEN, "{name}: {value}");
    }
    let same_origin = app.client.post(app.url("/login")).header("sec-fetch-site", "same-origin").form(&[
        ("csrf", browser.csrf.as_str()),
        ("email", "ada@example.com"),
        ("password", PASSWORD),
    ]);
    let page = browser.send(same_origin).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/account/security"));
    // The passkey options the script asks for take the token in a header.
    let options = app.client.post(app.url("/login/passkey/options")).json(&json!({}));
    assert_eq!(browser.send(options).await.status, StatusCode::FORBIDDEN);
    let options = app
        .client
        .post(app.url("/login/passkey/options"))
        .header("x-csrf-token", &browser.csrf)
        .json(&json!({}));
    assert_eq!(browser.send(options).await.status, StatusCode::OK);
}

async fn only_allowed_return_urls_are_followed(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let mut browser = Browser::default();
    for refused in
        ["https://evil.example/", "https://app.example.com/other", "//evil.example/x", "javascript:alert(1)"]
    {
        let query = serde_urlencoded::to_string([("return_to", refused)]).unwrap();
        let page = browser.get(&app, &format!("/login?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{refused}");
        assert!(page.html.contains("This sign-in link is not allowed"));
        let posted = browser.sign_in(&app, "ada@example.com", refused).await;
        assert_eq!(posted.status, StatusCode::BAD_REQUEST, "the form's return_to is checked too: {refused}");
    }
    let local = browser.sign_in(&app, "ada@example.com", "/account/reauth").await;
    assert_eq!(local.location(), "/account/reauth");
}

async fn every_page_carries_a_strict_policy_and_no_inline_script(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let mut browser = Browser::default();
    let mut pages = vec![browser.get(&app, "/login").await, browser.get(&app, "/logout").await];
    browser.sign_in(&app, "ada@example.com", "").await;
    pages.push(browser.get(&app, "/account/security").await);
    pages.push(browser.post(&app, "/account/factors/totp", &[("name", "phone")]).await);
    pages.push(browser.get(&app, "/magic-link?token=nothing").await);
    let lost = browser.send(app.client.get(app.url("/no/such/page")).header("accept", "text/html")).await;
    assert_eq!(lost.status, StatusCode::NOT_FOUND);
    assert!(lost.html.contains("This page does not exist"), "a browser gets a page: {}", lost.html);
    pages.push(lost);
    let api = app.client.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "not_found",
        "an API client gets JSON"
    );
    for page in &pages {
        let policy = page.headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self' https://app.example.com",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["referrer-policy"], "same-origin");
        assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
        for inline in ["<script>", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!page.html.contains(inline), "{inline} in {}", page.html);
        }
        assert_eq!(page.html.matches("<script").count(), 1, "the one script, by its address");
    }
    let setup = &pages[3];
    assert!(setup.html.contains("autocomplete=\"one-time-code\""));
    assert!(setup.html.contains("<label for=\"code\">"));
    let script = app.client.get(app.url("/assets/pages.js")).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
}

async fn the_second_step_is_locked_out_as_the_api_is(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let tokens = app.login("ada@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let mut browser = Browser::default();
    let first = browser.sign_in(&app, "ada@example.com", "").await;
    assert_eq!(first.location(), "/login/verify");
    assert!(browser.cookies.contains_key("latchkey_login"), "the login waits in a cookie");
    let step = browser.get(&app, "/login/verify").await;
    assert!(step.html.contains("Code from your authenticator app"), "{}", step.html);
    let factor_id = enrolled.factor_id.as_str();
    let wrong = format!("{:06}", (app.code(&enrolled.key, 0).parse::<u32>().unwrap() + 1) % 1_000_000);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let page = browser.post(&app, "/login/verify", &[("factor_id", factor_id), ("code", &wrong)]).await;
        statuses.push(page.status);
    }
    assert_eq!(statuses[..5], [StatusCode::UNPROCESSABLE_ENTITY; 5], "free failures");
    let right = app.code(&enrolled.key, 1);
    let waiting = browser.post(&app, "/login/verify", &[("factor_id", factor_id), ("code", &right)]).await;
    assert_eq!(waiting.status, StatusCode::TOO_MANY_REQUESTS, "even the right code waits");
    assert!(waiting.headers.contains_key("retry-after"));
    assert!(waiting.html.contains("role=\"timer\""), "{}", waiting.html);
    // The API sees the same lockout: one guard for every surface.
    let api = app
        .mfa_verify(json!({ "mfa_token": app.mfa_token("ada@example.com").await,
        "factor_id": factor_id, "code": right }))
        .await;
    assert_eq!(api.status, StatusCode::TOO_MANY_REQUESTS);
    app.advance(31);
    let passed = browser.post(&app, "/login/verify", &[("factor_id", factor_id), ("code", &right)]).await;
    assert_eq!(
        (passed.status, passed.location()),
        (StatusCode::SEE_OTHER, "/account/security"),
        "{}",
        passed.html
    );
    assert!(!browser.cookies.contains_key("latchkey_login"), "the login cookie is cleared");
    let replay = {
        let mut other = Browser::default();
        other.sign_in(&app, "ada@example.com", "").await;
        other.post(&app, "/login/verify", &[("factor_id", factor_id), ("code", &right)]).await
    };
    assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY, "a code works once, here as in the API");
}

async fn a_forged_or_ended_session_cookie_opens_nothing(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let mut browser = Browser::default();
    browser.sign_in(&app, "ada@example.com", "").await;
    let page = browser.get(&app, "/account/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("ada@example.com"));
    let value = browser.cookies["latchkey_session"].clone();
    let (id, signature) = value.split_once('.').unwrap();
    let mut forged = Browser::default();
    forged.cookies.insert("latchkey_session".into(), format!("{id}x.{signature}"));
    let refused = forged.get(&app, "/account/security").await;
    assert_eq!(refused.location(), "/login?return_to=%2Faccount%2Fsecurity");
    // Ended from elsewhere (the API's session list): the cookie stops working.
    let tokens = app.login("ada@example.com").await;
    let ended = app.call(reqwest::Method::DELETE, "/v1/me/sessions", Some(&access(&tokens)), None).await;
    assert!(ended.status.is_success(), "{}", ended.body);
    let after = browser.get(&app, "/account/security").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

async fn the_settings_add_rename_and_revoke(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    let mut browser = Browser::default();
    browser.sign_in(&app, "ada@example.com", "").await;
    browser.get(&app, "/account/security").await;

    // Codes by email to another address: the code that arrives confirms it, and the
    // first factor brings recovery codes.
    let setup = browser
        .post(
            &app,
            "/account/factors/contact",
            &[("kind", "email"), ("destination", "ada.codes@example.com")],
        )
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.html);
    assert!(setup.html.contains("We sent a code to a"), "{}", setup.html);
    let factor_id =
        setup.html.split("name=\"factor_id\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let wrong = browser
        .post(&app, "/account/factors/confirm", &[("factor_id", &factor_id), ("code", "000000")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.html.contains("That code is not right"));
    let code = mail::nth(&app.outbox(), "ada.codes@example.com", 1).await.code();
    let codes =
        browser.post(&app, "/account/factors/confirm", &[("factor_id", &factor_id), ("code", &code)]).await;
    assert_eq!(codes.status, StatusCode::OK);
    assert_eq!(codes.html.matches("<li><code>").count(), 10, "{}", codes.html);

    let renamed = browser
        .post(&app, "/account/factors/rename", &[("factor_id", &factor_id), ("name", "work inbox")])
        .await;
    assert_eq!(renamed.location(), "/account/security?done=factor_renamed");
    let page = browser.get(&app, "/account/security").await;
    assert!(page.html.contains("Email · work inbox"), "{}", page.html);
    assert!(page.html.contains("You have 10 unused recovery codes."));
    let too_long = "x".repeat(101);
    let refused = browser
        .post(&app, "/account/factors/rename", &[("factor_id", &factor_id), ("name", &too_long)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Another session, ended from the page; then this one, which signs the browser out.
    let other = app.login("ada@example.com").await;
    assert_eq!(other["mfa_required"], true, "a factor is on now");
    let mut phone = Browser::default();
    phone.sign_in(&app, "ada@example.com", "").await;
    app.advance(120); // past the address's minimum interval between codes
    let sent = phone.post(&app, "/login/verify/send", &[("factor_id", &factor_id)]).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
    assert!(sent.html.contains("Send a new one"), "the resend button and its countdown");
    let code = mail::nth(&app.outbox(), "ada.codes@example.com", 2).await.code();
    let signed_in = phone.post(&app, "/login/verify", &[("factor_id", &factor_id), ("code", &code)]).await;
    assert_eq!(signed_in.location(), "/account/security");
    // The page lists both sessions (the API login waits for its second factor: none);
    // this browser's is marked.
    let listed = browser.get(&app, "/account/security").await.html;
    let rows: Vec<(String, bool)> = listed
        .split("<li>")
        .filter_map(|row| {
            let id = row.split("name=\"session_id\" value=\"").nth(1)?.split('"').next()?.to_owned();
            Some((id, row.contains("This browser")))
        })
        .collect();
    assert_eq!(rows.len(), 2, "this browser and the phone: {rows:?}");
    let mine = rows.iter().find(|(_, current)| *current).unwrap().0.clone();
    let theirs = phone.cookies["latchkey_session"].split('.').next().unwrap().to_owned();
    assert!(rows.iter().any(|(id, current)| *id == theirs && !current));
    let ended = browser.post(&app, "/account/sessions/end", &[("session_id", &theirs)]).await;
    assert_eq!(ended.location(), "/account/security?done=session_ended");
    assert_eq!(
        phone.get(&app, "/account/security").await.status,
        StatusCode::SEE_OTHER,
        "that browser is out"
    );
    let out = browser.post(&app, "/account/sessions/end", &[("session_id", &mine)]).await;
    assert_eq!(out.location(), "/login?notice=signed_out");
    assert_eq!(browser.get(&app, "/account/security").await.status, StatusCode::SEE_OTHER);
}

async fn a_fault_shows_a_page_without_its_cause(db: latchkey_store::testing::TestDatabase) {
    let app = app(db).await;
    app.signup("ada@example.com").await;
    // Break the database under the running server: sessions can no longer be started.
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql("DROP TABLE refresh_tokens").execute(&pool).await.unwrap();
    let mut browser = Browser::default();
    let page = browser.sign_in(&app, "ada@example.com", "").await;
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(page.html.contains("Please try again in a moment."), "{}", page.html);
    let text = page.html.to_lowercase();
    assert!(!text.contains("refresh_tokens") && !text.contains("table") && !text.contains("sql"), "{text}");
    assert!(!browser.cookies.contains_key("latchkey_session"));
}

/// The token of the newest emailed link to `to` whose subject has `subject`, and the
/// link's path on this server.
async fn emailed_link(app: &TestApp, to: &str, subject: &str) -> (String, String) {
    for _ in 0..400 {
        let found = mail::messages(&app.outbox()).into_iter().rev().find(|m| {
            m.header("To").is_some_and(|t| t.contains(to))
                && m.header("Subject").is_some_and(|s| s.contains(subject))
        });
        if let Some(mail) = found {
            let link = mail.link();
            let path = link.strip_prefix(app.state.config.public_base()).unwrap().to_owned();
            let token = path.split("token=").nth(1).unwrap().to_owned();
            return (path, token);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no message to {to} about {subject:?}");
}

async fn a_forgotten_password_is_reset_on_the_pages_with_the_second_factor(
    db: latchkey_store::testing::TestDatabase,
) {
    let app = app(db).await;
    let tokens = app.user("nell@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let mut browser = Browser::default();
    let login = browser.get(&app, "/login").await;
    assert!(login.html.contains("href=\"/login/forgot\""), "the sign-in page offers it");
    browser.get(&app, "/login/forgot").await;
    let sent = browser.post(&app, "/login/forgot", &[("email", "nell@example.com")]).await;
    let unknown = browser.post(&app, "/login/forgot", &[("email", "nobody@example.com")]).await;
    assert_eq!((sent.status, unknown.status), (StatusCode::OK, StatusCode::OK));
    let notice = |html: &str| {
        html.split("class=\"notice\"").nth(1).map(|rest| rest.split('<').next().unwrap().to_owned())
    };
    assert_eq!(notice(&sent.html), notice(&unknown.html), "the same answer for every address");

    let (path, token) = emailed_link(&app, "nell@example.com", "Reset your").await;
    assert!(path.starts_with("/reset-password?token="), "{path}");
    let page = browser.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("autocomplete=\"new-password\"") && page.html.contains("name=\"code\""));
    assert!(!page.html.contains("<script>"), "no inline script");
    // Without the code: refused, nothing spent.
    let refused = browser
        .post(
            &app,
            "/reset-password",
            &[("token", &token), ("factor", &enrolled.factor_id), ("password", "violet tangerine submarine")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.html);
    app.advance(30);
    let code = app.code(&enrolled.key, 0);
    let done = browser
        .post(
            &app,
            "/reset-password",
            &[
                ("token", &token),
                ("factor", &enrolled.factor_id),
                ("password", "violet tangerine submarine"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.html);
    assert_eq!(app.get_bearer("/v1/me", &access(&tokens)).await.status, StatusCode::UNAUTHORIZED);
    let again = browser.get(&app, &path).await;
    assert_eq!(again.status, StatusCode::GONE, "the link works once");
    let login = app
        .post(
            "/v1/auth/login",
            json!({ "email": "nell@example.com", "password": "violet tangerine submarine" }),
        )
        .await;
    assert_eq!(login.body["mfa_required"], true);
}

async fn a_recovery_link_signs_the_browser_in_to_set_up_a_new_factor(
    db: latchkey_store::testing::TestDatabase,
) {
    let app = app(db).await;
    let tokens = app.user("otto@example.com").await;
    app.enroll_confirmed(&access(&tokens)).await;
    let id = app.state.store.user_by_email("otto@example.com").await.unwrap().unwrap().id;
    let key = app.api_key(&["users:write"]).await;
    let issued = app
        .admin(
            reqwest::Method::POST,
            &format!("/v1/users/{id}/recovery"),
            &key,
            Some(json!({ "reason": "lost phone" })),
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let (path, _) = emailed_link(&app, "otto@example.com", "Recover your").await;
    let mut browser = Browser::default();
    let page = browser.get(&app, &path).await;
    assert_eq!(page.status, StatusCode::OK, "opening the link spends nothing: {}", page.html);
    assert_eq!(browser.get(&app, &path).await.status, StatusCode::OK);
    let token = path.split("token=").nth(1).unwrap().to_owned();
    let used = browser.post(&app, "/recover", &[("token", &token)]).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.html);
    assert_eq!(used.location(), "/account/security");
    let security = browser.get(&app, "/account/security").await;
    assert_eq!(security.status, StatusCode::OK, "signed in: {}", security.html);
    assert!(app.state.store.factors(&id, app.now()).await.unwrap().is_empty(), "the lost factors are gone");
    assert_eq!(browser.get(&app, &path).await.status, StatusCode::GONE);
}
