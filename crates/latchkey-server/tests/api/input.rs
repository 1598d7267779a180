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
    hostile_bodies_get_a_4xx_in_each_surfaces_format,
    hostile_headers_paths_and_queries_get_a_4xx,
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

/// Whether `body` is an error in the format of the surface that `path` belongs to.
fn in_surface_format(path: &str, body: &serde_json::Value) -> bool {
    let text = |field: &str| body[field].is_string();
    if path.starts_with("/v2/") {
        text("error") && text("message")
    } else if path.starts_with("/api/") {
        text("error") && text("code") && text("path") && text("requestId") && body["details"].is_object()
    } else if path.starts_with("/v1/login/") {
        text("code") && text("title") && text("message")
    } else {
        body["error"]["code"].is_string() && body["error"]["message"].is_string()
    }
}

async fn hostile_bodies_get_a_4xx_in_each_surfaces_format(app: TestApp) {
    let nested = format!("{}1{}", r#"{"a":"#.repeat(5000), "}".repeat(5000));
    let long_array = format!(r#"{{"email":[{}0],"password":"x"}}"#, "0,".repeat(30_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{\"email\": ".to_vec()),
        ("application/json", b"{\"email\":\"\xff\xfe\",\"password\":\"x\"}".to_vec()),
        ("application/json", nested.into_bytes()),
        ("application/json", long_array.into_bytes()),
        ("application/json", br#"{"email":5,"password":5}"#.to_vec()),
        ("application/json", br#"{"email":null,"password":null}"#.to_vec()),
        ("application/json", b"{\"email\":\"a\\u0000b@example.com\",\"password\":\"x\\u0000\"}".to_vec()),
        ("application/json", format!(r#"{{"email":"{}","password":"x"}}"#, "e".repeat(60_000)).into_bytes()),
        ("application/json", format!(r#"{{"password":"{}"}}"#, "p".repeat(70 * 1024)).into_bytes()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"\"a string\"".to_vec()),
        ("text/plain", br#"{"email":"a@b.c","password":"x"}"#.to_vec()),
        ("application/xml", b"<login/>".to_vec()),
    ];
    for path in ["/v1/auth/login", "/v2/login", "/api/auth/login", "/v1/login/oauth/access_token"] {
        for (content_type, body) in &bodies {
            let reply = app
                .send(app.client.post(app.url(path)).header(CONTENT_TYPE, *content_type).body(body.clone()))
                .await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            assert!(reply.status.is_client_error(), "{path} {shown}: {} {}", reply.status, reply.body);
            assert!(in_surface_format(path, &reply.body), "{path} {shown}: {}", reply.body);
        }
    }
}

async fn hostile_headers_paths_and_queries_get_a_4xx(app: TestApp) {
    let key = app.api_key(&["users:read", "users:write"]).await;
    let long_token = format!("Bearer {}", "t".repeat(32 * 1024));
    for path in ["/v1/me", "/v2/me", "/v1/me/factors"] {
        let reply = app.send(app.client.get(app.url(path)).header("authorization", &long_token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(in_surface_format(path, &reply.body), "{path}: {}", reply.body);
    }
    let long_key =
        app.send(app.client.get(app.url("/v1/users")).header("x-api-key", "k".repeat(32 * 1024))).await;
    assert_eq!((long_key.status, long_key.code()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    // Past hyper's header limits the connection layer answers 431 itself, before any
    // route is known (docs/API.md, "Limits").
    let mut crowded = app.client.get(app.url("/healthz"));
    for index in 0..120 {
        crowded = crowded.header(format!("x-filler-{index}"), "x");
    }
    let crowded = crowded.send().await.unwrap();
    assert_eq!(crowded.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    for path in ["/v1/users/%FF%FE", "/v1/users/%FF/factors", "/v1/users/%00/factors/%FF", "/v1/users/a%2Fb"]
    {
        let reply = app.send(app.client.get(app.url(path)).header("x-api-key", &key)).await;
        assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
        assert!(in_surface_format(path, &reply.body), "{path}: {}", reply.body);
    }
    let lerian = app.send(app.client.get(app.url("/v1/users/%FF/mfa")).header("x-api-key", &key)).await;
    assert!(lerian.status.is_client_error() && lerian.body["code"].is_string(), "{}", lerian.body);
    for query in ["limit=abc", "limit=-1", "limit=99999999999999999999", "email=%FF", "zzz=1"] {
        let reply =
            app.send(app.client.get(app.url(&format!("/v1/users?{query}"))).header("x-api-key", &key)).await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.status);
        assert!(in_surface_format("/v1/users", &reply.body), "{query}: {}", reply.body);
    }
    let page = app.client.get(app.url("/magic-link?token=%FF%FE")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE, "an undecodable token is just an invalid link");

    let long_path = format!("/v1/users/{}", "u".repeat(16 * 1024));
    let reply = app.send(app.client.get(app.url(&long_path)).header("x-api-key", &key)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "user_not_found"));
    for path in ["/v1/auth/login", "/v2/login", "/api/auth/login", "/v1/login/oauth/access_token"] {
        for method in ["BREW", "PROPFIND", "QUERY"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let reply = app.send(app.client.request(method.clone(), app.url(path))).await;
            assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(in_surface_format(path, &reply.body), "{method} {path}: {}", reply.body);
        }
    }
    let lerian = app.send(app.client.get(app.url("/v1/login/oauth/access_token"))).await;
    assert_eq!(
        (lerian.status, lerian.body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("AUT-9060"))
    );
}
