//! Sessions: a user sees and ends their own, an administrator ends a user's, and
//! (DESIGN rule 19) a change to the user's factors — a factor removed by the user, or
//! an administrator's reset — ends every other session.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, TestApp, access};

on_both_backends!(
    users_see_and_end_their_own_sessions,
    administrators_end_a_users_sessions,
    factor_changes_end_the_other_sessions,
);

async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    app.send(app.client.delete(app.url(path)).bearer_auth(token)).await
}

async fn alive(app: &TestApp, token: &str) -> bool {
    app.get_bearer("/v1/me", token).await.status == StatusCode::OK
}

async fn users_see_and_end_their_own_sessions(app: TestApp) {
    let first = access(&app.user("sue@example.com").await);
    let second = access(&app.login("sue@example.com").await);
    let third = access(&app.login("sue@example.com").await);
    let other = access(&app.user("tom@example.com").await);

    let listed = app.get_bearer("/v1/me/sessions", &first).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let sessions = listed.body["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let current = sessions.iter().find(|s| s["current"] == true).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get_bearer("/v1/me", &first).await.body["session"]["id"], current.as_str());
    assert!(sessions.iter().all(|s| s["amr"] == json!(["pwd"]) && s.get("refresh_token").is_none()));

    // Another user's session id is not found, and stays alive.
    let theirs = app.get_bearer("/v1/me", &other).await.body["session"]["id"].as_str().unwrap().to_owned();
    let refused = delete(&app, &format!("/v1/me/sessions/{theirs}"), &first).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::NOT_FOUND, "not_found"));
    assert!(alive(&app, &other).await);

    let second_id =
        app.get_bearer("/v1/me", &second).await.body["session"]["id"].as_str().unwrap().to_owned();
    let ended = delete(&app, &format!("/v1/me/sessions/{second_id}"), &first).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    assert!(!alive(&app, &second).await, "an ended session's token stops working at once");
    let again = delete(&app, &format!("/v1/me/sessions/{second_id}"), &first).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let others = delete(&app, "/v1/me/sessions", &first).await;
    assert_eq!(others.body, json!({ "ended": 1 }));
    assert!(!alive(&app, &third).await && alive(&app, &first).await, "all but this one");
}

async fn administrators_end_a_users_sessions(app: TestApp) {
    let tokens = app.user("val@example.com").await;
    let second = access(&app.login("val@example.com").await);
    let id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();
    let reader = app.api_key(&["users:read"]).await;
    let refused = app.admin(Method::DELETE, &format!("/v1/users/{id}/sessions"), &reader, None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "insufficient_scope"));
    let key = app.api_key(&["users:write"]).await;
    let ended = app.admin(Method::DELETE, &format!("/v1/users/{id}/sessions"), &key, None).await;
    assert_eq!((ended.status, ended.body.clone()), (StatusCode::OK, json!({ "ended": 2 })));
    assert!(!alive(&app, &access(&tokens)).await && !alive(&app, &second).await);
    let refreshed = app.post("/v1/auth/refresh", json!({ "refresh_token": tokens["refresh_token"] })).await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED, "refresh tokens die with their session");
    let unknown = app
        .admin(Method::DELETE, "/v1/users/01a00000-0000-7000-8000-000000000000/sessions", &key, None)
        .await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "user_not_found"));
}

/// Logs in with the password and the TOTP code `offset` steps from now.
async fn mfa_login(app: &TestApp, email: &str, factor_id: &str, key: &[u8], offset: i64) -> String {
    let token = app.mfa_token(email).await;
    let code = app.code(key, offset);
    let done = app.mfa_verify(json!({ "mfa_token": token, "factor_id": factor_id, "code": code })).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    access(&done.body)
}

async fn factor_changes_end_the_other_sessions(app: TestApp) {
    // A user with two TOTP factors, signed in twice; removing one factor from the first
    // session ends the second.
    let tokens = app.user("wes@example.com").await;
    let first_factor = app.enroll_confirmed(&access(&tokens)).await;
    app.advance(30);
    let second_factor = app.enroll_confirmed(&access(&tokens)).await;
    app.advance(30);
    let here = mfa_login(&app, "wes@example.com", &first_factor.factor_id, &first_factor.key, 0).await;
    app.advance(30);
    let elsewhere = mfa_login(&app, "wes@example.com", &first_factor.factor_id, &first_factor.key, 0).await;
    let removed = delete(&app, &format!("/v1/me/factors/{}", second_factor.factor_id), &here).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    assert!(alive(&app, &here).await, "the session that made the change stays");
    assert!(!alive(&app, &elsewhere).await, "every other session ends");

    // An administrator's reset ends every session.
    app.advance(30);
    let again = mfa_login(&app, "wes@example.com", &first_factor.factor_id, &first_factor.key, 0).await;
    let id = app.get_bearer("/v1/me", &here).await.body["id"].as_str().unwrap().to_owned();
    let key = app.api_key(&["users:write"]).await;
    let reset = app.admin(Method::DELETE, &format!("/v1/users/{id}/factors"), &key, None).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.body);
    assert!(!alive(&app, &here).await && !alive(&app, &again).await, "no session outlives a reset");
    let login = app.post("/v1/auth/login", json!({ "email": "wes@example.com", "password": PASSWORD })).await;
    assert_eq!(login.body["aal"], "aal1", "the next login needs no second factor: {}", login.body);
}
