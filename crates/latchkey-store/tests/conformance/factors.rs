//! Factors, recovery codes, the brute-force guard and MFA tokens.

use latchkey_core::factor::FactorType;
use latchkey_core::lockout::LockoutPolicy;
use latchkey_store::{
    AccountStore, AttemptClaim, FactorStore, NewFactor, NewMfaToken, SqlStore, StoredSecret, TotpSettings,
};

use crate::accounts::new_user;

on_both_backends!(
    pending_factors_are_replaced_and_expire,
    factors_belong_to_their_owner,
    totp_steps_are_recorded_once_and_in_order,
    concurrent_uses_of_one_step_have_one_winner,
    removing_the_last_active_factor_removes_recovery_codes,
    recovery_codes_are_single_use_even_concurrently,
    the_guard_delays_then_locks_and_resets,
    concurrent_attempts_cannot_pass_the_guard,
    mfa_tokens_are_single_use_and_expire,
    purge_removes_expired_pending_factors_and_tokens,
);

pub fn totp(id: &str, user_id: &str, now: i64) -> NewFactor {
    NewFactor {
        id: id.into(),
        user_id: user_id.into(),
        factor_type: FactorType::Totp,
        friendly_name: Some("phone".into()),
        secret: Some(StoredSecret { sealed: vec![1, 2, 3], nonce: vec![0; 12], key_id: "mk".into() }),
        totp: Some(TotpSettings { algorithm: "SHA1".into(), digits: 6, period: 30 }),
        destination: None,
        created_at: now,
        expires_at: now + 600,
    }
}

pub async fn with_user(store: &SqlStore, id: &str) {
    store.create_user(&new_user(id, &format!("{id}@example.com"))).await.unwrap();
}

pub async fn active_totp(store: &SqlStore, id: &str, user_id: &str) {
    store.create_pending_factor(&totp(id, user_id, 1000)).await.unwrap();
    assert!(store.activate_factor(user_id, id, Some(10), 1001).await.unwrap());
}

async fn pending_factors_are_replaced_and_expire(store: SqlStore) {
    with_user(&store, "u1").await;
    let first = store.create_pending_factor(&totp("f1", "u1", 1000)).await.unwrap();
    assert_eq!((first.status.as_str(), first.expires_at), ("pending", Some(1600)));
    assert_eq!(first.secret.as_ref().unwrap().sealed, vec![1, 2, 3]);
    assert_eq!(first.totp.as_ref().unwrap().digits, 6);
    store.create_pending_factor(&totp("f2", "u1", 1100)).await.unwrap();
    assert_eq!(
        store.factor("u1", "f1", 1100).await.unwrap(),
        None,
        "setting up again replaces the pending one"
    );
    let ids: Vec<String> = store.factors("u1", 1100).await.unwrap().into_iter().map(|f| f.id).collect();
    assert_eq!(ids, ["f2"]);
    assert!(store.factor("u1", "f2", 1699).await.unwrap().is_some());
    assert_eq!(store.factor("u1", "f2", 1700).await.unwrap(), None, "expired");
    assert!(!store.activate_factor("u1", "f2", Some(5), 1700).await.unwrap());
    assert!(store.activate_factor("u1", "f2", Some(5), 1699).await.unwrap());
    let active = store.factor("u1", "f2", 99_999).await.unwrap().unwrap();
    assert_eq!((active.status.as_str(), active.expires_at, active.last_step), ("active", None, Some(5)));
    assert_eq!(active.confirmed_at, Some(1699));
    // A new pending TOTP factor does not touch the active one.
    store.create_pending_factor(&totp("f3", "u1", 2000)).await.unwrap();
    assert_eq!(store.factors("u1", 2000).await.unwrap().len(), 2);
}

async fn factors_belong_to_their_owner(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    active_totp(&store, "f1", "u1").await;
    assert_eq!(store.factor("u2", "f1", 1002).await.unwrap(), None);
    assert!(!store.rename_factor("u2", "f1", "mine").await.unwrap());
    assert!(!store.delete_factor("u2", "f1").await.unwrap().removed);
    assert!(store.rename_factor("u1", "f1", "work phone").await.unwrap());
    let renamed = store.factor("u1", "f1", 1002).await.unwrap().unwrap();
    assert_eq!(renamed.friendly_name.as_deref(), Some("work phone"));
}

async fn totp_steps_are_recorded_once_and_in_order(store: SqlStore) {
    with_user(&store, "u1").await;
    active_totp(&store, "f1", "u1").await;
    assert!(!store.record_totp_step("f1", 10, 1002).await.unwrap(), "the confirming code's step is spent");
    assert!(store.record_totp_step("f1", 11, 1002).await.unwrap());
    assert!(!store.record_totp_step("f1", 11, 1003).await.unwrap());
    assert!(!store.record_totp_step("f1", 9, 1003).await.unwrap());
    assert!(store.record_totp_step("f1", 12, 1003).await.unwrap());
    let factor = store.factor("u1", "f1", 1003).await.unwrap().unwrap();
    assert_eq!((factor.last_step, factor.last_used_at), (Some(12), Some(1003)));
    store.create_pending_factor(&totp("p1", "u1", 1000)).await.unwrap();
    assert!(
        !store.record_totp_step("p1", 50, 1003).await.unwrap(),
        "pending factors cannot be used to log in"
    );
}

async fn concurrent_uses_of_one_step_have_one_winner(store: SqlStore) {
    with_user(&store, "u1").await;
    active_totp(&store, "f1", "u1").await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record_totp_step("f1", 11, 1002).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn removing_the_last_active_factor_removes_recovery_codes(store: SqlStore) {
    with_user(&store, "u1").await;
    active_totp(&store, "f1", "u1").await;
    store
        .create_pending_factor(&NewFactor { factor_type: FactorType::Email, ..totp("f2", "u1", 1000) })
        .await
        .unwrap();
    assert!(store.activate_factor("u1", "f2", None, 1001).await.unwrap());
    store.replace_recovery_codes("u1", &[b"a".to_vec(), b"b".to_vec()], 1001).await.unwrap();
    let removal = store.delete_factor("u1", "f1").await.unwrap();
    assert_eq!((removal.removed, removal.active_remaining), (true, 1));
    assert_eq!(store.recovery_codes_remaining("u1").await.unwrap(), 2);
    let removal = store.delete_factor("u1", "f2").await.unwrap();
    assert_eq!((removal.removed, removal.active_remaining), (true, 0));
    assert_eq!(store.recovery_codes_remaining("u1").await.unwrap(), 0);
}

async fn recovery_codes_are_single_use_even_concurrently(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    let set: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i; 32]).collect();
    store.replace_recovery_codes("u1", &set, 100).await.unwrap();
    assert_eq!(store.recovery_codes_remaining("u1").await.unwrap(), 10);
    assert!(!store.consume_recovery_code("u2", &set[0], 101).await.unwrap(), "codes belong to their owner");
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let code = set[3].clone();
            tokio::spawn(async move { store.consume_recovery_code("u1", &code, 101).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.recovery_codes_remaining("u1").await.unwrap(), 9);
    // Regenerating kills the old set.
    store.replace_recovery_codes("u1", &[vec![42; 32]], 102).await.unwrap();
    assert!(!store.consume_recovery_code("u1", &set[4], 103).await.unwrap());
    assert!(store.consume_recovery_code("u1", &[42; 32], 103).await.unwrap());
}

async fn the_guard_delays_then_locks_and_resets(store: SqlStore) {
    with_user(&store, "u1").await;
    let policy = LockoutPolicy::default();
    let now = 10_000;
    for expected in 1..=5 {
        let claim = store.claim_second_factor_attempt("u1", now, &policy).await.unwrap();
        assert_eq!(claim, AttemptClaim::Granted { failures: expected });
    }
    // The fifth failure set a 30 s delay.
    assert_eq!(
        store.claim_second_factor_attempt("u1", now + 29, &policy).await.unwrap(),
        AttemptClaim::Blocked { until: now + 30 }
    );
    assert_eq!(
        store.claim_second_factor_attempt("u1", now + 30, &policy).await.unwrap(),
        AttemptClaim::Granted { failures: 6 }
    );
    assert_eq!(
        store.claim_second_factor_attempt("u1", now + 31, &policy).await.unwrap(),
        AttemptClaim::Blocked { until: now + 90 }
    );
    let guard = store.second_factor_guard("u1").await.unwrap().unwrap();
    assert_eq!((guard.failures, guard.blocked_until), (6, now + 90));
    store.reset_second_factor_failures("u1").await.unwrap();
    assert_eq!(
        store.claim_second_factor_attempt("u1", now + 32, &policy).await.unwrap(),
        AttemptClaim::Granted { failures: 1 }
    );

    let strict = LockoutPolicy { free_failures: 10, base_delay_secs: 1, max_delay_secs: 1, lock_after: 3 };
    store.reset_second_factor_failures("u1").await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            store.claim_second_factor_attempt("u1", now, &strict).await.unwrap(),
            AttemptClaim::Granted { .. }
        ));
    }
    assert_eq!(
        store.claim_second_factor_attempt("u1", now + 86_400, &strict).await.unwrap(),
        AttemptClaim::Locked
    );
    store.delete_all_factors("u1").await.unwrap();
    assert_eq!(store.second_factor_guard("u1").await.unwrap(), None, "an admin reset clears the lock");
}

async fn concurrent_attempts_cannot_pass_the_guard(store: SqlStore) {
    with_user(&store, "u1").await;
    let policy = LockoutPolicy::default();
    for _ in 0..4 {
        store.claim_second_factor_attempt("u1", 5_000, &policy).await.unwrap();
    }
    // The fifth attempt is free; everything racing it must wait.
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(
                async move { store.claim_second_factor_attempt("u1", 5_000, &policy).await.unwrap() },
            )
        })
        .collect();
    let mut granted = 0;
    for attempt in attempts {
        granted += usize::from(matches!(attempt.await.unwrap(), AttemptClaim::Granted { .. }));
    }
    assert_eq!(granted, 1);
}

async fn mfa_tokens_are_single_use_and_expire(store: SqlStore) {
    with_user(&store, "u1").await;
    let token = NewMfaToken {
        token_hash: vec![9; 32],
        user_id: "u1".into(),
        amr: vec!["pwd".into()],
        auth_time: 100,
        created_at: 100,
        expires_at: 400,
    };
    store.create_mfa_token(&token).await.unwrap();
    let found = store.mfa_token(&[9; 32], 399).await.unwrap().unwrap();
    assert_eq!(
        (found.user_id.as_str(), found.amr.clone(), found.auth_time),
        ("u1", vec!["pwd".to_owned()], 100)
    );
    assert_eq!(store.mfa_token(&[9; 32], 400).await.unwrap(), None, "expired");
    assert!(!store.consume_mfa_token(&[9; 32], 400).await.unwrap());
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_mfa_token(&[9; 32], 200).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.mfa_token(&[9; 32], 201).await.unwrap(), None, "spent");
}

async fn purge_removes_expired_pending_factors_and_tokens(store: SqlStore) {
    with_user(&store, "u1").await;
    active_totp(&store, "active", "u1").await;
    store
        .create_pending_factor(&NewFactor { factor_type: FactorType::Email, ..totp("pending", "u1", 1000) })
        .await
        .unwrap();
    let token = |hash: u8, expires_at| NewMfaToken {
        token_hash: vec![hash; 32],
        user_id: "u1".into(),
        amr: vec!["pwd".into()],
        auth_time: 1000,
        created_at: 1000,
        expires_at,
    };
    store.create_mfa_token(&token(1, 1300)).await.unwrap();
    store.create_mfa_token(&token(2, 5000)).await.unwrap();
    assert_eq!(store.purge_expired_factors(1600).await.unwrap(), 2);
    assert!(store.factor("u1", "active", 1600).await.unwrap().is_some());
    assert!(store.mfa_token(&[2; 32], 1600).await.unwrap().is_some());
}
