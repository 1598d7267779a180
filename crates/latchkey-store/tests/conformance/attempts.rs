//! A second-factor attempt decided whole: the guard's claim, the TOTP step, the reset
//! and the audit rows in one transaction (shared by concurrent attempts on SQLite).

use latchkey_core::lockout::LockoutPolicy;
use latchkey_store::{
    AttemptOutcome, AuditEvent, AuditFilter, AuditStore, FactorStore, SecondFactorAttempt, SqlStore,
    TotpSpend,
};

use latchkey_store::{AccountStore, StoreError};

use crate::accounts::new_user;
use crate::factors::{active_totp, totp, with_user};

on_both_backends!(
    an_attempt_is_decided_counted_and_audited_at_once,
    concurrent_attempts_on_one_step_have_one_winner,
    one_failing_attempt_leaves_the_others_of_its_batch_alone,
    users_and_their_factors_import_in_bulk_or_not_at_all,
);

/// An attempt at `now` spending `step` of factor `f1` (or nothing), audited as one
/// row named after its outcome.
fn attempt(user_id: &str, now: i64, step: Option<i64>, policy: LockoutPolicy) -> SecondFactorAttempt {
    let owner = user_id.to_owned();
    SecondFactorAttempt {
        user_id: user_id.into(),
        now,
        policy,
        spend: step.map(|step| TotpSpend { factor_id: format!("f-{user_id}"), step }),
        audit: Box::new(move |outcome| {
            let event_type = match outcome {
                AttemptOutcome::Accepted => "accepted",
                AttemptOutcome::Refused { replayed: true, .. } => "replayed",
                AttemptOutcome::Refused { .. } => "refused",
                AttemptOutcome::Blocked { .. } => "blocked",
                AttemptOutcome::Locked => "locked",
            };
            vec![AuditEvent {
                id: format!("{owner}-{now}-{event_type}-{}", step.unwrap_or(-1)),
                occurred_at: now,
                user_id: Some(owner.clone()),
                event_type: event_type.into(),
                outcome: "x".into(),
                factor_id: None,
                factor_type: None,
                actor: None,
                ip: None,
                user_agent: None,
                reason: None,
            }]
        }),
    }
}

async fn user_with_totp(store: &SqlStore, user_id: &str) {
    with_user(store, user_id).await;
    active_totp(store, &format!("f-{user_id}"), user_id).await;
}

async fn audit_types(store: &SqlStore, user_id: &str) -> Vec<String> {
    let filter = AuditFilter { user_id: Some(user_id.into()), limit: 100, ..AuditFilter::default() };
    let mut events = store.audit_events(&filter).await.unwrap();
    events.sort_by_key(|e| e.occurred_at);
    events.into_iter().map(|e| e.event_type).collect()
}

async fn an_attempt_is_decided_counted_and_audited_at_once(store: SqlStore) {
    user_with_totp(&store, "u1").await;
    let policy = LockoutPolicy { free_failures: 2, base_delay_secs: 30, max_delay_secs: 60, lock_after: 4 };
    let decide = |now, step| store.decide_second_factor_attempt(attempt("u1", now, step, policy));

    let (outcome, rows) = decide(2000, Some(11)).await.unwrap();
    assert_eq!(outcome, AttemptOutcome::Accepted);
    assert_eq!(rows.len(), 1);
    let factor = store.factor("u1", "f-u1", 2000).await.unwrap().unwrap();
    assert_eq!((factor.last_step, factor.last_used_at), (Some(11), Some(2000)));
    let failures = |user_id: &'static str| {
        let store = store.clone();
        async move { store.second_factor_guard(user_id).await.unwrap().map_or(0, |guard| guard.failures) }
    };
    assert_eq!(failures("u1").await, 0, "nothing counted");

    assert_eq!(
        decide(2001, Some(11)).await.unwrap().0,
        AttemptOutcome::Refused { failures: 1, replayed: true }
    );
    assert_eq!(decide(2002, None).await.unwrap().0, AttemptOutcome::Refused { failures: 2, replayed: false });
    // The second failure uses up the free ones: the next attempt waits, uncounted, and
    // a right code spends nothing while it waits.
    assert_eq!(decide(2010, Some(12)).await.unwrap().0, AttemptOutcome::Blocked { until: 2032 });
    assert_eq!(store.factor("u1", "f-u1", 2010).await.unwrap().unwrap().last_step, Some(11));
    assert_eq!(decide(2032, None).await.unwrap().0, AttemptOutcome::Refused { failures: 3, replayed: false });
    assert_eq!(decide(2092, None).await.unwrap().0, AttemptOutcome::Refused { failures: 4, replayed: false });
    assert_eq!(decide(5000, Some(12)).await.unwrap().0, AttemptOutcome::Locked);
    assert_eq!(store.factor("u1", "f-u1", 5000).await.unwrap().unwrap().last_step, Some(11));
    assert_eq!(
        audit_types(&store, "u1").await,
        ["accepted", "replayed", "refused", "blocked", "refused", "refused", "locked"],
        "each attempt wrote its row with its decision"
    );

    // A right code clears the failures counted before it.
    user_with_totp(&store, "u2").await;
    let decide = |now, step| store.decide_second_factor_attempt(attempt("u2", now, step, policy));
    assert_eq!(decide(2000, None).await.unwrap().0, AttemptOutcome::Refused { failures: 1, replayed: false });
    assert_eq!(failures("u2").await, 1);
    assert_eq!(decide(2001, Some(11)).await.unwrap().0, AttemptOutcome::Accepted);
    assert_eq!(failures("u2").await, 0, "reset");
}

async fn concurrent_attempts_on_one_step_have_one_winner(store: SqlStore) {
    user_with_totp(&store, "u1").await;
    let policy =
        LockoutPolicy { free_failures: 100, base_delay_secs: 30, max_delay_secs: 60, lock_after: 1000 };
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.decide_second_factor_attempt(attempt("u1", 3000 + i, Some(20), policy)).await.unwrap().0
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    let accepted = outcomes.iter().filter(|o| **o == AttemptOutcome::Accepted).count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    let replayed =
        outcomes.iter().filter(|o| matches!(o, AttemptOutcome::Refused { replayed: true, .. })).count();
    assert_eq!(replayed, 19, "{outcomes:?}");
    assert_eq!(audit_types(&store, "u1").await.len(), 20);
}

async fn one_failing_attempt_leaves_the_others_of_its_batch_alone(store: SqlStore) {
    for i in 0..8 {
        user_with_totp(&store, &format!("u{i}")).await;
    }
    let policy = LockoutPolicy::default();
    // "ghost" has no account: its guard row breaks the foreign key, inside whatever
    // transaction it shares.
    let attempts: Vec<_> = (0..8)
        .map(|i| format!("u{i}"))
        .chain(["ghost".to_owned()])
        .map(|user_id| {
            let store = store.clone();
            tokio::spawn(async move {
                let decided =
                    store.decide_second_factor_attempt(attempt(&user_id, 4000, Some(30), policy)).await;
                (user_id, decided.map(|(outcome, _)| outcome))
            })
        })
        .collect();
    for attempt in attempts {
        let (user_id, decided) = attempt.await.unwrap();
        if user_id == "ghost" {
            assert!(decided.is_err(), "an attempt for no account fails");
            assert!(audit_types(&store, "ghost").await.is_empty(), "and leaves nothing behind");
        } else {
            assert_eq!(decided.unwrap(), AttemptOutcome::Accepted, "{user_id}");
            assert_eq!(audit_types(&store, &user_id).await, ["accepted"]);
        }
    }
}

async fn users_and_their_factors_import_in_bulk_or_not_at_all(store: SqlStore) {
    let users: Vec<_> = (0..1200).map(|i| new_user(&format!("b{i}"), &format!("b{i}@example.com"))).collect();
    let factors: Vec<_> = (0..1200).map(|i| totp(&format!("f-b{i}"), &format!("b{i}"), 500)).collect();
    store.import_users(&users, &factors).await.unwrap();
    let user = store.user_by_email("b1100@example.com").await.unwrap().unwrap();
    let imported = store.active_totp_factors(&user.id).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!((imported[0].id.as_str(), imported[0].confirmed_at), ("f-b1100", Some(500)));
    assert_eq!(imported[0].secret, factors[1100].secret);
    // The user it belongs to can spend a step of it like any other factor.
    let (outcome, _) = store
        .decide_second_factor_attempt(attempt("b7", 600, Some(3), LockoutPolicy::default()))
        .await
        .unwrap();
    assert_eq!(outcome, AttemptOutcome::Accepted);

    let again = vec![new_user("c1", "c1@example.com"), new_user("c2", "b5@example.com")];
    assert!(matches!(store.import_users(&again, &[]).await, Err(StoreError::EmailTaken)));
    assert!(store.user_by_id("c1").await.unwrap().is_none(), "nothing of a failed import stays");
}
