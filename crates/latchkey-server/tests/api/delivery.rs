//! Delivery through real counterparts: SMTP with STARTTLS and authentication, the
//! signed SMS webhook, a Twilio-compatible API, and the queue surviving a killed
//! server.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, access};
use crate::mail::{self, SmtpSink};

/// One request a fake provider endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A local HTTP server that records every POST and answers 201.
pub async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let recorded = log.clone();
    let app = Router::new().fallback(post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(Received { path: uri.path().to_owned(), headers, body });
            (axum::http::StatusCode::CREATED, "{}")
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, log)
}

async fn first_request(log: &Arc<Mutex<Vec<Received>>>) -> Received {
    for _ in 0..400 {
        if let Some(first) = log.lock().unwrap().first().cloned() {
            return first;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the provider received nothing");
}

with_each_backend!(
    smtp_with_starttls_and_authentication,
    refused_smtp_credentials_abandon_the_message_and_are_audited,
    sms_webhook_requests_are_signed,
    sms_through_a_twilio_compatible_api,
);

pub fn digits_after(text: &str, marker: &str) -> String {
    let start = text.find(marker).map(|i| i + marker.len()).unwrap_or(0);
    text[start..].chars().filter(char::is_ascii_digit).take(6).collect()
}

async fn smtp_with_starttls_and_authentication(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(true, Some("mailer:s3cret pass"));
    let (url, ca) = (sink.url(Some("mailer:s3cret%20pass")), sink.ca.clone());
    let app = TestApp::spawn_with(backend, |c| {
        c.email.smtp_url = Some(url);
        c.email.smtp_ca_file = ca;
    })
    .await;
    let tokens = app.user("tls@example.com").await;
    let reply = app.post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "email" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let received = mail::nth(sink.path(), "tls@example.com", 1).await;
    assert_eq!(received.header("X-Sink-TLS"), Some("yes"), "STARTTLS was used");
    assert_eq!(received.header("X-Sink-Auth"), Some("mailer"), "the client authenticated");
    let code = received.code();
    let confirmed = app.confirm(&access(&tokens), reply.body["id"].as_str().unwrap(), &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
}

async fn refused_smtp_credentials_abandon_the_message_and_are_audited(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(true, Some("mailer:right"));
    let (url, ca) = (sink.url(Some("mailer:wrong")), sink.ca.clone());
    let app = TestApp::spawn_with(backend, |c| {
        c.email.smtp_url = Some(url);
        c.email.smtp_ca_file = ca;
        c.delivery.max_attempts = 2;
        c.delivery.retry_base_secs = 1;
    })
    .await;
    let tokens = app.user("fail@example.com").await;
    let reply = app.post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "email" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "the request does not wait for SMTP");
    let mut counts = app.state.store.outbox_counts().await.unwrap();
    for _ in 0..200 {
        app.advance(2);
        counts = app.state.store.outbox_counts().await.unwrap();
        if counts.failed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (counts.queued, counts.sent, counts.failed),
        (0, 0, 1),
        "a refused login is permanent: given up"
    );
    assert!(mail::messages(sink.path()).is_empty());
    let key = app.api_key(&["audit:read"]).await;
    let audit = app.admin(reqwest::Method::GET, "/v1/audit?type=message.abandoned", &key, None).await;
    assert_eq!(audit.body["events"].as_array().map(Vec::len), Some(1), "{}", audit.body);
    assert_eq!(app.state.delivery.counts().failed, 1);
}

async fn sms_webhook_requests_are_signed(backend: latchkey_store::Backend) {
    let (base, log) = receiver().await;
    let url = format!("{base}/hooks/sms");
    let app = TestApp::spawn_with(backend, |c| {
        c.sms.provider = latchkey_server::config::SmsProvider::Webhook;
        c.sms.webhook_url = Some(url);
        c.sms.webhook_secret = Some("whsec-test".to_owned().into());
    })
    .await;
    let tokens = app.user("sam@example.com").await;
    let reply = app
        .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": "+14155550123" }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let request = first_request(&log).await;
    assert_eq!(request.path, "/hooks/sms");
    assert_eq!(request.headers["content-type"], "application/json");
    let signature = request.headers["x-latchkey-signature"].to_str().unwrap();
    let (t, v1) = signature.split_once(',').unwrap();
    let timestamp = t.strip_prefix("t=").unwrap();
    assert_eq!(timestamp.parse::<i64>().unwrap(), app.now());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec-test").unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, format!("v1={expected}"), "the signature covers the timestamp and the body");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["to"], "+14155550123");
    let code = digits_after(body["body"].as_str().unwrap(), "");
    let confirmed = app.confirm(&access(&tokens), reply.body["id"].as_str().unwrap(), &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
}

async fn sms_through_a_twilio_compatible_api(backend: latchkey_store::Backend) {
    let (base, log) = receiver().await;
    let app = TestApp::spawn_with(backend, |c| {
        c.sms.provider = latchkey_server::config::SmsProvider::Twilio;
        c.sms.twilio_base_url = base;
        c.sms.twilio_account_sid = Some("AC123".into());
        c.sms.twilio_auth_token = Some("tw-token".to_owned().into());
        c.sms.twilio_from = Some("+15005550006".into());
    })
    .await;
    let tokens = app.user("tina@example.com").await;
    let reply = app
        .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": "+447700900123" }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let request = first_request(&log).await;
    assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Messages.json");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("AC123:tw-token");
    assert_eq!(request.headers["authorization"], format!("Basic {basic}").as_str());
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(field("To"), "+447700900123");
    assert_eq!(field("From"), "+15005550006");
    let code = digits_after(&field("Body"), "");
    let confirmed = app.confirm(&access(&tokens), reply.body["id"].as_str().unwrap(), &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
}

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

fn serve(data_dir: &std::path::Path, database: &str, port: u16, smtp: &str) -> std::process::Child {
    Command::new(BIN)
        .arg("serve")
        .env("LATCHKEY_DATABASE__URL", database)
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_DATA_DIR", data_dir)
        .env("LATCHKEY_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("LATCHKEY_EMAIL__SMTP_URL", smtp)
        .env("LATCHKEY_DELIVERY__RETRY_BASE_SECS", "1")
        .env("LATCHKEY_DELIVERY__RETRY_MAX_SECS", "1")
        .env("LATCHKEY_DELIVERY__POLL_INTERVAL_MS", "100")
        .env("LATCHKEY_DELIVERY__LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the server at `base` answers `/readyz` (ten seconds at most).
pub async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

on_both_backends_raw!(queued_messages_survive_a_killed_server);

async fn queued_messages_survive_a_killed_server(db: latchkey_store::testing::TestDatabase) {
    let data_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let smtp_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let smtp = format!("smtp://127.0.0.1:{smtp_port}?tls=none");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // Nothing listens on the SMTP port yet: the code stays queued.
    let mut server = serve(data_dir.path(), &db.url, port, &smtp);
    wait_ready(&client, &base).await;
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let password = crate::helpers::PASSWORD;
    post("/v1/auth/signup", None, json!({ "email": "kim@example.com", "password": password })).await.unwrap();
    let tokens: Value =
        post("/v1/auth/login", None, json!({ "email": "kim@example.com", "password": password }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let created =
        post("/v1/me/factors", tokens["access_token"].as_str(), json!({ "type": "email" })).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    // The SMTP server appears while Latchkey is down; on restart the message goes out.
    let sink_dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
    let mut sink = Command::new("python3")
        .args([script, "--port", &smtp_port.to_string(), "--dir"])
        .arg(sink_dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(sink.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");
    assert!(mail::messages(sink_dir.path()).is_empty());
    let mut server = serve(data_dir.path(), &db.url, port, &smtp);
    let received = mail::nth(sink_dir.path(), "kim@example.com", 1).await;
    assert_eq!(received.code().len(), 6);
    server.kill().unwrap();
    server.wait().unwrap();
    sink.kill().unwrap();
    sink.wait().unwrap();
}
