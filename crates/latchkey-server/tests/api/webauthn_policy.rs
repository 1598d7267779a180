//! The relying party's policies: user verification preferred (security keys without a
//! PIN as a second factor, never alone), attestation required from the makers' roots
//! with an AAGUID allow-list (keys a company issues), and the authenticator model a
//! listing shows. The attested keys are `webauthn-authenticator-rs`'s SoftToken, which
//! attests through its own root certificate, as a security key's maker does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latchkey_server::config::{Attestation, UserVerification};
use latchkey_store::Backend;
use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::{self, SoftToken};

use crate::helpers::{TestApp, access};
use crate::webauthn::{ORIGIN, assert_refused, confirm, create, get, start};

with_each_backend!(
    security_keys_without_user_verification_pass_as_a_second_factor_only,
    only_attested_keys_of_allowed_models_register,
);

async fn security_keys_without_user_verification_pass_as_a_second_factor_only(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.webauthn.user_verification = UserVerification::Preferred
    })
    .await;
    let token = access(&app.user("pinless@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    assert_eq!(options["authenticatorSelection"]["userVerification"], "preferred");
    // A key with no PIN or biometrics: it proves presence only.
    let mut key = SoftPasskey::new(false);
    let confirmed = confirm(&app, &token, &factor_id, create(&mut key, ORIGIN, &options)).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);

    let mfa_token = app.login("pinless@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let challenge =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": mfa_token, "factor_id": factor_id })).await;
    assert_eq!(challenge.body["request_options"]["userVerification"], "preferred");
    let assertion = get(&mut key, &challenge.body["request_options"]);
    let verify = json!({ "mfa_token": mfa_token, "factor_id": factor_id, "credential": assertion });
    let tokens = app.post("/v1/auth/mfa/verify", verify).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_eq!(tokens.body["aal"], "aal2");

    // Alone it would be one factor, possession: signing in needs user verification.
    let options = app.post("/v1/auth/passkey/options", json!({ "email": "pinless@example.com" })).await;
    assert_eq!(options.body["request_options"]["userVerification"], "required");
    let mut lenient = options.body["request_options"].clone();
    lenient["userVerification"] = json!("preferred");
    let assertion = get(&mut key, &lenient);
    let sessions = app.count("SELECT COUNT(*) FROM sessions").await;
    let refused = app.post("/v1/auth/passkey/login", json!({ "credential": assertion })).await;
    assert_refused(&refused, "user_not_verified");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, sessions);
}

/// `pem`'s text for a certificate.
fn pem(certificate: &impl der::Encode) -> String {
    let body = STANDARD.encode(certificate.to_der().unwrap());
    let lines: Vec<&str> =
        body.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// A server that admits keys of `models` whose attestation chains up to `root`.
async fn admitting(backend: Backend, root: &str, models: &[&str], dir: &tempfile::TempDir) -> TestApp {
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, root).unwrap();
    let models: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
    TestApp::spawn_with(backend, |config| {
        config.webauthn.attestation = Attestation::Direct;
        config.webauthn.attestation_roots = Some(roots);
        config.webauthn.allowed_aaguids = models;
    })
    .await
}

async fn only_attested_keys_of_allowed_models_register(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (mut issued, root) = SoftToken::new(true).unwrap();
    let model = softtoken::AAGUID.to_string();
    let app = admitting(backend, &pem(&root), &[&model], &dir).await;
    let token = access(&app.user("issued@example.com").await);

    // A passkey from anywhere else, a key attested by another maker: refused, and the
    // factor stays pending.
    let (factor_id, options) = start(&app, &token).await;
    assert_eq!(options["attestation"], "direct");
    let unattested = create(&mut SoftPasskey::new(true), ORIGIN, &options);
    assert_refused(&confirm(&app, &token, &factor_id, unattested).await, "attestation_not_allowed");
    let (mut foreign, _) = SoftToken::new(true).unwrap();
    let (factor_id, options) = start(&app, &token).await;
    let other_maker = create(&mut foreign, ORIGIN, &options);
    assert_refused(&confirm(&app, &token, &factor_id, other_maker).await, "attestation_not_allowed");
    assert_eq!(app.count("SELECT COUNT(*) FROM factors WHERE credential_id IS NOT NULL").await, 0);

    // The company's key registers, and its model is listed.
    let (factor_id, options) = start(&app, &token).await;
    let confirmed = confirm(&app, &token, &factor_id, create(&mut issued, ORIGIN, &options)).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let listed = app.get_bearer("/v1/me/factors", &token).await;
    let factor = listed.body["factors"].as_array().unwrap().iter().find(|f| f["id"] == factor_id).unwrap();
    assert_eq!(factor["authenticator"], json!({ "aaguid": model, "name": Value::Null }), "{factor}");

    // The same maker's root, but another model on the allow-list: refused.
    let (mut issued, root) = SoftToken::new(true).unwrap();
    let app = admitting(backend, &pem(&root), &["cb69481e-8ff7-4039-93ec-0a2729a154a8"], &dir).await;
    let token = access(&app.user("model@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    let wrong_model = create(&mut issued, ORIGIN, &options);
    assert_refused(&confirm(&app, &token, &factor_id, wrong_model).await, "attestation_not_allowed");
}
