//! Two-step confirmation (verify, then enable) and remembered devices.

use latchkey_store::{FactorStore, RememberedDevice, SqlStore};

use crate::factors::{active_totp, totp, with_user};

on_both_backends!(
    a_factor_is_enabled_only_after_its_code_was_verified,
    remembered_devices_work_until_they_expire_or_are_forgotten,
    changing_factors_forgets_remembered_devices,
);

fn device(id: &str, user_id: &str, now: i64) -> RememberedDevice {
    RememberedDevice {
        id: id.into(),
        user_id: user_id.into(),
        created_at: now,
        expires_at: now + 1000,
        last_used_at: None,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("lerian-client".into()),
    }
}

async fn a_factor_is_enabled_only_after_its_code_was_verified(store: SqlStore) {
    with_user(&store, "u1").await;
    store.create_pending_factor(&totp("f1", "u1", 1000)).await.unwrap();
    assert!(!store.activate_verified_factor("u1", "f1", 1001).await.unwrap(), "not verified yet");
    assert!(!store.verify_pending_factor("u2", "f1", Some(7), 1001).await.unwrap(), "another user's");
    assert!(store.verify_pending_factor("u1", "f1", Some(7), 1001).await.unwrap());
    let verified = store.factor("u1", "f1", 1001).await.unwrap().unwrap();
    assert_eq!(
        (verified.status.as_str(), verified.verified_at, verified.last_step),
        ("pending", Some(1001), Some(7))
    );
    assert!(!store.verify_pending_factor("u1", "f1", Some(7), 1002).await.unwrap(), "the step is spent");
    assert!(!store.activate_verified_factor("u1", "f1", 1600).await.unwrap(), "the pending factor lapsed");
    assert!(store.activate_verified_factor("u1", "f1", 1002).await.unwrap());
    let active = store.factor("u1", "f1", 99_999).await.unwrap().unwrap();
    assert_eq!((active.status.as_str(), active.expires_at, active.last_step), ("active", None, Some(7)));
    assert!(!store.activate_verified_factor("u1", "f1", 1003).await.unwrap(), "already active");
    assert!(!store.verify_pending_factor("u1", "f1", Some(9), 1003).await.unwrap(), "already active");
}

async fn remembered_devices_work_until_they_expire_or_are_forgotten(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    store.remember_device(&device("d1", "u1", 1000), b"token-1").await.unwrap();
    store.remember_device(&device("d2", "u1", 1100), b"token-2").await.unwrap();
    assert_eq!(store.use_remembered_device("u2", b"token-1", 1200).await.unwrap(), None, "another user's");
    let used = store.use_remembered_device("u1", b"token-1", 1200).await.unwrap().unwrap();
    assert_eq!((used.id.as_str(), used.last_used_at), ("d1", Some(1200)));
    let listed = store.remembered_devices("u1", 1200).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1", "d2"]);
    assert_eq!(listed[0].user_agent.as_deref(), Some("lerian-client"));
    assert_eq!(store.use_remembered_device("u1", b"token-1", 2000).await.unwrap(), None, "expired");
    assert_eq!(store.remembered_devices("u1", 2000).await.unwrap().len(), 1);
    assert_eq!(store.forget_devices("u2", Some("d2")).await.unwrap(), 0, "another user's");
    assert_eq!(store.forget_devices("u1", Some("d2")).await.unwrap(), 1);
    assert_eq!(store.use_remembered_device("u1", b"token-2", 1200).await.unwrap(), None, "forgotten");
    assert_eq!(store.purge_expired_factors(2000).await.unwrap(), 1, "the expired device is purged");
    assert!(store.remembered_devices("u1", 1200).await.unwrap().is_empty());
    store.remember_device(&device("d3", "u1", 1000), b"token-3").await.unwrap();
    store.remember_device(&device("d4", "u1", 1000), b"token-4").await.unwrap();
    assert_eq!(store.forget_devices("u1", None).await.unwrap(), 2);
}

async fn changing_factors_forgets_remembered_devices(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    active_totp(&store, "f1", "u1").await;
    store.remember_device(&device("d1", "u1", 1000), b"token-1").await.unwrap();
    store.remember_device(&device("d2", "u2", 1000), b"token-2").await.unwrap();
    // Adding a factor.
    store.create_pending_factor(&totp("f2", "u1", 1000)).await.unwrap();
    assert!(store.activate_factor("u1", "f2", Some(3), 1001).await.unwrap());
    assert!(store.remembered_devices("u1", 1001).await.unwrap().is_empty());
    assert_eq!(store.remembered_devices("u2", 1001).await.unwrap().len(), 1, "other users keep theirs");
    // Enabling a verified one.
    store.remember_device(&device("d3", "u1", 1000), b"token-3").await.unwrap();
    store.create_pending_factor(&totp("f3", "u1", 1000)).await.unwrap();
    assert!(store.verify_pending_factor("u1", "f3", Some(3), 1001).await.unwrap());
    assert_eq!(store.remembered_devices("u1", 1001).await.unwrap().len(), 1, "verifying changes nothing yet");
    assert!(store.activate_verified_factor("u1", "f3", 1001).await.unwrap());
    assert!(store.remembered_devices("u1", 1001).await.unwrap().is_empty());
    // Removing one.
    store.remember_device(&device("d4", "u1", 1000), b"token-4").await.unwrap();
    assert!(store.delete_factor("u1", "f2").await.unwrap().removed);
    assert!(store.remembered_devices("u1", 1001).await.unwrap().is_empty());
    // Removing all.
    store.remember_device(&device("d5", "u1", 1000), b"token-5").await.unwrap();
    store.delete_all_factors("u1").await.unwrap();
    assert!(store.remembered_devices("u1", 1001).await.unwrap().is_empty());
    assert_eq!(store.remembered_devices("u2", 1001).await.unwrap().len(), 1);
}
