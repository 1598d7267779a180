//! The Prisme.ai-compatible API, end to end and against its contract.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, TestApp, access, oathtool};
use crate::schema::assert_matches;

on_both_backends!(
    the_mfa_lifecycle_works_for_a_prisme_client,
    setup_needs_both_fields_the_password_and_a_user,
    failures_answer_in_prisme_format_and_are_throttled,
    a_passkey_holder_is_asked_for_a_second_factor_and_may_use_a_recovery_code,
    a_prisme_session_lasts_like_prismes_until_it_is_revoked,
);

impl TestApp {
    async fn v2(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn prisme_login(&self, email: &str) -> Value {
        let reply = self.v2("/v2/login", None, json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_matches("prisme", "login200", &reply.body);
        reply.body
    }
}

fn assert_error(reply: &Reply, status: StatusCode, class: &str, message: &str) {
    assert_eq!((reply.status, reply.body["error"].as_str()), (status, Some(class)), "{}", reply.body);
    assert_eq!(reply.body["message"], message);
    assert_matches("prisme", "error", &reply.body);
}

async fn the_mfa_lifecycle_works_for_a_prisme_client(app: TestApp) {
    app.signup("ada@example.com").await;
    let session = app.prisme_login("ada@example.com").await;
    assert_eq!(session["mfa"], "none");
    let token = session["token"].as_str().unwrap().to_owned();

    let setup =
        app.v2("/v2/user/mfa", Some(&token), json!({ "method": "totp", "currentPassword": PASSWORD })).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.body);
    assert_matches("prisme", "setupMfa200", &setup.body);
    assert!(setup.body["qrImage"].as_str().unwrap().starts_with("data:image/png;base64,"));
    let secret = setup.body["secret"].as_str().unwrap().to_owned();

    // The next login has not passed MFA: /v2/me says so, everything else refuses it.
    let pending = app.prisme_login("ada@example.com").await;
    assert_eq!(pending["mfa"], "totp");
    let pending_token = pending["token"].as_str().unwrap().to_owned();
    let me = app.send(app.client.get(app.url("/v2/me")).bearer_auth(&pending_token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_matches("prisme", "me200", &me.body);
    assert_eq!(
        (me.body["mfa"].as_str(), me.body["sessionId"].clone()),
        (Some("totp"), pending["sessionId"].clone())
    );
    let gated = app
        .v2("/v2/user/mfa", Some(&pending_token), json!({ "method": "none", "currentPassword": PASSWORD }))
        .await;
    assert_error(
        &gated,
        StatusCode::UNAUTHORIZED,
        "MissingMFA",
        "Please complete multi-factor authentication",
    );
    let native = app.get_bearer("/v1/me", &pending_token).await;
    assert_eq!((native.status, native.code()), (StatusCode::UNAUTHORIZED, "second_factor_required"));

    let wrong = app.v2("/v2/login/mfa", Some(&pending_token), json!({ "totp": "000000" })).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "AuthenticationError", "Bad TOTP");
    let code = oathtool(&secret, app.now());
    let passed = app.v2("/v2/login/mfa", Some(&pending_token), json!({ "totp": code })).await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.body);
    assert_matches("prisme", "loginMfa200", &passed.body);
    assert_eq!(app.get_bearer("/v1/me", &pending_token).await.body["session"]["aal"], "aal2");

    // The same code on another session is a replay.
    let other = app.prisme_login("ada@example.com").await;
    let replay = app.v2("/v2/login/mfa", other["token"].as_str(), json!({ "totp": code })).await;
    assert_error(&replay, StatusCode::UNAUTHORIZED, "AuthenticationError", "Bad TOTP");

    let off = app
        .v2("/v2/user/mfa", Some(&pending_token), json!({ "method": "none", "currentPassword": PASSWORD }))
        .await;
    assert_eq!(off.body, json!({ "method": "none" }));
    assert_matches("prisme", "setupMfa200", &off.body);
    let after = app.prisme_login("ada@example.com").await;
    assert_eq!(after["mfa"], "none");
    assert_eq!(app.get_bearer("/v1/me", after["token"].as_str().unwrap()).await.status, StatusCode::OK);
    // Native tokens work on /v2 too.
    let native_tokens = app.login("ada@example.com").await;
    assert_eq!(
        app.send(app.client.get(app.url("/v2/me")).bearer_auth(access(&native_tokens))).await.status,
        StatusCode::OK
    );
}

async fn setup_needs_both_fields_the_password_and_a_user(app: TestApp) {
    app.signup("bea@example.com").await;
    let token = app.prisme_login("bea@example.com").await["token"].as_str().unwrap().to_owned();
    for (body, field) in [
        (json!({ "method": "totp" }), "currentPassword"),
        (json!({ "currentPassword": PASSWORD }), "method"),
        (json!({ "method": "sms", "currentPassword": PASSWORD }), "method"),
    ] {
        let reply = app.v2("/v2/user/mfa", Some(&token), body).await;
        assert_eq!(
            (reply.status, reply.body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("RequestValidationError"))
        );
        assert_eq!(reply.body["details"][0]["field"], field, "{}", reply.body);
        assert_matches("prisme", "error", &reply.body);
    }
    let wrong = app
        .v2("/v2/user/mfa", Some(&token), json!({ "method": "totp", "currentPassword": "not my password" }))
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "AuthenticationError", "Incorrect email or password.");
    let key = app.api_key(&[]).await;
    let by_key = app
        .send(
            app.client
                .post(app.url("/v2/user/mfa"))
                .header("x-prismeai-api-key", key)
                .json(&json!({ "method": "totp", "currentPassword": PASSWORD })),
        )
        .await;
    assert_eq!(
        (by_key.status, by_key.body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("AuthenticationError"))
    );
    let anonymous =
        app.v2("/v2/user/mfa", None, json!({ "method": "totp", "currentPassword": PASSWORD })).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let no_mfa = app.v2("/v2/login/mfa", Some(&token), json!({ "totp": "123456" })).await;
    assert_error(&no_mfa, StatusCode::NOT_FOUND, "NotFoundError", "No MFA configured");
    // The body is validated first, as Prisme.ai's validator does.
    let empty = app.v2("/v2/login/mfa", Some(&token), json!({})).await;
    assert_eq!(
        (empty.status, empty.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("RequestValidationError"))
    );
}

async fn failures_answer_in_prisme_format_and_are_throttled(app: TestApp) {
    let bad_login =
        app.v2("/v2/login", None, json!({ "email": "nobody@example.com", "password": PASSWORD })).await;
    assert_error(&bad_login, StatusCode::UNAUTHORIZED, "AuthenticationError", "Incorrect email or password.");
    let malformed = app
        .send(app.client.post(app.url("/v2/login")).header("content-type", "application/json").body("{"))
        .await;
    assert_eq!(
        (malformed.status, malformed.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("RequestValidationError"))
    );
    let unknown = app.send(app.client.get(app.url("/v2/nothing"))).await;
    assert_eq!(
        (unknown.status, unknown.body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFoundError"))
    );

    app.signup("cai@example.com").await;
    let token = app.prisme_login("cai@example.com").await["token"].as_str().unwrap().to_owned();
    app.v2("/v2/user/mfa", Some(&token), json!({ "method": "*", "currentPassword": PASSWORD })).await;
    let pending = app.prisme_login("cai@example.com").await["token"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let reply = app.v2("/v2/login/mfa", Some(&pending), json!({ "totp": "000000" })).await;
        assert_eq!(reply.body["message"], "Bad TOTP");
    }
    let throttled = app.v2("/v2/login/mfa", Some(&pending), json!({ "totp": "000000" })).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_matches("prisme", "tooManyRequests", &throttled.body);
    assert_eq!(
        (throttled.body["details"]["retryAfter"].clone(), throttled.headers["retry-after"].to_str().unwrap()),
        (json!(30), "30")
    );
}

/// A passkey set up on the native API still guards the Prisme login: the session waits
/// (`mfa: "*"`, a kind Prisme has no name for), and a Prisme client, which cannot run a
/// WebAuthn ceremony, passes it with a recovery code.
async fn a_passkey_holder_is_asked_for_a_second_factor_and_may_use_a_recovery_code(app: TestApp) {
    use crate::webauthn::{ORIGIN, confirm, create, start};
    let token = access(&app.user("keyed@example.com").await);
    let (factor_id, options) = start(&app, &token).await;
    let mut key = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let confirmed = confirm(&app, &token, &factor_id, create(&mut key, ORIGIN, &options)).await;
    let recovery_code = confirmed.body["recovery_codes"][0].as_str().unwrap().to_owned();

    let login = app.prisme_login("keyed@example.com").await;
    assert_eq!(login["mfa"], "*");
    let waiting = login["token"].as_str().unwrap().to_owned();
    let me = app.send(app.client.get(app.url("/v2/me")).bearer_auth(&waiting)).await;
    assert_eq!(me.body["mfa"], "*");
    let blocked = app.send(app.client.get(app.url("/v1/me/factors")).bearer_auth(&waiting)).await;
    assert_eq!(blocked.status, StatusCode::UNAUTHORIZED, "the session waits: {}", blocked.body);
    let wrong = app.v2("/v2/login/mfa", Some(&waiting), json!({ "totp": "123456" })).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "AuthenticationError", "Bad TOTP");
    let passed = app.v2("/v2/login/mfa", Some(&waiting), json!({ "totp": recovery_code })).await;
    assert_eq!(passed.body, json!({ "success": true }), "{}", passed.body);
}

/// Prisme.ai has no refresh: its sessions last `prisme.session_ttl_secs` (30 days),
/// past the native idle and absolute timeouts, and still end at once when revoked.
async fn a_prisme_session_lasts_like_prismes_until_it_is_revoked(app: TestApp) {
    app.signup("lena@example.com").await;
    let me = |token: String| app.send(app.client.get(app.url("/v2/me")).bearer_auth(token));
    let login = app.prisme_login("lena@example.com").await;
    let token = login["token"].as_str().unwrap().to_owned();
    let expires = time::OffsetDateTime::parse(
        login["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert_eq!(expires - app.now(), 30 * 86_400, "{login}");
    // A native login ends with the native timeouts; the Prisme session lives on.
    let native = app.login("lena@example.com").await;
    app.advance(20 * 86_400);
    assert_eq!(app.get_bearer("/v1/me", &access(&native)).await.status, StatusCode::UNAUTHORIZED);
    let alive = me(token.clone()).await;
    assert_eq!(alive.status, StatusCode::OK, "{}", alive.body);
    assert_eq!(alive.body["expires"], login["expires"]);
    // Revoked: over at once.
    let id = login["id"].as_str().unwrap();
    let key = app.api_key(&["users:write"]).await;
    let ended = app.admin(reqwest::Method::DELETE, &format!("/v1/users/{id}/sessions"), &key, None).await;
    assert!(ended.status.is_success(), "{}", ended.body);
    assert_eq!(me(token).await.status, StatusCode::UNAUTHORIZED);
    // And a new one still ends after 30 days.
    let again = app.prisme_login("lena@example.com").await["token"].as_str().unwrap().to_owned();
    app.advance(30 * 86_400);
    assert_eq!(me(again).await.status, StatusCode::UNAUTHORIZED);
}
