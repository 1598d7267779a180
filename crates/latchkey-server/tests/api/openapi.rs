//! The OpenAPI documents describe exactly the routes the server answers: every
//! documented operation reaches a handler, every other method on a documented path is
//! refused with 405, and no route is registered without going into a document.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::TestApp;

on_both_backends!(every_documented_operation_reaches_a_handler, the_documents_are_served_and_complete);

const DOCUMENTS: [&str; 5] = [
    "/openapi.json",
    "/openapi/prisme.json",
    "/openapi/mudbase.json",
    "/openapi/lerian.json",
    "/openapi/flashback.json",
];
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp, path: &str) -> Value {
    let reply = app.send(app.client.get(app.url(path))).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}");
    reply.body
}

/// Every documented path with the methods documented for it, over all documents.
async fn documented(app: &TestApp) -> BTreeMap<String, BTreeSet<String>> {
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in DOCUMENTS {
        let document = document(app, name).await;
        for (path, item) in document["paths"].as_object().expect("paths") {
            let methods = paths.entry(path.clone()).or_default();
            for method in METHODS {
                if item.get(method).is_some() {
                    methods.insert(method.to_owned());
                }
            }
        }
    }
    paths
}

/// A documented path with each `{parameter}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |end| start + end + 1);
        out.push_str("00000000-0000-4000-8000-000000000000");
        rest = &rest[end..];
    }
    out + rest
}

async fn status(app: &TestApp, method: &str, path: &str) -> StatusCode {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    // Pages answer HTML: only the status matters here.
    app.client.request(method, app.url(&concrete(path))).send().await.expect("request sent").status()
}

async fn every_documented_operation_reaches_a_handler(app: TestApp) {
    let paths = documented(&app).await;
    assert!(paths.len() > 40, "all five documents are read: {}", paths.len());
    let mut wrong = Vec::new();
    for (path, methods) in &paths {
        for method in METHODS {
            let status = status(&app, method, path).await;
            if methods.contains(method) {
                // An anonymous call without a body: a handler answers 2xx, 3xx, 400,
                // 401, 410, 415 or 422, never the router's 404 or 405.
                if matches!(status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
                    wrong.push(format!("{method} {path}: documented, answered {status}"));
                }
            } else if status != StatusCode::METHOD_NOT_ALLOWED {
                wrong.push(format!("{method} {path}: not documented, answered {status}"));
            }
        }
    }
    assert!(wrong.is_empty(), "documents and router disagree:\n{}", wrong.join("\n"));
}

async fn the_documents_are_served_and_complete(app: TestApp) {
    for name in DOCUMENTS {
        let document = document(&app, name).await;
        assert_eq!(document["openapi"], "3.1.0", "{name}");
        // OpenAPI requires operation ids to be unique within a document.
        let mut ids = std::collections::BTreeMap::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let at = format!("{name} {method} {path}");
                assert!(operation["operationId"].is_string(), "{at}: operationId");
                if let Some(other) = ids.insert(operation["operationId"].to_string(), at.clone()) {
                    panic!("{at} has the operationId of {other}: {}", operation["operationId"]);
                }
                assert!(!operation["tags"].as_array().is_none_or(Vec::is_empty), "{at}: tags");
                let responses = operation["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|status| status.starts_with('2') || status.starts_with('3')),
                    "{at}"
                );
                assert!(responses.contains_key("500"), "{at}: 500");
                for (status, response) in responses {
                    let description = response["description"].as_str().unwrap_or_default();
                    assert!(!description.is_empty(), "{at} {status}: description");
                }
                if let Some(too_many) = responses.get("429") {
                    assert!(
                        too_many["headers"]["Retry-After"].is_object(),
                        "{at}: 429 says how long to wait"
                    );
                }
                if operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty()) {
                    assert!(responses.contains_key("401"), "{at}: 401");
                }
            }
        }
        let schemes = document["components"]["securitySchemes"].as_object().expect("security schemes");
        assert_eq!(schemes["bearer"]["scheme"], "bearer", "{name}");
    }
    let native = document(&app, "/openapi.json").await;
    let schemes = &native["components"]["securitySchemes"];
    assert_eq!(
        (schemes["api_key"]["in"].as_str(), schemes["api_key"]["name"].as_str()),
        (Some("header"), Some("X-API-Key"))
    );
    let codes = native["components"]["schemas"]["ErrorCode"]["enum"].as_array().expect("error codes");
    assert!(codes.iter().any(|code| code == "invalid_code"), "{codes:?}");
}

/// Every route is registered with `routes!`, which puts it in a document: plain axum
/// registration (`.route`, `route_service`, `nest_service`) would bypass the
/// documents, so the server's source holds none outside its unit tests. The hosted
/// pages (`src/pages/`) are HTML forms for people, not API: each of their routes is
/// listed in docs/PAGES.md instead.
#[test]
fn no_route_is_registered_outside_the_documents() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    scan(&root.join("src"), &mut found);
    let (pages, others): (Vec<String>, Vec<String>) =
        found.into_iter().partition(|line| line.contains(&format!("src{}pages", std::path::MAIN_SEPARATOR)));
    assert!(others.is_empty(), "routes registered without a document:\n{}", others.join("\n"));
    let listed = std::fs::read_to_string(root.join("../../docs/PAGES.md")).expect("docs/PAGES.md");
    assert!(pages.len() > 10, "the pages' routes were found: {pages:?}");
    for line in pages {
        let path = line.split(".route(\"").nth(1).and_then(|rest| rest.split('"').next());
        if let Some(path) = path {
            assert!(listed.contains(&format!("`{path}`")), "docs/PAGES.md does not list `{path}` ({line})");
        }
    }
}

fn scan(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            scan(&path, found);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source file");
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            if [".route(", ".route_service(", ".nest_service("].iter().any(|call| line.contains(call)) {
                found.push(format!("{}:{}: {}", path.display(), number + 1, line.trim()));
            }
        }
    }
}
