//! `/metrics`: what a Prometheus scrape shows after real traffic — each decision
//! counted under the surface it came through, requests under their route template,
//! deliveries by channel, and the gauges — and how the endpoint is protected or moved.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, access};

on_both_backends!(a_scrape_counts_decisions_by_surface_route_and_outcome);
with_each_backend!(metrics_can_require_a_token_or_move_to_their_own_listener);

/// Every sample of a scrape: `name{labels}` to its value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
        .collect()
}

async fn scrape(app: &TestApp) -> (String, HashMap<String, f64>) {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let samples = samples(&text);
    (text, samples)
}

async fn a_scrape_counts_decisions_by_surface_route_and_outcome(app: TestApp) {
    let tokens = app.user("mia@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let code = app.code(&enrolled.key, 1);
    let first = json!({ "mfa_token": app.mfa_token("mia@example.com").await, "factor_id": enrolled.factor_id, "code": code });
    assert_eq!(app.mfa_verify(first).await.status, StatusCode::OK);
    let again = json!({ "mfa_token": app.mfa_token("mia@example.com").await, "factor_id": enrolled.factor_id, "code": code });
    assert_eq!(app.mfa_verify(again).await.code(), "invalid_code", "the code was spent");
    let flashback = app.post("/user/login", json!({ "email": "mia@example.com", "password": "wrong" })).await;
    assert_eq!(flashback.status, StatusCode::UNAUTHORIZED);
    let prisme = app.post("/v2/login", json!({ "email": "mia@example.com", "password": "not it" })).await;
    assert!(prisme.status.is_client_error());
    let user_id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();
    let key = app.api_key(&["users:read"]).await;
    let user =
        app.send(app.client.get(app.url(&format!("/v1/users/{user_id}"))).header("x-api-key", &key)).await;
    assert_eq!(user.status, StatusCode::OK);
    assert_eq!(app.send(app.client.get(app.url("/no/such/path/42"))).await.status, StatusCode::NOT_FOUND);
    let forgot = app.post("/v1/auth/password/forgot", json!({ "email": "mia@example.com" })).await;
    assert!(forgot.status.is_success(), "{}", forgot.body);

    // The emails (the reset, the failed-attempt notice) are sent by the delivery
    // worker; wait until it has sent them all.
    let sent = r#"latchkey_messages_total{channel="email",kind="password_reset",outcome="sent"}"#;
    let mut scraped = scrape(&app).await;
    for _ in 0..100 {
        if scraped.1.contains_key(sent) && scraped.1.get("latchkey_outbox_queued_messages") == Some(&0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        scraped = scrape(&app).await;
    }
    let (text, samples) = scraped;
    let value =
        |series: &str| samples.get(series).copied().unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(
        value(
            r#"latchkey_second_factor_attempts_total{surface="native",factor_type="totp",outcome="succeeded"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"latchkey_second_factor_attempts_total{surface="native",factor_type="totp",outcome="replay_refused"}"#
        ),
        1.0
    );
    assert_eq!(value(r#"latchkey_logins_total{surface="flashback",outcome="failed"}"#), 1.0);
    assert_eq!(value(r#"latchkey_logins_total{surface="prisme",outcome="failed"}"#), 1.0);
    assert!(value(r#"latchkey_logins_total{surface="native",outcome="succeeded"}"#) >= 1.0);
    assert_eq!(
        value(r#"latchkey_http_requests_total{route="/v1/users/{id}",method="GET",status="200"}"#),
        1.0
    );
    assert_eq!(value(r#"latchkey_http_requests_total{route="/user/login",method="POST",status="401"}"#), 1.0);
    assert_eq!(value(r#"latchkey_http_requests_total{route="/v2/login",method="POST",status="401"}"#), 1.0);
    assert_eq!(value(r#"latchkey_http_requests_total{route="unmatched",method="GET",status="404"}"#), 1.0);
    assert_eq!(
        value(r#"latchkey_http_request_duration_seconds_count{route="/v1/users/{id}",method="GET"}"#),
        1.0
    );
    assert_eq!(value(sent), 1.0);
    assert_eq!(value("latchkey_db_pool_max_connections"), 5.0);
    assert!(value(r#"latchkey_db_pool_connections{state="idle"}"#) >= 0.0);
    assert!(value("latchkey_db_pool_acquire_seconds") >= 0.0);
    assert_eq!(value("latchkey_password_hash_queue_length"), 0.0);
    assert_eq!(value("latchkey_outbox_queued_messages"), 0.0);
    assert_eq!(value("latchkey_outbox_oldest_message_age_seconds"), 0.0);
    for private in [user_id.as_str(), "mia@example.com", code.as_str(), PASSWORD] {
        assert!(!text.contains(private), "{private} is not a label");
    }
    assert!(text.contains("# TYPE latchkey_http_request_duration_seconds histogram"), "{text}");
}

async fn metrics_can_require_a_token_or_move_to_their_own_listener(backend: latchkey_store::Backend) {
    let token = "a-scrape-token-of-some-length";
    let guarded = TestApp::spawn_with(backend, |config| {
        config.metrics.bearer_token = Some(token.to_owned().into());
    })
    .await;
    let bare = guarded.client.get(guarded.url("/metrics")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    let wrong = guarded.client.get(guarded.url("/metrics")).bearer_auth("a-scrape-token-of-some-lengtX");
    assert_eq!(wrong.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let right = guarded.client.get(guarded.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    assert!(right.text().await.unwrap().contains("latchkey_db_pool_max_connections 5"));

    let moved = TestApp::spawn_with(backend, |config| {
        config.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(moved.send(moved.client.get(moved.url("/metrics"))).await.status, StatusCode::NOT_FOUND);
    assert_eq!(moved.send(moved.client.get(moved.url("/healthz"))).await.status, StatusCode::OK);
    let own = moved.metrics_base.clone().expect("a metrics listener");
    let scraped = moved.client.get(format!("{own}/metrics")).send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains(r#"latchkey_http_requests_total{route="/healthz",method="GET",status="200"} 1"#),
        "{text}"
    );
    assert_eq!(
        moved.client.get(format!("{own}/healthz")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let off = TestApp::spawn_with(backend, |config| config.metrics.enabled = false).await;
    assert_eq!(off.send(off.client.get(off.url("/metrics"))).await.status, StatusCode::NOT_FOUND);
}
