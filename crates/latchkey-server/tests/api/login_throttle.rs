//! DESIGN rule 16: password guessing is throttled per account and per client IP, in
//! the database, the same way on every surface, for known and unknown accounts alike,
//! and every login leaves an audit event.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use latchkey_store::Backend;

use crate::helpers::{PASSWORD, Reply, SURFACES, Surface, TestApp, error_code, join_all};

on_both_backends!(
    unknown_and_known_accounts_are_throttled_alike,
    a_success_starts_the_account_count_again,
    one_client_guessing_many_accounts_is_throttled_by_its_address,
);
with_each_backend!(
    a_guessed_account_waits_on_every_surface_even_for_the_right_password,
    concurrent_guesses_cannot_pass_the_free_failures,
    behind_a_trusted_proxy_each_client_has_its_own_count,
);

/// A password login on `surface`.
async fn login(app: &TestApp, surface: Surface, email: &str, password: &str) -> Reply {
    let (path, body) = match surface {
        Surface::Native => ("/v1/auth/login", json!({ "email": email, "password": password })),
        Surface::Prisme => ("/v2/login", json!({ "email": email, "password": password })),
        Surface::Lerian => (
            "/v1/login/oauth/access_token",
            json!({ "grantType": "password", "username": email, "password": password }),
        ),
        Surface::Mudbase => ("/api/auth/login", json!({ "email": email, "password": password })),
        Surface::Flashback => ("/user/login", json!({ "email": email, "password": password })),
    };
    app.post(path, body).await
}

fn wrong_password(surface: Surface) -> (StatusCode, Value) {
    let code = match surface {
        Surface::Native => "invalid_credentials",
        Surface::Prisme => "AuthenticationError",
        Surface::Lerian => "AUT-9103",
        Surface::Mudbase => "UNAUTHORIZED",
        Surface::Flashback => "INVALID_PASSWORD",
    };
    (StatusCode::UNAUTHORIZED, json!(code))
}

fn throttled(surface: Surface) -> (StatusCode, Value) {
    let code = match surface {
        Surface::Native => "too_many_attempts",
        Surface::Prisme => "TooManyRequests",
        Surface::Lerian => "AUT-9050",
        Surface::Mudbase => "RATE_LIMITED",
        Surface::Flashback => "Too many attempts, try again later",
    };
    (StatusCode::TOO_MANY_REQUESTS, json!(code))
}

fn retry_after(reply: &Reply) -> i64 {
    reply.headers["retry-after"].to_str().unwrap().parse().unwrap()
}

async fn audit_types(app: &TestApp, email: &str) -> Vec<String> {
    app.column(&format!(
        "SELECT a.event_type FROM audit_events a JOIN users u ON u.id = a.user_id
         WHERE u.email = '{email}' AND a.event_type LIKE 'login.%' ORDER BY a.occurred_at, a.id"
    ))
    .await
}

/// The client's address is a separate count, tested below: here it may fail as often
/// as needed.
async fn spawn_without_address_limit(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| config.login_throttle.ip_free_failures = 1_000).await
}

async fn a_guessed_account_waits_on_every_surface_even_for_the_right_password(backend: Backend) {
    let app = spawn_without_address_limit(backend).await;
    for surface in SURFACES {
        let email = format!("{surface:?}@example.com").to_lowercase();
        app.signup(&email).await;
        for attempt in 1..=5 {
            let reply = login(&app, surface, &email, "not the password").await;
            assert_eq!(
                (reply.status, error_code(surface, &reply)),
                wrong_password(surface),
                "{surface:?} #{attempt}"
            );
        }
        // The fifth failure starts a 30-second wait; the right password waits too.
        let refused = login(&app, surface, &email, PASSWORD).await;
        assert_eq!(
            (refused.status, error_code(surface, &refused)),
            throttled(surface),
            "{surface:?}: {}",
            refused.body
        );
        assert_eq!(retry_after(&refused), 30, "{surface:?}");
        app.advance(29);
        let still = login(&app, surface, &email, PASSWORD).await;
        assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS, "{surface:?}");
        assert_eq!(retry_after(&still), 1, "{surface:?}");
        app.advance(1);
        let admitted = login(&app, surface, &email, PASSWORD).await;
        assert_eq!(admitted.status, StatusCode::OK, "{surface:?}: {}", admitted.body);
        let mut expected = vec!["login.failed"; 5];
        expected.extend(["login.throttled", "login.throttled", "login.succeeded"]);
        assert_eq!(audit_types(&app, &email).await, expected, "{surface:?}");
    }
}

async fn unknown_and_known_accounts_are_throttled_alike(app: TestApp) {
    app.signup("known@example.com").await;
    let mut answers = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        let mut replies = Vec::new();
        for _ in 0..7 {
            let reply = login(&app, Surface::Native, email, "not the password").await;
            replies.push((reply.status, reply.body.clone(), reply.headers.get("retry-after").cloned()));
        }
        answers.push(replies);
    }
    assert_eq!(answers[0], answers[1], "the throttle must not tell the accounts apart");
    assert_eq!(answers[0][5].0, StatusCode::TOO_MANY_REQUESTS);
    // Unknown addresses are audited without a user.
    let anonymous = app
        .count("SELECT COUNT(*) FROM audit_events WHERE user_id IS NULL AND event_type IN ('login.failed', 'login.throttled')")
        .await;
    assert_eq!(anonymous, 7);
}

async fn concurrent_guesses_cannot_pass_the_free_failures(backend: Backend) {
    let app = spawn_without_address_limit(backend).await;
    app.signup("target@example.com").await;
    let passwords: Vec<String> = (0..30).map(|n| format!("guess number {n}")).collect();
    let guesses =
        passwords.iter().map(|password| login(&app, Surface::Native, "target@example.com", password));
    let statuses: Vec<StatusCode> = join_all(guesses).await.iter().map(|r| r.status).collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, throttled), (5, 25), "{statuses:?}");
}

async fn a_success_starts_the_account_count_again(app: TestApp) {
    app.signup("forgetful@example.com").await;
    for round in 0..3 {
        for _ in 0..4 {
            let reply = login(&app, Surface::Native, "forgetful@example.com", "not the password").await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "round {round}");
        }
        let ok = login(&app, Surface::Native, "forgetful@example.com", PASSWORD).await;
        assert_eq!(ok.status, StatusCode::OK, "round {round}: {}", ok.body);
    }
}

async fn one_client_guessing_many_accounts_is_throttled_by_its_address(app: TestApp) {
    app.signup("bystander@example.com").await;
    // Successes are not failures: any number of people may log in from one address.
    for _ in 0..25 {
        assert_eq!(
            login(&app, Surface::Native, "bystander@example.com", PASSWORD).await.status,
            StatusCode::OK
        );
    }
    // Twenty failures on twenty addresses, none of which reaches its own limit; the
    // X-Forwarded-For a client writes itself is not believed (no proxy is trusted).
    for n in 0..20 {
        let body = json!({ "grantType": "password", "username": format!("user{n}@example.com"), "password": "not it" });
        let request = app.client.post(app.url("/v1/login/oauth/access_token")).json(&body);
        let reply = app.send(request.header("x-forwarded-for", format!("198.51.100.{n}"))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {n}: {}", reply.body);
    }
    let refused = login(&app, Surface::Native, "bystander@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.body);
    assert_eq!(retry_after(&refused), 30);
    let kinds: BTreeSet<String> =
        app.column("SELECT DISTINCT event_type FROM audit_events").await.into_iter().collect();
    assert!(kinds.contains("login.throttled"), "{kinds:?}");
    app.advance(30);
    assert_eq!(login(&app, Surface::Native, "bystander@example.com", PASSWORD).await.status, StatusCode::OK);
}

/// Behind a load balancer every request comes from its address: with the balancer
/// listed in `http.trusted_proxies`, the client it names in `X-Forwarded-For` is the
/// one counted (and audited).
async fn behind_a_trusted_proxy_each_client_has_its_own_count(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.http.trusted_proxies = vec!["127.0.0.1".into()];
        c.login_throttle.ip_free_failures = 3;
    })
    .await;
    let from = |client: &str, n: usize| {
        let body = json!({ "email": format!("someone{n}@example.com"), "password": "not it" });
        // A client may write its own entries; the balancer appends the real one.
        let forwarded = format!("10.9.9.9, {client}");
        app.send(app.client.post(app.url("/v1/auth/login")).header("x-forwarded-for", forwarded).json(&body))
    };
    for n in 0..3 {
        assert_eq!(from("203.0.113.1", n).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(from("203.0.113.1", 3).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        from("203.0.113.2", 4).await.status,
        StatusCode::UNAUTHORIZED,
        "another client is not held back"
    );
    let ips =
        app.column("SELECT DISTINCT ip FROM audit_events WHERE event_type LIKE 'login.%' ORDER BY ip").await;
    assert_eq!(ips, ["203.0.113.1", "203.0.113.2"]);
}
