//! TOTP enrolment: the secret, the otpauth URI and the QR codes, checked with real
//! authenticator implementations (oathtool, pyotp) and a real QR decoder (zbarimg).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, access, key_of, oathtool, pyotp, tool};

on_both_backends!(
    real_authenticators_read_the_uri_and_the_qr_code,
    secrets_are_sealed_at_rest_and_never_shown_again,
    pending_factors_expire_and_are_replaced,
);

async fn real_authenticators_read_the_uri_and_the_qr_code(app: TestApp) {
    let tokens = app.user("alice@example.com").await;
    let body = app.enroll(&access(&tokens)).await;
    assert_eq!((body["type"].as_str(), body["status"].as_str()), (Some("totp"), Some("pending")));
    let uri = body["totp"]["otpauth_uri"].as_str().unwrap().to_owned();
    let secret = body["totp"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(uri, format!("otpauth://totp/Latchkey:alice%40example.com?secret={secret}&issuer=Latchkey"));
    assert_eq!(secret.len(), 32, "160 bits in base32 without padding");
    assert!(!secret.contains('='));
    assert_eq!(key_of(&uri).len(), 20);

    // The QR code decodes to exactly the URI.
    let png = body["totp"]["qr_png"].as_str().unwrap().strip_prefix("data:image/png;base64,").unwrap();
    let path = app.data_dir.path().join("qr.png");
    std::fs::write(&path, STANDARD.decode(png).unwrap()).unwrap();
    assert_eq!(tool("zbarimg", &["--raw", "-q", path.to_str().unwrap()]), uri);
    assert!(body["totp"]["qr_svg"].as_str().unwrap().contains("<svg"));

    // oathtool computes the code from the secret in the URI; the server accepts it.
    let code = oathtool(&secret, app.now());
    let confirmed = app.confirm(&access(&tokens), body["id"].as_str().unwrap(), &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["factor"]["status"], "active");
    let codes = confirmed.body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let unique: std::collections::HashSet<_> = codes.iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(unique.len(), 10);
    assert!(unique.iter().all(|c| c.len() == 19 && c.chars().filter(|&ch| ch == '-').count() == 3));

    // pyotp reads the whole URI; a second factor confirms with its code.
    let access =
        access(&app.post("/v1/auth/refresh", json!({ "refresh_token": tokens["refresh_token"] })).await.body);
    let second = app.enroll(&access).await;
    let second_uri = second["totp"]["otpauth_uri"].as_str().unwrap();
    let code = pyotp(second_uri, app.now());
    let confirmed = app.confirm(&access, second["id"].as_str().unwrap(), &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert!(confirmed.body.get("recovery_codes").is_none(), "codes come only with the first factor");

    let me = app.get_bearer("/v1/me", &access).await.body;
    assert_eq!(me["mfa_enabled"], true);
    assert_eq!(me["factors"].as_array().unwrap().len(), 2);
    assert_eq!(me["recovery_codes_remaining"], 10);
    assert_eq!(me["session"]["aal"], "aal2", "the enrolling session proved the second factor");
}

async fn secrets_are_sealed_at_rest_and_never_shown_again(app: TestApp) {
    let tokens = app.user("bob@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let factors = app.get_bearer("/v1/me/factors", &access(&tokens)).await.body;
    let listed = factors.to_string();
    let secret = enrolled.otpauth_uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    assert!(!listed.contains(secret) && !listed.contains("otpauth"), "{listed}");
    assert_eq!(factors["factors"][0]["friendly_name"], serde_json::Value::Null);

    let user_id = app.get_bearer("/v1/me", &access(&tokens)).await.body["id"].as_str().unwrap().to_owned();
    let stored = app.state.store.factor(&user_id, &enrolled.factor_id, app.now()).await.unwrap().unwrap();
    let sealed = stored.secret.unwrap();
    assert_eq!(sealed.key_id, app.state.keys.key_id);
    assert_eq!(sealed.sealed.len(), 20 + 16, "ciphertext and GCM tag");
    assert!(
        !sealed.sealed.windows(20).any(|w| w == enrolled.key.as_slice()),
        "the key is not stored in clear"
    );
    // Bound to its owner and factor: the same ciphertext does not open for another row.
    let moved = latchkey_core::crypto::Sealed {
        key_id: sealed.key_id.clone(),
        nonce: sealed.nonce.as_slice().try_into().unwrap(),
        ciphertext: sealed.sealed.clone(),
    };
    let other_context = format!("totp:someone-else:{}", enrolled.factor_id);
    assert!(app.state.keys.sealing.open(&app.state.keys.key_id, &moved, other_context.as_bytes()).is_err());
}

async fn pending_factors_expire_and_are_replaced(app: TestApp) {
    let tokens = app.user("carol@example.com").await;
    let first = app.enroll(&access(&tokens)).await;
    let second = app.enroll(&access(&tokens)).await;
    let first_key = key_of(first["totp"]["otpauth_uri"].as_str().unwrap());
    let reply = app.confirm(&access(&tokens), first["id"].as_str().unwrap(), &app.code(&first_key, 0)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "factor_not_found"), "replaced");
    app.clock.advance(601);
    let tokens = app.login("carol@example.com").await;
    let second_key = key_of(second["totp"]["otpauth_uri"].as_str().unwrap());
    let reply =
        app.confirm(&access(&tokens), second["id"].as_str().unwrap(), &app.code(&second_key, 0)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "factor_not_found"),
        "expired after 10 minutes"
    );
    assert_eq!(app.get_bearer("/v1/me/factors", &access(&tokens)).await.body["factors"], json!([]));
}
