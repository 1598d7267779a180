//! DESIGN section 3's re-authentication rule and rule 15, as one table over the five
//! surfaces: a sensitive change (turning MFA off, removing or adding a factor) is
//! refused, in each surface's own format, to a session whose second factor was proven
//! longer ago than `mfa.reauth_window_secs`, to a session opened by a remembered
//! device (its `amr` lists only the password), and to a user without MFA whose login
//! is old and who gives no password; the same request is let through while the
//! second factor or the login is fresh. Mudbase has no change a session alone may
//! make for a user with MFA (its disable carries the password and a code itself), so it
//! takes part in the last case only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, SURFACES, Surface, TestApp, access, error_code};

on_both_backends!(the_reauthentication_rule_is_the_same_on_every_surface);

/// What a refused change looks like on each surface.
fn assert_refused(surface: Surface, reply: &Reply, case: &str) {
    let found = (reply.status, error_code(surface, reply));
    let expected = match surface {
        Surface::Native => (StatusCode::FORBIDDEN, json!("reauthentication_required")),
        Surface::Prisme => (StatusCode::UNAUTHORIZED, json!("MissingMFA")),
        Surface::Lerian => (StatusCode::FORBIDDEN, json!("IDE-0055")),
        Surface::Mudbase => (StatusCode::FORBIDDEN, json!("REAUTHENTICATION_REQUIRED")),
        Surface::Flashback => (
            StatusCode::FORBIDDEN,
            json!("Recent MFA verification required: verify with /mfa/verify-login first"),
        ),
    };
    assert_eq!(found, expected, "{surface:?}, {case}: {}", reply.body);
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    app.call(method, path, Some(token), body).await
}

/// Turns off MFA (or, on Mudbase, where turning it off carries its own second factor,
/// starts a setup) for the user of `token`.
async fn sensitive_change(app: &TestApp, surface: Surface, token: &str) -> Reply {
    let me = app.get_bearer("/v1/me", token).await;
    let id = me.body["id"].as_str().unwrap_or_default().to_owned();
    match surface {
        Surface::Native => {
            let factor = me.body["factors"][0]["id"].as_str().unwrap_or("none").to_owned();
            call(app, Method::DELETE, &format!("/v1/me/factors/{factor}"), token, None).await
        }
        Surface::Prisme => {
            let body = json!({ "method": "none", "currentPassword": PASSWORD });
            call(app, Method::POST, "/v2/user/mfa", token, Some(body)).await
        }
        Surface::Lerian => call(app, Method::DELETE, &format!("/v1/users/{id}/mfa"), token, None).await,
        Surface::Mudbase => call(app, Method::POST, "/api/users/2fa/setup", token, Some(json!({}))).await,
        Surface::Flashback => {
            call(app, Method::POST, "/mfa/disable", token, Some(json!({ "mfaType": "GOOGLE_AUTH" }))).await
        }
    }
}

/// Adds a first factor for a user without one (no password given).
async fn first_factor(app: &TestApp, surface: Surface, token: &str) -> Reply {
    let id = app.get_bearer("/v1/me", token).await.body["id"].as_str().unwrap_or_default().to_owned();
    match surface {
        Surface::Native => {
            call(app, Method::POST, "/v1/me/factors", token, Some(json!({ "type": "totp" }))).await
        }
        Surface::Prisme => {
            // Prisme.ai always sends the password, which is the re-authentication of a
            // user without MFA: a wrong one is refused, whatever the session's age.
            let body = json!({ "method": "totp", "currentPassword": "not the password at all" });
            call(app, Method::POST, "/v2/user/mfa", token, Some(body)).await
        }
        Surface::Lerian => {
            let body = json!({ "mfaType": "app" });
            call(app, Method::POST, &format!("/v1/users/{id}/mfa/setup"), token, Some(body)).await
        }
        Surface::Mudbase => call(app, Method::POST, "/api/users/2fa/setup", token, Some(json!({}))).await,
        Surface::Flashback => {
            call(app, Method::POST, "/mfa/setup", token, Some(json!({ "mfaType": "GOOGLE_AUTH" }))).await
        }
    }
}

/// A session of `email` (who has TOTP `key`) that proved its second factor just now,
/// through `surface`'s own login.
async fn mfa_session(app: &TestApp, surface: Surface, email: &str, key: &[u8]) -> String {
    let code = app.code(key, 0);
    let reply = match surface {
        Surface::Native => {
            let token = app.mfa_token(email).await;
            app.mfa_verify(
                json!({ "mfa_token": token, "factor_id": factor_id(app, email).await, "code": code }),
            )
            .await
        }
        Surface::Prisme => {
            let login = app.post("/v2/login", json!({ "email": email, "password": PASSWORD })).await;
            let token = login.body["token"].as_str().unwrap().to_owned();
            let passed =
                call(app, Method::POST, "/v2/login/mfa", &token, Some(json!({ "totp": code }))).await;
            assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
            return token;
        }
        Surface::Lerian => {
            let grant = json!({ "grantType": "password", "username": email, "password": PASSWORD });
            let step = app.post("/v1/login/oauth/access_token", grant).await;
            let body = json!({ "mfaToken": step.body["mfaToken"], "mfaType": "app", "passcode": code });
            let tokens = app.post("/v1/login/mfa/verify", body).await;
            return tokens.body["accessToken"].as_str().unwrap().to_owned();
        }
        Surface::Mudbase => {
            let body = json!({ "email": email, "password": PASSWORD, "totpToken": code });
            let tokens = app.post("/api/auth/login", body).await;
            return tokens.body["token"].as_str().unwrap().to_owned();
        }
        Surface::Flashback => {
            let login = app.post("/user/login", json!({ "email": email, "password": PASSWORD })).await;
            let limited = login.body["accessToken"].as_str().unwrap().to_owned();
            let body = json!({ "mfaType": "GOOGLE_AUTH", "code": code });
            let passed = call(app, Method::POST, "/mfa/verify-login", &limited, Some(body)).await;
            return passed.body["fullAccessToken"].as_str().unwrap().to_owned();
        }
    };
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    access(&reply.body)
}

async fn factor_id(app: &TestApp, email: &str) -> String {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    app.state.store.factors(&user.id, app.now()).await.unwrap()[0].id.clone()
}

/// A user with a confirmed TOTP factor; returns its key.
async fn user_with_totp(app: &TestApp, email: &str) -> Vec<u8> {
    let tokens = app.user(email).await;
    app.enroll_confirmed(&access(&tokens)).await.key
}

async fn the_reauthentication_rule_is_the_same_on_every_surface(app: TestApp) {
    let window = app.state.config.mfa.reauth_window_secs;
    for (n, surface) in SURFACES.into_iter().enumerate() {
        // A second factor proven longer ago than the window.
        let email = format!("old{n}@example.com");
        let key = user_with_totp(&app, &email).await;
        app.advance(30);
        let token = mfa_session(&app, surface, &email, &key).await;
        app.advance(window + 1);
        if !matches!(surface, Surface::Mudbase) {
            assert_refused(
                surface,
                &sensitive_change(&app, surface, &token).await,
                "second factor proven too long ago",
            );
        }

        // A remembered device's session: aal2, but its amr lists only the password.
        let email = format!("dev{n}@example.com");
        let key = user_with_totp(&app, &email).await;
        app.advance(30);
        let grant = json!({ "grantType": "password", "username": email, "password": PASSWORD });
        let step = app.post("/v1/login/oauth/access_token", grant.clone()).await;
        let remember = json!({ "mfaToken": step.body["mfaToken"], "mfaType": "app", "passcode": app.code(&key, 0), "rememberDevice": true });
        let device =
            app.post("/v1/login/mfa/verify", remember).await.body["deviceToken"].as_str().unwrap().to_owned();
        let mut with_device = grant;
        with_device["deviceToken"] = json!(device);
        let remembered = app.post("/v1/login/oauth/access_token", with_device).await;
        let token = remembered.body["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(app.get_bearer("/v1/me", &token).await.body["session"]["amr"], json!(["pwd"]));
        if !matches!(surface, Surface::Mudbase) {
            assert_refused(
                surface,
                &sensitive_change(&app, surface, &token).await,
                "a remembered device's session",
            );
            // The same change goes through once the second factor is proven afresh.
            app.advance(30);
            let fresh = mfa_session(&app, surface, &email, &key).await;
            let done = sensitive_change(&app, surface, &fresh).await;
            assert!(done.status.is_success(), "{surface:?} with a fresh second factor: {}", done.body);
        }

        // A user without MFA whose login is older than the window, with no password.
        let email = format!("plain{n}@example.com");
        let tokens = app.user(&email).await;
        let token = match surface {
            Surface::Native => access(&tokens),
            Surface::Prisme => {
                app.post("/v2/login", json!({ "email": email, "password": PASSWORD })).await.body["token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Surface::Lerian => {
                let grant = json!({ "grantType": "password", "username": email, "password": PASSWORD });
                app.post("/v1/login/oauth/access_token", grant).await.body["accessToken"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Surface::Mudbase => app
                .post("/api/auth/login", json!({ "email": email, "password": PASSWORD }))
                .await
                .body["token"]
                .as_str()
                .unwrap()
                .to_owned(),
            Surface::Flashback => app
                .post("/user/login", json!({ "email": email, "password": PASSWORD }))
                .await
                .body["accessToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        app.advance(window + 1);
        let refused = first_factor(&app, surface, &token).await;
        match surface {
            Surface::Prisme => assert_eq!(
                (refused.status, refused.body["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("AuthenticationError")),
                "{}",
                refused.body
            ),
            _ => assert_refused(surface, &refused, "an old login without MFA"),
        }
    }
}
