//! Email and SMS factors: enrolment and login with codes received through a real SMTP
//! server, code rules (expiry, single use, attempts, resends), send throttles, phone
//! validation, and the notification emails.

use reqwest::StatusCode;
use serde_json::{Value, json};

use latchkey_core::crypto::HashPurpose;
use latchkey_server::service::challenges;
use latchkey_store::ChallengePurpose;

use crate::helpers::{TestApp, access};
use crate::mail::{self, SmtpSink};

on_both_backends!(
    sends_are_throttled_per_destination,
    phone_numbers_are_validated,
    notifications_tell_the_user_what_changed,
);
with_each_backend!(
    email_factor_enrolment_and_login_through_smtp,
    phone_countries_can_be_restricted,
    code_rules_expiry_single_use_attempts_and_resend,
);

/// Codes and notices to `to` in `dir`, oldest first.
async fn codes(dir: &std::path::Path, to: &str, count: usize) -> Vec<String> {
    for _ in 0..400 {
        let found: Vec<String> = mail::messages(dir)
            .into_iter()
            .filter(|m| {
                m.header("To").is_some_and(|t| t.contains(to)) && m.text.contains("verification code is")
            })
            .map(|m| m.code())
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} codes to {to}");
}

async fn nth_code(dir: &std::path::Path, to: &str, count: usize) -> String {
    codes(dir, to, count).await.swap_remove(count - 1)
}

async fn add_email_factor(app: &TestApp, token: &str, body: Value) -> Value {
    let reply = app.post_bearer("/v1/me/factors", token, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

async fn email_factor_enrolment_and_login_through_smtp(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(false, None);
    let url = sink.url(None);
    let app = TestApp::spawn_with(backend, |c| c.email.smtp_url = Some(url)).await;
    let tokens = app.user("erin@example.com").await;
    let created = add_email_factor(&app, &access(&tokens), json!({ "type": "email" })).await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["restricted"], true);
    assert_eq!(created["destination"], "e***@example.com");
    assert_eq!(created["challenge"]["sent_to"], "e***@example.com");
    assert_eq!(created["challenge"]["expires_in"], 600);
    let factor_id = created["id"].as_str().unwrap();
    let code = nth_code(sink.path(), "erin@example.com", 1).await;
    let confirmed = app.confirm(&access(&tokens), factor_id, &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["factor"]["status"], "active");
    assert_eq!(confirmed.body["recovery_codes"].as_array().unwrap().len(), 10);

    let login = app.login("erin@example.com").await;
    assert_eq!(login["mfa_required"], true);
    assert_eq!(login["factors"][0]["type"], "email");
    let mfa_token = login["mfa_token"].as_str().unwrap();
    app.advance(61); // one send per address per minute
    let sent =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": mfa_token, "factor_id": factor_id })).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["type"], "email");
    let code = nth_code(sink.path(), "erin@example.com", 2).await;
    let done = app.mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": code })).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["aal"], "aal2");
    let me = app.get_bearer("/v1/me", &access(&done.body)).await;
    assert_eq!(me.status, StatusCode::OK);
    let messages = mail::messages(sink.path());
    assert!(messages.iter().all(|m| m.header("X-Sink-TLS") == Some("no")));
    assert!(messages.iter().all(|m| m.text.contains("Content-Type: text/html")), "text and HTML parts");
}

async fn code_rules_expiry_single_use_attempts_and_resend(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| c.mfa.mfa_token_ttl_secs = 3600).await;
    let tokens = app.user("cody@example.com").await;
    let user_id = tokens_user(&app, "cody@example.com").await;
    let outbox = app.outbox();
    let created = add_email_factor(&app, &access(&tokens), json!({ "type": "email" })).await;
    let factor_id = created["id"].as_str().unwrap().to_owned();
    let code = nth_code(&outbox, "cody@example.com", 1).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let reply = app.confirm(&access(&tokens), &factor_id, wrong).await;
        assert_eq!(reply.code(), "invalid_code");
    }
    app.advance(31); // past the guard's delay after the fifth failure
    let reply = app.confirm(&access(&tokens), &factor_id, &code).await;
    assert_eq!(
        reply.code(),
        "invalid_code",
        "five wrong attempts end the challenge, even for the right code"
    );

    // A new setup (after the send interval) sends a new code; the guard's failures stay.
    app.advance(61);
    let created = add_email_factor(
        &app,
        &access(&tokens),
        json!({ "type": "email", "current_password": crate::helpers::PASSWORD }),
    )
    .await;
    let factor_id = created["id"].as_str().unwrap().to_owned();
    let code = nth_code(&outbox, "cody@example.com", 2).await;
    let guard =
        app.state.store.second_factor_guard(&tokens_user(&app, "cody@example.com").await).await.unwrap();
    assert_eq!(guard.unwrap().failures, 6, "a new challenge does not reset the count");
    app.advance(120); // past the guard's delay after the sixth failure
    let reply = app.confirm(&access(&tokens), &factor_id, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Login: a resend voids the earlier code; a code works once; codes expire.
    let mfa_token = app.mfa_token("cody@example.com").await;
    let challenge = |token: String| {
        let factor_id = factor_id.clone();
        let app = &app;
        async move {
            app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": token, "factor_id": factor_id })).await
        }
    };
    app.advance(61);
    assert_eq!(challenge(mfa_token.clone()).await.status, StatusCode::OK);
    let first = nth_code(&outbox, "cody@example.com", 3).await;
    app.advance(61);
    assert_eq!(challenge(mfa_token.clone()).await.status, StatusCode::OK);
    let second = nth_code(&outbox, "cody@example.com", 4).await;
    if first != second {
        let stale =
            app.mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": first })).await;
        assert_eq!(stale.code(), "invalid_code", "a resend voids the earlier code");
    }
    let ok = app.mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": second })).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // Single use: the same code for the same login, twice. Success through the API
    // spends the mfa_token as well, so the first use goes through the service's code
    // check, the one every surface calls; the login stays open and only the code is
    // spent, which the API then refuses.
    let login = app.mfa_token("cody@example.com").await;
    app.advance(61);
    assert_eq!(challenge(login.clone()).await.status, StatusCode::OK);
    let code = nth_code(&outbox, "cody@example.com", 5).await;
    let factor = app.state.store.factor(&user_id, &factor_id, app.now()).await.unwrap().unwrap();
    let login_hash = app.state.keys.hashing.hash(HashPurpose::MfaToken, login.as_bytes());
    let check =
        || challenges::check_code(&app.state, &factor, ChallengePurpose::Login, Some(&login_hash), &code);
    assert!(check().await.unwrap(), "the right code, once");
    assert!(!check().await.unwrap(), "the same code for the same login, a second time");
    let reuse = app.mfa_verify(json!({ "mfa_token": login, "factor_id": factor_id, "code": code })).await;
    assert_eq!(reuse.code(), "invalid_code", "a spent code is refused: {}", reuse.body);

    // Expiry: the mfa_token here lives an hour, so after ten minutes only the code has
    // expired; a fresh code for the same login still works.
    app.advance(61);
    assert_eq!(challenge(login.clone()).await.status, StatusCode::OK);
    let code = nth_code(&outbox, "cody@example.com", 6).await;
    app.advance(599);
    let factor = app.state.store.factor(&user_id, &factor_id, app.now()).await.unwrap().unwrap();
    let query = latchkey_store::CodeChallengeQuery {
        user_id: &user_id,
        factor_id: &factor.id,
        purpose: ChallengePurpose::Login,
        mfa_token_hash: Some(&login_hash),
    };
    let open = app.state.store.attempt_code_challenge(&query, 5, app.now());
    assert!(open.await.unwrap().is_some(), "at 599 seconds the code is still open");
    app.advance(2);
    let expired = app.mfa_verify(json!({ "mfa_token": login, "factor_id": factor_id, "code": code })).await;
    assert_eq!(expired.code(), "invalid_code", "a code expires after ten minutes: {}", expired.body);
    assert_eq!(challenge(login.clone()).await.status, StatusCode::OK);
    let fresh = nth_code(&outbox, "cody@example.com", 7).await;
    let done = app.mfa_verify(json!({ "mfa_token": login, "factor_id": factor_id, "code": fresh })).await;
    assert_eq!(done.status, StatusCode::OK, "the login itself was still open: {}", done.body);

    // TOTP factors need no challenge.
    let mfa_token = app.mfa_token("cody@example.com").await;
    let totp =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": mfa_token, "factor_id": "nope" })).await;
    assert_eq!(totp.code(), "factor_not_found");
}

async fn tokens_user(app: &TestApp, email: &str) -> String {
    app.state.store.user_by_email(email).await.unwrap().unwrap().id
}

async fn sends_are_throttled_per_destination(app: TestApp) {
    let tokens = app.user("tess@example.com").await;
    let body = json!({ "type": "email", "current_password": crate::helpers::PASSWORD });
    add_email_factor(&app, &access(&tokens), body.clone()).await;
    let again = app.post_bearer("/v1/me/factors", &access(&tokens), body.clone()).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(again.code(), "rate_limited");
    assert_eq!(again.headers["retry-after"], "60");
    for _ in 1..10 {
        app.advance(60);
        add_email_factor(&app, &access(&tokens), body.clone()).await;
    }
    app.advance(60);
    let eleventh = app.post_bearer("/v1/me/factors", &access(&tokens), body.clone()).await;
    assert_eq!(eleventh.code(), "rate_limited", "ten per hour");
    let wait: i64 = eleventh.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(wait, 3600 - 600, "until the hour that began with the first send ends");
    let other = app.post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "email", "email": "tess.other@example.com", "current_password": crate::helpers::PASSWORD })).await;
    assert_eq!(other.status, StatusCode::CREATED, "another destination has its own budget");
    app.advance(wait);
    let tokens = app.login("tess@example.com").await;
    add_email_factor(&app, &access(&tokens), body).await;
    assert_eq!(codes(&app.outbox(), "tess@example.com", 11).await.len(), 11);
}

async fn phone_numbers_are_validated(app: TestApp) {
    let tokens = app.user("phil@example.com").await;
    for (phone, code) in [
        ("4155550123", "invalid_phone"),
        ("+0123456789", "invalid_phone"),
        ("+1 415 555 0123 ext 4", "invalid_phone"),
    ] {
        let reply = app
            .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": phone }))
            .await;
        assert_eq!(reply.code(), code, "{phone}");
        assert_eq!(reply.body["error"]["details"]["field"], "phone");
    }
    let missing = app.post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms" })).await;
    assert_eq!(missing.code(), "missing_field");
    let stray = app
        .post_bearer(
            "/v1/me/factors",
            &access(&tokens),
            json!({ "type": "sms", "phone": "+14155550123", "email": "x@example.com" }),
        )
        .await;
    assert_eq!(stray.code(), "invalid_field");
    let created = app
        .post_bearer(
            "/v1/me/factors",
            &access(&tokens),
            json!({ "type": "sms", "phone": "+1 (415) 555-0123" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["destination"], "+*********23");
    let text = wait_for_text(&app.outbox(), "+14155550123").await;
    assert!(text.contains("is your Latchkey verification code"), "{text}");
    assert!(text.contains("@127.0.0.1 #"), "origin-bound code line: {text}");
}

/// The code in an SMS as the outbox wrote it (`To:` line, blank line, then the text,
/// which starts with the code).
pub fn sms_code(text: &str) -> String {
    let body = text.split("\n\n").nth(1).unwrap_or(text);
    body.split_whitespace().next().unwrap().chars().filter(char::is_ascii_digit).collect()
}

/// The body of the newest text to `to` in the outbox.
pub async fn wait_for_text(outbox: &std::path::Path, to: &str) -> String {
    for _ in 0..400 {
        let texts: Vec<String> = std::fs::read_dir(outbox)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".sms.txt"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter(|t| t.starts_with(&format!("To: {to}\n")))
            .collect();
        if let Some(text) = texts.into_iter().last() {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no text to {to}");
}

async fn phone_countries_can_be_restricted(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.sms.allowed_country_codes = vec!["1".into(), "44".into()];
    })
    .await;
    let tokens = app.user("fr@example.com").await;
    let refused = app
        .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": "+33612345678" }))
        .await;
    assert_eq!(refused.code(), "phone_not_allowed");
    let allowed = app
        .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": "+447700900123" }))
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.body);
}

async fn notifications_tell_the_user_what_changed(app: TestApp) {
    let tokens = app.user("nina@example.com").await;
    let outbox = app.outbox();
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let subjects = |count: usize| {
        let outbox = outbox.clone();
        async move {
            mail::wait_for(&outbox, "nina@example.com", count)
                .await
                .iter()
                .map(|m| m.header("Subject").unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(subjects(1).await, ["Latchkey: A sign-in method was added"]);

    // A correct password, then a wrong code: the user hears of it once per streak.
    let mfa_token = app.mfa_token("nina@example.com").await;
    for _ in 0..2 {
        let reply = app
            .mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": enrolled.factor_id, "code": "000000" }))
            .await;
        assert_eq!(reply.code(), "invalid_code");
    }
    assert_eq!(subjects(2).await[1], "Latchkey: Someone entered your password");

    let used =
        app.mfa_verify(json!({ "mfa_token": mfa_token, "recovery_code": enrolled.recovery_codes[0] })).await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);
    let last = mail::nth(&outbox, "nina@example.com", 3).await;
    assert_eq!(last.header("Subject"), Some("Latchkey: A recovery code was used"));
    assert!(last.text.contains("9 unused codes remain"), "{}", last.text);

    let regenerated = app.post_bearer("/v1/me/recovery-codes", &access(&used.body), json!({})).await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.body);
    let removed = app
        .send(
            app.client
                .delete(app.url(&format!("/v1/me/factors/{}", enrolled.factor_id)))
                .bearer_auth(access(&used.body)),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let all = subjects(5).await;
    assert_eq!(all[3], "Latchkey: New recovery codes were made");
    assert_eq!(all[4], "Latchkey: A sign-in method was removed");
    let text = &mail::nth(&outbox, "nina@example.com", 5).await.text;
    assert!(text.contains("authenticator app") && text.contains("When: "), "{text}");
    assert!(!text.contains(&enrolled.recovery_codes[1]), "no secrets in notices");
}
