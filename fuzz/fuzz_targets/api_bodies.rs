//! JSON bodies of the native and Flashback APIs, through the whole router: each input
//! is sent as the body of one of the operations their OpenAPI documents say take JSON,
//! with a real user's token and an admin API key, and the answer is never a 5xx.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, header};
use latchkey_server::clock::SystemClock;
use latchkey_server::config::Config;
use latchkey_server::service::api_keys;
use latchkey_server::state::AppState;
use latchkey_server::{http, startup};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

const ID: &str = "00000000-0000-4000-8000-000000000000";

struct Target {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    operations: Vec<(Method, String)>,
    token: String,
    key: String,
    _data: tempfile::TempDir,
}

async fn call(router: &axum::Router, request: Request<Body>) -> (u16, Value) {
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.expect("the body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn json(method: Method, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("a request")
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        startup::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let data = tempfile::tempdir().expect("a data directory");
        let mut config = Config { data_dir: data.path().to_path_buf(), ..Config::default() };
        config.keys.master_key = Some("11".repeat(32).into());
        config.passwords.max_concurrent_hashes = 1;
        let (router, operations, token, key) = runtime.block_on(async {
            let state = AppState::build(config, Arc::new(SystemClock)).await.expect("the application state");
            let key = api_keys::create(&state, "fuzz", &[]).await.expect("an API key").secret;
            let router = http::router(state);
            let credentials = r#"{"email":"fuzz@example.com","password":"correct horse battery staple"}"#;
            call(&router, json(Method::POST, "/v1/auth/signup", credentials)).await;
            let (_, tokens) = call(&router, json(Method::POST, "/v1/auth/login", credentials)).await;
            let token = tokens["access_token"].as_str().expect("an access token").to_owned();
            let mut operations = Vec::new();
            for document in ["/openapi.json", "/openapi/flashback.json"] {
                let request = Request::get(document).body(Body::empty()).expect("a request");
                let (_, document) = call(&router, request).await;
                for (path, item) in document["paths"].as_object().expect("paths") {
                    for (method, operation) in item.as_object().expect("a path item") {
                        if operation["requestBody"]["content"].get("application/json").is_some() {
                            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
                            operations.push((method, path.replace("{id}", ID).replace("{fid}", ID)));
                        }
                    }
                }
            }
            (router, operations, token, key)
        });
        assert!(operations.len() >= 20, "the documents list their JSON operations");
        Target { runtime, router, operations, token, key, _data: data }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let target = target();
    let (method, path) = &target.operations[usize::from(pick) % target.operations.len()];
    // Logging out would end the session every later input uses.
    if path == "/v1/auth/logout" {
        return;
    }
    let request = Request::builder()
        .method(method.clone())
        .uri(path.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {}", target.token))
        .header("x-api-key", target.key.as_str())
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let (status, answer) = target.runtime.block_on(call(&target.router, request));
    assert!(status < 500, "{method} {path} answered {status}: {answer}");
});
