//! What an app that verifies tokens itself relies on: the discovery document, token
//! introspection (RFC 7662) that sees a revoked session at once, and CORS for browser
//! apps on other origins.

use reqwest::StatusCode;
use reqwest::header::{ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, access};

on_both_backends!(discovery_and_introspection_tell_an_app_what_a_token_is_now);
with_each_backend!(only_allowed_origins_get_cors_answers);

async fn introspect_form(app: &TestApp, key: &str, token: &str) -> Reply {
    app.send(
        app.client.post(app.url("/v1/auth/introspect")).header("x-api-key", key).form(&[("token", token)]),
    )
    .await
}

async fn discovery_and_introspection_tell_an_app_what_a_token_is_now(app: TestApp) {
    let discovery = app.send(app.client.get(app.url("/.well-known/openid-configuration"))).await;
    assert_eq!(discovery.status, StatusCode::OK);
    let base = app.state.config.public_base().to_owned();
    assert_eq!(discovery.body["issuer"], base);
    assert_eq!(discovery.body["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(discovery.body["introspection_endpoint"], format!("{base}/v1/auth/introspect"));
    assert_eq!(discovery.body["access_token_signing_alg_values_supported"], json!(["EdDSA"]));
    let jwks = app.send(app.client.get(app.url("/.well-known/jwks.json"))).await;
    assert_eq!(jwks.body["keys"][0]["alg"], "EdDSA");

    let tokens = app.user("ivy@example.com").await;
    let me = app.get_bearer("/v1/me", &access(&tokens)).await;
    let reader = app.api_key(&["users:read"]).await;
    let live = introspect_form(&app, &reader, &access(&tokens)).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.body);
    assert_eq!(live.body["active"], true);
    assert_eq!(live.body["sub"], me.body["id"]);
    assert_eq!(live.body["sid"], me.body["session"]["id"]);
    assert_eq!((live.body["aal"].clone(), live.body["amr"].clone()), (json!("aal1"), json!(["pwd"])));
    assert_eq!(live.body["iss"], base);
    let as_json = app
        .send(
            app.client
                .post(app.url("/v1/auth/introspect"))
                .header("x-api-key", &reader)
                .json(&json!({ "token": access(&tokens) })),
        )
        .await;
    assert_eq!(as_json.body["active"], true);

    // Ended at once: the token is still well signed and unexpired, the session is not.
    let out = app.post_bearer("/v1/auth/logout", &access(&tokens), json!({})).await;
    assert!(out.status.is_success(), "{}", out.body);
    let ended = introspect_form(&app, &reader, &access(&tokens)).await;
    assert_eq!(ended.body, json!({ "active": false }), "nothing but active: false");
    for garbage in ["", "not a token", "eyJhbGciOiJub25lIn0.e30."] {
        assert_eq!(
            introspect_form(&app, &reader, garbage).await.body,
            json!({ "active": false }),
            "{garbage:?}"
        );
    }

    // Who may ask.
    let anonymous = app.send(app.client.post(app.url("/v1/auth/introspect")).form(&[("token", "x")])).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let writer = app.api_key(&["users:write"]).await;
    assert_eq!(introspect_form(&app, &writer, "x").await.code(), "insufficient_scope");
    let missing = app
        .send(
            app.client
                .post(app.url("/v1/auth/introspect"))
                .header("x-api-key", &reader)
                .form(&[("tok", "x")]),
        )
        .await;
    assert_eq!(missing.code(), "missing_field");

    // A client token of Lerian's client_credentials grant acts as its API key.
    let key =
        latchkey_server::service::api_keys::create(&app.state, "svc", &["users:read".into()]).await.unwrap();
    let grant = json!({ "grantType": "client_credentials", "clientId": key.id, "clientSecret": key.secret });
    let client = app.post("/v1/login/oauth/access_token", grant).await;
    let client_token = client.body["accessToken"].as_str().unwrap().to_owned();
    let seen: Value = introspect_form(&app, &reader, &client_token).await.body;
    assert_eq!(
        (seen["active"].clone(), seen["sub"].clone(), seen["scope"].clone()),
        (json!(true), json!(format!("client:{}", key.id)), json!("users:read"))
    );
    assert!(seen.get("sid").is_none());
}

async fn only_allowed_origins_get_cors_answers(backend: latchkey_store::Backend) {
    const APP: &str = "https://app.example.com";
    let app = TestApp::spawn_with(backend, |c| c.cors.allowed_origins = vec![APP.into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/login"))
            .header(ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(APP).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], APP);
    assert!(
        allowed.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none(),
        "no credentials across origins"
    );
    let elsewhere = preflight("https://evil.example").await.unwrap();
    assert!(elsewhere.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // An actual call from the allowed origin carries the header, an error answer too.
    let call = app
        .client
        .post(app.url("/v1/auth/login"))
        .header(ORIGIN, APP)
        .json(&json!({ "email": "nobody@example.com", "password": "wrong password here" }))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], APP);

    // By default no origin is allowed.
    let closed = TestApp::spawn(backend).await;
    let refused = closed
        .client
        .request(reqwest::Method::OPTIONS, closed.url("/v1/auth/login"))
        .header(ORIGIN, APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(refused.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}
