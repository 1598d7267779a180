//! Passkeys and security keys as a second factor (DESIGN rule 13), against a software
//! authenticator (`webauthn-authenticator-rs`'s SoftPasskey) doing what a browser and
//! its authenticator do: registration, a login's second factor, a sign-in with the
//! passkey alone, and the refusals — a replayed assertion, another login's ceremony,
//! another origin, a malformed answer. (Usernameless sign-in needs an authenticator
//! that keeps discoverable credentials: the browser test has one.)

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::helpers::{Reply, TestApp, access, join_all};

on_both_backends!(
    a_passkey_is_registered_and_passes_a_login_as_the_second_factor,
    a_passkey_signs_in_alone,
    two_instances_finishing_one_ceremony_succeed_once,
    an_app_with_its_own_first_factor_checks_a_passkey,
    an_answer_for_another_origin_changes_nothing,
    malformed_answers_are_refused_naming_the_field,
);

/// Where the test server's pages are, as the relying party sees them: `public_url`
/// is `http://127.0.0.1:8080`, so the RP id is `localhost` and its origin
/// `http://localhost:8080`.
pub(crate) const ORIGIN: &str = "http://localhost:8080";

/// A software authenticator that performs user verification.
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// What `navigator.credentials.create` answers for `options` at `origin`, as JSON.
pub(crate) fn create(authenticator: &mut impl WebauthnAuthenticator, origin: &str, options: &Value) -> Value {
    let options: CreationChallengeResponse = serde_json::from_value(json!({ "publicKey": options })).unwrap();
    let credential = authenticator.do_registration(Url::parse(origin).unwrap(), options).unwrap();
    serde_json::to_value(credential).unwrap()
}

/// What `navigator.credentials.get` answers for `options`, as JSON.
pub(crate) fn get(authenticator: &mut impl WebauthnAuthenticator, options: &Value) -> Value {
    let options: RequestChallengeResponse = serde_json::from_value(json!({ "publicKey": options })).unwrap();
    let credential = authenticator.do_authentication(Url::parse(ORIGIN).unwrap(), options).unwrap();
    serde_json::to_value(credential).unwrap()
}

/// Re-encodes the answer's binary fields in standard base64 with padding, as some
/// client libraries send them.
fn in_standard_base64(mut credential: Value) -> Value {
    for pointer in ["/rawId", "/response/clientDataJSON", "/response/attestationObject"] {
        if let Some(Value::String(text)) = credential.pointer_mut(pointer) {
            *text = STANDARD.encode(URL_SAFE_NO_PAD.decode(text.as_bytes()).unwrap());
        }
    }
    credential
}

pub(crate) async fn start(app: &TestApp, token: &str) -> (String, Value) {
    let created = app
        .post_bearer("/v1/me/factors", token, json!({ "type": "webauthn", "friendly_name": "laptop" }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let options = created.body["webauthn"]["creation_options"].clone();
    (created.body["id"].as_str().unwrap().to_owned(), options)
}

pub(crate) async fn confirm(app: &TestApp, token: &str, factor_id: &str, credential: Value) -> Reply {
    app.post_bearer(&format!("/v1/me/factors/{factor_id}/verify"), token, json!({ "credential": credential }))
        .await
}

pub(crate) fn assert_refused(reply: &Reply, reason: &str) {
    assert_eq!(
        (reply.status, reply.code(), reply.body["error"]["details"]["reason"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_credential", Some(reason)),
        "{}",
        reply.body
    );
}

async fn a_passkey_is_registered_and_passes_a_login_as_the_second_factor(app: TestApp) {
    let token = access(&app.user("pk@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "preferred");
    assert!(
        options["challenge"].as_str().is_some_and(|c| URL_SAFE_NO_PAD.decode(c).is_ok_and(|b| b.len() >= 16))
    );

    let mut key = authenticator();
    let credential = in_standard_base64(create(&mut key, ORIGIN, &options));
    let confirmed = confirm(&app, &token, &factor_id, credential.clone()).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["factor"]["status"], "active");
    assert_eq!(confirmed.body["factor"]["type"], "webauthn");
    assert_eq!(
        confirmed.body["recovery_codes"].as_array().map(Vec::len),
        Some(10),
        "the first factor's codes"
    );
    // The same answer again: its ceremony is spent.
    let again = confirm(&app, &token, &factor_id, credential).await;
    assert_eq!(again.code(), "factor_already_active");

    // A login: the password, then the passkey.
    let login = app.login("pk@example.com").await;
    assert_eq!(login["mfa_required"], true);
    assert_eq!(login["factors"][0]["type"], "webauthn");
    let mfa_token = login["mfa_token"].as_str().unwrap().to_owned();
    let challenge =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": mfa_token, "factor_id": factor_id })).await;
    assert_eq!(challenge.status, StatusCode::OK, "{}", challenge.body);
    assert_eq!(challenge.body["expires_in"], 300);
    let request_options = challenge.body["request_options"].clone();
    assert_eq!(request_options["rpId"], "localhost");
    let assertion = get(&mut key, &request_options);
    let verify = json!({ "mfa_token": mfa_token, "factor_id": factor_id, "credential": assertion });
    let tokens = app.post("/v1/auth/mfa/verify", verify.clone()).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let me = app.get_bearer("/v1/me", tokens.body["access_token"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["aal"], "aal2");
    assert_eq!(me.body["session"]["amr"], json!(["pwd", "hwk"]), "a key held by one device");

    // The same assertion for another login: its ceremony was spent, and it was for
    // the first login anyway.
    let mfa_token = app.login("pk@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let replay =
        json!({ "mfa_token": mfa_token, "factor_id": factor_id, "credential": verify["credential"] });
    assert_refused(&app.post("/v1/auth/mfa/verify", replay).await, "unknown_challenge");
    // An assertion for this login's ceremony, made for another login's: refused.
    let other = app.login("pk@example.com").await["mfa_token"].as_str().unwrap().to_owned();
    let options =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": other, "factor_id": factor_id })).await;
    let assertion = get(&mut key, &options.body["request_options"]);
    let crossed = json!({ "mfa_token": mfa_token, "factor_id": factor_id, "credential": assertion });
    assert_refused(&app.post("/v1/auth/mfa/verify", crossed).await, "wrong_ceremony");

    let events = app
        .column("SELECT event_type || ':' || COALESCE(factor_type, '') FROM audit_events ORDER BY occurred_at, id")
        .await;
    for expected in [
        "factor.enrolled:webauthn",
        "factor.confirmed:webauthn",
        "mfa.verified:webauthn",
        "mfa.failed:webauthn",
    ] {
        assert!(events.iter().any(|e| e == expected), "{expected} in {events:?}");
    }
    // The credential is sealed: no public key or counter in the clear.
    let stored = app.count("SELECT COUNT(*) FROM factors WHERE factor_type = 'webauthn' AND credential_id IS NOT NULL AND secret_sealed IS NOT NULL").await;
    assert_eq!(stored, 1);
}

async fn an_answer_for_another_origin_changes_nothing(app: TestApp) {
    let token = access(&app.user("phish@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    // Another site within the RP id (which the authenticator allows), not one of the
    // configured origins.
    let credential = create(&mut authenticator(), "https://login.localhost", &options);
    assert_refused(&confirm(&app, &token, &factor_id, credential).await, "wrong_origin");
    let factors = app.get_bearer("/v1/me/factors", &token).await;
    assert_eq!(factors.body["factors"][0]["status"], "pending", "{}", factors.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM factors WHERE credential_id IS NOT NULL").await, 0);
}

async fn malformed_answers_are_refused_naming_the_field(app: TestApp) {
    let token = access(&app.user("odd@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    let mut credential = create(&mut authenticator(), ORIGIN, &options);
    credential["response"]["clientDataJSON"] = json!(42);
    let reply = confirm(&app, &token, &factor_id, credential).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        "{}",
        reply.body
    );
    assert!(
        reply.body["error"]["details"]["field"].as_str().is_some_and(|f| f.contains("clientDataJSON")),
        "{}",
        reply.body
    );
    // A code where a credential belongs, and a credential for a TOTP factor.
    let code = app
        .post_bearer(&format!("/v1/me/factors/{factor_id}/verify"), &token, json!({ "code": "123456" }))
        .await;
    assert_eq!(
        (code.code(), code.body["error"]["details"]["field"].as_str()),
        ("missing_field", Some("credential"))
    );
    // Nothing was spent: the ceremony still finishes.
    let credential = create(&mut authenticator(), ORIGIN, &options);
    assert_eq!(confirm(&app, &token, &factor_id, credential).await.status, StatusCode::OK);
}

/// A user with a confirmed passkey: their access token, the factor's id and the
/// authenticator holding the key.
pub(crate) async fn registered(app: &TestApp, email: &str) -> (String, String, SoftPasskey) {
    let token = access(&app.user(email).await);
    let (factor_id, options) = start(app, &token).await;
    let mut key = authenticator();
    let credential = create(&mut key, ORIGIN, &options);
    assert_eq!(confirm(app, &token, &factor_id, credential).await.status, StatusCode::OK);
    (token, factor_id, key)
}

async fn a_passkey_signs_in_alone(app: TestApp) {
    let (_, _, mut key) = registered(&app, "alone@example.com").await;
    let options = app.post("/v1/auth/passkey/options", json!({ "email": "Alone@Example.com" })).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    assert_eq!(options.body["expires_in"], 300);
    assert!(options.body.get("mediation").is_none());
    let allowed = &options.body["request_options"]["allowCredentials"];
    assert_eq!(allowed.as_array().map(Vec::len), Some(1));

    let assertion = get(&mut key, &options.body["request_options"]);
    let signed_in = app.post("/v1/auth/passkey/login", json!({ "credential": assertion })).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["user"]["email"], "alone@example.com");
    assert_eq!(signed_in.body["aal"], "aal2");
    let me = app.get_bearer("/v1/me", signed_in.body["access_token"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["amr"], json!(["hwk"]), "the passkey is both factors");
    // Once only.
    let replay = app.post("/v1/auth/passkey/login", json!({ "credential": assertion })).await;
    assert_refused(&replay, "unknown_challenge");

    // An address without an account, or without a passkey, gets an answer of the same
    // shape: one credential, derived from the address, that no authenticator holds.
    app.signup("nokey@example.com").await;
    for email in ["nobody@example.com", "nokey@example.com"] {
        let decoy = app.post("/v1/auth/passkey/options", json!({ "email": email })).await;
        assert_eq!(decoy.status, StatusCode::OK);
        let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
        assert_eq!(keys(&decoy.body["request_options"]), keys(&options.body["request_options"]), "{email}");
        assert_eq!(decoy.body["request_options"]["allowCredentials"].as_array().map(Vec::len), Some(1));
        let again = app.post("/v1/auth/passkey/options", json!({ "email": email })).await;
        assert_eq!(
            again.body["request_options"]["allowCredentials"],
            decoy.body["request_options"]["allowCredentials"],
            "the same decoy each time, as a real account's credential would be"
        );
    }
    // Without an address: any discoverable passkey may answer, offered by autofill.
    let usernameless = app.post("/v1/auth/passkey/options", json!({})).await;
    assert_eq!(usernameless.body["mediation"], "conditional");
    assert!(usernameless.body["request_options"]["allowCredentials"].as_array().is_none_or(Vec::is_empty));
}

/// A second instance on the app's database, with the same master key; its base URL.
async fn second_instance(app: &TestApp) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::test_config(&app.db, dir.path());
    let second =
        latchkey_server::Application::build_with_clock(config, std::sync::Arc::new(app.clock.clone()))
            .await
            .unwrap();
    let base = format!("http://{}", second.local_addr().unwrap());
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    (base, dir)
}

async fn two_instances_finishing_one_ceremony_succeed_once(app: TestApp) {
    let (second, _dir) = second_instance(&app).await;
    let bases = [app.base.clone(), second];
    let post = |i: usize, path: String, token: Option<String>, body: Value| {
        let mut request = app.client.post(format!("{}{path}", bases[i % 2])).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        app.send(request)
    };

    // One registration answer, twenty finishes at once on two instances.
    let token = access(&app.user("race@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    let mut key = authenticator();
    let credential = create(&mut key, ORIGIN, &options);
    let path = format!("/v1/me/factors/{factor_id}/verify");
    let replies = join_all(
        (0..20).map(|i| post(i, path.clone(), Some(token.clone()), json!({ "credential": credential }))),
    )
    .await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM factors WHERE credential_id IS NOT NULL").await, 1);

    // One sign-in answer, twenty uses at once: one session. (The nineteen refused
    // registrations counted toward the user's guard; its delay is let run out first.)
    app.advance(15 * 60);
    let sessions_before = app.count("SELECT COUNT(*) FROM sessions").await;
    let options = app.post("/v1/auth/passkey/options", json!({ "email": "race@example.com" })).await;
    let assertion = get(&mut key, &options.body["request_options"]);
    let replies = join_all(
        (0..20).map(|i| post(i, "/v1/auth/passkey/login".into(), None, json!({ "credential": assertion }))),
    )
    .await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM sessions").await, sessions_before + 1);
}

/// The sidecar: an app that checks passwords itself asks for options with its API key,
/// and asks whether the browser's answer is right.
async fn an_app_with_its_own_first_factor_checks_a_passkey(app: TestApp) {
    let key = app.api_key(&["users:write"]).await;
    let bare = app.user("bare@example.com").await;
    let bare_id = app.get_bearer("/v1/me", &access(&bare)).await.body["id"].as_str().unwrap().to_owned();
    let call = |path: String, body: Value| {
        app.send(app.client.post(app.url(&path)).header("x-api-key", &key).json(&body))
    };
    let none = call(format!("/v1/users/{bare_id}/webauthn/options"), json!({})).await;
    assert_eq!((none.status, none.code()), (StatusCode::CONFLICT, "mfa_not_enabled"));

    let (token, factor_id, mut authenticator) = registered(&app, "side@example.com").await;
    let id = app.get_bearer("/v1/me", &token).await.body["id"].as_str().unwrap().to_owned();
    let options = call(format!("/v1/users/{id}/webauthn/options"), json!({})).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let answer = get(&mut authenticator, &options.body["request_options"]);
    let verdict = call(format!("/v1/users/{id}/verify"), json!({ "credential": answer })).await;
    assert_eq!(verdict.body, json!({ "valid": true, "factor_id": factor_id, "method": "webauthn" }));
    // The same answer again, or for another user: not valid.
    let again = call(format!("/v1/users/{id}/verify"), json!({ "credential": answer })).await;
    assert_eq!(again.body["valid"], false, "{}", again.body);
    let options = call(format!("/v1/users/{id}/webauthn/options"), json!({})).await;
    let answer = get(&mut authenticator, &options.body["request_options"]);
    let elsewhere = call(format!("/v1/users/{bare_id}/verify"), json!({ "credential": answer })).await;
    assert_eq!(elsewhere.body["valid"], false, "{}", elsewhere.body);
}
