//! Operations: health, readiness, published keys, several instances on one database,
//! graceful shutdown.

use std::sync::Arc;

use latchkey_server::Application;
use latchkey_server::clock::SystemClock;
use latchkey_store::Backend;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{TestApp, access, test_config};

on_both_backends!(
    health_readiness_and_keys,
    instances_sharing_a_database_share_the_signing_key,
    shutdown_is_graceful,
    a_periodic_task_purges_what_has_expired,
);

async fn health_readiness_and_keys(app: TestApp) {
    let health = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let ready = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!((ready.status, ready.body["status"].as_str()), (StatusCode::OK, Some("ready")));
    let jwks = app.send(app.client.get(app.url("/.well-known/jwks.json"))).await.body;
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "no private part is published");
    let token = access(&app.user("alice@example.com").await);
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], key["kid"]);
    assert_eq!(header["alg"], "EdDSA");
}

async fn instances_sharing_a_database_share_the_signing_key(app: TestApp) {
    let tokens = app.user("bob@example.com").await;
    let second_dir = tempfile::tempdir().unwrap();
    let second =
        Application::build_with_clock(test_config(&app.db, second_dir.path()), Arc::new(SystemClock))
            .await
            .unwrap();
    let base = format!("http://{}", second.local_addr().unwrap());
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let me = app.send(app.client.get(format!("{base}/v1/me")).bearer_auth(access(&tokens))).await;
    assert_eq!(me.status, StatusCode::OK, "a token from one instance works on another");
    let logout =
        app.send(app.client.post(format!("{base}/v1/auth/logout")).bearer_auth(access(&tokens))).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/v1/me", &access(&tokens)).await.status,
        StatusCode::UNAUTHORIZED,
        "logout is global"
    );

    let mut wrong_key = test_config(&app.db, second_dir.path());
    wrong_key.keys.master_key = Some(SecretString::from("22".repeat(32)));
    let error = Application::build_with_clock(wrong_key, Arc::new(SystemClock)).await.err().unwrap();
    assert!(format!("{error:#}").contains("same master key"), "{error:#}");
}

/// PostgreSQL only, and named `postgres` like every PostgreSQL variant: an open SQLite
/// file cannot vanish from under its connections, while a PostgreSQL database can be
/// dropped for real.
mod a_database_outage_answers_503_on_every_surface {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::spawn_with(Backend::Postgres, |c| c.database.acquire_timeout_secs = 1).await;
        assert_eq!(app.send(app.client.get(app.url("/readyz"))).await.status, StatusCode::OK);
        let name = app.db.url.rsplit('/').next().unwrap().to_owned();
        let admin = sqlx::AnyPool::connect(&latchkey_store::testing::postgres_admin_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&admin)
            .await
            .unwrap();
        let ready = app.send(app.client.get(app.url("/readyz"))).await;
        assert_eq!((ready.status, ready.code()), (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"));
        let health = app.send(app.client.get(app.url("/healthz"))).await;
        assert_eq!(health.status, StatusCode::OK, "the process itself is still up");

        let credentials = json!({ "email": "a@example.com", "password": "whatever it is" });
        let lerian =
            json!({ "grantType": "password", "username": "a@example.com", "password": "whatever it is" });
        // Each surface answers 503 with Retry-After, in its own format, and no driver text.
        for (path, body, code) in [
            ("/v1/auth/login", credentials.clone(), json!({ "code": "database_unavailable" })),
            ("/v2/login", credentials.clone(), json!("ServiceUnavailableError")),
            ("/api/auth/login", credentials.clone(), json!("SERVICE_UNAVAILABLE")),
            ("/v1/login/oauth/access_token", lerian, json!("AUT-9061")),
        ] {
            let reply = app.post(path, body).await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {}", reply.body);
            assert_eq!(reply.headers["retry-after"], "5", "{path}");
            let found = match path {
                "/v1/auth/login" => json!({ "code": reply.body["error"]["code"] }),
                "/v2/login" => reply.body["error"].clone(),
                _ => reply.body["code"].clone(),
            };
            assert_eq!(found, code, "{path}: {}", reply.body);
            let text = reply.body.to_string();
            assert!(
                !text.contains(&name) && !text.contains("does not exist"),
                "driver errors stay in the logs: {text}"
            );
        }
    }
}

async fn shutdown_is_graceful(mut app: TestApp) {
    let url = app.url("/healthz");
    assert_eq!(app.send(app.client.get(&url)).await.status, StatusCode::OK);
    app.shutdown().await;
    assert!(app.client.get(&url).send().await.is_err(), "the listener is closed");
}

async fn a_periodic_task_purges_what_has_expired(app: TestApp) {
    let backend = app.db.backend;
    drop(app);
    let app = TestApp::spawn_with(backend, |c| c.sessions.purge_interval_secs = 1).await;
    let tokens = app.user("pia@example.com").await;
    app.enroll(&access(&tokens)).await;
    app.clock.advance(13 * 3600);
    // The task runs every second (real time) with the server's clock: wait, bounded,
    // until the rows are gone, reading them without purging anything ourselves.
    let mut left = (0, 0);
    for _ in 0..200 {
        left = (
            app.count("SELECT COUNT(*) FROM sessions").await,
            app.count("SELECT COUNT(*) FROM factors").await,
        );
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left, (0, 0), "the task purged the expired session and the lapsed pending factor");
}
