//! Webhooks against a real receiver that checks every signature with the
//! `standardwebhooks` package (tests/support/webhook_receiver.py): events of the
//! subscribed types arrive signed, a refused delivery is retried under the same
//! `webhook-id`, attempts are listed, a rotated secret overlaps the old one, a removed
//! endpoint gets nothing more, and a queued event survives a server killed with SIGKILL.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::wait_ready;
use crate::helpers::{PASSWORD, TestApp, access};

on_both_backends_raw!(webhooks_are_signed_retried_listed_rotated_and_removed);
on_both_backends_raw!(a_queued_event_survives_a_killed_server_and_the_cli_manages_endpoints);

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// The receiver process and its files.
struct Receiver {
    child: Child,
    port: u16,
    secrets: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start(port: u16, fail_first: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (secrets, log) = (dir.path().join("secrets"), dir.path().join("log"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/webhook_receiver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--fail-first", &fail_first.to_string()])
            .arg("--secrets")
            .arg(&secrets)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("READY ").expect("the receiver starts").parse().unwrap();
        Self { child, port, secrets, log, _dir: dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/latchkey", self.port)
    }

    fn trust(&self, secrets: &[&str]) {
        std::fs::write(&self.secrets, secrets.join("\n")).unwrap();
    }

    fn deliveries(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// Waits until `done` holds for the deliveries so far, calling `tick` between looks
    /// (to move a test clock past a retry's delay).
    async fn wait_for(
        &self,
        what: &str,
        mut tick: impl FnMut(),
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        for _ in 0..300 {
            let deliveries = self.deliveries();
            if done(&deliveries) {
                return deliveries;
            }
            tick();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: {:#?}", self.deliveries());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn delivered<'a>(deliveries: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    deliveries.iter().filter(|d| d["body"]["type"] == event_type && d["status"] == 204).collect()
}

async fn webhooks_are_signed_retried_listed_rotated_and_removed(db: latchkey_store::testing::TestDatabase) {
    let app = TestApp::spawn_on(db, |config| {
        config.delivery.poll_interval_ms = 50;
        config.delivery.retry_base_secs = 1;
        config.delivery.retry_max_secs = 1;
    })
    .await;
    let receiver = Receiver::start(0, 1);
    let admin = app.api_key(&["admin"]).await;
    let reader = app.api_key(&["users:read"]).await;
    let body = json!({
        "url": receiver.url(),
        "event_types": ["user.created", "login.failed", "mfa.verified", "mfa.failed"],
        "description": "the app's security feed",
    });
    let refused = app.admin(Method::POST, "/v1/webhooks", &reader, Some(body.clone())).await;
    assert_eq!(refused.code(), "insufficient_scope");
    for (bad, field) in [
        (json!({ "url": "ftp://example.com", "event_types": ["mfa.verified"] }), "url"),
        (json!({ "url": receiver.url(), "event_types": ["mfa.everything"] }), "event_types"),
        (json!({ "url": receiver.url(), "event_types": [] }), "event_types"),
    ] {
        let reply = app.admin(Method::POST, "/v1/webhooks", &admin, Some(bad)).await;
        assert_eq!(
            (reply.status, reply.body["error"]["details"]["field"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!(field)),
            "{}",
            reply.body
        );
    }
    let created = app.admin(Method::POST, "/v1/webhooks", &admin, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (id, secret) = (
        created.body["id"].as_str().unwrap().to_owned(),
        created.body["secret"].as_str().unwrap().to_owned(),
    );
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = app.admin(Method::GET, "/v1/webhooks", &admin, None).await;
    assert_eq!(listed.body["webhooks"][0]["id"], id.as_str());
    assert!(listed.body["webhooks"][0].get("secret").is_none(), "the secret is shown once");
    receiver.trust(&[&secret]);

    // Four subscribed events (and some that are not subscribed: factor.enrolled, ...).
    let tokens = app.user("wes@example.com").await;
    let user_id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();
    let wrong = app
        .post("/v1/auth/login", json!({ "email": "wes@example.com", "password": "not the password" }))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let token = app.mfa_token("wes@example.com").await;
    let bad = app
        .mfa_verify(json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": "000000" }))
        .await;
    assert_eq!(bad.code(), "invalid_code");
    let good =
        json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 1) });
    assert_eq!(app.mfa_verify(good).await.status, StatusCode::OK);

    let deliveries = receiver
        .wait_for(
            "four events delivered",
            || app.advance(1),
            |d| {
                ["user.created", "login.failed", "mfa.failed", "mfa.verified"]
                    .iter()
                    .all(|t| !delivered(d, t).is_empty())
            },
        )
        .await;
    for delivery in &deliveries {
        assert_eq!(delivery["verified"], true, "every delivery verifies with the secret: {delivery}");
        assert_eq!(delivery["path"], "/hooks/latchkey");
    }
    let types: Vec<&str> = deliveries.iter().filter_map(|d| d["body"]["type"].as_str()).collect();
    assert!(!types.contains(&"factor.enrolled") && !types.contains(&"login.succeeded"), "{types:?}");
    // The first delivery was answered 503 and came again, under the same id.
    let first = &deliveries[0];
    assert_eq!(first["status"], 503);
    let again: Vec<&Value> = deliveries.iter().filter(|d| d["id"] == first["id"]).collect();
    assert_eq!(again.iter().map(|d| d["status"].clone()).collect::<Vec<_>>(), [json!(503), json!(204)]);
    let verified = delivered(&deliveries, "mfa.verified")[0];
    assert_eq!(verified["body"]["data"]["user_id"], user_id.as_str());
    assert_eq!(verified["body"]["data"]["factor_type"], "totp");
    assert_eq!(verified["body"]["data"]["event_id"], verified["id"]);
    let created_event = delivered(&deliveries, "user.created")[0];
    assert_eq!(created_event["body"]["data"]["user_id"], user_id.as_str());
    let text = serde_json::to_string(&deliveries).unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains("000000"), "no secrets in events");

    let too_many =
        app.admin(Method::GET, &format!("/v1/webhooks/{id}/attempts?limit=1001"), &admin, None).await;
    assert_eq!(too_many.code(), "invalid_query");
    let attempts = app.admin(Method::GET, &format!("/v1/webhooks/{id}/attempts"), &admin, None).await;
    assert_eq!(attempts.status, StatusCode::OK, "{}", attempts.body);
    let attempts = attempts.body["attempts"].as_array().unwrap().clone();
    let retried: Vec<&Value> = attempts.iter().filter(|a| a["event_id"] == first["id"]).collect();
    assert_eq!(retried.len(), 2, "{attempts:#?}");
    assert_eq!(
        (retried[1]["attempt"].clone(), retried[1]["status"].clone(), retried[1]["succeeded"].clone()),
        (json!(1), json!(503), json!(false))
    );
    assert_eq!(retried[1]["error"], "the endpoint answered HTTP 503");
    assert_eq!(
        (retried[0]["attempt"].clone(), retried[0]["status"].clone(), retried[0]["succeeded"].clone()),
        (json!(2), json!(204), json!(true))
    );

    // A rotation: both secrets sign for a day, so a receiver still on the old one and
    // one already on the new one both verify.
    let rotated = app.admin(Method::POST, &format!("/v1/webhooks/{id}/secret"), &admin, None).await;
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    for trusted in [&secret, &new_secret] {
        receiver.trust(&[trusted]);
        let before = delivered(&receiver.deliveries(), "login.failed").len();
        app.post("/v1/auth/login", json!({ "email": "wes@example.com", "password": "still not it" })).await;
        let deliveries = receiver
            .wait_for("the next login.failed", || {}, |d| delivered(d, "login.failed").len() > before)
            .await;
        let latest = delivered(&deliveries, "login.failed").last().copied().unwrap().clone();
        assert_eq!(
            (latest["verified"].clone(), latest["signatures"].clone()),
            (json!(true), json!(2)),
            "{latest}"
        );
    }
    // A day later only the new secret signs. (The test clock is then a day ahead of
    // the receiver's, which rightly refuses the timestamp, so only the count is read.)
    app.advance(24 * 3600 + 1);
    let before = receiver.deliveries().len();
    app.post("/v1/auth/login", json!({ "email": "wes@example.com", "password": "nor this" })).await;
    let deliveries = receiver.wait_for("a delivery after the overlap", || {}, |d| d.len() > before).await;
    assert_eq!(deliveries[before]["signatures"], 1, "{}", deliveries[before]);

    // Removed: nothing more is delivered, and its attempts are gone with it.
    let removed = app.admin(Method::DELETE, &format!("/v1/webhooks/{id}"), &admin, None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let count = receiver.deliveries().len();
    app.post("/v1/auth/login", json!({ "email": "wes@example.com", "password": "one more" })).await;
    for _ in 0..40 {
        app.advance(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.deliveries().len(), count, "a removed endpoint gets nothing");
    let gone = app.admin(Method::GET, &format!("/v1/webhooks/{id}/attempts"), &admin, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

fn serve(data_dir: &Path, database: &str, port: u16) -> Child {
    Command::new(BIN)
        .arg("serve")
        .envs(environment(data_dir, database))
        .env("LATCHKEY_LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_DELIVERY__RETRY_BASE_SECS", "1")
        .env("LATCHKEY_DELIVERY__RETRY_MAX_SECS", "1")
        .env("LATCHKEY_DELIVERY__POLL_INTERVAL_MS", "100")
        .env("LATCHKEY_DELIVERY__LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn environment(data_dir: &Path, database: &str) -> Vec<(String, String)> {
    vec![
        ("LATCHKEY_DATABASE__URL".into(), database.into()),
        ("LATCHKEY_DATA_DIR".into(), data_dir.to_string_lossy().into_owned()),
        ("LATCHKEY_KEYS__MASTER_KEY".into(), "22".repeat(32)),
    ]
}

fn cli(data_dir: &Path, database: &str, args: &[&str]) -> (String, String) {
    let output = Command::new(BIN).args(args).envs(environment(data_dir, database)).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap());
    assert!(output.status.success(), "latchkey {args:?}: {stderr}");
    (stdout, stderr)
}

async fn a_queued_event_survives_a_killed_server_and_the_cli_manages_endpoints(
    db: latchkey_store::testing::TestDatabase,
) {
    let data_dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (port, receiver_port) = (free(), free());
    let url = format!("http://127.0.0.1:{receiver_port}/hooks/latchkey");
    cli(data_dir.path(), &db.url, &["migrate"]);
    let (secret, said) = cli(
        data_dir.path(),
        &db.url,
        &["webhook", "add", "--url", &url, "--event", "user.created,user.deleted"],
    );
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("whsec_") && said.contains("added webhook"), "{said}");
    let (listed, said) = cli(data_dir.path(), &db.url, &["webhook", "list", "--json"]);
    assert!(said.contains("1 webhook endpoints in"), "{said}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["event_types"], json!(["user.created", "user.deleted"]));

    // Nothing listens at the URL yet: the event stays queued, failing, when the server
    // is killed.
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve(data_dir.path(), &db.url, port);
    wait_ready(&client, &base).await;
    let signup = json!({ "email": "zoe@example.com", "password": PASSWORD });
    client.post(format!("{base}/v1/auth/signup")).json(&signup).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let receiver = Receiver::start(receiver_port, 0);
    receiver.trust(&[&secret]);
    let mut server = serve(data_dir.path(), &db.url, port);
    let deliveries = receiver
        .wait_for("the queued event after the restart", || {}, |d| !delivered(d, "user.created").is_empty())
        .await;
    assert!(deliveries.iter().all(|d| d["verified"] == true));
    // The worker records the attempt after the receiver has answered: wait for the
    // record before killing the server, or the kill can land in between.
    let succeeded =
        |attempts: &str| attempts.lines().any(|l| l.contains("user.created") && l.contains("  204  "));
    let mut attempts = String::new();
    for _ in 0..100 {
        attempts = cli(data_dir.path(), &db.url, &["webhook", "attempts", &id]).0;
        if succeeded(&attempts) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    assert!(succeeded(&attempts), "{attempts}");
    assert!(attempts.lines().any(|l| l.contains("the endpoint could not be reached")), "{attempts}");
    cli(data_dir.path(), &db.url, &["user", "delete", "--email", "zoe@example.com"]);
    let (_, said) = cli(data_dir.path(), &db.url, &["webhook", "remove", &id]);
    assert!(said.contains("removed webhook"), "{said}");
    let (listed, _) = cli(data_dir.path(), &db.url, &["webhook", "list", "--json"]);
    assert_eq!(listed.trim(), "[]");
}
