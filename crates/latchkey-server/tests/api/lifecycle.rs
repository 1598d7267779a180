//! The account's lifecycle: a forgotten password's reset (through a real SMTP server),
//! which never gets past the second factor; the signed-in user's password change; email
//! and phone changes confirmed by the code the new address receives; and the way back
//! for a user who lost every factor, by an administrator's link or (when turned on) by
//! themselves after a waiting period.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::contact::wait_for_text;
use crate::helpers::{PASSWORD, TestApp, access, join_all, refresh};
use crate::mail::{self, Mail, SmtpSink};

on_both_backends!(
    a_reset_needs_the_second_factor_and_ends_sessions_and_devices,
    twenty_concurrent_uses_of_one_reset_link_reset_once,
    the_signed_in_user_changes_their_password,
    a_phone_change_is_confirmed_by_a_text_to_the_new_number,
    an_administrator_helps_a_user_who_lost_every_factor,
    self_service_recovery_is_off_by_default,
    every_surface_signs_in_with_the_new_address_and_password,
);

with_each_backend!(
    a_forgotten_password_is_reset_through_smtp,
    a_reset_for_a_locked_second_factor_is_refused,
    an_email_change_is_confirmed_from_the_new_mailbox,
    self_service_recovery_waits_and_a_second_factor_cancels_it,
);

const NEW_PASSWORD: &str = "violet tangerine submarine orchestra";

/// The `count`th message to `to` whose subject contains `subject`.
async fn nth_mail(dir: &std::path::Path, to: &str, subject: &str, count: usize) -> Mail {
    for _ in 0..400 {
        let found: Vec<Mail> = mail::messages(dir)
            .into_iter()
            .filter(|m| m.header("To").is_some_and(|t| t.contains(to)))
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains(subject)))
            .collect();
        if found.len() >= count {
            return found[count - 1].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no message {count} to {to} about {subject:?} in {}", dir.display());
}

/// A text to `to` in the outbox that contains `needle`.
async fn text_with(outbox: &std::path::Path, to: &str, needle: &str) -> String {
    for _ in 0..400 {
        let found = std::fs::read_dir(outbox)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".sms.txt"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .find(|t| t.starts_with(&format!("To: {to}\n")) && t.contains(needle));
        if let Some(text) = found {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no text to {to} with {needle:?}");
}

/// The token of the link in `mail`, checking the link points at the public URL's `path`.
fn token_of(app: &TestApp, mail: &Mail, path: &str) -> String {
    let link = mail.link();
    let prefix = format!("{}{path}?token=", app.state.config.public_base());
    let token = link.strip_prefix(&prefix).unwrap_or_else(|| panic!("{link} is not under {prefix}"));
    assert!(token.starts_with("lka_") && token.len() == 47, "{token}");
    token.to_owned()
}

async fn forgot(app: &TestApp, email: &str) -> crate::helpers::Reply {
    app.post("/v1/auth/password/forgot", json!({ "email": email })).await
}

async fn reset(app: &TestApp, body: Value) -> crate::helpers::Reply {
    app.post("/v1/auth/password/reset", body).await
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> crate::helpers::Reply {
    app.post("/v1/auth/login", json!({ "email": email, "password": password })).await
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.state.store.user_by_email(email).await.unwrap().unwrap().id
}

async fn events(app: &TestApp, user_id: &str) -> Vec<String> {
    app.column(&format!(
        "SELECT event_type FROM audit_events WHERE user_id = '{user_id}' ORDER BY occurred_at, id"
    ))
    .await
}

async fn a_forgotten_password_is_reset_through_smtp(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(false, None);
    let url = sink.url(None);
    let app = TestApp::spawn_with(backend, |c| c.email.smtp_url = Some(url)).await;
    let tokens = app.user("rosa@example.com").await;

    // The same answer for an account and for no account.
    let known = forgot(&app, "rosa@example.com").await;
    let unknown = forgot(&app, "nobody@example.com").await;
    assert_eq!(known.status, StatusCode::ACCEPTED, "{}", known.body);
    assert_eq!((unknown.status, &unknown.body), (known.status, &known.body));
    let invalid = forgot(&app, "not an address").await;
    assert_eq!((invalid.status, invalid.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"));
    let again = forgot(&app, "rosa@example.com").await;
    assert_eq!(again.code(), "rate_limited", "one message a minute per address");

    let mail = nth_mail(sink.path(), "rosa@example.com", "Reset your", 1).await;
    assert!(mail.text.contains("expires in 30 minutes"), "{}", mail.text);
    let token = token_of(&app, &mail, "/reset-password");
    assert!(mail::messages(sink.path()).iter().all(|m| !m.text.contains("nobody@example.com")));

    // Bad input changes nothing.
    for (bad, status, code) in [
        (
            json!({ "token": "lka_nope", "new_password": NEW_PASSWORD }),
            StatusCode::BAD_REQUEST,
            "invalid_link",
        ),
        (
            json!({ "token": token, "new_password": "short" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (
            json!({ "token": token, "new_password": "rosa@example.com" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_password",
        ),
        (json!({ "token": token }), StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
    ] {
        let reply = reset(&app, bad.clone()).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{bad}: {}", reply.body);
        assert!(!reply.body.to_string().contains(&token), "the token is never echoed");
    }

    let done = reset(&app, json!({ "token": token, "new_password": NEW_PASSWORD })).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    let used = reset(&app, json!({ "token": token, "new_password": NEW_PASSWORD })).await;
    assert_eq!((used.status, used.code()), (StatusCode::BAD_REQUEST, "invalid_link"));

    // Every session ended; the old password is gone, the new one works.
    assert_eq!(app.get_bearer("/v1/me", &access(&tokens)).await.status, StatusCode::UNAUTHORIZED);
    let refreshed = app.post("/v1/auth/refresh", json!({ "refresh_token": refresh(&tokens) })).await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login_with(&app, "rosa@example.com", PASSWORD).await.code(), "invalid_credentials");
    assert_eq!(login_with(&app, "rosa@example.com", NEW_PASSWORD).await.status, StatusCode::OK);
    let notice = nth_mail(sink.path(), "rosa@example.com", "Your password was reset", 1).await;
    assert!(!notice.text.contains(&token));

    // A link expires after 30 minutes.
    app.advance(61);
    assert_eq!(forgot(&app, "rosa@example.com").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(sink.path(), "rosa@example.com", "Reset your", 2).await, "/reset-password");
    app.advance(1801);
    let expired = reset(&app, json!({ "token": token, "new_password": PASSWORD })).await;
    assert_eq!(expired.code(), "invalid_link");

    let id = user_id(&app, "rosa@example.com").await;
    let kinds = events(&app, &id).await;
    for kind in ["password.reset_requested", "password.reset"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

async fn a_reset_needs_the_second_factor_and_ends_sessions_and_devices(app: TestApp) {
    let outbox = app.outbox();
    let tokens = app.user("tomas@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let id = user_id(&app, "tomas@example.com").await;
    let now = app.now();
    let device = latchkey_store::RememberedDevice {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: id.clone(),
        created_at: now,
        expires_at: now + 86_400,
        last_used_at: None,
        ip: None,
        user_agent: None,
    };
    app.state.store.remember_device(&device, &[7; 32]).await.unwrap();

    assert_eq!(forgot(&app, "tomas@example.com").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(&outbox, "tomas@example.com", "Reset your", 1).await, "/reset-password");

    // Without a second factor: refused, with the factors that can prove it; nothing spent.
    let bare = reset(&app, json!({ "token": token, "new_password": NEW_PASSWORD })).await;
    assert_eq!(
        (bare.status, bare.code()),
        (StatusCode::UNAUTHORIZED, "second_factor_required"),
        "{}",
        bare.body
    );
    let details = &bare.body["error"]["details"];
    assert_eq!(details["factors"], json!([{ "id": enrolled.factor_id, "type": "totp" }]));
    assert_eq!(details["recovery_code"], true);
    let wrong = app.code(&enrolled.key, 3);
    let refused = reset(
        &app,
        json!({ "token": token, "new_password": NEW_PASSWORD, "factor_id": enrolled.factor_id, "code": wrong }),
    )
    .await;
    assert_eq!(refused.code(), "invalid_code");
    assert_eq!(login_with(&app, "tomas@example.com", NEW_PASSWORD).await.code(), "invalid_credentials");

    app.advance(31); // past the guard's short delay
    let code = app.code(&enrolled.key, 0);
    let done = reset(
        &app,
        json!({ "token": token, "new_password": NEW_PASSWORD, "factor_id": enrolled.factor_id, "code": code }),
    )
    .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    assert_eq!(app.get_bearer("/v1/me", &access(&tokens)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM remembered_devices WHERE user_id = '{id}'")).await,
        0
    );
    // The second factor is still asked for at login.
    let login = login_with(&app, "tomas@example.com", NEW_PASSWORD).await;
    assert_eq!(login.body["mfa_required"], true, "{}", login.body);

    // A recovery code proves a reset too (and is spent).
    app.advance(61);
    assert_eq!(forgot(&app, "tomas@example.com").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(&outbox, "tomas@example.com", "Reset your", 2).await, "/reset-password");
    let recovery = &enrolled.recovery_codes[0];
    let body = json!({ "token": token, "new_password": PASSWORD, "recovery_code": recovery });
    assert_eq!(reset(&app, body).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.state.store.recovery_codes_remaining(&id).await.unwrap(), 9);

    // A factor that sends to the mailbox the link went to proves nothing more than the
    // link: a user whose only factor is email codes needs a recovery code.
    let mail_tokens = app.user("mila@example.com").await;
    let created = app.post_bearer("/v1/me/factors", &access(&mail_tokens), json!({ "type": "email" })).await;
    let factor_id = created.body["id"].as_str().unwrap().to_owned();
    let sent = nth_mail(&outbox, "mila@example.com", "verification code", 1).await;
    assert_eq!(app.confirm(&access(&mail_tokens), &factor_id, &sent.code()).await.status, StatusCode::OK);
    app.advance(61);
    assert_eq!(forgot(&app, "mila@example.com").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(&outbox, "mila@example.com", "Reset your", 1).await, "/reset-password");
    let bare = reset(&app, json!({ "token": token, "new_password": NEW_PASSWORD })).await;
    assert_eq!(bare.code(), "second_factor_required");
    assert_eq!(bare.body["error"]["details"]["factors"], json!([]));
    let same_mailbox = app
        .post("/v1/auth/password/reset/challenge", json!({ "token": token, "factor_id": factor_id }))
        .await;
    assert_eq!(same_mailbox.code(), "challenge_not_applicable", "{}", same_mailbox.body);
    let with_code = reset(
        &app,
        json!({ "token": token, "new_password": NEW_PASSWORD, "factor_id": factor_id, "code": "123456" }),
    )
    .await;
    assert_eq!(with_code.code(), "challenge_not_applicable");
}

async fn twenty_concurrent_uses_of_one_reset_link_reset_once(app: TestApp) {
    app.signup("uma@example.com").await;
    assert_eq!(forgot(&app, "uma@example.com").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(&app.outbox(), "uma@example.com", "Reset your", 1).await, "/reset-password");
    let passwords: Vec<String> = (0..20).map(|i| format!("{NEW_PASSWORD} number {i}")).collect();
    let replies =
        join_all(passwords.iter().map(|p| reset(&app, json!({ "token": token, "new_password": p })))).await;
    let won: Vec<usize> = (0..20).filter(|i| replies[*i].status == StatusCode::NO_CONTENT).collect();
    assert_eq!(won.len(), 1, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(replies.iter().all(|r| r.status == StatusCode::NO_CONTENT || r.code() == "invalid_link"));
    // The password is the winner's.
    let winner = &passwords[won[0]];
    assert_eq!(login_with(&app, "uma@example.com", winner).await.status, StatusCode::OK);
    for (i, password) in passwords.iter().enumerate().filter(|(i, _)| *i != won[0]).take(2) {
        assert_eq!(login_with(&app, "uma@example.com", password).await.code(), "invalid_credentials", "{i}");
    }
}

async fn the_signed_in_user_changes_their_password(app: TestApp) {
    let first = app.user("vera@example.com").await;
    let second = app.login("vera@example.com").await;
    let second_access = access(&second);
    let change = |body: Value| app.post_bearer("/v1/me/password", &second_access, body);

    let wrong =
        change(json!({ "current_password": "not my password at all", "new_password": NEW_PASSWORD })).await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::FORBIDDEN, "reauthentication_required"));
    assert_eq!(wrong.body["error"]["details"]["reason"], "wrong_password");
    let weak = change(json!({ "current_password": PASSWORD, "new_password": "password1" })).await;
    assert_eq!(weak.code(), "weak_password");
    let done = change(json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD })).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);
    // This session stays; the other ends.
    assert_eq!(app.get_bearer("/v1/me", &access(&second)).await.status, StatusCode::OK);
    assert_eq!(app.get_bearer("/v1/me", &access(&first)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(login_with(&app, "vera@example.com", NEW_PASSWORD).await.status, StatusCode::OK);
    nth_mail(&app.outbox(), "vera@example.com", "Your password was changed", 1).await;

    // Without the current password, only a recent login will do.
    app.advance(601);
    let stale = change(json!({ "new_password": PASSWORD })).await;
    assert_eq!(stale.code(), "reauthentication_required");
    let fresh =
        app.post("/v1/auth/login", json!({ "email": "vera@example.com", "password": NEW_PASSWORD })).await;
    let recent =
        app.post_bearer("/v1/me/password", &access(&fresh.body), json!({ "new_password": PASSWORD })).await;
    assert_eq!(recent.status, StatusCode::NO_CONTENT, "{}", recent.body);

    // An account with a factor: without the current password, a recent second factor.
    let tokens = app.user("wes@example.com").await;
    app.enroll_confirmed(&access(&tokens)).await;
    app.advance(601);
    let aal1 =
        app.post_bearer("/v1/me/password", &access(&tokens), json!({ "new_password": NEW_PASSWORD })).await;
    assert_eq!(aal1.body["error"]["details"]["reason"], "recent_mfa_login_needed");
}

async fn an_email_change_is_confirmed_from_the_new_mailbox(backend: latchkey_store::Backend) {
    let sink = SmtpSink::start(false, None);
    let url = sink.url(None);
    let app = TestApp::spawn_with(backend, |c| c.email.smtp_url = Some(url)).await;
    app.signup("taken@example.com").await;
    let tokens = app.user("xena@example.com").await;
    // An email factor at the account's address, which moves with it.
    let created = app.post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "email" })).await;
    let factor_id = created.body["id"].as_str().unwrap().to_owned();
    let code = nth_mail(sink.path(), "xena@example.com", "verification code", 1).await.code();
    assert_eq!(app.confirm(&access(&tokens), &factor_id, &code).await.status, StatusCode::OK);
    let token = access(&tokens);
    let change = |email: &str| app.post_bearer("/v1/me/email", &token, json!({ "email": email }));

    let taken = change("Taken@Example.com").await;
    assert_eq!((taken.status, taken.code()), (StatusCode::CONFLICT, "email_taken"));
    assert!(!taken.body.to_string().contains("taken@"), "{}", taken.body);
    assert_eq!(change("xena@example.com").await.code(), "invalid_field");
    assert_eq!(change("nope").await.code(), "invalid_email");
    let started = change("xena@example.org").await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    assert_eq!(started.body["sent_to"], "x***@example.org");

    let code = nth_mail(sink.path(), "xena@example.org", "verification code", 1).await.code();
    let confirm = |code: String| app.post_bearer("/v1/me/email/confirm", &token, json!({ "code": code }));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(confirm(wrong.into()).await.code(), "invalid_code");
    // Nothing changed yet.
    assert_eq!(app.get_bearer("/v1/me", &access(&tokens)).await.body["email"], "xena@example.com");
    let done = confirm(code.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body, json!({ "address": "xena@example.org", "moved_factors": 1 }));
    assert_eq!(confirm(code).await.code(), "invalid_code", "a code works once");

    // The old address is told; the new one signs in and gets the factor's codes.
    let notice = nth_mail(sink.path(), "xena@example.com", "Your email address was changed", 1).await;
    assert!(notice.text.contains("no longer uses this email address"));
    assert_eq!(login_with(&app, "xena@example.com", PASSWORD).await.code(), "invalid_credentials");
    let login = login_with(&app, "xena@example.org", PASSWORD).await;
    let mfa_token = login.body["mfa_token"].as_str().unwrap().to_owned();
    app.advance(61);
    let sent =
        app.post("/v1/auth/mfa/challenge", json!({ "mfa_token": mfa_token, "factor_id": factor_id })).await;
    assert_eq!(sent.body["sent_to"], "x***@example.org", "{}", sent.body);
    let code = nth_mail(sink.path(), "xena@example.org", "verification code", 2).await.code();
    let verified =
        app.mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": code })).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);

    let kinds = events(&app, &user_id(&app, "xena@example.org").await).await;
    assert!(
        kinds.iter().any(|k| k == "email.change_requested") && kinds.iter().any(|k| k == "email.changed")
    );
}

async fn a_phone_change_is_confirmed_by_a_text_to_the_new_number(app: TestApp) {
    let key = app.api_key(&[]).await;
    let created = app
        .admin(
            reqwest::Method::POST,
            "/v1/users",
            &key,
            Some(json!({ "email": "yan@example.com", "password": PASSWORD, "phone": "+14155550100" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let tokens = app.login("yan@example.com").await;
    let sms = app
        .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": "+14155550100" }))
        .await;
    let factor_id = sms.body["id"].as_str().unwrap().to_owned();
    let code = crate::contact::sms_code(&wait_for_text(&app.outbox(), "+14155550100").await);
    assert_eq!(app.confirm(&access(&tokens), &factor_id, &code).await.status, StatusCode::OK);

    let bad = app.post_bearer("/v1/me/phone", &access(&tokens), json!({ "phone": "0415" })).await;
    assert_eq!(bad.code(), "invalid_phone");
    let started =
        app.post_bearer("/v1/me/phone", &access(&tokens), json!({ "phone": "+1 415 555 0199" })).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let code = crate::contact::sms_code(&wait_for_text(&app.outbox(), "+14155550199").await);
    let done = app.post_bearer("/v1/me/phone/confirm", &access(&tokens), json!({ "code": code })).await;
    assert_eq!(done.body, json!({ "address": "+14155550199", "moved_factors": 1 }), "{}", done.body);
    // The old number is told.
    text_with(&app.outbox(), "+14155550100", "Your phone number was changed").await;
    nth_mail(&app.outbox(), "yan@example.com", "Your phone number was changed", 1).await;
    let factors = app.get_bearer("/v1/me/factors", &access(&tokens)).await;
    assert!(factors.body.to_string().contains("+*********99"), "{}", factors.body);
}

async fn an_administrator_helps_a_user_who_lost_every_factor(app: TestApp) {
    let outbox = app.outbox();
    let tokens = app.user("zora@example.com").await;
    app.enroll_confirmed(&access(&tokens)).await;
    let id = user_id(&app, "zora@example.com").await;
    let key = app.api_key(&["users:write"]).await;
    let reader = app.api_key(&["users:read"]).await;
    let path = format!("/v1/users/{id}/recovery");
    let app = &app;
    let issue = |key: String, body: Value| {
        let path = path.clone();
        async move { app.admin(reqwest::Method::POST, &path, &key, Some(body)).await }
    };

    assert_eq!(issue(reader.clone(), json!({ "reason": "lost phone" })).await.code(), "insufficient_scope");
    assert_eq!(issue(key.clone(), json!({ "reason": "  " })).await.code(), "invalid_field");
    assert_eq!(issue(key.clone(), json!({})).await.code(), "missing_field");
    let long = "x".repeat(501);
    assert_eq!(issue(key.clone(), json!({ "reason": long })).await.code(), "invalid_field");
    let missing = app
        .admin(reqwest::Method::POST, "/v1/users/nobody/recovery", &key, Some(json!({ "reason": "r" })))
        .await;
    assert_eq!(missing.code(), "user_not_found");

    let issued = issue(key.clone(), json!({ "reason": "Ticket 4411: phone lost, identity checked" })).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    assert_eq!(issued.body["sent_to"], "z***@example.com");
    assert!(issued.body.get("link").is_none());
    assert_eq!(
        app.get_bearer("/v1/me", &access(&tokens)).await.status,
        StatusCode::UNAUTHORIZED,
        "sessions end at once"
    );
    let reason = app
        .column(&format!(
            "SELECT reason FROM audit_events WHERE user_id = '{id}' AND event_type = 'recovery.issued'"
        ))
        .await;
    assert_eq!(reason, ["Ticket 4411: phone lost, identity checked"]);

    let token = token_of(app, &nth_mail(&outbox, "zora@example.com", "Recover your", 1).await, "/recover");
    let used = app.post("/v1/auth/recovery", json!({ "token": token })).await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);
    assert_eq!(used.body["aal"], "aal1");
    let me = app.get_bearer("/v1/me", &access(&used.body)).await;
    assert_eq!(
        (me.body["mfa_enabled"].clone(), me.body["recovery_codes_remaining"].clone()),
        (json!(false), json!(0))
    );
    // The session sets up a new factor, and the next login asks for it.
    app.enroll_confirmed(&access(&used.body)).await;
    assert_eq!(app.login("zora@example.com").await["mfa_required"], true);
    let again = app.post("/v1/auth/recovery", json!({ "token": token })).await;
    assert_eq!((again.status, again.code()), (StatusCode::BAD_REQUEST, "invalid_link"));
    nth_mail(&outbox, "zora@example.com", "Your account was recovered", 1).await;

    // A link handed to the administrator instead.
    let handed = issue(key.clone(), json!({ "reason": "mailbox lost too", "send_email": false })).await;
    let link = handed.body["link"].as_str().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    assert!(handed.body.get("sent_to").is_none());
    nth_mail(&outbox, "zora@example.com", "An administrator sent you a recovery link", 1).await;
    app.advance(72 * 3600 + 1);
    assert_eq!(
        app.post("/v1/auth/recovery", json!({ "token": token })).await.code(),
        "invalid_link",
        "expired"
    );
}

async fn self_service_recovery_is_off_by_default(app: TestApp) {
    app.signup("abe@example.com").await;
    let reply = app
        .post("/v1/auth/recovery/request", json!({ "email": "abe@example.com", "password": PASSWORD }))
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "recovery_disabled"));
}

async fn self_service_recovery_waits_and_a_second_factor_cancels_it(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| c.mfa.self_recovery_wait_secs = 86_400).await;
    let outbox = app.outbox();
    let tokens = app.user("bea@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    let sms = app
        .post_bearer("/v1/me/factors", &access(&tokens), json!({ "type": "sms", "phone": "+14155550111" }))
        .await;
    let sms_id = sms.body["id"].as_str().unwrap().to_owned();
    let code = crate::contact::sms_code(&wait_for_text(&outbox, "+14155550111").await);
    assert_eq!(app.confirm(&access(&tokens), &sms_id, &code).await.status, StatusCode::OK);
    let request = |password: &str| {
        app.post("/v1/auth/recovery/request", json!({ "email": "bea@example.com", "password": password }))
    };

    assert_eq!(request("not the password at all").await.code(), "invalid_credentials");
    let asked = request(PASSWORD).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let token = token_of(&app, &nth_mail(&outbox, "bea@example.com", "Recover your", 1).await, "/recover");
    // Every known address is told.
    text_with(&outbox, "+14155550111", "Someone asked to recover your account").await;
    let early = app.post("/v1/auth/recovery", json!({ "token": token })).await;
    assert_eq!((early.status, early.code()), (StatusCode::FORBIDDEN, "recovery_waiting"));
    assert!(early.body["error"]["details"]["retry_after"].as_i64().unwrap() > 86_000);

    // The owner still has a factor: signing in with it cancels the request.
    let mfa_token = app.mfa_token("bea@example.com").await;
    app.advance(30); // the enrolment used this step's code
    let code = app.code(&enrolled.key, 0);
    let verified = app
        .mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": enrolled.factor_id, "code": code }))
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    app.advance(86_401);
    assert_eq!(app.post("/v1/auth/recovery", json!({ "token": token })).await.code(), "invalid_link");

    // Asked again and left alone, the link opens after the wait.
    assert_eq!(request(PASSWORD).await.status, StatusCode::ACCEPTED);
    let token = token_of(&app, &nth_mail(&outbox, "bea@example.com", "Recover your", 2).await, "/recover");
    app.advance(86_401);
    let used = app.post("/v1/auth/recovery", json!({ "token": token })).await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);
    let me = app.get_bearer("/v1/me", &access(&used.body)).await;
    assert_eq!(me.body["mfa_enabled"], false);
    let kinds = events(&app, &user_id(&app, "bea@example.com").await).await;
    for kind in ["recovery.requested", "recovery.cancelled", "recovery.used"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

async fn a_reset_for_a_locked_second_factor_is_refused(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.lockout.lock_after = 3;
        c.lockout.free_failures = 3;
    })
    .await;
    let tokens = app.user("ivo@example.com").await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    assert_eq!(forgot(&app, "ivo@example.com").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(&app.outbox(), "ivo@example.com", "Reset your", 1).await, "/reset-password");
    let wrong = app.code(&enrolled.key, 5);
    let attempt = |code: String| {
        reset(
            &app,
            json!({ "token": token, "new_password": NEW_PASSWORD, "factor_id": enrolled.factor_id, "code": code }),
        )
    };
    for _ in 0..3 {
        assert_eq!(attempt(wrong.clone()).await.code(), "invalid_code");
    }
    app.advance(30);
    let locked = attempt(app.code(&enrolled.key, 0)).await;
    assert_eq!(
        (locked.status, locked.code()),
        (StatusCode::FORBIDDEN, "second_factor_locked"),
        "{}",
        locked.body
    );
    let recovery = reset(
        &app,
        json!({ "token": token, "new_password": NEW_PASSWORD, "recovery_code": enrolled.recovery_codes[0] }),
    )
    .await;
    assert_eq!(
        recovery.code(),
        "second_factor_locked",
        "a recovery code does not pass a locked guard either"
    );
    assert_eq!(
        login_with(&app, "ivo@example.com", NEW_PASSWORD).await.code(),
        "invalid_credentials",
        "nothing changed"
    );
    assert!(
        reset(&app, json!({ "token": token, "new_password": NEW_PASSWORD })).await.code()
            == "second_factor_required",
        "the link is still unspent"
    );
}

async fn every_surface_signs_in_with_the_new_address_and_password(app: TestApp) {
    let outbox = app.outbox();
    let tokens = app.user("kai@example.com").await;
    let started =
        app.post_bearer("/v1/me/email", &access(&tokens), json!({ "email": "kai@example.net" })).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let code = nth_mail(&outbox, "kai@example.net", "verification code", 1).await.code();
    let confirmed = app.post_bearer("/v1/me/email/confirm", &access(&tokens), json!({ "code": code })).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    app.advance(61); // one message a minute to the new address
    assert_eq!(forgot(&app, "kai@example.net").await.status, StatusCode::ACCEPTED);
    let token =
        token_of(&app, &nth_mail(&outbox, "kai@example.net", "Reset your", 1).await, "/reset-password");
    let done = reset(&app, json!({ "token": token, "new_password": NEW_PASSWORD })).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.body);

    // Each surface's login path, and whether its body names the account `username`.
    let surfaces = [
        ("/v1/auth/login", false),
        ("/v2/login", false),
        ("/api/auth/login", false),
        ("/user/login", false),
        ("/v1/login/oauth/access_token", true),
    ];
    let body = |lerian: bool, email: &str, password: &str| {
        if lerian {
            json!({ "grantType": "password", "username": email, "password": password })
        } else {
            json!({ "email": email, "password": password })
        }
    };
    for (path, lerian) in surfaces {
        let now = app.post(path, body(lerian, "kai@example.net", NEW_PASSWORD)).await;
        assert_eq!(now.status, StatusCode::OK, "{path}: {}", now.body);
        let old_address = app.post(path, body(lerian, "kai@example.com", NEW_PASSWORD)).await;
        assert_eq!(old_address.status, StatusCode::UNAUTHORIZED, "{path}: {}", old_address.body);
        let old_password = app.post(path, body(lerian, "kai@example.net", PASSWORD)).await;
        assert_eq!(old_password.status, StatusCode::UNAUTHORIZED, "{path}: {}", old_password.body);
    }
}
