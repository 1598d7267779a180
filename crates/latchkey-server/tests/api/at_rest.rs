//! DESIGN rule 9 (and the at-rest halves of rules 5 and 6), checked in the database
//! itself: every row of every table is read back and searched for what a user or an
//! app was handed. Values that are only compared are stored as keyed hashes (the
//! positive controls find those hashes, so the search is known to see the rows);
//! the TOTP secret is sealed to its owner and factor.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::{base32, recovery};
use latchkey_server::keys;
use latchkey_server::service::second_factor::secret_context;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::contact::{sms_code, wait_for_text};
use crate::helpers::{TestApp, access, refresh};
use crate::mail;

with_each_backend!(nothing_handed_out_is_stored_in_clear);

/// One table's rows, each column rendered as text (blobs also kept as raw bytes).
struct Table {
    name: String,
    text: String,
    bytes: Vec<u8>,
}

async fn table_names(pool: &sqlx::AnyPool, backend: latchkey_store::Backend) -> Vec<String> {
    let sql = match backend {
        latchkey_store::Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        latchkey_store::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    sqlx::query(sql).fetch_all(pool).await.unwrap().iter().map(|row| row.get::<String, _>(0)).collect()
}

fn render(row: &AnyRow, text: &mut String, bytes: &mut Vec<u8>) {
    for i in 0..row.len() {
        if let Ok(Some(value)) = row.try_get::<Option<String>, _>(i) {
            text.push_str(&value);
        } else if let Ok(Some(value)) = row.try_get::<Option<Vec<u8>>, _>(i) {
            text.push_str(&String::from_utf8_lossy(&value));
            bytes.extend_from_slice(&value);
        } else if let Ok(Some(value)) = row.try_get::<Option<i64>, _>(i) {
            text.push_str(&value.to_string());
        }
        text.push('\t');
        bytes.push(0);
    }
    text.push('\n');
}

/// Every row of every table in the test's database.
async fn dump(app: &TestApp) -> Vec<Table> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    let mut tables = Vec::new();
    for name in table_names(&pool, app.db.backend).await {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {name}"))).fetch_all(&pool).await.unwrap();
        let (mut text, mut bytes) = (String::new(), Vec::new());
        for row in &rows {
            render(row, &mut text, &mut bytes);
        }
        tables.push(Table { name, text, bytes });
    }
    pool.close().await;
    assert!(tables.iter().any(|t| t.name == "challenges") && tables.len() >= 10, "the dump sees the schema");
    tables
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn nothing_handed_out_is_stored_in_clear(backend: latchkey_store::Backend) {
    let app =
        TestApp::spawn_with(backend, |c| c.magic_link.redirect_url = Some("https://app.example/in".into()))
            .await;
    let tokens = app.user("rest@example.com").await;
    let refresh_token = refresh(&tokens);
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let secret = enrolled.otpauth_uri.split("secret=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    assert_eq!(enrolled.recovery_codes.len(), 10);

    // An email code and an SMS code, pending in their challenges.
    let fresh = app.refresh_tokens(&refresh_token).await;
    let email = app
        .post_bearer(
            "/v1/me/factors",
            &access(&fresh),
            json!({ "type": "email", "email": "rest.mail@example.com" }),
        )
        .await;
    assert_eq!(email.status, StatusCode::CREATED, "{}", email.body);
    let email_code = mail::nth(&app.outbox(), "rest.mail@example.com", 1).await.code();
    let sms = app
        .post_bearer("/v1/me/factors", &access(&fresh), json!({ "type": "sms", "phone": "+14155550188" }))
        .await;
    assert_eq!(sms.status, StatusCode::CREATED, "{}", sms.body);
    let sms_code = sms_code(&wait_for_text(&app.outbox(), "+14155550188").await);
    assert_eq!((email_code.len(), sms_code.len()), (6, 6));

    // A sign-in link, an MFA token and an API key.
    app.signup("link@example.com").await;
    app.post("/v1/auth/magic-link", json!({ "email": "link@example.com" })).await;
    let link = mail::nth(&app.outbox(), "link@example.com", 1).await.link();
    let link_token = link.split("token=").nth(1).unwrap().to_owned();
    let link_body = link_token.strip_prefix("lkl_").unwrap();
    let link_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, link_body).unwrap();
    assert!(link_bytes.len() * 8 >= 128, "a link token carries at least 128 random bits");
    let mfa_token = app.mfa_token("rest@example.com").await;
    let api_key = app.api_key(&[]).await;

    let tables = dump(&app).await;
    let everything: Vec<u8> =
        tables.iter().flat_map(|t| t.text.bytes().chain(t.bytes.iter().copied())).collect();
    let long_secrets = [
        ("the password", crate::helpers::PASSWORD.to_owned()),
        ("the TOTP secret", secret.clone()),
        ("a refresh token", refresh_token.clone()),
        ("a refresh token", refresh(&fresh)),
        ("an access token", access(&fresh)),
        ("a link token", link_token.clone()),
        ("an MFA token", mfa_token.clone()),
        ("an API key", api_key.clone()),
    ];
    for (what, value) in &long_secrets {
        assert!(!contains(&everything, value.as_bytes()), "{what} is stored in clear");
    }
    let key = base32::decode(&secret).unwrap();
    assert!(!contains(&everything, &key), "the raw TOTP key is stored in clear");
    for code in &enrolled.recovery_codes {
        let canonical = code.replace('-', "");
        assert!(!contains(&everything, code.as_bytes()), "a recovery code is stored in clear");
        assert!(!contains(&everything, canonical.as_bytes()), "a recovery code is stored in clear");
    }
    // Six digits can occur by chance among thousands of timestamps; search the tables
    // a sent code could reach: its challenge and the outgoing message queue.
    for table in tables.iter().filter(|t| t.name == "challenges" || t.name == "outbox") {
        for (what, code) in [("an email code", &email_code), ("an SMS code", &sms_code)] {
            assert!(!table.text.contains(code.as_str()), "{what} is stored in clear in {}", table.name);
        }
        assert!(!table.text.contains(&link_token), "the link is stored in clear in {}", table.name);
    }

    // Positive controls: what is compared is found as its keyed hash, so the search
    // above saw the rows it claims to have searched.
    let hashing = &app.state.keys.hashing;
    for (what, purpose, value) in [
        ("refresh token", HashPurpose::RefreshToken, refresh(&fresh)),
        ("link token", HashPurpose::LinkToken, link_token.clone()),
        ("MFA token", HashPurpose::MfaToken, mfa_token.clone()),
        ("API key", HashPurpose::ApiKey, api_key.clone()),
        (
            "recovery code",
            HashPurpose::RecoveryCode,
            recovery::normalize(&enrolled.recovery_codes[0]).unwrap(),
        ),
    ] {
        assert!(
            contains(&everything, &hashing.hash(purpose, value.as_bytes())),
            "the {what}'s keyed hash is stored"
        );
    }

    // The sealed TOTP secret opens with its own user and factor ids, and with neither
    // one changed.
    let user_id = app.state.store.user_by_email("rest@example.com").await.unwrap().unwrap().id;
    let factor = app.state.store.factor(&user_id, &enrolled.factor_id, app.now()).await.unwrap().unwrap();
    let stored = factor.secret.as_ref().unwrap();
    assert!(contains(&everything, &stored.sealed), "the sealed secret is what the row holds");
    let opened = keys::open_secret(&app.state.keys, stored, &secret_context(&user_id, &factor.id)).unwrap();
    assert_eq!(opened.as_slice(), key.as_slice());
    let other_user = app.state.store.user_by_email("link@example.com").await.unwrap().unwrap().id;
    assert!(keys::open_secret(&app.state.keys, stored, &secret_context(&other_user, &factor.id)).is_err());
    let other_factor = email.body["id"].as_str().unwrap();
    assert!(keys::open_secret(&app.state.keys, stored, &secret_context(&user_id, other_factor)).is_err());
}
