//! Key rotation without downtime: `latchkey keys rotate-signing` while two instances on
//! one database serve a steady load of logins and token checks across them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, access};

on_both_backends_raw!(the_signing_key_rotates_under_load_with_no_failed_verification);

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn published(client: &reqwest::Client, base: &str) -> Vec<String> {
    let jwks: Value =
        client.get(format!("{base}/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> String {
    let reply = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    reply.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// Waits (real time) until `done` holds, up to ten seconds.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    for _ in 0..100 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}");
}

async fn the_signing_key_rotates_under_load_with_no_failed_verification(
    db: latchkey_store::testing::TestDatabase,
) {
    let app = TestApp::spawn_on(db, |config| config.tokens.key_refresh_secs = 1).await;
    let second_dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(&app.db, second_dir.path());
    config.tokens.key_refresh_secs = 1;
    let second =
        latchkey_server::Application::build_with_clock(config, Arc::new(app.clock.clone())).await.unwrap();
    let bases = [app.base.clone(), format!("http://{}", second.local_addr().unwrap())];
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let first_token = access(&app.user("kai@example.com").await);
    let old_kid = kid(&first_token);
    assert_eq!(published(&app.client, &bases[1]).await, vec![old_kid.clone()]);

    // The load: log in on one instance, use the token on the other, and keep using the
    // token from before the rotation, until told to stop.
    let (stop, checks, failures) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (client, bases, first_token) = (app.client.clone(), bases.clone(), first_token.clone());
        let (stop, checks, failures) = (Arc::clone(&stop), Arc::clone(&checks), Arc::clone(&failures));
        tokio::spawn(async move {
            let mut round = 0usize;
            let mut kids = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (from, to) = (&bases[round % 2], &bases[(round + 1) % 2]);
                let token = login(&client, from, "kai@example.com").await;
                kids.push(kid(&token));
                for (base, token) in [(to, &token), (from, &first_token)] {
                    let me = client.get(format!("{base}/v1/me")).bearer_auth(token).send().await.unwrap();
                    checks.fetch_add(1, Ordering::Relaxed);
                    if me.status() != StatusCode::OK {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                round += 1;
            }
            kids
        })
    };

    let output = std::process::Command::new(BIN)
        .args(["keys", "rotate-signing"])
        .env("LATCHKEY_DATABASE__URL", &app.db.url)
        .env("LATCHKEY_KEYS__MASTER_KEY", "11".repeat(32))
        .env("LATCHKEY_TOKENS__KEY_REFRESH_SECS", "1")
        .env("LATCHKEY_DATA_DIR", second_dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    let new_kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, old_kid);
    assert!(said.contains("published now, signing from"), "{said}");

    // Published on both instances before either signs with it.
    for base in &bases {
        eventually("the new key is published", || async {
            published(&app.client, base).await == [new_kid.clone(), old_kid.clone()]
        })
        .await;
    }
    assert_eq!(kid(&login(&app.client, &bases[0], "kai@example.com").await), old_kid, "not signing yet");
    // Its time comes (the test clock, shared by both instances).
    app.advance(10);
    for base in &bases {
        eventually("the new key signs", || async {
            kid(&login(&app.client, base, "kai@example.com").await) == new_kid
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let kids = load.await.unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {} checks", checks.load(Ordering::Relaxed));
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "the load ran across the rotation: {kids:?}");
    let me = app.get_bearer("/v1/me", &first_token).await;
    assert_eq!(me.status, StatusCode::OK, "a token signed before the rotation still verifies");

    // Once every token the old key signed has expired (a Prisme.ai session's last 30
    // days), it leaves the key set.
    app.advance(31 * 86_400);
    for base in &bases {
        eventually("the old key retires", || async {
            published(&app.client, base).await == [new_kid.clone()]
        })
        .await;
    }
}

on_both_backends_raw!(the_master_key_rotates_under_load_and_no_secret_is_lost);

async fn the_master_key_rotates_under_load_and_no_secret_is_lost(db: latchkey_store::testing::TestDatabase) {
    use latchkey_core::crypto::MasterKey;
    use reqwest::Method;

    let (old, new) = ("11".repeat(32), "33".repeat(32));
    // Step 1 of the procedure: every instance accepts the new key before anything is
    // sealed with it.
    let app = TestApp::spawn_on(db, |config| {
        config.keys.accepted_master_key = Some(new.clone().into());
        config.lockout.free_failures = 1_000_000;
        config.lockout.lock_after = 2_000_000;
    })
    .await;
    // A secret of every kind: a TOTP secret and recovery codes, a session's refresh
    // token, an API key, a webhook endpoint's secret and queued deliveries to it, the
    // signing key.
    let tokens = app.user("uma@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let user_id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();
    let admin = app.api_key(&["admin"]).await;
    let endpoint = json!({ "url": "http://127.0.0.1:9/nobody-listens", "event_types": ["mfa.failed"] });
    let webhook = app.admin(Method::POST, "/v1/webhooks", &admin, Some(endpoint)).await;
    let webhook_id = webhook.body["id"].as_str().unwrap().to_owned();
    let kid_before = published(&app.client, &app.base).await;

    // The load: wrong codes checked against the TOTP secret (each opens it, and each
    // queues a sealed webhook delivery) for as long as the rotation runs.
    let stop = Arc::new(AtomicBool::new(false));
    let (checks, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (client, url, admin) =
            (app.client.clone(), app.url(&format!("/v1/users/{user_id}/verify")), admin.clone());
        let (stop, checks, failures) = (Arc::clone(&stop), Arc::clone(&checks), Arc::clone(&failures));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = client
                    .post(&url)
                    .header("x-api-key", &admin)
                    .json(&json!({ "code": "000000" }))
                    .send()
                    .await
                    .unwrap();
                checks.fetch_add(1, Ordering::Relaxed);
                let fine = reply.status() == StatusCode::OK
                    && reply.json::<Value>().await.unwrap()["valid"] == false;
                if !fine {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), &new).unwrap();
    let rotate = || {
        let output = std::process::Command::new(BIN)
            .args(["keys", "rotate-master", "--batch", "7", "--new-key-file"])
            .arg(key_file.path())
            .env("LATCHKEY_DATABASE__URL", &app.db.url)
            .env("LATCHKEY_KEYS__MASTER_KEY", &old)
            .env("LATCHKEY_KEYS__ACCEPTED_MASTER_KEY", &new)
            .env("LATCHKEY_DATA_DIR", app.data_dir.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{said}");
        String::from_utf8(output.stdout).unwrap()
    };
    let first = rotate();
    assert!(first.lines().any(|l| l.starts_with("factors") && l.contains(" 1 re-sealed")), "{first}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {} checks", checks.load(Ordering::Relaxed));
    assert!(checks.load(Ordering::Relaxed) > 5, "the load ran");
    // Deliveries queued during the first pass were sealed under the old key; a second
    // run (as after instances switch keys) finishes the job.
    rotate();
    let old_id = MasterKey::parse(&old).unwrap().derive().key_id;
    for (table, column) in [
        ("factors", "secret_key_id"),
        ("outbox", "payload_key_id"),
        ("signing_keys", "master_key_id"),
        ("webhook_endpoints", "secrets_key_id"),
        ("server_secrets", "key_id"),
        ("webauthn_ceremonies", "state_key_id"),
    ] {
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{old_id}'")).await,
            0,
            "{table}"
        );
    }

    // An instance with the new key alone opens everything and matches every hash.
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(&app.db, dir.path());
    config.keys.master_key = Some(new.clone().into());
    config.lockout = app.state.config.lockout.clone();
    let fresh =
        latchkey_server::Application::build_with_clock(config, Arc::new(app.clock.clone())).await.unwrap();
    let base = format!("http://{}", fresh.local_addr().unwrap());
    tokio::spawn(fresh.run_until_stopped(std::future::pending()));
    assert_eq!(published(&app.client, &base).await, kid_before, "the signing key opened");
    let me = app.client.get(format!("{base}/v1/me")).bearer_auth(access(&tokens)).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK, "a token signed before still verifies");
    let refreshed = app
        .client
        .post(format!("{base}/v1/auth/refresh"))
        .json(&json!({ "refresh_token": crate::helpers::refresh(&tokens) }))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK, "the refresh token's keyed hash still matches");
    let verify = |body: Value| {
        app.client
            .post(format!("{base}/v1/users/{user_id}/verify"))
            .header("x-api-key", &admin)
            .json(&body)
            .send()
    };
    let totp: Value =
        verify(json!({ "code": app.code(&enrolled.key, 1) })).await.unwrap().json().await.unwrap();
    assert_eq!(totp["valid"], true, "the TOTP secret opened under the new key: {totp}");
    let recovery: Value =
        verify(json!({ "recovery_code": enrolled.recovery_codes[0] })).await.unwrap().json().await.unwrap();
    assert_eq!(recovery["valid"], true, "recovery codes' keyed hashes still match: {recovery}");
    let rotated = app
        .client
        .post(format!("{base}/v1/webhooks/{webhook_id}/secret"))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK, "the webhook's secrets opened and the API key matched");
}
