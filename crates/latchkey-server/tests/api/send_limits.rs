//! DESIGN rule 17: sending is limited per user, per client IP and, for texts, for the
//! whole service, not only per destination; a refused send leaves nothing behind.
//! (The per-destination limits are in `contact.rs`.) And the number of factors one
//! user may hold, which bounds what enrolment can be used for, is capped.

use latchkey_store::Backend;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Reply, TestApp, access};

with_each_backend!(
    one_user_cannot_text_any_number_of_numbers,
    one_client_cannot_send_for_any_number_of_accounts,
    texts_have_a_ceiling_for_the_whole_service,
    factors_per_user_are_capped,
);

async fn add_sms(app: &TestApp, token: &str, number: usize) -> Reply {
    let phone = format!("+1415555{number:04}");
    app.post_bearer("/v1/me/factors", token, json!({ "type": "sms", "phone": phone })).await
}

fn assert_limited(reply: &Reply, wait: i64) {
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{}",
        reply.body
    );
    assert_eq!(reply.headers["retry-after"].to_str().unwrap(), wait.to_string());
}

async fn one_user_cannot_text_any_number_of_numbers(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.delivery.sends_per_user_per_hour = 3).await;
    let token = access(&app.user("pumper@example.com").await);
    for number in 0..3 {
        assert_eq!(add_sms(&app, &token, number).await.status, StatusCode::CREATED);
    }
    assert_limited(&add_sms(&app, &token, 3).await, 3600);
    // Email counts toward the same budget.
    let email = app.post_bearer("/v1/me/factors", &token, json!({ "type": "email" })).await;
    assert_limited(&email, 3600);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 3, "a refused send queues nothing");
    assert_eq!(app.count("SELECT COUNT(*) FROM audit_events WHERE event_type = 'send.throttled'").await, 2);
    // Another user is not held back by this one.
    let other = access(&app.user("neighbour@example.com").await);
    assert_eq!(add_sms(&app, &other, 10).await.status, StatusCode::CREATED);
    app.advance(3600);
    let token = access(&app.login("pumper@example.com").await);
    assert_eq!(add_sms(&app, &token, 4).await.status, StatusCode::CREATED, "a new hour");
}

async fn one_client_cannot_send_for_any_number_of_accounts(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.delivery.sends_per_ip_per_hour = 4;
        c.magic_link.redirect_url = Some("https://app.example/in".into());
    })
    .await;
    for n in 0..2 {
        let token = access(&app.user(&format!("sock{n}@example.com")).await);
        for number in 0..2 {
            assert_eq!(add_sms(&app, &token, n * 10 + number).await.status, StatusCode::CREATED);
        }
    }
    let token = access(&app.user("sock2@example.com").await);
    assert_limited(&add_sms(&app, &token, 20).await, 3600);
    // Sign-in links for addresses with no account count too (and answer the same).
    let link = app.post("/v1/auth/magic-link", json!({ "email": "nobody@example.com" })).await;
    assert_limited(&link, 3600);
}

async fn texts_have_a_ceiling_for_the_whole_service(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.sms.max_per_minute = 2).await;
    for n in 0..2 {
        let token = access(&app.user(&format!("texter{n}@example.com")).await);
        assert_eq!(add_sms(&app, &token, n).await.status, StatusCode::CREATED);
    }
    let token = access(&app.user("late@example.com").await);
    assert_limited(&add_sms(&app, &token, 9).await, 60);
    // Email is not held back by the ceiling on texts.
    let email = app.post_bearer("/v1/me/factors", &token, json!({ "type": "email" })).await;
    assert_eq!(email.status, StatusCode::CREATED, "{}", email.body);
    app.advance(60);
    let token = access(&app.login("late@example.com").await);
    assert_eq!(add_sms(&app, &token, 9).await.status, StatusCode::CREATED);
}

async fn factors_per_user_are_capped(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.mfa.max_factors_per_user = 2).await;
    let token = access(&app.user("collector@example.com").await);
    assert_eq!(add_sms(&app, &token, 1).await.status, StatusCode::CREATED);
    let totp = app.post_bearer("/v1/me/factors", &token, json!({ "type": "totp" })).await;
    assert_eq!(totp.status, StatusCode::CREATED);
    let third = app.post_bearer("/v1/me/factors", &token, json!({ "type": "email" })).await;
    assert_eq!((third.status, third.code()), (StatusCode::CONFLICT, "too_many_factors"), "{}", third.body);
    // A new pending factor of a type replaces the old one, so it fits.
    let again = app.post_bearer("/v1/me/factors", &token, json!({ "type": "totp" })).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM factors").await, 2);
}
