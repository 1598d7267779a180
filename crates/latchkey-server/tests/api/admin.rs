//! The admin API: API keys, scopes and user management.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, access};

on_both_backends!(
    api_key_missing_wrong_or_revoked_is_refused,
    a_key_revoked_elsewhere_stops_working_within_the_cache_lifetime,
    scopes_limit_what_a_key_may_do,
    users_are_created_read_listed_and_deleted,
    created_users_are_validated,
);

async fn api_key_missing_wrong_or_revoked_is_refused(app: TestApp) {
    let key = app.api_key(&[]).await;
    assert_eq!(app.admin(Method::GET, "/v1/users", &key, None).await.status, StatusCode::OK);
    let missing = app.send(app.client.get(app.url("/v1/users"))).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    let mut wrong = key.clone();
    wrong.replace_range(10..11, if &key[10..11] == "A" { "B" } else { "A" });
    let reply = app.admin(Method::GET, "/v1/users", &wrong, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    let reply = app.admin(Method::GET, "/v1/users", "lk_short", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A user's access token is not an API key.
    let tokens = app.user("alice@example.com").await;
    let reply = app.send(app.client.get(app.url("/v1/users")).bearer_auth(access(&tokens))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let id = app.state.store.list_api_keys().await.unwrap()[0].id.clone();
    assert!(latchkey_server::service::api_keys::revoke(&app.state, &id).await.unwrap());
    let reply = app.admin(Method::GET, "/v1/users", &key, None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
}

/// Another process (the CLI) or instance revokes the key: this instance's cache of
/// looked-up keys lets it through for at most `api_keys::CACHE_TTL`, then refuses it.
async fn a_key_revoked_elsewhere_stops_working_within_the_cache_lifetime(app: TestApp) {
    let key = app.api_key(&[]).await;
    assert_eq!(app.admin(Method::GET, "/v1/users", &key, None).await.status, StatusCode::OK);
    let id = app.state.store.list_api_keys().await.unwrap()[0].id.clone();
    assert!(app.state.store.revoke_api_key(&id, app.now()).await.unwrap());
    refused_within_the_cache_lifetime(&app, &key).await;
}

/// Waits for `key`, just revoked, to be refused: within `api_keys::CACHE_TTL` (and a
/// margin), and until then it works as before.
pub async fn refused_within_the_cache_lifetime(app: &TestApp, key: &str) {
    let revoked_at = std::time::Instant::now();
    let limit = latchkey_server::service::api_keys::CACHE_TTL + std::time::Duration::from_secs(2);
    loop {
        let reply = app.admin(Method::GET, "/v1/users", key, None).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(reply.status, StatusCode::OK);
        assert!(revoked_at.elapsed() < limit, "the revoked key still worked after {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn scopes_limit_what_a_key_may_do(app: TestApp) {
    let reader = app.api_key(&["users:read"]).await;
    assert_eq!(app.admin(Method::GET, "/v1/users", &reader, None).await.status, StatusCode::OK);
    let reply =
        app.admin(Method::POST, "/v1/users", &reader, Some(json!({ "email": "x@example.com" }))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "insufficient_scope"));
    assert_eq!(reply.body["error"]["details"]["required"], "users:write");
    let writer = app.api_key(&["users:write"]).await;
    let reply =
        app.admin(Method::POST, "/v1/users", &writer, Some(json!({ "email": "x@example.com" }))).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = app.admin(Method::GET, "/v1/users", &writer, None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

async fn users_are_created_read_listed_and_deleted(app: TestApp) {
    let key = app.api_key(&[]).await;
    let body = json!({ "email": "Ivy@Example.com", "password": PASSWORD, "phone": "+1 415 555 0123" });
    let created = app.admin(Method::POST, "/v1/users", &key, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["email"], "Ivy@Example.com");
    assert_eq!(created.body["phone"], "+14155550123");
    assert_eq!(created.body["has_password"], true);
    assert!(created.body.get("password_hash").is_none());
    let id = created.body["id"].as_str().unwrap().to_owned();

    let fetched = app.admin(Method::GET, &format!("/v1/users/{id}"), &key, None).await;
    assert_eq!(fetched.body, created.body);
    let by_email = app.admin(Method::GET, "/v1/users?email=ivy%40example.com", &key, None).await;
    assert_eq!(by_email.body["users"][0]["id"], id.as_str());
    let none = app.admin(Method::GET, "/v1/users?email=nobody%40example.com", &key, None).await;
    assert_eq!(none.body["users"], json!([]));

    let duplicate =
        app.admin(Method::POST, "/v1/users", &key, Some(json!({ "email": "ivy@example.COM" }))).await;
    assert_eq!((duplicate.status, duplicate.code()), (StatusCode::CONFLICT, "email_taken"));

    // The user can log in with the password the operator set.
    let tokens = app.login("ivy@example.com").await;

    for i in 0..3 {
        app.admin(Method::POST, "/v1/users", &key, Some(json!({ "email": format!("page{i}@example.com") })))
            .await;
    }
    let page = app.admin(Method::GET, "/v1/users?limit=2", &key, None).await;
    assert_eq!(page.body["users"].as_array().unwrap().len(), 2);
    let after = page.body["next_after"].as_str().unwrap();
    let rest = app.admin(Method::GET, &format!("/v1/users?limit=2&after={after}"), &key, None).await;
    assert_eq!(rest.body["users"].as_array().unwrap().len(), 2);
    let after = rest.body["next_after"].as_str().unwrap();
    let last = app.admin(Method::GET, &format!("/v1/users?limit=2&after={after}"), &key, None).await;
    assert_eq!((last.body["users"].clone(), last.body["next_after"].clone()), (json!([]), json!(null)));
    let bad_limit = app.admin(Method::GET, "/v1/users?limit=0", &key, None).await;
    assert_eq!((bad_limit.status, bad_limit.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let bad_query = app.admin(Method::GET, "/v1/users?limit=lots", &key, None).await;
    assert_eq!((bad_query.status, bad_query.code()), (StatusCode::BAD_REQUEST, "invalid_query"));

    let deleted = app.admin(Method::DELETE, &format!("/v1/users/{id}"), &key, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.admin(Method::GET, &format!("/v1/users/{id}"), &key, None).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::NOT_FOUND, "user_not_found"));
    let again = app.admin(Method::DELETE, &format!("/v1/users/{id}"), &key, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let me = app.get_bearer("/v1/me", &access(&tokens)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "a deleted user's sessions end at once");
}

async fn created_users_are_validated(app: TestApp) {
    let key = app.api_key(&[]).await;
    let cases = [
        (json!({ "email": "nope" }), "invalid_email"),
        (json!({ "email": "a@example.com", "phone": "555-0123" }), "invalid_phone"),
        (json!({ "email": "a@example.com", "password": "password1" }), "weak_password"),
        (json!({ "email": "a@example.com", "role": "admin" }), "unknown_field"),
        (json!({ "phone": "+14155550123" }), "missing_field"),
    ];
    for (body, code) in cases {
        let reply = app.admin(Method::POST, "/v1/users", &key, Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{body}");
    }
}
