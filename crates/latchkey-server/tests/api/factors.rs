//! The factor lifecycle: re-authentication, ownership, renaming and removal, the
//! admin and sidecar API, and the audit log.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, access};

on_both_backends!(
    sensitive_changes_need_a_recent_login,
    the_first_factor_ends_sessions_that_never_passed_it,
    factors_belong_to_their_owner,
    removing_the_last_factor_turns_mfa_off,
    admins_list_reset_and_verify_for_sidecar_apps,
    the_audit_log_records_what_happened_without_secrets,
);

async fn sensitive_changes_need_a_recent_login(app: TestApp) {
    // Without a factor: a login under 10 minutes old, or the current password.
    let tokens = app.user("alice@example.com").await;
    app.clock.advance(11 * 60);
    let tokens = app.post("/v1/auth/refresh", json!({ "refresh_token": tokens["refresh_token"] })).await.body;
    let stale = app
        .send(
            app.client
                .post(app.url("/v1/me/factors"))
                .bearer_auth(access(&tokens))
                .json(&json!({ "type": "totp" })),
        )
        .await;
    assert_eq!((stale.status, stale.code()), (StatusCode::FORBIDDEN, "reauthentication_required"));
    let wrong = app
        .send(
            app.client
                .post(app.url("/v1/me/factors"))
                .bearer_auth(access(&tokens))
                .json(&json!({ "type": "totp", "current_password": "not it at all" })),
        )
        .await;
    assert_eq!(wrong.body["error"]["details"]["reason"], "wrong_password");
    let with_password = app
        .send(
            app.client
                .post(app.url("/v1/me/factors"))
                .bearer_auth(access(&tokens))
                .json(&json!({ "type": "totp", "current_password": PASSWORD })),
        )
        .await;
    assert_eq!(with_password.status, StatusCode::CREATED, "{}", with_password.body);

    // With a factor: a recent aal2 session; a password is not enough.
    let fresh = app.login("alice@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&fresh)).await;
    app.clock.advance(11 * 60);
    let tokens = app.post("/v1/auth/refresh", json!({ "refresh_token": fresh["refresh_token"] })).await.body;
    assert_eq!(tokens["aal"], "aal2");
    let path = format!("/v1/me/factors/{}", enrolled.factor_id);
    let remove = app
        .send(
            app.client
                .delete(app.url(&path))
                .bearer_auth(access(&tokens))
                .json(&json!({ "current_password": PASSWORD })),
        )
        .await;
    assert_eq!(
        (remove.status, remove.body["error"]["details"]["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("recent_mfa_login_needed"))
    );
    let regenerate =
        app.send(app.client.post(app.url("/v1/me/recovery-codes")).bearer_auth(access(&tokens))).await;
    assert_eq!(regenerate.code(), "reauthentication_required");
    let token = app.mfa_token("alice@example.com").await;
    let recent =
        app.mfa_verify(json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] })).await.body;
    let remove = app.send(app.client.delete(app.url(&path)).bearer_auth(access(&recent))).await;
    assert_eq!(remove.status, StatusCode::NO_CONTENT);
}

async fn factors_belong_to_their_owner(app: TestApp) {
    let alice = app.user("alice@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&alice)).await;
    let bob = access(&app.user("bob@example.com").await);
    let path = format!("/v1/me/factors/{}", enrolled.factor_id);
    let verify = app.confirm(&bob, &enrolled.factor_id, "123456").await;
    assert_eq!((verify.status, verify.code()), (StatusCode::NOT_FOUND, "factor_not_found"));
    let rename = app
        .send(app.client.patch(app.url(&path)).bearer_auth(&bob).json(&json!({ "friendly_name": "mine" })))
        .await;
    assert_eq!(rename.status, StatusCode::NOT_FOUND);
    let delete = app.send(app.client.delete(app.url(&path)).bearer_auth(&bob)).await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    // Alice can rename hers; names are checked.
    let rename = app
        .send(
            app.client
                .patch(app.url(&path))
                .bearer_auth(access(&alice))
                .json(&json!({ "friendly_name": "  Work phone " })),
        )
        .await;
    assert_eq!((rename.status, rename.body["friendly_name"].as_str()), (StatusCode::OK, Some("Work phone")));
    let bad = app
        .send(
            app.client
                .patch(app.url(&path))
                .bearer_auth(access(&alice))
                .json(&json!({ "friendly_name": "" })),
        )
        .await;
    assert_eq!(bad.code(), "invalid_friendly_name");
    let unknown = app
        .send(
            app.client
                .post(app.url("/v1/me/factors"))
                .bearer_auth(access(&alice))
                .json(&json!({ "type": "carrier-pigeon" })),
        )
        .await;
    assert_eq!(
        (unknown.code(), unknown.body["error"]["details"]["field"].as_str()),
        ("invalid_field", Some("type"))
    );
}

async fn removing_the_last_factor_turns_mfa_off(app: TestApp) {
    let tokens = app.user("carol@example.com").await;
    let first = app.enroll_confirmed(&access(&tokens)).await;
    app.clock.advance(30);
    let second = app.enroll_confirmed(&access(&tokens)).await;
    assert!(second.recovery_codes.is_empty());
    for (factor, remaining) in [(&first.factor_id, 10), (&second.factor_id, 0)] {
        let reply = app
            .send(
                app.client.delete(app.url(&format!("/v1/me/factors/{factor}"))).bearer_auth(access(&tokens)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(
            app.get_bearer("/v1/me", &access(&tokens)).await.body["recovery_codes_remaining"],
            remaining
        );
    }
    let me = app.get_bearer("/v1/me", &access(&tokens)).await.body;
    assert_eq!(me["mfa_enabled"], false);
    let login = app.login("carol@example.com").await;
    assert!(login.get("access_token").is_some(), "no second factor any more: {login}");
}

async fn admins_list_reset_and_verify_for_sidecar_apps(app: TestApp) {
    let tokens = app.user("dave@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let user_id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();
    let key = app.api_key(&[]).await;
    let listed = app.admin(Method::GET, &format!("/v1/users/{user_id}/factors"), &key, None).await.body;
    assert_eq!(listed["factors"][0]["id"], enrolled.factor_id.as_str());
    assert_eq!(
        (listed["recovery_codes_remaining"].clone(), listed["locked"].clone()),
        (json!(10), json!(false))
    );

    let verify = format!("/v1/users/{user_id}/verify");
    let valid =
        app.admin(Method::POST, &verify, &key, Some(json!({ "code": app.code(&enrolled.key, 1) }))).await;
    assert_eq!(valid.body, json!({ "valid": true, "factor_id": enrolled.factor_id, "method": "totp" }));
    let replay =
        app.admin(Method::POST, &verify, &key, Some(json!({ "code": app.code(&enrolled.key, 1) }))).await;
    assert_eq!(replay.body["valid"], false);
    let recovery = app
        .admin(Method::POST, &verify, &key, Some(json!({ "recovery_code": enrolled.recovery_codes[9] })))
        .await;
    assert_eq!(recovery.body, json!({ "valid": true, "factor_id": null, "method": "recovery_code" }));
    let neither = app.admin(Method::POST, &verify, &key, Some(json!({}))).await;
    assert_eq!(neither.code(), "missing_field");
    let nobody =
        app.admin(Method::POST, "/v1/users/nobody/verify", &key, Some(json!({ "code": "123456" }))).await;
    assert_eq!(nobody.code(), "user_not_found");
    let reader = app.api_key(&["users:read"]).await;
    assert_eq!(
        app.admin(Method::POST, &verify, &reader, Some(json!({ "code": "123456" }))).await.status,
        StatusCode::FORBIDDEN
    );

    let one = app
        .admin(Method::DELETE, &format!("/v1/users/{user_id}/factors/{}", enrolled.factor_id), &key, None)
        .await;
    assert_eq!(one.status, StatusCode::NO_CONTENT);
    let gone = app
        .admin(Method::DELETE, &format!("/v1/users/{user_id}/factors/{}", enrolled.factor_id), &key, None)
        .await;
    assert_eq!(gone.code(), "factor_not_found");
    assert_eq!(app.login("dave@example.com").await["aal"], "aal1");
}

async fn the_audit_log_records_what_happened_without_secrets(app: TestApp) {
    let tokens = app.user("erin@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let token = app.mfa_token("erin@example.com").await;
    app.mfa_verify(json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": "999999" })).await;
    app.mfa_verify(json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] })).await;
    let user_id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();

    let key = app.api_key(&["audit:read"]).await;
    let log = app.admin(Method::GET, &format!("/v1/audit?user_id={user_id}"), &key, None).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let kinds: Vec<(String, String)> = log.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned()))
        .collect();
    for expected in [
        ("factor.enrolled", "success"),
        ("factor.confirmed", "success"),
        ("mfa.failed", "failure"),
        ("recovery_code.used", "success"),
    ] {
        assert!(kinds.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{expected:?} in {kinds:?}");
    }
    let first = &log.body["events"][0];
    assert!(first["ip"].as_str().is_some_and(|ip| ip == "127.0.0.1"), "{first}");
    let text = log.body.to_string();
    assert!(
        !text.contains(&enrolled.recovery_codes[0]) && !text.contains("999999"),
        "no codes in the audit log"
    );
    let secret = enrolled.otpauth_uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    assert!(!text.contains(secret));

    let failures = app.admin(Method::GET, "/v1/audit?type=mfa.failed&limit=1", &key, None).await.body;
    assert_eq!(failures["events"].as_array().unwrap().len(), 1);
    let future = app.admin(Method::GET, "/v1/audit?since=2100-01-01T00:00:00Z", &key, None).await.body;
    assert_eq!(future["events"], json!([]));
    let bad = app.admin(Method::GET, "/v1/audit?since=yesterday", &key, None).await;
    assert_eq!(bad.code(), "invalid_query");
    let users_only = app.api_key(&["users:read"]).await;
    assert_eq!(app.admin(Method::GET, "/v1/audit", &users_only, None).await.status, StatusCode::FORBIDDEN);
}

async fn the_first_factor_ends_sessions_that_never_passed_it(app: TestApp) {
    let here = app.user("fay@example.com").await;
    let elsewhere = app.login("fay@example.com").await;
    assert_eq!(app.get_bearer("/v1/me", &access(&elsewhere)).await.status, StatusCode::OK);
    app.enroll_confirmed(&access(&here)).await;
    let me = app.get_bearer("/v1/me", &access(&here)).await;
    assert_eq!((me.status, me.body["session"]["aal"].as_str()), (StatusCode::OK, Some("aal2")));
    let other = app.get_bearer("/v1/me", &access(&elsewhere)).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "an aal1 session elsewhere ends");
    let refresh = app.post("/v1/auth/refresh", json!({ "refresh_token": elsewhere["refresh_token"] })).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let logout = app.send(app.client.post(app.url("/v1/auth/logout")).bearer_auth(access(&here))).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_bearer("/v1/me", &access(&here)).await.status, StatusCode::UNAUTHORIZED);
}
