//! The MFA login challenge: the mfa_token, replay and window rules, recovery codes,
//! concurrency, and the brute-force guard.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, access, join_all};

on_both_backends!(
    login_with_mfa_yields_only_an_mfa_token_until_the_second_factor,
    codes_are_single_use_and_the_window_is_one_step,
    recovery_codes_work_once_in_any_form,
    concurrent_uses_of_one_code_have_one_success,
    instances_sharing_a_database_share_replay_and_lockout_state,
    failures_are_delayed_then_locked_until_an_admin_reset,
    failures_replays_and_throttling_are_audited_with_their_factor,
);
with_each_backend!(wrong_recovery_codes_count_toward_the_same_guard_and_lock);

async fn enrolled_user(app: &TestApp, email: &str) -> (Value, crate::helpers::Enrolled) {
    let tokens = app.user(email).await;
    let enrolled = app.enroll_confirmed(&access(&tokens)).await;
    (tokens, enrolled)
}

async fn login_with_mfa_yields_only_an_mfa_token_until_the_second_factor(app: TestApp) {
    let (_, enrolled) = enrolled_user(&app, "alice@example.com").await;
    let login = app.login("alice@example.com").await;
    assert_eq!(login["mfa_required"], true);
    assert!(login.get("access_token").is_none() && login.get("refresh_token").is_none());
    assert_eq!(login["expires_in"], 300);
    assert_eq!(login["factors"][0]["id"], enrolled.factor_id.as_str());
    assert_eq!(login["factors"][0]["type"], "totp");
    let mfa_token = login["mfa_token"].as_str().unwrap();

    // The mfa_token opens nothing but the second-factor endpoints.
    for path in ["/v1/me", "/v1/me/factors"] {
        let reply = app.get_bearer(path, mfa_token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let logout = app.send(app.client.post(app.url("/v1/auth/logout")).bearer_auth(mfa_token)).await;
    assert_eq!(logout.status, StatusCode::UNAUTHORIZED);
    let as_refresh = app.post("/v1/auth/refresh", json!({ "refresh_token": mfa_token })).await;
    assert_eq!(as_refresh.status, StatusCode::UNAUTHORIZED);
    let as_key = app.admin(Method::GET, "/v1/users", mfa_token, None).await;
    assert_eq!(as_key.status, StatusCode::UNAUTHORIZED);

    app.clock.advance(30);
    let body = json!({ "mfa_token": mfa_token, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 0) });
    let verified = app.mfa_verify(body).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["aal"], "aal2");
    let me = app.get_bearer("/v1/me", &access(&verified.body)).await.body;
    assert_eq!(
        (me["session"]["aal"].as_str(), me["session"]["amr"].clone()),
        (Some("aal2"), json!(["pwd", "otp"]))
    );

    // The token is spent, and it expires after five minutes anyway.
    app.clock.advance(30);
    let again = app
        .mfa_verify(json!({ "mfa_token": mfa_token, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 0) }))
        .await;
    assert_eq!((again.status, again.code()), (StatusCode::UNAUTHORIZED, "invalid_mfa_token"));
    let stale = app.mfa_token("alice@example.com").await;
    app.clock.advance(301);
    let late = app
        .mfa_verify(json!({ "mfa_token": stale, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 0) }))
        .await;
    assert_eq!((late.status, late.code()), (StatusCode::UNAUTHORIZED, "invalid_mfa_token"));

    let refreshed =
        app.post("/v1/auth/refresh", json!({ "refresh_token": verified.body["refresh_token"] })).await;
    assert_eq!(
        (refreshed.status, refreshed.body["aal"].as_str()),
        (StatusCode::OK, Some("aal2")),
        "refresh keeps aal2"
    );
    let malformed = app.mfa_verify(json!({ "mfa_token": stale, "factor_id": enrolled.factor_id })).await;
    assert_eq!((malformed.status, malformed.code()), (StatusCode::UNPROCESSABLE_ENTITY, "missing_field"));
}

async fn codes_are_single_use_and_the_window_is_one_step(app: TestApp) {
    let (_, enrolled) = enrolled_user(&app, "bob@example.com").await;
    let verify = |token: String, code: String| {
        app.mfa_verify(json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": code }))
    };
    // The code that confirmed enrolment is spent.
    let token = app.mfa_token("bob@example.com").await;
    let replay = verify(token.clone(), app.code(&enrolled.key, 0)).await;
    assert_eq!((replay.status, replay.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"));
    // T-2 and T+2 are outside the window; T+1 is inside.
    for offset in [-2, 2] {
        let outside = verify(token.clone(), app.code(&enrolled.key, offset)).await;
        assert_eq!(outside.code(), "invalid_code", "T{offset:+}");
    }
    let ahead = verify(token.clone(), app.code(&enrolled.key, 1)).await;
    assert_eq!(ahead.status, StatusCode::OK, "T+1: {}", ahead.body);
    // Once T+1 is used, T (and anything up to T+1) is a replay, even on a new login.
    let token = app.mfa_token("bob@example.com").await;
    assert_eq!(verify(token.clone(), app.code(&enrolled.key, 0)).await.code(), "invalid_code");
    app.clock.advance(60);
    // Now T-1 is the step used before: still refused. T is new.
    assert_eq!(verify(token.clone(), app.code(&enrolled.key, -1)).await.code(), "invalid_code");
    let fresh = verify(token, app.code(&enrolled.key, 0)).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

async fn recovery_codes_work_once_in_any_form(app: TestApp) {
    let (_, enrolled) = enrolled_user(&app, "carol@example.com").await;
    let code = enrolled.recovery_codes[3].clone();
    let typed = code.replace('-', " ").to_lowercase();
    let token = app.mfa_token("carol@example.com").await;
    let verified = app.mfa_verify(json!({ "mfa_token": token, "recovery_code": typed })).await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert_eq!(verified.body["aal"], "aal2");
    let me = app.get_bearer("/v1/me", &access(&verified.body)).await.body;
    assert_eq!(me["recovery_codes_remaining"], 9);

    let token = app.mfa_token("carol@example.com").await;
    let reused = app.mfa_verify(json!({ "mfa_token": token, "recovery_code": code.replace('-', "") })).await;
    assert_eq!((reused.status, reused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"));

    // Regenerating (with a fresh aal2 session) kills the old set.
    let regenerated =
        app.send(app.client.post(app.url("/v1/me/recovery-codes")).bearer_auth(access(&verified.body))).await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.body);
    let new_codes = regenerated.body["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(new_codes.len(), 10);
    let old =
        app.mfa_verify(json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[5] })).await;
    assert_eq!(old.code(), "invalid_code");
    let new = app.mfa_verify(json!({ "mfa_token": token, "recovery_code": new_codes[0] })).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
}

async fn concurrent_uses_of_one_code_have_one_success(app: TestApp) {
    let backend = app.db.backend;
    drop(app);
    // The guard would throttle most of the 20 attempts; relax it so that only replay
    // protection decides.
    let app = TestApp::spawn_with(backend, |c| c.lockout.free_failures = 1000).await;
    let (_, enrolled) = enrolled_user(&app, "dave@example.com").await;
    let user_id = user_id(&app, "dave@example.com").await;
    let key = app.api_key(&[]).await;
    let path = format!("/v1/users/{user_id}/verify");
    for body in [
        json!({ "code": app.code(&enrolled.key, 1) }),
        json!({ "recovery_code": enrolled.recovery_codes[0] }),
    ] {
        let requests = (0..20).map(|_| app.admin(Method::POST, &path, &key, Some(body.clone())));
        let replies = join_all(requests).await;
        let valid = replies.iter().filter(|r| r.status == StatusCode::OK && r.body["valid"] == true).count();
        assert_eq!(valid, 1, "{body}: {:?}", replies.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());
        assert!(replies.iter().all(|r| r.status == StatusCode::OK), "wrong codes answer valid: false");
    }
    // The same through the login challenge, with 20 mfa_tokens.
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(app.mfa_token("dave@example.com").await);
    }
    // Steps up to T+1 are spent by now; move on to fresh ones.
    app.clock.advance(60);
    let code = app.code(&enrolled.key, 1);
    let requests = tokens
        .iter()
        .map(|t| app.mfa_verify(json!({ "mfa_token": t, "factor_id": enrolled.factor_id, "code": code })));
    let replies = join_all(requests).await;
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::OK).count(), 1);
}

async fn user_id(app: &TestApp, email: &str) -> String {
    let key = app.api_key(&["users:read"]).await;
    let found =
        app.admin(Method::GET, &format!("/v1/users?email={}", email.replace('@', "%40")), &key, None).await;
    found.body["users"][0]["id"].as_str().unwrap().to_owned()
}

async fn failures_are_delayed_then_locked_until_an_admin_reset(app: TestApp) {
    let (_, enrolled) = enrolled_user(&app, "erin@example.com").await;
    let wrong =
        |token: &str| json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": "000000" });
    let token = app.mfa_token("erin@example.com").await;
    for attempt in 1..=5 {
        let reply = app.mfa_verify(wrong(&token)).await;
        assert_eq!(reply.code(), "invalid_code", "attempt {attempt}");
    }
    let throttled = app.mfa_verify(wrong(&token)).await;
    assert_eq!((throttled.status, throttled.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    assert_eq!(throttled.headers["retry-after"], "30");
    // Even the right code must wait, and a new mfa_token does not reset the count.
    let new_token = app.mfa_token("erin@example.com").await;
    let right = json!({ "mfa_token": new_token, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 1) });
    assert_eq!(app.mfa_verify(right.clone()).await.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(30);
    assert_eq!(app.mfa_verify(wrong(&new_token)).await.code(), "invalid_code");
    let throttled = app.mfa_verify(wrong(&new_token)).await;
    assert_eq!(throttled.headers["retry-after"], "60", "the delay doubles");

    // Keep failing, waiting out each delay, until the factor locks at 100 failures.
    let mut failures = 6;
    while failures < 100 {
        app.clock.advance(900);
        let token = app.mfa_token("erin@example.com").await;
        let reply = app.mfa_verify(wrong(&token)).await;
        assert_eq!(reply.code(), "invalid_code", "failure {}", failures + 1);
        failures += 1;
    }
    app.clock.advance(86_400);
    let token = app.mfa_token("erin@example.com").await;
    let right =
        json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 0) });
    let locked = app.mfa_verify(right).await;
    assert_eq!((locked.status, locked.code()), (StatusCode::FORBIDDEN, "second_factor_locked"));

    let user_id = user_id(&app, "erin@example.com").await;
    let key = app.api_key(&[]).await;
    for (kind, expected) in [("mfa.locked", 1), ("mfa.refused_locked", 1), ("mfa.failed", 100)] {
        let events = app
            .admin(Method::GET, &format!("/v1/audit?user_id={user_id}&type={kind}&limit=1000"), &key, None)
            .await;
        assert_eq!(events.body["events"].as_array().map(Vec::len), Some(expected), "{kind} events");
    }
    let status = app.admin(Method::GET, &format!("/v1/users/{user_id}/factors"), &key, None).await.body;
    assert_eq!((status["locked"].clone(), status["consecutive_failures"].clone()), (json!(true), json!(100)));
    let reset = app.admin(Method::DELETE, &format!("/v1/users/{user_id}/factors"), &key, None).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    let after = app.login("erin@example.com").await;
    assert_eq!(after["aal"], "aal1", "the reset removed the factors and the lock: {after}");
}

async fn instances_sharing_a_database_share_replay_and_lockout_state(app: TestApp) {
    let (_, enrolled) = enrolled_user(&app, "gil@example.com").await;
    let gil = user_id(&app, "gil@example.com").await;
    let key = app.api_key(&[]).await;
    // A second instance on the same database, with the same master key.
    let second_dir = tempfile::tempdir().unwrap();
    let config = crate::helpers::test_config(&app.db, second_dir.path());
    let second =
        latchkey_server::Application::build_with_clock(config, std::sync::Arc::new(app.clock.clone()))
            .await
            .unwrap();
    let second_base = format!("http://{}", second.local_addr().unwrap());
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let bases = [app.base.clone(), second_base];
    let verify = |base: &str, body: Value| {
        app.send(
            app.client.post(format!("{base}/v1/users/{gil}/verify")).header("x-api-key", &key).json(&body),
        )
    };

    // One code, ten requests to each instance at once: one success in all.
    let code = app.code(&enrolled.key, 1);
    let replies = join_all((0..20).map(|i| verify(&bases[i % 2], json!({ "code": code })))).await;
    let valid = replies.iter().filter(|r| r.body["valid"] == true).count();
    assert_eq!(valid, 1, "{:?}", replies.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());

    // Failures on one instance count on the other (a fresh user, so the racing
    // replays above do not count).
    let (_, other) = enrolled_user(&app, "hal@example.com").await;
    let other_id = user_id(&app, "hal@example.com").await;
    let verify_other = |base: &str, body: Value| {
        app.send(
            app.client
                .post(format!("{base}/v1/users/{other_id}/verify"))
                .header("x-api-key", &key)
                .json(&body),
        )
    };
    for i in 0..5 {
        let reply = verify_other(&bases[i % 2], json!({ "code": "000000" })).await;
        assert_eq!(reply.body["valid"], false, "{}", reply.body);
    }
    for base in &bases {
        let throttled = verify_other(base, json!({ "code": app.code(&other.key, 1) })).await;
        assert_eq!(
            (throttled.status, throttled.code()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
        );
    }
}

/// DESIGN rule 4 for recovery codes: a wrong one is a failure like a wrong TOTP code,
/// counted by the same guard, delayed and locked alike.
async fn wrong_recovery_codes_count_toward_the_same_guard_and_lock(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| c.lockout.lock_after = 8).await;
    let (_, enrolled) = enrolled_user(&app, "rory@example.com").await;
    let user_id = user_id(&app, "rory@example.com").await;
    let wrong_recovery = "ZZZZ-ZZZZ-ZZZZ-ZZZZ";
    assert!(!enrolled.recovery_codes.iter().any(|c| c == wrong_recovery));
    let token = app.mfa_token("rory@example.com").await;
    let wrong_totp = json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": "000000" });
    for _ in 0..3 {
        assert_eq!(app.mfa_verify(wrong_totp.clone()).await.code(), "invalid_code");
    }
    for _ in 0..2 {
        let reply = app.mfa_verify(json!({ "mfa_token": token, "recovery_code": wrong_recovery })).await;
        assert_eq!(reply.code(), "invalid_code");
    }
    let guard = app.state.store.second_factor_guard(&user_id).await.unwrap().unwrap();
    assert_eq!(guard.failures, 5, "wrong recovery codes count with wrong TOTP codes");
    // The sixth attempt waits, even with a right recovery code.
    let right = json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] });
    let delayed = app.mfa_verify(right.clone()).await;
    assert_eq!((delayed.status, delayed.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    assert_eq!(delayed.headers["retry-after"], "30");

    // Three more wrong recovery codes, each after its delay, reach the lock at 8.
    for failure in 6..=8 {
        app.advance(900);
        let token = app.mfa_token("rory@example.com").await;
        let reply = app.mfa_verify(json!({ "mfa_token": token, "recovery_code": wrong_recovery })).await;
        assert_eq!(reply.code(), "invalid_code", "failure {failure}");
    }
    app.advance(86_400);
    let token = app.mfa_token("rory@example.com").await;
    let locked =
        app.mfa_verify(json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] })).await;
    assert_eq!((locked.status, locked.code()), (StatusCode::FORBIDDEN, "second_factor_locked"));
    let totp =
        json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": app.code(&enrolled.key, 0) });
    assert_eq!(app.mfa_verify(totp).await.code(), "second_factor_locked", "the lock holds for every factor");
    let key = app.api_key(&[]).await;
    let events =
        app.admin(Method::GET, &format!("/v1/audit?user_id={user_id}&type=mfa.locked"), &key, None).await;
    assert_eq!(events.body["events"].as_array().map(Vec::len), Some(1));
}

/// A wrong code, a replayed code and a throttled attempt each leave their own audit
/// event, naming the factor the code was checked against.
async fn failures_replays_and_throttling_are_audited_with_their_factor(app: TestApp) {
    let (_, enrolled) = enrolled_user(&app, "audie@example.com").await;
    let user_id = user_id(&app, "audie@example.com").await;
    let key = app.api_key(&["audit:read"]).await;
    let events = |kind: &'static str| {
        let (app, key, user_id) = (&app, key.clone(), user_id.clone());
        async move {
            let path = format!("/v1/audit?user_id={user_id}&type={kind}");
            app.admin(Method::GET, &path, &key, None).await.body["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let token = app.mfa_token("audie@example.com").await;
    let with = |code: String| json!({ "mfa_token": token, "factor_id": enrolled.factor_id, "code": code });
    assert_eq!(app.mfa_verify(with("000000".into())).await.code(), "invalid_code");
    // The code that confirmed the factor, presented again.
    assert_eq!(app.mfa_verify(with(app.code(&enrolled.key, 0))).await.code(), "invalid_code");

    let failed = events("mfa.failed").await;
    let replayed = events("mfa.replay_refused").await;
    assert_eq!((failed.len(), replayed.len()), (1, 1), "{failed:?} {replayed:?}");
    for event in [&failed[0], &replayed[0]] {
        assert_eq!(event["factor_id"], enrolled.factor_id.as_str(), "{event}");
        assert_eq!(
            (event["factor_type"].as_str(), event["outcome"].as_str()),
            (Some("totp"), Some("failure"))
        );
    }

    for _ in 0..3 {
        assert_eq!(app.mfa_verify(with("000000".into())).await.code(), "invalid_code");
    }
    let throttled = app.mfa_verify(with("000000".into())).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(events("mfa.throttled").await.len(), 1, "the refused attempt is audited");
}
