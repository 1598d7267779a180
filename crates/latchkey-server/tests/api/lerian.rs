//! The Lerian-compatible API, end to end and against its contract: the whole MFA
//! lifecycle for `app` (codes from oathtool), `email` (codes read from a real SMTP
//! server) and `sms` (codes from a webhook receiver), recovery codes at login,
//! remembered devices, strict bodies and every error body.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::{digits_after, receiver};
use crate::helpers::{PASSWORD, Reply, TestApp, oathtool};
use crate::mail::{self, SmtpSink};
use crate::schema::{assert_matches, contract};
use latchkey_server::service::api_keys;

on_both_backends!(
    the_app_lifecycle_works_for_a_lerian_client,
    remembered_devices_skip_the_second_factor_until_revoked,
    a_remembered_device_is_judged_by_its_own_password_count,
    bodies_are_strict_and_errors_are_lerian_shaped,
    only_the_user_or_an_api_key_may_manage_mfa,
    internal_failures_answer_ide_0006_and_ide_0045_without_internals,
    a_service_manages_mfa_with_a_client_credentials_token,
);

with_each_backend!(
    the_email_lifecycle_works_with_a_real_smtp_server,
    the_sms_lifecycle_works_with_a_webhook_provider
);

impl TestApp {
    async fn lerian(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call(method, path, token, body).await
    }

    async fn lerian_post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.lerian(Method::POST, path, token, Some(body)).await
    }

    /// The password grant for `email`, optionally with a device token.
    async fn lerian_login(&self, email: &str, device: Option<&str>) -> Reply {
        let mut body = json!({ "grantType": "password", "username": email, "password": PASSWORD });
        if let Some(device) = device {
            body["deviceToken"] = json!(device);
        }
        self.lerian_post("/v1/login/oauth/access_token", None, body).await
    }

    /// Logs in a user without MFA: their access token and id.
    async fn lerian_session(&self, email: &str) -> (String, String) {
        let login = self.lerian_login(email, None).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        assert_matches("lerian", "token200", &login.body);
        let access = login.body["accessToken"].as_str().unwrap().to_owned();
        let me = self.get_bearer("/v1/me", &access).await;
        (access, me.body["id"].as_str().unwrap().to_owned())
    }

    /// Logs in a user with MFA: the `mfaToken`.
    async fn lerian_mfa_token(&self, email: &str, types: &[&str]) -> String {
        let login = self.lerian_login(email, None).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        assert_matches("lerian", "mfaRequired200", &login.body);
        assert_eq!(login.body["mfaTypes"], json!(types));
        assert!(login.body.get("accessToken").is_none(), "no token before the second factor");
        login.body["mfaToken"].as_str().unwrap().to_owned()
    }

    async fn lerian_verify(&self, mfa_token: &str, mfa_type: &str, proof: Value) -> Reply {
        let mut body = proof;
        body["mfaToken"] = json!(mfa_token);
        body["mfaType"] = json!(mfa_type);
        self.lerian_post("/v1/login/mfa/verify", None, body).await
    }
}

/// Checks an error reply: status, code, the body schema, and for the codes Lerian's
/// documents list, their exact title and message.
fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!((reply.status, reply.body["code"].as_str()), (status, Some(code)), "{}", reply.body);
    assert_matches("lerian", "error", &reply.body);
    assert_eq!(reply.body.as_object().map(|o| o.len()), Some(3), "only code, title, message: {}", reply.body);
    if let Some(documented) = contract("lerian", "errorExamples").get(code) {
        assert_eq!(json!([reply.body["title"], reply.body["message"]]), *documented);
    }
}

fn codes(setup: &Reply) -> Vec<String> {
    setup.body["recoveryCodes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
}

/// Sets up, verifies and enables `app` for the signed-in user; returns the secret and
/// the recovery codes left (the first one was spent by enable).
async fn enable_app(app: &TestApp, access: &str, id: &str) -> (String, Vec<String>) {
    let setup = app
        .lerian_post(&format!("/v1/users/{id}/mfa/setup"), Some(access), json!({ "mfaType": "app" }))
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let codes = codes(&setup);
    let code = oathtool(&secret, app.now());
    let verify = app
        .lerian_post(
            &format!("/v1/users/{id}/mfa/verify"),
            Some(access),
            json!({ "passcode": code, "mfaType": "app", "secret": secret }),
        )
        .await;
    assert_eq!(verify.body, json!({ "verified": true }));
    let enable = app
        .lerian_post(
            &format!("/v1/users/{id}/mfa/enable"),
            Some(access),
            json!({ "recoveryCode": codes[0], "mfaType": "app", "secret": secret }),
        )
        .await;
    assert_eq!(enable.body, json!({ "enabled": true }));
    (secret, codes[1..].to_vec())
}

async fn the_app_lifecycle_works_for_a_lerian_client(app: TestApp) {
    app.signup("lee@example.com").await;
    let (access, id) = app.lerian_session("lee@example.com").await;
    let path = |rest: &str| format!("/v1/users/{id}/mfa{rest}");

    let status = app.lerian(Method::GET, &path(""), Some(&access), None).await;
    assert_matches("lerian", "status200", &status.body);
    assert_eq!(
        (status.body["enabled"].clone(), status.body.get("preferredType")),
        (json!(false), None),
        "no preferred type outside Lerian's three"
    );
    let early = app
        .lerian_post(&path("/enable"), Some(&access), json!({ "recoveryCode": "x", "mfaType": "app" }))
        .await;
    assert_error(&early, StatusCode::BAD_REQUEST, "IDE-0043");
    let early =
        app.lerian_post(&path("/verify"), Some(&access), json!({ "passcode": "1", "mfaType": "app" })).await;
    assert_error(&early, StatusCode::BAD_REQUEST, "IDE-0043");

    let setup = app.lerian_post(&path("/setup"), Some(&access), json!({ "mfaType": "app" })).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("lerian", "setup200", &setup.body);
    assert_eq!((setup.body["mfaType"].clone(), setup.body["enabled"].clone()), (json!("app"), json!(false)));
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let url = setup.body["url"].as_str().unwrap();
    assert!(url.starts_with("otpauth://totp/Latchkey:lee%40example.com?"), "{url}");
    assert!(url.contains(&format!("secret={secret}")), "the URL carries the secret");
    let codes = codes(&setup);
    assert_eq!(codes.len(), 10);

    let enable = |code: &str| json!({ "recoveryCode": code, "mfaType": "app", "secret": secret });
    let before = app.lerian_post(&path("/enable"), Some(&access), enable(&codes[0])).await;
    assert_error(&before, StatusCode::BAD_REQUEST, "IDE-0048");
    let wrong = app
        .lerian_post(&path("/verify"), Some(&access), json!({ "passcode": "000000", "mfaType": "app" }))
        .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "IDE-0046");
    let code = oathtool(&secret, app.now());
    let other_secret = app
        .lerian_post(
            &path("/verify"),
            Some(&access),
            json!({ "passcode": code, "mfaType": "app", "secret": "JBSWY3DPEHPK3PXP" }),
        )
        .await;
    assert_error(&other_secret, StatusCode::BAD_REQUEST, "IDE-0049");
    let verified = app
        .lerian_post(
            &path("/verify"),
            Some(&access),
            json!({ "passcode": code, "mfaType": "app", "secret": secret.to_lowercase() }),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_matches("lerian", "verify200", &verified.body);
    assert_eq!(verified.body, json!({ "verified": true }));

    let wrong = app.lerian_post(&path("/enable"), Some(&access), enable("AAAA-BBBB-CCCC-DDDD")).await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "IDE-0047");
    let enabled = app.lerian_post(&path("/enable"), Some(&access), enable(&codes[0])).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_matches("lerian", "enable200", &enabled.body);
    assert_eq!(enabled.body, json!({ "enabled": true }));
    assert_error(
        &app.lerian_post(&path("/enable"), Some(&access), enable(&codes[1])).await,
        StatusCode::BAD_REQUEST,
        "IDE-0040",
    );
    assert_error(
        &app.lerian_post(&path("/setup"), Some(&access), json!({ "mfaType": "app" })).await,
        StatusCode::BAD_REQUEST,
        "IDE-0040",
    );
    let status = app.lerian(Method::GET, &path(""), Some(&access), None).await;
    assert_matches("lerian", "status200", &status.body);
    assert_eq!(
        status.body,
        json!({ "enabled": true, "preferredType": "app", "methods": ["app"], "totpEnabled": true,
                "emailEnabled": false, "smsEnabled": false })
    );

    // Login: an mfaToken, then the app's code.
    let mfa_token = app.lerian_mfa_token("lee@example.com", &["app"]).await;
    let challenge = app
        .lerian_post("/v1/login/mfa/challenge", None, json!({ "mfaToken": mfa_token, "mfaType": "app" }))
        .await;
    assert_error(&challenge, StatusCode::BAD_REQUEST, "AUT-9056");
    let replay = app.lerian_verify(&mfa_token, "app", json!({ "passcode": code })).await;
    assert_error(&replay, StatusCode::BAD_REQUEST, "AUT-9046");
    app.advance(30);
    let tokens =
        app.lerian_verify(&mfa_token, "app", json!({ "passcode": oathtool(&secret, app.now()) })).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_matches("lerian", "token200", &tokens.body);
    assert!(tokens.body.get("deviceToken").is_none() && !tokens.headers.contains_key("set-cookie"));
    let again =
        app.lerian_verify(&mfa_token, "app", json!({ "passcode": oathtool(&secret, app.now() + 30) })).await;
    assert_error(&again, StatusCode::UNAUTHORIZED, "AUT-9105");
    let me = app.get_bearer("/v1/me", tokens.body["accessToken"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["aal"], "aal2", "{}", me.body);

    // The refresh grant.
    let refreshed = app
        .lerian_post(
            "/v1/login/oauth/access_token",
            None,
            json!({ "grantType": "refresh_token", "refreshToken": tokens.body["refreshToken"] }),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_matches("lerian", "token200", &refreshed.body);
    let reused = app
        .lerian_post(
            "/v1/login/oauth/access_token",
            None,
            json!({ "grantType": "refresh_token", "refreshToken": tokens.body["refreshToken"] }),
        )
        .await;
    assert_error(&reused, StatusCode::UNAUTHORIZED, "AUT-1005");

    // A recovery code at login: the one enable spent no longer works, another does.
    let mfa_token = app.lerian_mfa_token("lee@example.com", &["app"]).await;
    let spent = app.lerian_verify(&mfa_token, "app", json!({ "recoveryCode": codes[0] })).await;
    assert_error(&spent, StatusCode::BAD_REQUEST, "AUT-9047");
    let recovered = app.lerian_verify(&mfa_token, "app", json!({ "recoveryCode": codes[1] })).await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.body);
    assert_matches("lerian", "token200", &recovered.body);

    // Disabling (extension) with that fresh aal2 session.
    let fresh = recovered.body["accessToken"].as_str().unwrap();
    let disabled = app.lerian(Method::DELETE, &path(""), Some(fresh), None).await;
    assert_eq!(disabled.body, json!({ "enabled": false }));
    let status = app.lerian(Method::GET, &path(""), Some(fresh), None).await;
    assert_eq!(status.body["enabled"], false);
    assert_error(
        &app.lerian(Method::DELETE, &path(""), Some(fresh), None).await,
        StatusCode::BAD_REQUEST,
        "IDE-0052",
    );
    let login = app.lerian_login("lee@example.com", None).await;
    assert_matches("lerian", "token200", &login.body);
}

async fn remembered_devices_skip_the_second_factor_until_revoked(app: TestApp) {
    app.signup("rem@example.com").await;
    let (access, id) = app.lerian_session("rem@example.com").await;
    let (secret, codes) = enable_app(&app, &access, &id).await;

    app.advance(30);
    let mfa_token = app.lerian_mfa_token("rem@example.com", &["app"]).await;
    let remembered = app
        .lerian_verify(
            &mfa_token,
            "app",
            json!({ "passcode": oathtool(&secret, app.now()), "rememberDevice": true }),
        )
        .await;
    assert_eq!(remembered.status, StatusCode::OK, "{}", remembered.body);
    assert_matches("lerian", "token200", &remembered.body);
    let device = remembered.body["deviceToken"].as_str().unwrap().to_owned();
    assert!(device.starts_with("lkd_"));
    let cookie = remembered.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with(&format!("latchkey_device={device};")), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/v1/login", &format!("Max-Age={}", 30 * 86_400)] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }

    // The device token, as the field or as the cookie, skips the second factor.
    let skipped = app.lerian_login("rem@example.com", Some(&device)).await;
    assert_eq!(skipped.status, StatusCode::OK, "{}", skipped.body);
    assert_matches("lerian", "token200", &skipped.body);
    let by_cookie = app
        .send(
            app.client
                .post(app.url("/v1/login/oauth/access_token"))
                .header("cookie", format!("other=1; latchkey_device={device}"))
                .json(
                    &json!({ "grantType": "password", "username": "rem@example.com", "password": PASSWORD }),
                ),
        )
        .await;
    assert_matches("lerian", "token200", &by_cookie.body);
    // It is not a password: a wrong one still fails.
    let wrong = app
        .lerian_post(
            "/v1/login/oauth/access_token",
            None,
            json!({ "grantType": "password", "username": "rem@example.com", "password": "wrong password!", "deviceToken": device }),
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "AUT-9103");
    // A device session opens the API but cannot change MFA without a second factor.
    let device_access = skipped.body["accessToken"].as_str().unwrap();
    let me = app.get_bearer("/v1/me", device_access).await;
    assert_eq!(
        (me.body["session"]["aal"].clone(), me.body["session"]["amr"].clone()),
        (json!("aal2"), json!(["pwd"]))
    );
    let refused = app.lerian(Method::DELETE, &format!("/v1/users/{id}/mfa"), Some(device_access), None).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "IDE-0055");

    // Listed and revocable per user, through the native API.
    let devices = app.get_bearer("/v1/me/devices", device_access).await;
    let listed = devices.body["devices"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", devices.body);
    assert!(!devices.body.to_string().contains(&device), "the token is never shown again");
    let device_id = listed[0]["id"].as_str().unwrap();
    assert!(listed[0]["last_used_at"].is_string());
    app.signup("other@example.com").await;
    let other = app.lerian_session("other@example.com").await.0;
    let foreign = app
        .send(app.client.delete(app.url(&format!("/v1/me/devices/{device_id}"))).bearer_auth(&other))
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "another user's device");
    let revoked = app
        .send(app.client.delete(app.url(&format!("/v1/me/devices/{device_id}"))).bearer_auth(device_access))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let mfa_token = app.lerian_mfa_token("rem@example.com", &["app"]).await;
    let after = app.lerian_login("rem@example.com", Some(&device)).await;
    assert_matches("lerian", "mfaRequired200", &after.body);

    // A new device is forgotten when the factors change.
    let recovered = app
        .lerian_verify(&mfa_token, "app", json!({ "recoveryCode": codes[0], "rememberDevice": true }))
        .await;
    assert_matches("lerian", "token200", &recovered.body);
    let second = recovered.body["deviceToken"].as_str().unwrap().to_owned();
    assert_matches("lerian", "token200", &app.lerian_login("rem@example.com", Some(&second)).await.body);
    let fresh = recovered.body["accessToken"].as_str().unwrap();
    let email = app.post_bearer("/v1/me/factors", fresh, json!({ "type": "email" })).await;
    // The "factor added" and "recovery code used" notices came first.
    let code = latest_code(&app.outbox(), "rem@example.com", 3).await;
    let confirmed = app.confirm(fresh, email.body["id"].as_str().unwrap(), &code).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    let after = app.lerian_login("rem@example.com", Some(&second)).await;
    assert_matches("lerian", "mfaRequired200", &after.body);
    assert_eq!(after.body["mfaTypes"], json!(["app", "email"]));
    assert_eq!(app.get_bearer("/v1/me/devices", fresh).await.body["devices"], json!([]));
}

async fn bodies_are_strict_and_errors_are_lerian_shaped(app: TestApp) {
    app.signup("strict@example.com").await;
    let (access, id) = app.lerian_session("strict@example.com").await;
    let setup = format!("/v1/users/{id}/mfa/setup");
    let cases = [
        (json!({}), "IDE-0001"),
        (json!({ "mfaType": "app", "extra": 1 }), "IDE-0004"),
        (json!({ "mfaType": "push" }), "IDE-0044"),
        (json!({ "mfaType": "" }), "IDE-0044"),
        (json!({ "mfaType": 7 }), "IDE-0044"),
        (json!(["app"]), "IDE-0007"),
    ];
    for (body, code) in cases {
        let reply = app.lerian_post(&setup, Some(&access), body.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, code);
    }
    let malformed = app
        .send(
            app.client
                .post(app.url(&setup))
                .bearer_auth(&access)
                .header("content-type", "application/json")
                .body("{\"mfaType\":"),
        )
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "IDE-0007");
    let no_phone = app.lerian_post(&setup, Some(&access), json!({ "mfaType": "sms" })).await;
    assert_error(&no_phone, StatusCode::BAD_REQUEST, "IDE-0053");
    let verify = format!("/v1/users/{id}/mfa/verify");
    let empty = app.lerian_post(&verify, Some(&access), json!({ "passcode": "", "mfaType": "app" })).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "IDE-0001");
    let missing = app.lerian_post(&verify, Some(&access), json!({ "mfaType": "app" })).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "IDE-0001");

    // Login.
    let token = "/v1/login/oauth/access_token";
    let grant = app.lerian_post(token, None, json!({ "grantType": "implicit" })).await;
    assert_error(&grant, StatusCode::BAD_REQUEST, "AUT-1001");
    let no_grant = app.lerian_post(token, None, json!({ "username": "strict@example.com" })).await;
    assert_error(&no_grant, StatusCode::BAD_REQUEST, "AUT-0013");
    // Lerian's Auth catalogue on the login routes: `{}` and a grant type that is not a
    // string are AUT-0013; `{}` at the MFA verify is AUT-0001.
    for body in [json!({}), json!({ "grantType": 7 }), json!({ "grantType": "" })] {
        let refused = app.lerian_post(token, None, body.clone()).await;
        assert_error(&refused, StatusCode::BAD_REQUEST, "AUT-0013");
    }
    let empty_verify = app.lerian_post("/v1/login/mfa/verify", None, json!({})).await;
    assert_error(&empty_verify, StatusCode::BAD_REQUEST, "AUT-0001");
    let wrong_method = app.lerian(Method::GET, token, None, None).await;
    assert_error(&wrong_method, StatusCode::METHOD_NOT_ALLOWED, "AUT-9060");
    let no_password = app
        .lerian_post(token, None, json!({ "grantType": "password", "username": "strict@example.com" }))
        .await;
    assert_error(&no_password, StatusCode::BAD_REQUEST, "AUT-0014");
    let unknown = app
        .lerian_post(token, None, json!({ "grantType": "password", "username": "strict@example.com", "password": PASSWORD, "scope": "x" }))
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "AUT-9004");
    // Wrong password and unknown user answer alike.
    let wrong = app.lerian_post(token, None, json!({ "grantType": "password", "username": "strict@example.com", "password": "not the password" })).await;
    let nobody = app.lerian_post(token, None, json!({ "grantType": "password", "username": "nobody@example.com", "password": "not the password" })).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "AUT-9103");
    assert_eq!(wrong.body, nobody.body);
    let bad_refresh = app
        .lerian_post(token, None, json!({ "grantType": "refresh_token", "refreshToken": "lkr_nope" }))
        .await;
    assert_error(&bad_refresh, StatusCode::UNAUTHORIZED, "AUT-1005");

    // The MFA step: exactly one of passcode and recoveryCode, a live mfaToken.
    let tokens = app.lerian_session("strict@example.com").await.0;
    let email = app.post_bearer("/v1/me/factors", &tokens, json!({ "type": "email" })).await;
    let code = latest_code(&app.outbox(), "strict@example.com", 1).await;
    assert_eq!(app.confirm(&tokens, email.body["id"].as_str().unwrap(), &code).await.status, StatusCode::OK);
    let mfa_token = app.lerian_mfa_token("strict@example.com", &["email"]).await;
    let no_app = app.lerian_verify(&mfa_token, "app", json!({ "passcode": "123456" })).await;
    assert_error(&no_app, StatusCode::BAD_REQUEST, "AUT-9052");
    let guard = app.state.store.second_factor_guard(&id).await.unwrap();
    assert_eq!(guard.map(|g| g.failures).unwrap_or(0), 0, "naming a missing type is not a guess");
    app.lerian(Method::DELETE, &format!("/v1/users/{id}/mfa"), Some(&tokens), None).await;
    let (access, _) = app.lerian_session("strict@example.com").await;
    let (_, codes) = enable_app(&app, &access, &id).await;
    let mfa_token = app.lerian_mfa_token("strict@example.com", &["app"]).await;
    let neither = app.lerian_verify(&mfa_token, "app", json!({})).await;
    assert_error(&neither, StatusCode::BAD_REQUEST, "AUT-0001");
    let both =
        app.lerian_verify(&mfa_token, "app", json!({ "passcode": "123456", "recoveryCode": codes[0] })).await;
    assert_error(&both, StatusCode::BAD_REQUEST, "AUT-9004");
    let bad_type = app.lerian_verify(&mfa_token, "voice", json!({ "passcode": "123456" })).await;
    assert_error(&bad_type, StatusCode::BAD_REQUEST, "AUT-9044");
    let not_enabled = app.lerian_verify(&mfa_token, "sms", json!({ "passcode": "123456" })).await;
    assert_error(&not_enabled, StatusCode::BAD_REQUEST, "AUT-9052");
    let forged = app.lerian_verify("lkm_forged", "app", json!({ "passcode": "123456" })).await;
    assert_error(&forged, StatusCode::UNAUTHORIZED, "AUT-9105");
    let challenge = app
        .lerian_post("/v1/login/mfa/challenge", None, json!({ "mfaToken": mfa_token, "mfaType": "email" }))
        .await;
    assert_error(&challenge, StatusCode::BAD_REQUEST, "AUT-9052");

    // Wrong codes count toward the lockout, which answers 429 with Retry-After.
    let mut last = None;
    for _ in 0..6 {
        last = Some(app.lerian_verify(&mfa_token, "app", json!({ "passcode": "000000" })).await);
    }
    let limited = last.unwrap();
    assert_error(&limited, StatusCode::TOO_MANY_REQUESTS, "AUT-9050");
    assert!(limited.headers.contains_key("retry-after"));
}

async fn only_the_user_or_an_api_key_may_manage_mfa(app: TestApp) {
    app.signup("owner@example.com").await;
    app.signup("intruder@example.com").await;
    let (owner, owner_id) = app.lerian_session("owner@example.com").await;
    let (intruder, _) = app.lerian_session("intruder@example.com").await;
    let setup = format!("/v1/users/{owner_id}/mfa/setup");
    let body = json!({ "mfaType": "app" });

    assert_error(&app.lerian_post(&setup, None, body.clone()).await, StatusCode::UNAUTHORIZED, "AUT-0006");
    assert_error(
        &app.lerian_post(&setup, Some("not-a-jwt"), body.clone()).await,
        StatusCode::UNAUTHORIZED,
        "AUT-9101",
    );
    assert_error(
        &app.lerian_post(&setup, Some(&intruder), body.clone()).await,
        StatusCode::FORBIDDEN,
        "AUT-9102",
    );
    let status = app.lerian(Method::GET, &format!("/v1/users/{owner_id}/mfa"), Some(&intruder), None).await;
    assert_error(&status, StatusCode::FORBIDDEN, "AUT-9102");

    let reader = app.api_key(&["users:read"]).await;
    let read = app.admin(Method::GET, &format!("/v1/users/{owner_id}/mfa"), &reader, None).await;
    assert_matches("lerian", "status200", &read.body);
    let refused = app.admin(Method::POST, &setup, &reader, Some(body.clone())).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "AUT-9102");
    let bad_key = app.admin(Method::POST, &setup, "lk_not-a-key", Some(body.clone())).await;
    assert_error(&bad_key, StatusCode::UNAUTHORIZED, "AUT-9101");

    // An admin key may run the lifecycle for any user, and gets IDE-1003 for no user.
    let writer = app.api_key(&["users:write"]).await;
    let missing = app
        .admin(
            Method::POST,
            "/v1/users/019c96a0-0c21-71f9-a487-66a1258278a1/mfa/setup",
            &writer,
            Some(body.clone()),
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "IDE-1003");
    let created = app.admin(Method::POST, &setup, &writer, Some(body.clone())).await;
    assert_matches("lerian", "setup200", &created.body);
    let secret = created.body["secret"].as_str().unwrap();
    let verify = json!({ "passcode": oathtool(secret, app.now()), "mfaType": "app" });
    let verified =
        app.admin(Method::POST, &format!("/v1/users/{owner_id}/mfa/verify"), &writer, Some(verify)).await;
    assert_eq!(verified.body, json!({ "verified": true }));
    let enable = json!({ "recoveryCode": codes(&created)[3], "mfaType": "app" });
    let enabled =
        app.admin(Method::POST, &format!("/v1/users/{owner_id}/mfa/enable"), &writer, Some(enable)).await;
    assert_eq!(enabled.body, json!({ "enabled": true }));
    let ended = app.lerian(Method::GET, &format!("/v1/users/{owner_id}/mfa"), Some(&owner), None).await;
    assert_error(&ended, StatusCode::UNAUTHORIZED, "AUT-9101");
    app.lerian_mfa_token("owner@example.com", &["app"]).await;
    let disabled = app.admin(Method::DELETE, &format!("/v1/users/{owner_id}/mfa"), &writer, None).await;
    assert_eq!(disabled.body, json!({ "enabled": false }));
    let audit_key = app.api_key(&["audit:read"]).await;
    let audit = app.admin(Method::GET, "/v1/audit?type=mfa.disabled", &audit_key, None).await;
    let reset = app.admin(Method::GET, "/v1/audit?type=factors.reset", &audit_key, None).await;
    assert_eq!(audit.body["events"].as_array().map(Vec::len), Some(0), "{}", audit.body);
    assert_eq!(
        reset.body["events"][0]["actor"].as_str().map(|a| a.starts_with("api_key:")),
        Some(true),
        "{}",
        reset.body
    );
}

/// The newest message to `to` that carries a code, once there are `count` messages.
async fn latest_code(dir: &std::path::Path, to: &str, count: usize) -> String {
    let messages = mail::wait_for(dir, to, count).await;
    messages.iter().rev().find(|m| m.text.contains("verification code is")).expect("a code message").code()
}

async fn the_email_lifecycle_works_with_a_real_smtp_server(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(false, None);
    let url = sink.url(None);
    let app = TestApp::spawn_with(backend, |c| c.email.smtp_url = Some(url)).await;
    app.signup("mel@example.com").await;
    let (access, id) = app.lerian_session("mel@example.com").await;

    let setup = app
        .lerian_post(&format!("/v1/users/{id}/mfa/setup"), Some(&access), json!({ "mfaType": "email" }))
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("lerian", "setup200", &setup.body);
    assert_eq!((setup.body["secret"].clone(), setup.body["url"].clone()), (json!(""), json!("")));
    let code = latest_code(sink.path(), "mel@example.com", 1).await;
    let verified = app
        .lerian_post(
            &format!("/v1/users/{id}/mfa/verify"),
            Some(&access),
            json!({ "passcode": code, "mfaType": "email", "secret": "" }),
        )
        .await;
    assert_eq!(verified.body, json!({ "verified": true }));
    let enable = json!({ "recoveryCode": codes(&setup)[0], "mfaType": "email" });
    let enabled = app.lerian_post(&format!("/v1/users/{id}/mfa/enable"), Some(&access), enable).await;
    assert_eq!(enabled.body, json!({ "enabled": true }));
    let status = app.lerian(Method::GET, &format!("/v1/users/{id}/mfa"), Some(&access), None).await;
    assert_eq!(
        (status.body["preferredType"].clone(), status.body["emailEnabled"].clone()),
        (json!("email"), json!(true))
    );

    // One send per destination per minute. A password grant a minute later sends the
    // login's code at once (the user's only factor sends codes).
    app.advance(60);
    let mfa_token = app.lerian_mfa_token("mel@example.com", &["email"]).await;
    // Setup's code, the "factor added" notice, then the login's code.
    let first_code = latest_code(sink.path(), "mel@example.com", 3).await;
    assert_ne!(first_code, code);
    // The challenge endpoint is for a new code, under the same throttle.
    let challenge = json!({ "mfaToken": mfa_token, "mfaType": "email" });
    let at_once = app.lerian_post("/v1/login/mfa/challenge", None, challenge.clone()).await;
    assert_error(&at_once, StatusCode::TOO_MANY_REQUESTS, "AUT-9054");
    app.advance(60);
    let challenge = app.lerian_post("/v1/login/mfa/challenge", None, challenge).await;
    assert_eq!(challenge.status, StatusCode::OK, "{}", challenge.body);
    assert_matches("lerian", "challenge200", &challenge.body);
    let login_code = latest_code(sink.path(), "mel@example.com", 4).await;
    let voided = app.lerian_verify(&mfa_token, "email", json!({ "passcode": first_code })).await;
    assert_eq!(voided.status, StatusCode::BAD_REQUEST, "a new code voids the first: {}", voided.body);
    let tokens = app.lerian_verify(&mfa_token, "email", json!({ "passcode": login_code })).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_matches("lerian", "token200", &tokens.body);
    let me = app.get_bearer("/v1/me", tokens.body["accessToken"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["amr"], json!(["pwd", "mail"]));
    let resend = app
        .lerian_post("/v1/login/mfa/challenge", None, json!({ "mfaToken": mfa_token, "mfaType": "email" }))
        .await;
    assert_error(&resend, StatusCode::UNAUTHORIZED, "AUT-9105");
}

async fn the_sms_lifecycle_works_with_a_webhook_provider(backend: latchkey_store::Backend) {
    let (base, log) = receiver().await;
    let app = TestApp::spawn_with(backend, |c| {
        c.sms.provider = latchkey_server::config::SmsProvider::Webhook;
        c.sms.webhook_url = Some(format!("{base}/sms"));
        c.sms.webhook_secret = Some("whsec-lerian".to_owned().into());
    })
    .await;
    let key = app.api_key(&[]).await;
    let user = json!({ "email": "sid@example.com", "password": PASSWORD, "phone": "+14155550123" });
    let created = app.admin(Method::POST, "/v1/users", &key, Some(user)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let (access, id) = app.lerian_session("sid@example.com").await;
    let sms_code = |n: usize| {
        let log = log.clone();
        async move {
            for _ in 0..400 {
                if let Some(request) = log.lock().unwrap().get(n - 1).cloned() {
                    let body: Value = serde_json::from_slice(&request.body).unwrap();
                    assert_eq!(body["to"], "+14155550123");
                    return digits_after(body["body"].as_str().unwrap(), "");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("no SMS {n}");
        }
    };

    let setup = app
        .lerian_post(&format!("/v1/users/{id}/mfa/setup"), Some(&access), json!({ "mfaType": "sms" }))
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("lerian", "setup200", &setup.body);
    let code = sms_code(1).await;
    let verify = format!("/v1/users/{id}/mfa/verify");
    let elsewhere = app
        .lerian_post(
            &verify,
            Some(&access),
            json!({ "passcode": code, "mfaType": "sms", "countryCode": "+44" }),
        )
        .await;
    assert_error(&elsewhere, StatusCode::BAD_REQUEST, "IDE-0058");
    let verified = app
        .lerian_post(
            &verify,
            Some(&access),
            json!({ "passcode": code, "mfaType": "sms", "countryCode": "1" }),
        )
        .await;
    assert_eq!(verified.body, json!({ "verified": true }));
    let enable = json!({ "recoveryCode": codes(&setup)[0], "mfaType": "sms" });
    let enabled = app.lerian_post(&format!("/v1/users/{id}/mfa/enable"), Some(&access), enable).await;
    assert_eq!(enabled.body, json!({ "enabled": true }));

    // The password grant texts the login's code at once.
    app.advance(60);
    let mfa_token = app.lerian_mfa_token("sid@example.com", &["sms"]).await;
    let login_code = sms_code(2).await;
    let tokens = app.lerian_verify(&mfa_token, "sms", json!({ "passcode": login_code })).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_matches("lerian", "token200", &tokens.body);
    let me = app.get_bearer("/v1/me", tokens.body["accessToken"].as_str().unwrap()).await;
    assert_eq!(me.body["session"]["amr"], json!(["pwd", "sms"]));
}

async fn internal_failures_answer_ide_0006_and_ide_0045_without_internals(app: TestApp) {
    app.signup("fault@example.com").await;
    let (access, id) = app.lerian_session("fault@example.com").await;
    // Break the database under the running server: setup can no longer store
    // recovery codes, and logins can no longer store refresh tokens.
    let pool = sqlx::AnyPool::connect(&app.db.url).await.unwrap();
    sqlx::raw_sql("DROP TABLE recovery_codes").execute(&pool).await.unwrap();
    sqlx::raw_sql("DROP TABLE refresh_tokens").execute(&pool).await.unwrap();
    let setup = app
        .lerian_post(&format!("/v1/users/{id}/mfa/setup"), Some(&access), json!({ "mfaType": "app" }))
        .await;
    assert_error(&setup, StatusCode::INTERNAL_SERVER_ERROR, "IDE-0045");
    let login = app.lerian_login("fault@example.com", None).await;
    assert_error(&login, StatusCode::INTERNAL_SERVER_ERROR, "AUT-9006");
    for reply in [&setup, &login] {
        let text = reply.body.to_string().to_lowercase();
        assert!(
            !text.contains("recovery_codes") && !text.contains("refresh_tokens") && !text.contains("table"),
            "{text}"
        );
    }
}

/// DESIGN rule 16: someone guessing the password delays the account, but not for a
/// device the account trusts, which has a count of its own.
async fn a_remembered_device_is_judged_by_its_own_password_count(app: TestApp) {
    app.signup("owner@example.com").await;
    let (access, id) = app.lerian_session("owner@example.com").await;
    let (secret, _) = enable_app(&app, &access, &id).await;
    app.advance(30);
    let mfa_token = app.lerian_mfa_token("owner@example.com", &["app"]).await;
    let proof = json!({ "passcode": oathtool(&secret, app.now()), "rememberDevice": true });
    let remembered = app.lerian_verify(&mfa_token, "app", proof).await;
    let device = remembered.body["deviceToken"].as_str().unwrap().to_owned();

    let guess = |device: Option<String>| {
        let mut body =
            json!({ "grantType": "password", "username": "owner@example.com", "password": "a guess at it" });
        if let Some(device) = device {
            body["deviceToken"] = json!(device);
        }
        app.lerian_post("/v1/login/oauth/access_token", None, body)
    };
    for _ in 0..5 {
        assert_error(&guess(None).await, StatusCode::UNAUTHORIZED, "AUT-9103");
    }
    assert_error(
        &app.lerian_login("owner@example.com", None).await,
        StatusCode::TOO_MANY_REQUESTS,
        "AUT-9050",
    );
    let owner = app.lerian_login("owner@example.com", Some(&device)).await;
    assert_eq!(owner.status, StatusCode::OK, "the owner's device is not delayed: {}", owner.body);
    assert_matches("lerian", "token200", &owner.body);
    // The device's own count throttles guesses made with it, and forged tokens count
    // on the account.
    for _ in 0..5 {
        assert_error(&guess(Some(device.clone())).await, StatusCode::UNAUTHORIZED, "AUT-9103");
    }
    let delayed = app.lerian_login("owner@example.com", Some(&device)).await;
    assert_error(&delayed, StatusCode::TOO_MANY_REQUESTS, "AUT-9050");
    let forged = guess(Some(format!("lkd_{}", "A".repeat(43)))).await;
    assert_error(&forged, StatusCode::TOO_MANY_REQUESTS, "AUT-9050");
}

/// Machine to machine: an API key's id and secret as client credentials give a
/// short-lived Bearer token that acts as the key on the MFA routes, with its scopes.
async fn a_service_manages_mfa_with_a_client_credentials_token(app: TestApp) {
    app.signup("svc@example.com").await;
    let user_id = app.state.store.user_by_email("svc@example.com").await.unwrap().unwrap().id;
    let writer =
        api_keys::create(&app.state, "billing", &["users:write".into(), "users:read".into()]).await.unwrap();
    let reader = api_keys::create(&app.state, "reports", &["users:read".into()]).await.unwrap();
    let grant = |id: &str, secret: &str| json!({ "grantType": "client_credentials", "clientId": id, "clientSecret": secret });
    let token_path = "/v1/login/oauth/access_token";
    let issued = app.lerian_post(token_path, None, grant(&writer.id, &writer.secret)).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    assert_matches("lerian", "clientToken200", &issued.body);
    assert_eq!(issued.body["tokenType"], "Bearer");
    assert_eq!(issued.body["expiresIn"], 900);
    assert!(issued.body.get("refreshToken").is_none(), "no refresh token: the client asks again");
    let token = issued.body["accessToken"].as_str().unwrap().to_owned();

    let status = app.lerian(Method::GET, &format!("/v1/users/{user_id}/mfa"), Some(&token), None).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let setup = app
        .lerian_post(&format!("/v1/users/{user_id}/mfa/setup"), Some(&token), json!({ "mfaType": "app" }))
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    // It acts as the key, not as a user: no user route opens with it.
    assert_eq!(app.get_bearer("/v1/me", &token).await.status, StatusCode::UNAUTHORIZED);

    // The key's scopes hold.
    let read_only = app.lerian_post(token_path, None, grant(&reader.id, &reader.secret)).await;
    let read_token = read_only.body["accessToken"].as_str().unwrap().to_owned();
    let refused = app
        .lerian_post(
            &format!("/v1/users/{user_id}/mfa/setup"),
            Some(&read_token),
            json!({ "mfaType": "app" }),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "AUT-9102");

    // Wrong or mismatched credentials, and missing fields.
    let wrong = app.lerian_post(token_path, None, grant(&writer.id, &reader.secret)).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "AUT-9103");
    let garbage = app.lerian_post(token_path, None, grant(&writer.id, "lk_nope")).await;
    assert_error(&garbage, StatusCode::UNAUTHORIZED, "AUT-9103");
    let missing = app
        .lerian_post(token_path, None, json!({ "grantType": "client_credentials", "clientId": writer.id }))
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "AUT-0014");

    // A revoked key's token stops working at once; an expired one too.
    assert!(latchkey_server::service::api_keys::revoke(&app.state, &writer.id).await.unwrap());
    let revoked = app.lerian(Method::GET, &format!("/v1/users/{user_id}/mfa"), Some(&token), None).await;
    assert_error(&revoked, StatusCode::UNAUTHORIZED, "AUT-9101");
    app.advance(901);
    let expired = app.lerian(Method::GET, &format!("/v1/users/{user_id}/mfa"), Some(&read_token), None).await;
    assert_error(&expired, StatusCode::UNAUTHORIZED, "AUT-9101");
}
