//! The Flashback-compatible API, end to end as a Flashback client drives it: login,
//! GOOGLE_AUTH with oathtool and zbarimg, PASSKEY with a software authenticator, the
//! limited token and verify-login, backup codes that pass nothing before the setup is
//! verified, organisation enforcement and resets, and errors in Flashback's envelope.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::helpers::{PASSWORD, Reply, TestApp, access, oathtool, tool};
use crate::mail::{self, SmtpSink};
use crate::schema::assert_matches;
use crate::webauthn::{ORIGIN, create, get};

on_both_backends!(
    google_auth_guards_a_flashback_login,
    a_passkey_finishes_a_flashback_login,
    an_organization_enforces_mfa_and_its_administrators_reset_it,
    errors_come_in_the_envelope,
);

with_each_backend!(a_magic_link_is_activated_and_finishes_a_login_through_smtp);

impl TestApp {
    async fn fb_post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn fb_login(&self, email: &str) -> Value {
        let reply = self.fb_post("/user/login", None, json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_matches("flashback", "login200", &reply.body);
        reply.body
    }
}

fn assert_envelope_error(reply: &Reply, status: StatusCode, error: &str) {
    assert_matches("flashback", "error", &reply.body);
    assert_eq!((reply.status, &reply.body), (status, &json!({ "success": false, "error": error })));
}

fn assert_message(reply: &Reply, message: &str) {
    assert_matches("flashback", "message200", &reply.body);
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::OK, &json!({ "success": true, "message": message })),
        "{}",
        reply.body
    );
}

async fn google_auth_guards_a_flashback_login(app: TestApp) {
    app.signup("fb@example.com").await;
    let login = app.fb_login("fb@example.com").await;
    assert_eq!(login["mfaRequired"], false);
    assert_eq!(login["user"]["email"], "fb@example.com");
    assert_eq!(login["user"]["orgId"], Value::Null);
    let token = login["accessToken"].as_str().unwrap().to_owned();

    let setup = app.fb_post("/mfa/setup", Some(&token), json!({ "mfaType": "GOOGLE_AUTH" })).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("flashback", "setupGoogleAuth200", &setup.body);
    let secret = setup.body["data"]["secret"].as_str().unwrap().to_owned();
    let backup: Vec<String> = setup.body["data"]["backupCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();
    assert_eq!(backup.len(), 10);
    let png = setup.body["data"]["qrCode"].as_str().unwrap().strip_prefix("data:image/png;base64,").unwrap();
    let path = app.data_dir.path().join("qr.png");
    std::fs::write(&path, STANDARD.decode(png).unwrap()).unwrap();
    assert!(tool("zbarimg", &["--raw", "-q", path.to_str().unwrap()]).contains(&format!("secret={secret}")));
    // Shown, not valid: nothing is stored until the setup is verified.
    assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 0);

    let wrong = app
        .fb_post("/mfa/verify-setup", Some(&token), json!({ "mfaType": "GOOGLE_AUTH", "code": "000000" }))
        .await;
    assert_envelope_error(&wrong, StatusCode::BAD_REQUEST, "MFA setup verification failed");
    let code = oathtool(&secret, app.now());
    let verified = app
        .fb_post("/mfa/verify-setup", Some(&token), json!({ "mfaType": "GOOGLE_AUTH", "code": code }))
        .await;
    assert_message(&verified, "MFA setup verified and enabled");
    let status = app.call(Method::GET, "/mfa/status", Some(&token), None).await;
    assert_matches("flashback", "status200", &status.body);
    assert_eq!(
        status.body,
        json!({ "success": true, "data": { "isEnabled": true, "isRequired": true, "isEnforced": false,
            "enabledMethods": ["GOOGLE_AUTH"], "primaryMethod": "GOOGLE_AUTH", "sessionVerified": true } })
    );

    // The next login's token is limited until verify-login.
    let login = app.fb_login("fb@example.com").await;
    assert_eq!(login["mfaRequired"], true);
    let limited = login["accessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.get_bearer("/v1/me", &limited).await.status, StatusCode::UNAUTHORIZED);
    let enable = app.fb_post("/mfa/enable", Some(&limited), json!({ "mfaType": "GOOGLE_AUTH" })).await;
    assert_envelope_error(&enable, StatusCode::FORBIDDEN, "MFA verification required");
    let status = app.call(Method::GET, "/mfa/status", Some(&limited), None).await;
    assert_eq!(status.body["data"]["sessionVerified"], false);
    let wrong = app
        .fb_post("/mfa/verify-login", Some(&limited), json!({ "mfaType": "GOOGLE_AUTH", "code": "000000" }))
        .await;
    assert_envelope_error(&wrong, StatusCode::UNAUTHORIZED, "MFA verification failed");
    let body = json!({ "mfaType": "GOOGLE_AUTH", "code": backup[0], "sessionId": "x", "userAgent": "y" });
    let passed = app.fb_post("/mfa/verify-login", Some(&limited), body.clone()).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_matches("flashback", "verifyLogin200", &passed.body);
    assert_eq!(passed.body["message"], "MFA verification successful");
    let full = passed.body["fullAccessToken"].as_str().unwrap().to_owned();
    assert_eq!(app.get_bearer("/v1/me", &full).await.body["session"]["aal"], "aal2");
    assert_eq!(
        app.get_bearer("/v1/me", &limited).await.status,
        StatusCode::UNAUTHORIZED,
        "the limited token ends"
    );
    // A backup code passes once.
    let again = app.fb_login("fb@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let reused = app.fb_post("/mfa/verify-login", Some(&again), body).await;
    assert_envelope_error(&reused, StatusCode::UNAUTHORIZED, "MFA verification failed");

    // Refresh with either spelling of the field.
    let refreshed =
        app.fb_post("/user/refresh", None, json!({ "refresh_token": passed.body["refreshToken"] })).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_matches("flashback", "refresh200", &refreshed.body);
    assert_eq!(refreshed.body["token"], refreshed.body["accessToken"]);
    let spent =
        app.fb_post("/user/refresh", None, json!({ "refreshToken": passed.body["refreshToken"] })).await;
    assert_eq!(spent.status, StatusCode::UNAUTHORIZED);
    assert_matches("flashback", "authError", &spent.body);
    assert_eq!(spent.body["error_code"], "INVALID_REFRESH_TOKEN");
    // A spent refresh token presented again ends its session: log in once more.
    assert_eq!(app.get_bearer("/v1/me", &full).await.status, StatusCode::UNAUTHORIZED);
    let limited = app.fb_login("fb@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let code = oathtool(&secret, app.now() + 30);
    app.advance(30);
    let body = json!({ "mfaType": "GOOGLE_AUTH", "code": code });
    let passed = app.fb_post("/mfa/verify-login", Some(&limited), body).await;
    let full = passed.body["fullAccessToken"].as_str().unwrap().to_owned();

    // Disabling needs the second factor proven recently; then the method is gone.
    let primary = app.fb_post("/mfa/primary", Some(&full), json!({ "mfaType": "GOOGLE_AUTH" })).await;
    assert_message(&primary, "Primary MFA method updated");
    let disabled = app.fb_post("/mfa/disable", Some(&full), json!({ "mfaType": "GOOGLE_AUTH" })).await;
    assert_message(&disabled, "MFA method disabled");
    let methods = app.call(Method::GET, "/mfa/methods", Some(&full), None).await;
    assert_matches("flashback", "methods200", &methods.body);
    let google = &methods.body["data"][0];
    assert_eq!((&google["type"], &google["isEnabled"]), (&json!("GOOGLE_AUTH"), &json!(false)));
}

async fn a_passkey_finishes_a_flashback_login(app: TestApp) {
    app.signup("fbkey@example.com").await;
    let token = app.fb_login("fbkey@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let setup = app
        .fb_post(
            "/mfa/setup",
            Some(&token),
            json!({ "mfaType": "PASSKEY", "deviceInfo": { "name": "laptop" } }),
        )
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("flashback", "setupPasskey200", &setup.body);
    let data = &setup.body["data"];
    assert_eq!((&data["rpID"], &data["origin"]), (&json!("localhost"), &json!(ORIGIN)));
    assert_eq!(data["challenge"], data["publicKey"]["challenge"]);
    let mut key = SoftPasskey::new(true);
    let credential = create(&mut key, ORIGIN, &data["publicKey"]);
    let body = json!({ "credential": credential, "challenge": data["challenge"] });
    let completed = app.fb_post("/mfa/passkey/complete-registration", Some(&token), body).await;
    assert_message(&completed, "Passkey registration completed");

    let limited = app.fb_login("fbkey@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let options = app.fb_post("/mfa/passkey/auth-options", Some(&limited), json!({})).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    assert_matches("flashback", "authOptions200", &options.body);
    assert_eq!(options.body["data"]["allowCredentials"].as_array().map(Vec::len), Some(1));
    let assertion = get(&mut key, &options.body["data"]);
    let body = json!({ "mfaType": "PASSKEY", "credential": assertion });
    let passed = app.fb_post("/mfa/verify-login", Some(&limited), body.clone()).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    let me = app.get_bearer("/v1/me", passed.body["fullAccessToken"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["amr"], json!(["pwd", "hwk"]));
    // The answer belonged to that login alone.
    let other = app.fb_login("fbkey@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let replayed = app.fb_post("/mfa/verify-login", Some(&other), body).await;
    assert_envelope_error(&replayed, StatusCode::UNAUTHORIZED, "MFA verification failed");
}

async fn an_organization_enforces_mfa_and_its_administrators_reset_it(app: TestApp) {
    let key = app.api_key(&["users:write"]).await;
    let (mut ids, mut tokens) = (Vec::new(), Vec::new());
    for (email, role) in [("owner@example.com", "owner"), ("member@example.com", "member")] {
        let token = access(&app.user(email).await);
        let id = app.get_bearer("/v1/me", &token).await.body["id"].as_str().unwrap().to_owned();
        tokens.push(token);
        let put = app
            .send(
                app.client
                    .put(app.url(&format!("/v1/users/{id}/organization")))
                    .header("x-api-key", &key)
                    .json(&json!({ "org_id": "acme", "role": role })),
            )
            .await;
        assert_eq!(
            put.body,
            json!({ "org_id": "acme", "role": role, "mfa_enforced": false }),
            "{}",
            put.body
        );
        ids.push(id);
    }
    let (owner_id, member_id) = (ids[0].clone(), ids[1].clone());

    let member = app.fb_login("member@example.com").await;
    assert_eq!(member["user"]["orgId"], "acme");
    let member_token = member["accessToken"].as_str().unwrap().to_owned();
    let refused =
        app.fb_post("/mfa/organization/enforce", Some(&member_token), json!({ "enforced": true })).await;
    assert_envelope_error(
        &refused,
        StatusCode::FORBIDDEN,
        "Insufficient permissions. OWNER or ADMINISTRATOR role required.",
    );

    // The owner signed in before the enforcement.
    let owner_token = tokens[0].clone();
    let enforced =
        app.fb_post("/mfa/organization/enforce", Some(&owner_token), json!({ "enforced": true })).await;
    assert_message(&enforced, "MFA enforcement enabled for organization");

    // A member without a factor: a limited token whose only use is setting one up.
    let native =
        app.post("/v1/auth/login", json!({ "email": "member@example.com", "password": PASSWORD })).await;
    assert_eq!((native.status, native.code()), (StatusCode::FORBIDDEN, "mfa_setup_required"));
    let grant = json!({ "grantType": "password", "username": "member@example.com", "password": PASSWORD });
    let lerian = app.post("/v1/login/oauth/access_token", grant).await;
    assert_eq!((lerian.status, &lerian.body["code"]), (StatusCode::FORBIDDEN, &json!("AUT-9102")));
    let mudbase =
        app.post("/api/auth/login", json!({ "email": "member@example.com", "password": PASSWORD })).await;
    assert_eq!(
        (mudbase.status, &mudbase.body["code"]),
        (StatusCode::FORBIDDEN, &json!("MFA_SETUP_REQUIRED"))
    );
    let login = app.fb_login("member@example.com").await;
    assert_eq!(login["mfaRequired"], true);
    let limited = login["accessToken"].as_str().unwrap().to_owned();
    let status = app.call(Method::GET, "/mfa/status", Some(&limited), None).await;
    assert_eq!(
        (
            &status.body["data"]["isRequired"],
            &status.body["data"]["isEnforced"],
            &status.body["data"]["isEnabled"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(app.get_bearer("/v1/me", &limited).await.status, StatusCode::UNAUTHORIZED);
    let setup = app.fb_post("/mfa/setup", Some(&limited), json!({ "mfaType": "GOOGLE_AUTH" })).await;
    let secret = setup.body["data"]["secret"].as_str().unwrap().to_owned();
    let code = oathtool(&secret, app.now());
    let verified = app
        .fb_post("/mfa/verify-setup", Some(&limited), json!({ "mfaType": "GOOGLE_AUTH", "code": code }))
        .await;
    assert_message(&verified, "MFA setup verified and enabled");
    assert_eq!(
        app.get_bearer("/v1/me", &limited).await.body["session"]["aal"],
        "aal2",
        "set up, the session opens"
    );
    let disable = app.fb_post("/mfa/disable", Some(&limited), json!({ "mfaType": "GOOGLE_AUTH" })).await;
    assert_envelope_error(
        &disable,
        StatusCode::FORBIDDEN,
        "Cannot disable MFA when enforced by organization",
    );

    // A member may not reset another; an owner may reset a member; nobody is 404.
    let by_member = app.fb_post("/mfa/reset", Some(&limited), json!({ "resetUserId": owner_id })).await;
    assert_envelope_error(
        &by_member,
        StatusCode::FORBIDDEN,
        "Insufficient permissions. OWNER or ADMINISTRATOR role required to reset another user's MFA.",
    );
    let unknown = app.fb_post("/mfa/reset", Some(&owner_token), json!({ "resetUserId": "nobody" })).await;
    assert_envelope_error(&unknown, StatusCode::NOT_FOUND, "User not found");
    let reset = app
        .fb_post("/mfa/reset", Some(&owner_token), json!({ "resetUserId": member_id, "enable": true }))
        .await;
    assert_message(&reset, "MFA reset successfully");
    assert_eq!(app.count(&format!("SELECT COUNT(*) FROM factors WHERE user_id = '{member_id}'")).await, 0);
    assert_eq!(
        app.get_bearer("/v1/me", &limited).await.status,
        StatusCode::UNAUTHORIZED,
        "their sessions end"
    );
}

async fn errors_come_in_the_envelope(app: TestApp) {
    let bad_login = app
        .fb_post("/user/login", None, json!({ "email": "nobody@example.com", "password": PASSWORD }))
        .await;
    assert_eq!(
        (bad_login.status, &bad_login.body),
        (
            StatusCode::UNAUTHORIZED,
            &json!({ "success": false, "error_code": "INVALID_PASSWORD", "message": "Invalid email or password" })
        )
    );
    app.signup("env@example.com").await;
    let token = app.fb_login("env@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let unknown = app.fb_post("/mfa/setup", Some(&token), json!({ "mfaType": "SMS" })).await;
    assert_envelope_error(&unknown, StatusCode::BAD_REQUEST, "Invalid MFA type specified");
    let missing = app.fb_post("/mfa/setup", Some(&token), json!({})).await;
    assert_envelope_error(&missing, StatusCode::BAD_REQUEST, "mfaType is required");
    for body in ["{", "[1]", "\"text\""] {
        let reply = app
            .send(
                app.client
                    .post(app.url("/mfa/setup"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(
            (reply.status, &reply.body["success"]),
            (StatusCode::BAD_REQUEST, &json!(false)),
            "{body}"
        );
        assert!(reply.body["error"].is_string(), "{}", reply.body);
    }
    let anonymous = app.call(Method::GET, "/mfa/status", None, None).await;
    assert_envelope_error(&anonymous, StatusCode::UNAUTHORIZED, "Invalid or expired token");
    let wrong_method = app.call(Method::GET, "/mfa/setup", Some(&token), None).await;
    assert_envelope_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    let no_path = app.call(Method::GET, "/mfa/nothing", Some(&token), None).await;
    assert_envelope_error(&no_path, StatusCode::NOT_FOUND, "Not found");
    let not_waiting = app
        .fb_post("/mfa/verify-login", Some(&token), json!({ "mfaType": "GOOGLE_AUTH", "code": "1" }))
        .await;
    assert_envelope_error(&not_waiting, StatusCode::BAD_REQUEST, "MFA already verified for this session");
    let activate = app.fb_post("/mfa/magic-link/activate", None, json!({ "token": "lkl_nothing" })).await;
    assert_envelope_error(&activate, StatusCode::BAD_REQUEST, "Invalid or expired token");
}

/// The token of the newest link among the first `count` messages to `to`.
async fn link_token(sink: &SmtpSink, to: &str, count: usize) -> String {
    let messages = mail::wait_for(sink.path(), to, count).await;
    let with_link = messages.iter().rev().find(|m| m.text.contains("magic-link?token=")).expect("a link");
    with_link.link().split("token=").nth(1).unwrap().to_owned()
}

async fn a_magic_link_is_activated_and_finishes_a_login_through_smtp(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(false, None);
    let url = sink.url(None);
    let app = TestApp::spawn_with(backend, |c| c.email.smtp_url = Some(url)).await;
    app.signup("linked@example.com").await;
    let token = app.fb_login("linked@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let setup = app.fb_post("/mfa/setup", Some(&token), json!({ "mfaType": "MAGIC_LINK" })).await;
    assert_matches("flashback", "setupMagicLink200", &setup.body);
    assert_eq!(
        setup.body,
        json!({ "success": true, "data": { "email": "linked@example.com", "verificationRequired": true } })
    );
    let activation = link_token(&sink, "linked@example.com", 1).await;
    let activated = app.fb_post("/mfa/magic-link/activate", None, json!({ "token": activation })).await;
    assert_message(&activated, "Magic link MFA activated successfully");
    let again = app.fb_post("/mfa/magic-link/activate", None, json!({ "token": activation })).await;
    assert_envelope_error(&again, StatusCode::BAD_REQUEST, "Invalid or expired token");
    assert_eq!(
        app.get_bearer("/v1/me", &token).await.status,
        StatusCode::UNAUTHORIZED,
        "sessions before MFA end"
    );

    let limited = app.fb_login("linked@example.com").await["accessToken"].as_str().unwrap().to_owned();
    app.advance(61); // one send a minute per address
    let sent = app.fb_post("/mfa/magic-link/send", Some(&limited), json!({})).await;
    assert_message(&sent, "Magic link sent successfully");
    let link = link_token(&sink, "linked@example.com", 3).await;
    // Another login cannot use this login's link.
    let other = app.fb_login("linked@example.com").await["accessToken"].as_str().unwrap().to_owned();
    let crossed = app
        .fb_post("/mfa/verify-login", Some(&other), json!({ "mfaType": "MAGIC_LINK", "token": link }))
        .await;
    assert_envelope_error(&crossed, StatusCode::UNAUTHORIZED, "MFA verification failed");
    app.advance(61);
    app.fb_post("/mfa/magic-link/send", Some(&limited), json!({})).await;
    let link = link_token(&sink, "linked@example.com", 4).await;
    let passed = app
        .fb_post("/mfa/verify-login", Some(&limited), json!({ "mfaType": "MAGIC_LINK", "token": link }))
        .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    let me = app.get_bearer("/v1/me", passed.body["fullAccessToken"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["amr"], json!(["pwd", "mail"]));
}
