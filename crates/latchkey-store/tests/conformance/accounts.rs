//! Users, sessions, refresh tokens, API keys and signing keys.

use latchkey_store::{
    AccountStore, NewApiKey, NewSession, NewUser, RefreshOutcome, RefreshRotation, SigningKeyRecord,
    SqlStore, StoreError,
};

on_both_backends!(
    migrations_are_idempotent,
    users_round_trip_and_emails_are_unique,
    users_list_in_pages,
    deleting_a_user_removes_their_sessions,
    sessions_expire_and_revoke,
    sessions_can_be_elevated_and_others_revoked,
    a_user_lists_and_ends_only_their_own_live_sessions,
    refresh_tokens_rotate_once_and_reuse_revokes,
    concurrent_refreshes_have_one_winner,
    refresh_extends_idle_deadline_up_to_absolute,
    purge_removes_dead_sessions_only,
    api_keys_are_found_by_hash_and_id_until_revoked,
    only_one_first_signing_key_wins,
    exchange_codes_are_spent_once_before_they_expire,
    users_are_disabled_and_enabled,
    touching_a_session_extends_its_idle_deadline_up_to_absolute,
);

pub(crate) fn new_user(id: &str, email: &str) -> NewUser {
    NewUser {
        id: id.into(),
        email: email.into(),
        email_normalized: email.to_lowercase(),
        phone: None,
        password_hash: Some("$argon2id$dummy".into()),
        created_at: 100,
    }
}

fn new_session(id: &str, user_id: &str, now: i64) -> NewSession {
    NewSession {
        id: id.into(),
        user_id: user_id.into(),
        aal: "aal1".into(),
        amr: vec!["pwd".into()],
        auth_time: now,
        created_at: now,
        idle_expires_at: now + 1800,
        expires_at: now + 43_200,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        mfa_pending: false,
    }
}

fn rotation<'a>(presented: &'a [u8], successor: &'a [u8], now: i64) -> RefreshRotation<'a> {
    RefreshRotation { presented_hash: presented, successor_hash: successor, now, idle_timeout_secs: 1800 }
}

async fn migrations_are_idempotent(store: SqlStore) {
    assert_eq!(store.migrate(5).await.unwrap(), Vec::<i64>::new());
    store.ping().await.unwrap();
}

async fn users_round_trip_and_emails_are_unique(store: SqlStore) {
    let created = store.create_user(&new_user("u1", "Alice@Example.com")).await.unwrap();
    assert_eq!(created.email, "Alice@Example.com");
    assert_eq!(created.email_normalized, "alice@example.com");
    assert_eq!(created.updated_at, 100);
    assert_eq!(created.disabled_at, None);
    assert_eq!(store.user_by_id("u1").await.unwrap(), Some(created.clone()));
    assert_eq!(store.user_by_email("alice@example.com").await.unwrap(), Some(created));
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
    let duplicate = store.create_user(&new_user("u2", "ALICE@example.com")).await;
    assert!(matches!(duplicate, Err(StoreError::EmailTaken)), "{duplicate:?}");
    let mut no_password = new_user("u3", "carol@example.com");
    no_password.password_hash = None;
    no_password.phone = Some("+15551234567".into());
    let carol = store.create_user(&no_password).await.unwrap();
    assert_eq!((carol.password_hash, carol.phone.as_deref()), (None, Some("+15551234567")));
}

async fn users_list_in_pages(store: SqlStore) {
    for i in 0..5 {
        store.create_user(&new_user(&format!("u{i}"), &format!("user{i}@example.com"))).await.unwrap();
    }
    let first: Vec<String> = store.list_users(None, 2).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(first, ["u0", "u1"]);
    let next: Vec<String> =
        store.list_users(Some("u1"), 10).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(next, ["u2", "u3", "u4"]);
}

async fn deleting_a_user_removes_their_sessions(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("s1", "u1", 1000), b"token-1").await.unwrap();
    assert!(store.delete_user("u1").await.unwrap());
    assert!(!store.delete_user("u1").await.unwrap());
    assert_eq!(store.active_session("s1", 1001).await.unwrap(), None);
    assert_eq!(
        store.rotate_refresh_token(&rotation(b"token-1", b"token-2", 1001)).await.unwrap(),
        RefreshOutcome::Invalid
    );
}

async fn sessions_expire_and_revoke(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("s1", "u1", 1000), b"t1").await.unwrap();
    let session = store.active_session("s1", 1000).await.unwrap().unwrap();
    assert_eq!(session.amr, ["pwd"]);
    assert_eq!((session.aal.as_str(), session.auth_time, session.idle_expires_at), ("aal1", 1000, 2800));
    assert_eq!(store.active_session("s1", 2800).await.unwrap(), None, "idle deadline passed");
    assert!(store.revoke_session("s1", 1001).await.unwrap());
    assert!(!store.revoke_session("s1", 1002).await.unwrap(), "already revoked");
    assert_eq!(store.active_session("s1", 1002).await.unwrap(), None);
    assert_eq!(store.active_session("missing", 1002).await.unwrap(), None);
}

async fn refresh_tokens_rotate_once_and_reuse_revokes(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("s1", "u1", 1000), b"t1").await.unwrap();
    let outcome = store.rotate_refresh_token(&rotation(b"t1", b"t2", 1010)).await.unwrap();
    assert!(matches!(&outcome, RefreshOutcome::Rotated(s) if s.id == "s1"), "{outcome:?}");
    let outcome = store.rotate_refresh_token(&rotation(b"t2", b"t3", 1020)).await.unwrap();
    assert!(matches!(outcome, RefreshOutcome::Rotated(_)));
    // t1 was spent: presenting it again revokes the session, and t3 dies with it.
    let reused = store.rotate_refresh_token(&rotation(b"t1", b"t4", 1030)).await.unwrap();
    assert_eq!(reused, RefreshOutcome::Reused { session_id: "s1".into() });
    assert_eq!(store.active_session("s1", 1030).await.unwrap(), None);
    assert_eq!(
        store.rotate_refresh_token(&rotation(b"t3", b"t5", 1040)).await.unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        store.rotate_refresh_token(&rotation(b"never", b"t6", 1040)).await.unwrap(),
        RefreshOutcome::Invalid
    );
}

async fn concurrent_refreshes_have_one_winner(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("s1", "u1", 1000), b"t1").await.unwrap();
    let attempts = (0..10u8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let successor = [b's', i];
            store.rotate_refresh_token(&rotation(b"t1", &successor, 1001)).await.unwrap()
        })
    });
    let mut rotated = 0;
    for attempt in attempts {
        if matches!(attempt.await.unwrap(), RefreshOutcome::Rotated(_)) {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1);
}

async fn refresh_extends_idle_deadline_up_to_absolute(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("s1", "u1", 1000), b"t1").await.unwrap();
    let RefreshOutcome::Rotated(session) =
        store.rotate_refresh_token(&rotation(b"t1", b"t2", 2000)).await.unwrap()
    else {
        panic!("expected rotation")
    };
    assert_eq!(session.idle_expires_at, 3800);
    // The idle deadline (3800) has long passed: the session is over.
    let late = store.rotate_refresh_token(&rotation(b"t2", b"t3", 44_000)).await.unwrap();
    assert_eq!(late, RefreshOutcome::Invalid);
}

async fn purge_removes_dead_sessions_only(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("old", "u1", 0), b"t-old").await.unwrap();
    store.create_session(&new_session("revoked", "u1", 5000), b"t-rev").await.unwrap();
    store.create_session(&new_session("live", "u1", 5000), b"t-live").await.unwrap();
    store.revoke_session("revoked", 5001).await.unwrap();
    assert_eq!(store.purge_sessions(5002).await.unwrap(), 2);
    assert!(store.active_session("live", 5002).await.unwrap().is_some());
}

async fn api_keys_are_found_by_hash_and_id_until_revoked(store: SqlStore) {
    let key = NewApiKey {
        id: "k1".into(),
        name: "deploy".into(),
        key_hash: b"hash-1".to_vec(),
        scopes: vec!["users:read".into(), "users:write".into()],
        created_at: 10,
    };
    store.create_api_key(&key).await.unwrap();
    let found = store.api_key_by_hash(b"hash-1").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.name.as_str()), ("k1", "deploy"));
    assert_eq!(found.scopes, ["users:read", "users:write"]);
    assert_eq!(store.api_key_by_hash(b"hash-2").await.unwrap(), None);
    assert_eq!(store.api_key("k1").await.unwrap().map(|k| k.name), Some("deploy".to_owned()));
    assert_eq!(store.api_key("k2").await.unwrap(), None);
    assert!(store.revoke_api_key("k1", 20).await.unwrap());
    assert_eq!(store.api_key("k1").await.unwrap(), None, "a revoked key is not found by id either");
    assert!(!store.revoke_api_key("k1", 21).await.unwrap());
    assert_eq!(store.api_key_by_hash(b"hash-1").await.unwrap(), None);
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(20));
}

async fn users_are_disabled_and_enabled(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    assert!(store.set_user_disabled("u1", Some(500), 500).await.unwrap());
    assert_eq!(store.user_by_id("u1").await.unwrap().unwrap().disabled_at, Some(500));
    assert!(store.set_user_disabled("u1", None, 600).await.unwrap());
    let user = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!((user.disabled_at, user.updated_at), (None, 600));
    assert!(!store.set_user_disabled("nobody", Some(1), 1).await.unwrap());
}

async fn only_one_first_signing_key_wins(store: SqlStore) {
    let key = |kid: &str| SigningKeyRecord {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        public_key: vec![1; 32],
        sealed_private: vec![2; 48],
        nonce: vec![3; 12],
        master_key_id: "mk".into(),
        active: true,
        created_at: 1,
        signs_from: 1,
        retired_at: None,
    };
    let attempts: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|kid| {
            let store = store.clone();
            let record = key(kid);
            tokio::spawn(async move { store.insert_first_signing_key(&record).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
    let keys = store.signing_keys(1).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].active);
    assert_eq!(keys[0].public_key, vec![1; 32]);

    // A rotation: the new key is active (signing from 120); the old one is listed until
    // it retires at 1000.
    let first = keys[0].kid.clone();
    let next = SigningKeyRecord {
        kid: "next".into(),
        public_key: vec![4; 32],
        created_at: 100,
        signs_from: 120,
        ..key("next")
    };
    store.rotate_signing_key(&next, 1000).await.unwrap();
    let keys = store.signing_keys(999).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.kid.as_str(), k.active)).collect::<Vec<_>>(),
        [("next", true), (first.as_str(), false)]
    );
    assert_eq!((keys[0].signs_from, keys[1].retired_at), (120, Some(1000)));
    let keys = store.signing_keys(1000).await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["next"], "retired");
}

async fn sessions_can_be_elevated_and_others_revoked(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_user(&new_user("u2", "b@example.com")).await.unwrap();
    for (id, user) in [("s1", "u1"), ("s2", "u1"), ("s3", "u1"), ("other", "u2")] {
        let session = NewSession { mfa_pending: id == "s1", ..new_session(id, user, 1000) };
        store.create_session(&session, id.as_bytes()).await.unwrap();
    }
    assert!(store.active_session("s1", 1000).await.unwrap().unwrap().mfa_pending);
    let amr = vec!["pwd".to_owned(), "otp".to_owned()];
    assert!(store.elevate_session("s1", "aal2", &amr, 1100).await.unwrap());
    let session = store.active_session("s1", 1100).await.unwrap().unwrap();
    assert_eq!((session.aal.as_str(), session.amr.clone(), session.auth_time), ("aal2", amr.clone(), 1100));
    assert!(!session.mfa_pending, "passing the second factor clears the mark");
    assert_eq!(store.revoke_other_sessions("u1", Some("s1"), 1101).await.unwrap(), 2);
    assert!(store.active_session("s1", 1102).await.unwrap().is_some());
    assert!(store.active_session("s2", 1102).await.unwrap().is_none());
    assert!(store.active_session("other", 1102).await.unwrap().is_some(), "other users are untouched");
    store.revoke_session("s3", 1200).await.unwrap();
    assert!(!store.elevate_session("s2", "aal2", &amr, 1300).await.unwrap(), "revoked sessions stay revoked");
    assert_eq!(store.revoke_other_sessions("u1", None, 1400).await.unwrap(), 1, "none kept");
    assert!(store.active_session("s1", 1401).await.unwrap().is_none());
    assert!(store.active_session("other", 1401).await.unwrap().is_some());
}

async fn a_user_lists_and_ends_only_their_own_live_sessions(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_user(&new_user("u2", "b@example.com")).await.unwrap();
    for (id, user, at) in [("old", "u1", 1000), ("new", "u1", 1100), ("theirs", "u2", 1000)] {
        store.create_session(&new_session(id, user, at), id.as_bytes()).await.unwrap();
    }
    let ids = |sessions: Vec<latchkey_store::Session>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.user_sessions("u1", 1200).await.unwrap()), ["new", "old"], "newest first, own only");
    assert!(!store.revoke_user_session("u1", "theirs", 1200).await.unwrap(), "another user's session");
    assert!(store.active_session("theirs", 1200).await.unwrap().is_some());
    assert!(store.revoke_user_session("u1", "old", 1200).await.unwrap());
    assert!(!store.revoke_user_session("u1", "old", 1201).await.unwrap(), "once");
    assert_eq!(ids(store.user_sessions("u1", 1201).await.unwrap()), ["new"]);
}

async fn exchange_codes_are_spent_once_before_they_expire(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    store.create_session(&new_session("s1", "u1", 1000), b"t1").await.unwrap();
    store.create_exchange_code(b"code-1", "s1", 1000, 1060).await.unwrap();
    store.create_exchange_code(b"code-2", "s1", 1000, 1060).await.unwrap();
    let (a, b) =
        tokio::join!(store.spend_exchange_code(b"code-1", 1010), store.spend_exchange_code(b"code-1", 1010));
    let mut won = [a.unwrap(), b.unwrap()];
    won.sort();
    assert_eq!(won, [None, Some("s1".to_owned())], "one concurrent spender wins");
    assert_eq!(store.spend_exchange_code(b"code-1", 1011).await.unwrap(), None, "spent");
    assert_eq!(store.spend_exchange_code(b"code-2", 1060).await.unwrap(), None, "expired");
    assert_eq!(
        store.spend_exchange_code(b"code-2", 1000).await.unwrap(),
        None,
        "an expired code is gone for good"
    );
    store.create_exchange_code(b"code-3", "s1", 1000, 1060).await.unwrap();
    assert_eq!(store.purge_sessions(2000).await.unwrap(), 1, "purge drops expired codes");
    assert_eq!(store.spend_exchange_code(b"code-3", 1001).await.unwrap(), None);
}

async fn touching_a_session_extends_its_idle_deadline_up_to_absolute(store: SqlStore) {
    store.create_user(&new_user("u1", "a@example.com")).await.unwrap();
    let session = NewSession { expires_at: 5000, ..new_session("s1", "u1", 1000) };
    store.create_session(&session, b"t1").await.unwrap();
    assert!(store.touch_session("s1", 2000, 1800).await.unwrap());
    assert_eq!(store.active_session("s1", 3700).await.unwrap().unwrap().idle_expires_at, 3800);
    assert!(store.touch_session("s1", 3500, 1800).await.unwrap());
    assert_eq!(store.active_session("s1", 3500).await.unwrap().unwrap().idle_expires_at, 5000, "capped");
    assert!(!store.touch_session("s1", 5000, 1800).await.unwrap(), "an expired session stays expired");
    store.revoke_session("s1", 4001).await.unwrap();
    assert!(!store.touch_session("s1", 4002, 1800).await.unwrap(), "a revoked one too");
}
