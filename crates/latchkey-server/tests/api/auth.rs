//! Sign-up, login, `/v1/me`, refresh and logout.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, access, refresh};

on_both_backends!(
    signup_login_me_refresh_logout,
    refresh_token_reuse_revokes_the_session,
    wrong_password_and_unknown_email_look_the_same,
    signup_does_not_reveal_existing_accounts,
    weak_passwords_are_refused,
    a_password_typed_in_another_unicode_form_logs_in,
    emails_are_case_insensitive,
    signup_can_be_disabled,
    sessions_end_after_idle_and_absolute_timeouts,
    logout_needs_a_token,
);

async fn signup_login_me_refresh_logout(app: TestApp) {
    let tokens = app.user("alice@example.com").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["aal"], "aal1");
    let me = app.get_bearer("/v1/me", &access(&tokens)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(me.body["session"]["aal"], "aal1");
    assert_eq!(me.body["session"]["amr"], json!(["pwd"]));
    assert!(me.body.get("password_hash").is_none());

    let refreshed = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&tokens) })).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_ne!(refresh(&refreshed.body), refresh(&tokens), "refresh tokens rotate");
    let me_again = app.get_bearer("/v1/me", &access(&refreshed.body)).await;
    assert_eq!(me_again.body["session"]["id"], me.body["session"]["id"], "same session");

    let logout =
        app.send(app.client.post(app.url("/v1/auth/logout")).bearer_auth(access(&refreshed.body))).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    for token in [access(&tokens), access(&refreshed.body)] {
        let after = app.get_bearer("/v1/me", &token).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED, "access tokens die with the session");
        assert_eq!(after.code(), "invalid_token");
    }
    let refresh_after =
        app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&refreshed.body) })).await;
    assert_eq!(refresh_after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_after.code(), "invalid_refresh_token");
}

async fn refresh_token_reuse_revokes_the_session(app: TestApp) {
    let first = app.user("bob@example.com").await;
    let second = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&first) })).await.body;
    // The first refresh token is spent: presenting it again means it leaked.
    let reuse = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&first) })).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reuse.code(), "invalid_refresh_token");
    let me = app.get_bearer("/v1/me", &access(&second)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "the whole session is revoked");
    let legit = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&second) })).await;
    assert_eq!(legit.status, StatusCode::UNAUTHORIZED, "the newest refresh token dies too");
    for junk in ["", "lkr_short", "not-a-token"] {
        let reply = app.post("/v1/auth/refresh", json!({ "refresh_token": junk })).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "invalid_refresh_token"));
    }
}

async fn wrong_password_and_unknown_email_look_the_same(app: TestApp) {
    app.signup("carol@example.com").await;
    let wrong_password = app
        .post("/v1/auth/login", json!({ "email": "carol@example.com", "password": "not the password" }))
        .await;
    let unknown =
        app.post("/v1/auth/login", json!({ "email": "nobody@example.com", "password": PASSWORD })).await;
    let malformed_email =
        app.post("/v1/auth/login", json!({ "email": "not-an-email", "password": PASSWORD })).await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.code(), "invalid_credentials");
    assert_eq!(unknown.status, wrong_password.status);
    assert_eq!(unknown.body, wrong_password.body);
    assert_eq!(malformed_email.body, wrong_password.body);
}

async fn signup_does_not_reveal_existing_accounts(app: TestApp) {
    let first =
        app.post("/v1/auth/signup", json!({ "email": "dave@example.com", "password": PASSWORD })).await;
    let again = app
        .post(
            "/v1/auth/signup",
            json!({ "email": "DAVE@example.com", "password": "another fine passphrase" }),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    // The second sign-up changed nothing: the original password still works.
    app.login("dave@example.com").await;
    let hijack = app
        .post("/v1/auth/login", json!({ "email": "dave@example.com", "password": "another fine passphrase" }))
        .await;
    assert_eq!(hijack.status, StatusCode::UNAUTHORIZED);
}

async fn weak_passwords_are_refused(app: TestApp) {
    let cases = [
        ("shorty1", "too_short"),
        ("password123", "too_common"),
        ("12345678", "too_common"),
        ("erin@example.com", "same_as_email"),
    ];
    for (password, reason) in cases {
        let reply =
            app.post("/v1/auth/signup", json!({ "email": "erin@example.com", "password": password })).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        assert_eq!(reply.code(), "weak_password");
        assert_eq!(reply.body["error"]["details"]["reason"], reason);
        assert!(!reply.body.to_string().contains(password), "the password is never echoed");
    }
    // Guessable variations of common passwords, with zxcvbn's advice.
    for password in ["Password123!", "Erin2024!", "Qwertyuiop1"] {
        let reply =
            app.post("/v1/auth/signup", json!({ "email": "erin@example.com", "password": password })).await;
        let details = &reply.body["error"]["details"];
        assert_eq!(
            (reply.code(), details["reason"].as_str()),
            ("weak_password", Some("too_guessable")),
            "{password}"
        );
        assert!(details["score"].as_u64().is_some_and(|score| score < 3), "{details}");
        assert!(details["suggestions"].as_array().is_some_and(|s| !s.is_empty()), "{details}");
        assert!(!reply.body.to_string().contains(password), "the password is never echoed");
    }
    let longest: String =
        (0..256u32).map(|i| char::from(b'!' + ((i * 37 + i * i * 11) % 90) as u8)).collect();
    let reply = app
        .post("/v1/auth/signup", json!({ "email": "erin@example.com", "password": format!("{longest}x") }))
        .await;
    assert_eq!(reply.body["error"]["details"]["reason"], "too_long");
    let reply =
        app.post("/v1/auth/signup", json!({ "email": "erin@example.com", "password": longest })).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "256 characters are allowed");
    let bad_email = app.post("/v1/auth/signup", json!({ "email": "erin", "password": PASSWORD })).await;
    assert_eq!((bad_email.status, bad_email.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"));
}

/// The same password typed on a keyboard that composes accents (NFC) and on one that
/// does not (NFD) is one password.
async fn a_password_typed_in_another_unicode_form_logs_in(app: TestApp) {
    let (composed, decomposed) =
        ("cr\u{e8}me br\u{fb}l\u{e9}e \u{e0} minuit", "cre\u{300}me bru\u{302}le\u{301}e a\u{300} minuit");
    let signup =
        app.post("/v1/auth/signup", json!({ "email": "nfd@example.com", "password": decomposed })).await;
    assert_eq!(signup.status, StatusCode::ACCEPTED, "{}", signup.body);
    for typed in [composed, decomposed] {
        let login =
            app.post("/v1/auth/login", json!({ "email": "nfd@example.com", "password": typed })).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    }
}

async fn emails_are_case_insensitive(app: TestApp) {
    app.signup("Frank.Case@Example.COM").await;
    let tokens = app.login("frank.case@example.com").await;
    let me = app.get_bearer("/v1/me", &access(&tokens)).await;
    assert_eq!(me.body["email"], "Frank.Case@Example.COM", "the address is kept as written");
}

async fn signup_can_be_disabled(app: TestApp) {
    let backend = app.db.backend;
    drop(app);
    let app = TestApp::spawn_with(backend, |c| c.signup_enabled = false).await;
    let reply =
        app.post("/v1/auth/signup", json!({ "email": "gina@example.com", "password": PASSWORD })).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "signup_disabled"));
}

async fn sessions_end_after_idle_and_absolute_timeouts(app: TestApp) {
    let tokens = app.user("hana@example.com").await;
    // Idle: 30 minutes without a refresh ends the session.
    app.clock.advance(31 * 60);
    let idle = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&tokens) })).await;
    assert_eq!(idle.status, StatusCode::UNAUTHORIZED);

    // Regular refreshes keep it alive, but never past the absolute timeout (12 h).
    let mut tokens = app.login("hana@example.com").await;
    for _ in 0..((12 * 60) / 25) {
        app.clock.advance(25 * 60);
        let reply = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&tokens) })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        tokens = reply.body;
    }
    app.clock.advance(25 * 60);
    let past_absolute = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&tokens) })).await;
    assert_eq!(past_absolute.status, StatusCode::UNAUTHORIZED);
}

async fn logout_needs_a_token(app: TestApp) {
    let reply = app.send(app.client.post(app.url("/v1/auth/logout"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
}
