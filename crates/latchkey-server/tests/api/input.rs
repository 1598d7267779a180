//! Hostile and malformed input: each answered with a native JSON error and a 4xx.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::helpers::TestApp;

on_both_backends!(
    bodies_are_checked_before_anything_else,
    field_errors_name_the_field_but_not_the_value,
    unknown_routes_and_methods_answer_in_json,
    every_response_has_a_request_id_and_no_store,
);

async fn bodies_are_checked_before_anything_else(app: TestApp) {
    let login = app.url("/v1/auth/login");
    let oversize = format!(r#"{{"email":"a@b.c","password":"{}"}}"#, "x".repeat(70 * 1024));
    let reply =
        app.send(app.client.post(&login).header(CONTENT_TYPE, "application/json").body(oversize)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("application/json", b"{\"email\": ".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("application/json", b"".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("application/json", b"{} {}".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            "application/json",
            b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        ("application/json", "[".repeat(10_000).into_bytes(), StatusCode::BAD_REQUEST, "malformed_json"),
        (
            "text/plain",
            b"{\"email\":\"a@b.c\",\"password\":\"x\"}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "application/x-www-form-urlencoded",
            b"email=a&password=b".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("application/json", b"[]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
    ];
    for (content_type, body, status, code) in cases {
        let reply =
            app.send(app.client.post(&login).header(CONTENT_TYPE, content_type).body(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{}", String::from_utf8_lossy(&body));
    }
    let no_type = app.send(app.client.post(&login).body("{}")).await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let with_charset = app
        .send(
            app.client
                .post(&login)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(r#"{"email":"a@b.c","password":"wrong password"}"#),
        )
        .await;
    assert_eq!(with_charset.code(), "invalid_credentials");
    let nul = app
        .post("/v1/auth/signup", json!({ "email": "a\u{0}@example.com", "password": "a fine passphrase" }))
        .await;
    assert_eq!((nul.status, nul.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"));
    let huge = app.post("/v1/auth/login", json!({ "email": "e".repeat(60_000), "password": "x" })).await;
    assert_eq!(huge.code(), "invalid_credentials");
}

async fn field_errors_name_the_field_but_not_the_value(app: TestApp) {
    let unknown =
        app.post("/v1/auth/login", json!({ "email": "a@b.c", "password": "pw", "remember": true })).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
    assert_eq!(unknown.body["error"]["details"]["field"], "remember");
    let missing = app.post("/v1/auth/login", json!({ "email": "a@b.c" })).await;
    assert_eq!(
        (missing.code(), missing.body["error"]["details"]["field"].as_str()),
        ("missing_field", Some("password"))
    );
    let secret = "hunter2-secret-value";
    let wrong_type = app.post("/v1/auth/login", json!({ "email": ["a@b.c"], "password": secret })).await;
    assert_eq!(
        (wrong_type.code(), wrong_type.body["error"]["details"]["field"].as_str()),
        ("invalid_field", Some("email"))
    );
    let wrong_type = app.post("/v1/auth/refresh", json!({ "refresh_token": 12345678901234_i64 })).await;
    assert_eq!(wrong_type.code(), "invalid_field");
    assert!(!wrong_type.body.to_string().contains("12345678901234"), "values are never echoed");
    let echoed = app.post("/v1/auth/login", json!({ "email": secret, "password": 5 })).await;
    assert!(!echoed.body.to_string().contains(secret), "{}", echoed.body);
}

async fn unknown_routes_and_methods_answer_in_json(app: TestApp) {
    let missing = app.send(app.client.get(app.url("/v1/nothing-here"))).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "not_found"));
    let long_path = format!("/v1/{}", "a".repeat(4000));
    let long = app.send(app.client.get(app.url(&long_path))).await;
    assert_eq!(long.status, StatusCode::NOT_FOUND);
    let wrong_method = app.send(app.client.get(app.url("/v1/auth/login"))).await;
    assert_eq!(
        (wrong_method.status, wrong_method.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let odd = app
        .send(app.client.request(reqwest::Method::from_bytes(b"BREW").unwrap(), app.url("/healthz")))
        .await;
    assert_eq!(odd.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn every_response_has_a_request_id_and_no_store(app: TestApp) {
    let replies = [
        app.send(app.client.get(app.url("/healthz"))).await,
        app.post("/v1/auth/login", json!({ "email": "a@b.c", "password": "nope nope" })).await,
        app.send(app.client.get(app.url("/missing"))).await,
    ];
    let mut ids = std::collections::HashSet::new();
    for reply in replies {
        let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty());
        ids.insert(id);
        assert_eq!(reply.headers["cache-control"], "no-store");
        assert_eq!(reply.headers["content-type"], "application/json");
    }
    assert_eq!(ids.len(), 3, "request ids are unique");
    let echoed = app.send(app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-123")).await;
    assert_eq!(echoed.headers["x-request-id"], "trace-me-123", "a caller's request id is kept");
}
