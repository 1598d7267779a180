//! The Mudbase-compatible API, end to end and against its contract.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, key_of, oathtool};
use crate::schema::assert_matches;

on_both_backends!(
    the_2fa_lifecycle_works_for_a_mudbase_client,
    api_keys_and_bad_requests_are_refused_in_mudbase_format,
    a_mudbase_client_resets_and_changes_passwords,
    the_mudbase_sdk_resets_a_password_and_signs_in_with_2fa,
);

impl TestApp {
    async fn api(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str, path: &str) {
    assert_eq!((reply.status, reply.body["code"].as_str()), (status, Some(code)), "{}", reply.body);
    assert_matches("mudbase", "error", &reply.body);
    assert_eq!(reply.body["path"], path);
    assert_eq!(reply.body["requestId"].as_str(), reply.headers["x-request-id"].to_str().ok());
}

async fn the_2fa_lifecycle_works_for_a_mudbase_client(app: TestApp) {
    app.signup("dee@example.com").await;
    let login =
        app.api("/api/auth/login", None, json!({ "email": "dee@example.com", "password": PASSWORD })).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_matches("mudbase", "login200", &login.body);
    assert_eq!(login.body["user"]["twoFactorEnabled"], false);
    let token = login.body["token"].as_str().unwrap().to_owned();

    let setup = app.api("/api/users/2fa/setup", Some(&token), json!({})).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("mudbase", "setup200", &setup.body);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(setup.body["manualEntryKey"].as_str().unwrap().replace(' ', ""), secret);
    assert!(setup.body["qrCode"].as_str().unwrap().starts_with("data:image/png;base64,"));
    let backup: Vec<String> = setup.body["backupCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(backup.len(), 10);
    // Backup codes do nothing until the factor is confirmed.
    let early = app
        .api(
            "/api/auth/login",
            None,
            json!({ "email": "dee@example.com", "password": PASSWORD, "totpToken": backup[0] }),
        )
        .await;
    assert_eq!(
        (early.status, early.body["user"]["twoFactorEnabled"].clone()),
        (StatusCode::OK, json!(false))
    );

    let wrong = app.api("/api/users/2fa/verify", Some(&token), json!({ "token": "000000" })).await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "INVALID_2FA_TOKEN", "/api/users/2fa/verify");
    let code = oathtool(&secret, app.now());
    let verified = app.api("/api/users/2fa/verify", Some(&token), json!({ "token": code })).await;
    assert_eq!(verified.body, json!({ "message": "2FA enabled successfully" }));
    assert_matches("mudbase", "message200", &verified.body);
    let again = app.api("/api/users/2fa/setup", Some(&token), json!({})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "CONFLICT", "/api/users/2fa/setup");

    let credentials = json!({ "email": "dee@example.com", "password": PASSWORD });
    // Without totpToken (the SDK cannot send one): a token limited to the 2FA verify.
    let challenged = app.api("/api/auth/login", None, credentials.clone()).await;
    assert_eq!(challenged.status, StatusCode::OK, "{}", challenged.body);
    assert_matches("mudbase", "login200", &challenged.body);
    assert_eq!(challenged.body["twoFactorRequired"], true);
    let limited = challenged.body["token"].as_str().unwrap().to_owned();
    let get_me = |token: String| app.send(app.client.get(app.url("/api/users/me")).bearer_auth(token));
    assert_error(&get_me(limited.clone()).await, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/users/me");
    let by_limited = app.api("/api/users/2fa/setup", Some(&limited), json!({})).await;
    assert_error(&by_limited, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/users/2fa/setup");
    let wrong = app.api("/api/users/2fa/verify", Some(&limited), json!({ "token": "000000" })).await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "INVALID_2FA_TOKEN", "/api/users/2fa/verify");
    let replayed = app.api("/api/users/2fa/verify", Some(&limited), json!({ "token": code })).await;
    assert_error(&replayed, StatusCode::BAD_REQUEST, "INVALID_2FA_TOKEN", "/api/users/2fa/verify");
    let completed = app.api("/api/users/2fa/verify", Some(&limited), json!({ "token": backup[0] })).await;
    assert_eq!(
        completed.body,
        json!({ "message": "Two-factor authentication verified" }),
        "{}",
        completed.body
    );
    let me = get_me(limited.clone()).await;
    assert_eq!(me.status, StatusCode::OK, "the same token is now a full one: {}", me.body);
    assert_matches("mudbase", "me200", &me.body);
    assert_eq!(
        (me.body["user"]["email"].clone(), me.body["user"]["twoFactorEnabled"].clone()),
        (json!("dee@example.com"), json!(true))
    );
    let with = |totp: &str| json!({ "email": "dee@example.com", "password": PASSWORD, "totpToken": totp });
    let replay = app.api("/api/auth/login", None, with(&code)).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/auth/login");
    let key = key_of(&format!("otpauth://totp/x?secret={secret}"));
    let next = app.code(&key, 1);
    let logged_in = app.api("/api/auth/login", None, with(&next)).await;
    assert_eq!(logged_in.status, StatusCode::OK, "{}", logged_in.body);
    assert_eq!(logged_in.body["user"]["twoFactorEnabled"], true);
    let by_backup = app.api("/api/auth/login", None, with(&backup[1])).await;
    assert_eq!(by_backup.status, StatusCode::OK, "{}", by_backup.body);
    let refreshed =
        app.api("/api/auth/refresh", None, json!({ "refreshToken": by_backup.body["refreshToken"] })).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_matches("mudbase", "refresh200", &refreshed.body);
    let token = refreshed.body["token"].as_str().unwrap().to_owned();

    let missing = app.api("/api/users/2fa/disable", Some(&token), json!({ "password": PASSWORD })).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "/api/users/2fa/disable");
    assert_eq!(missing.body["details"]["field"], "token");
    app.clock.advance(60);
    let bad_password = app
        .api(
            "/api/users/2fa/disable",
            Some(&token),
            json!({ "password": "nope nope nope", "token": app.code(&key, 0) }),
        )
        .await;
    assert_error(&bad_password, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/users/2fa/disable");
    let disabled = app
        .api(
            "/api/users/2fa/disable",
            Some(&token),
            json!({ "password": PASSWORD, "token": app.code(&key, 0) }),
        )
        .await;
    assert_eq!(disabled.body, json!({ "message": "2FA disabled successfully" }));
    let plain = app.api("/api/auth/login", None, credentials).await;
    assert_eq!(
        (plain.status, plain.body["user"]["twoFactorEnabled"].clone()),
        (StatusCode::OK, json!(false))
    );
}

async fn api_keys_and_bad_requests_are_refused_in_mudbase_format(app: TestApp) {
    app.signup("eve@example.com").await;
    let login =
        app.api("/api/auth/login", None, json!({ "email": "eve@example.com", "password": PASSWORD })).await;
    let token = login.body["token"].as_str().unwrap().to_owned();
    let key = app.api_key(&[]).await;
    let by_key = app.send(app.client.post(app.url("/api/users/2fa/setup")).header("x-api-key", &key)).await;
    assert_error(&by_key, StatusCode::FORBIDDEN, "FORBIDDEN", "/api/users/2fa/setup");
    assert_eq!(by_key.body["error"], "API keys are not supported for this endpoint");
    let anonymous = app.send(app.client.post(app.url("/api/users/2fa/setup"))).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/users/2fa/setup");
    let bad_login = app
        .api("/api/auth/login", None, json!({ "email": "eve@example.com", "password": "wrong password" }))
        .await;
    assert_error(&bad_login, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/auth/login");
    let bad_refresh = app.api("/api/auth/refresh", None, json!({ "refreshToken": "lkr_nope" })).await;
    assert_error(&bad_refresh, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "/api/auth/refresh");
    let unknown = app.send(app.client.get(app.url("/api/elsewhere"))).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND", "/api/elsewhere");
    let no_setup = app.api("/api/users/2fa/verify", Some(&token), json!({ "token": "123456" })).await;
    assert_error(&no_setup, StatusCode::BAD_REQUEST, "NO_PENDING_2FA_SETUP", "/api/users/2fa/verify");

    app.api("/api/users/2fa/setup", Some(&token), json!({})).await;
    for _ in 0..5 {
        app.api("/api/users/2fa/verify", Some(&token), json!({ "token": "000000" })).await;
    }
    let throttled = app.api("/api/users/2fa/verify", Some(&token), json!({ "token": "000000" })).await;
    assert_error(&throttled, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "/api/users/2fa/verify");
    assert_matches("mudbase", "rateLimited", &throttled.body);
    assert_eq!(throttled.body["retryAfter"], 30);
}

/// The reset link's token from the newest "Reset your" email to `to`.
async fn reset_token(app: &TestApp, to: &str, count: usize) -> String {
    for _ in 0..400 {
        let links: Vec<String> = crate::mail::messages(&app.outbox())
            .into_iter()
            .filter(|m| m.header("To").is_some_and(|t| t.contains(to)))
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains("Reset your")))
            .map(|m| m.link())
            .collect();
        if links.len() >= count {
            return links[count - 1].split("token=").nth(1).unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no reset link to {to}");
}

async fn a_mudbase_client_resets_and_changes_passwords(app: TestApp) {
    app.signup("mae@example.com").await;
    let patch = |token: &str, body: Value| {
        app.send(app.client.patch(app.url("/api/users/password")).bearer_auth(token).json(&body))
    };
    let login = |password: &str| {
        app.api("/api/auth/login", None, json!({ "email": "mae@example.com", "password": password }))
    };

    // A reset by link, for a user without 2FA.
    let asked = app.api("/api/auth/password-reset", None, json!({ "email": "mae@example.com" })).await;
    let unknown = app.api("/api/auth/password-reset", None, json!({ "email": "nobody@example.com" })).await;
    assert_eq!((asked.status, &asked.body), (unknown.status, &unknown.body), "the same answer");
    assert_matches("mudbase", "message200", &asked.body);
    let token = reset_token(&app, "mae@example.com", 1).await;
    let valid = app.api("/api/auth/password-reset/validate", None, json!({ "token": token })).await;
    assert_eq!((valid.status, valid.body.clone()), (StatusCode::OK, json!({ "valid": true })));
    assert_matches("mudbase", "validate200", &valid.body);
    let weak =
        app.api(&format!("/api/auth/password-reset/{token}"), None, json!({ "password": "password" })).await;
    assert_error(
        &weak,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        &format!("/api/auth/password-reset/{token}"),
    );
    let done = app
        .api(
            &format!("/api/auth/password-reset/{token}"),
            None,
            json!({ "password": "mudbase reset horse staple" }),
        )
        .await;
    assert_eq!(done.body, json!({ "message": "Password has been reset successfully" }));
    let used = app.api("/api/auth/password-reset/validate", None, json!({ "token": token })).await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);
    assert_eq!(used.body["valid"], false);
    let again = app
        .api(
            &format!("/api/auth/password-reset/{token}"),
            None,
            json!({ "password": "mudbase reset horse staple" }),
        )
        .await;
    assert_error(
        &again,
        StatusCode::BAD_REQUEST,
        "INVALID_TOKEN",
        &format!("/api/auth/password-reset/{token}"),
    );
    let signed_in = login("mudbase reset horse staple").await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let jwt = signed_in.body["token"].as_str().unwrap().to_owned();

    // The signed-in change, and a wrong current password.
    let wrong = patch(&jwt, json!({ "currentPassword": "not it at all", "newPassword": PASSWORD })).await;
    assert_error(&wrong, StatusCode::FORBIDDEN, "REAUTHENTICATION_REQUIRED", "/api/users/password");
    let changed =
        patch(&jwt, json!({ "currentPassword": "mudbase reset horse staple", "newPassword": PASSWORD }))
            .await;
    assert_eq!(changed.body, json!({ "message": "Password changed successfully" }), "{}", changed.body);
    assert_eq!(login(PASSWORD).await.status, StatusCode::OK);

    // With 2FA, a reset needs totpToken.
    let setup = app.api("/api/users/2fa/setup", Some(&jwt), json!({})).await;
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let code = oathtool(&secret, app.now());
    assert_eq!(
        app.api("/api/users/2fa/verify", Some(&jwt), json!({ "token": code })).await.status,
        StatusCode::OK
    );
    app.advance(61);
    app.api("/api/auth/password-reset", None, json!({ "email": "mae@example.com" })).await;
    let token = reset_token(&app, "mae@example.com", 2).await;
    let path = format!("/api/auth/password-reset/{token}");
    let bare = app.api(&path, None, json!({ "password": "second mudbase reset staple" })).await;
    assert_error(&bare, StatusCode::FORBIDDEN, "TWO_FACTOR_REQUIRED", &path);
    app.advance(30);
    let code = oathtool(&secret, app.now());
    let proven =
        app.api(&path, None, json!({ "password": "second mudbase reset staple", "totpToken": code })).await;
    assert_eq!(proven.status, StatusCode::OK, "{}", proven.body);
}

/// The real client: Mudbase's SDK from PyPI (`tests/support/mudbase_client.py`).
async fn the_mudbase_sdk_resets_a_password_and_signs_in_with_2fa(app: TestApp) {
    app.signup("sdk@example.com").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/mudbase_client.py");
    let outbox = app.outbox();
    let (base, outbox) = (app.base.clone(), outbox.to_string_lossy().into_owned());
    let now = app.now().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &base, &outbox, "sdk@example.com", PASSWORD, &now])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'mudbase'"),
        "the Mudbase SDK is needed (scripts/ensure-tools installs it): {stderr}"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("login_user with the changed password: signed in"), "{stdout}");
    assert!(stdout.contains("get_current_user with the same token: signed in with 2FA"), "{stdout}");
}
