//! DESIGN rule 18: a client cannot hold the server. Headers must arrive in time, idle
//! connections are closed, connections past the cap wait for one to close, and
//! requests past the in-flight cap are shed with 503 and `Retry-After` in the
//! surface's own format.

use std::time::Duration;

use latchkey_store::Backend;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{PASSWORD, TestApp, join_all};

with_each_backend!(
    a_client_trickling_headers_or_sitting_idle_is_cut_off,
    connections_past_the_cap_wait_for_one_to_close,
    requests_past_the_in_flight_cap_are_shed_in_each_surfaces_format,
);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Whether the server has closed `stream` (reads end) within `within`, reading and
/// discarding whatever it sends first.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn a_client_trickling_headers_or_sitting_idle_is_cut_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.http.header_read_timeout_secs = 1).await;

    // Slowloris: a header line every 200 ms, never the blank line that ends the head.
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: latchkey\r\n").await.unwrap();
    let trickle = async {
        for n in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(format!("X-Trickle-{n}: still here\r\n").as_bytes()).await.is_err() {
                return true;
            }
        }
        false
    };
    let cut_off = tokio::time::timeout(Duration::from_secs(15), trickle).await.unwrap_or(false)
        || closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(cut_off, "a client trickling headers kept its connection");

    // An idle kept-alive connection is closed after its answer.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: latchkey\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(closed_within(&mut idle, Duration::from_secs(15)).await, "an idle connection stayed open");

    // A connection that never says anything is closed too.
    let mut silent = connect(&app).await;
    assert!(closed_within(&mut silent, Duration::from_secs(15)).await, "a silent connection stayed open");
    assert_eq!(app.send(app.client.get(app.url("/healthz"))).await.status, StatusCode::OK);
}

async fn connections_past_the_cap_wait_for_one_to_close(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.http.max_connections = Some(2);
        c.http.header_read_timeout_secs = 60;
    })
    .await;
    let held = [connect(&app).await, connect(&app).await];
    // Give the server the moment it needs to take both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let waiting = client.get(app.url("/healthz")).timeout(Duration::from_millis(700)).send().await;
    assert!(waiting.is_err_and(|e| e.is_timeout()), "a third connection was served past the cap of two");
    drop(held);
    let served = client.get(app.url("/healthz")).timeout(Duration::from_secs(10)).send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK, "once a connection closes, the next is served");
}

async fn requests_past_the_in_flight_cap_are_shed_in_each_surfaces_format(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.http.max_in_flight_requests = 1;
        c.login_throttle.ip_free_failures = 1_000;
    })
    .await;
    app.signup("busy@example.com").await;
    let app = &app;
    let logins = (0..12).map(|n| {
        let (path, body) = if n % 2 == 0 {
            ("/v1/auth/login", json!({ "email": "busy@example.com", "password": PASSWORD }))
        } else {
            ("/v2/login", json!({ "email": "busy@example.com", "password": PASSWORD }))
        };
        // Each on its own connection, as separate clients would be.
        let client = reqwest::Client::new();
        async move { (path, app.send(client.post(app.url(path)).json(&body)).await) }
    });
    let replies = join_all(logins).await;
    let mut shed = 0;
    for (path, reply) in &replies {
        match reply.status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert_eq!(reply.headers["retry-after"], "1");
                let code =
                    if *path == "/v2/login" { &reply.body["error"] } else { &reply.body["error"]["code"] };
                let expected = if *path == "/v2/login" { "ServiceUnavailableError" } else { "overloaded" };
                assert_eq!(code, expected, "{path}: {}", reply.body);
            }
            other => panic!("{path}: {other} {}", reply.body),
        }
    }
    assert!(shed > 0 && shed < replies.len(), "{shed} of {} shed", replies.len());
    assert_eq!(app.send(app.client.get(app.url("/healthz"))).await.status, StatusCode::OK);
}
