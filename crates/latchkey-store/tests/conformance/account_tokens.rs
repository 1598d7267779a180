//! Account tokens: password resets, recovery links and address-change codes, each
//! spent once together with the change it makes.

use latchkey_core::factor::FactorType;
use latchkey_store::{
    AccountStore, AccountTokenPurpose, AccountTokenStore, AddressChanged, FactorStore, NewAccountToken,
    NewAddress, NewFactor, NewSession, RememberedDevice, SqlStore, StoreError,
};

use crate::factors::with_user;

on_both_backends!(
    tokens_are_found_by_hash_and_purpose_and_a_new_one_replaces_the_old,
    a_reset_spends_once_sets_the_password_and_ends_sessions_and_devices,
    a_password_change_keeps_one_session,
    an_email_change_moves_the_factors_that_sent_to_the_old_address,
    an_email_taken_meanwhile_changes_nothing,
    a_phone_change_moves_the_sms_factors,
    codes_take_a_limited_number_of_attempts,
    tokens_are_cancelled_and_purged,
);

fn token(id: &str, user_id: &str, purpose: AccountTokenPurpose, now: i64) -> NewAccountToken {
    NewAccountToken {
        id: id.into(),
        user_id: user_id.into(),
        purpose,
        secret_hash: format!("hash-{id}").into_bytes(),
        new_address: None,
        created_at: now,
        usable_at: now,
        expires_at: now + 1800,
    }
}

fn session(id: &str, user_id: &str) -> NewSession {
    NewSession {
        id: id.into(),
        user_id: user_id.into(),
        aal: "aal1".into(),
        amr: vec!["pwd".into()],
        auth_time: 1000,
        created_at: 1000,
        idle_expires_at: 10_000,
        expires_at: 20_000,
        ip: None,
        user_agent: None,
        mfa_pending: false,
    }
}

fn contact(id: &str, user_id: &str, factor_type: FactorType, destination: &str) -> NewFactor {
    NewFactor {
        id: id.into(),
        user_id: user_id.into(),
        factor_type,
        friendly_name: None,
        secret: None,
        totp: None,
        destination: Some(destination.into()),
        created_at: 1000,
        expires_at: 1600,
    }
}

/// Stores `factor` and confirms it (a pending factor would replace the pending one of
/// its type).
async fn active(store: &SqlStore, factor: NewFactor) {
    store.create_pending_factor(&factor).await.unwrap();
    assert!(store.activate_factor(&factor.user_id, &factor.id, None, 1001).await.unwrap());
}

async fn destination(store: &SqlStore, user_id: &str, factor_id: &str) -> Option<String> {
    store.factor(user_id, factor_id, 1100).await.unwrap().unwrap().destination
}

async fn tokens_are_found_by_hash_and_purpose_and_a_new_one_replaces_the_old(store: SqlStore) {
    with_user(&store, "u1").await;
    store.create_account_token(&token("t1", "u1", AccountTokenPurpose::PasswordReset, 1000)).await.unwrap();
    let found = store.account_token(b"hash-t1", AccountTokenPurpose::PasswordReset, 1000).await.unwrap();
    assert_eq!(found.unwrap().user_id, "u1");
    assert_eq!(store.account_token(b"hash-t1", AccountTokenPurpose::Recovery, 1000).await.unwrap(), None);
    assert_eq!(
        store.account_token(b"hash-t1", AccountTokenPurpose::PasswordReset, 2800).await.unwrap(),
        None
    );
    store.create_account_token(&token("t2", "u1", AccountTokenPurpose::PasswordReset, 1100)).await.unwrap();
    assert_eq!(
        store.account_token(b"hash-t1", AccountTokenPurpose::PasswordReset, 1100).await.unwrap(),
        None,
        "a new link replaces the old"
    );
    assert!(!store.spend_account_token("t1", 1100).await.unwrap());
    // A token that opens later cannot be spent before.
    let later = NewAccountToken {
        usable_at: 5000,
        expires_at: 9000,
        ..token("t3", "u1", AccountTokenPurpose::SelfRecovery, 1000)
    };
    store.create_account_token(&later).await.unwrap();
    assert!(
        store.account_token(b"hash-t3", AccountTokenPurpose::SelfRecovery, 1000).await.unwrap().is_some()
    );
    assert!(!store.spend_account_token("t3", 4999).await.unwrap());
    assert!(store.spend_account_token("t3", 5000).await.unwrap());
    assert!(!store.spend_account_token("t3", 5001).await.unwrap(), "once");
}

async fn a_reset_spends_once_sets_the_password_and_ends_sessions_and_devices(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    store.create_session(&session("s1", "u1"), b"r1").await.unwrap();
    store.create_session(&session("s2", "u2"), b"r2").await.unwrap();
    let device = RememberedDevice {
        id: "d1".into(),
        user_id: "u1".into(),
        created_at: 1000,
        expires_at: 9000,
        last_used_at: None,
        ip: None,
        user_agent: None,
    };
    store.remember_device(&device, b"device").await.unwrap();
    store.create_account_token(&token("t1", "u1", AccountTokenPurpose::PasswordReset, 1000)).await.unwrap();
    let (a, b) = tokio::join!(
        store.reset_password("t1", "$argon2id$a", 1100),
        store.reset_password("t1", "$argon2id$b", 1100)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a ^ b, "exactly one concurrent reset wins");
    let hash = store.user_by_id("u1").await.unwrap().unwrap().password_hash.unwrap();
    assert_eq!(hash, if a { "$argon2id$a" } else { "$argon2id$b" });
    assert_eq!(store.active_session("s1", 1100).await.unwrap(), None, "every session ends");
    assert!(store.active_session("s2", 1100).await.unwrap().is_some(), "not another user's");
    assert_eq!(store.remembered_devices("u1", 1100).await.unwrap(), vec![]);
    assert!(!store.reset_password("t1", "$argon2id$c", 1101).await.unwrap());
    store.create_account_token(&token("t2", "u1", AccountTokenPurpose::PasswordReset, 1000)).await.unwrap();
    assert!(!store.reset_password("t2", "$argon2id$c", 2800).await.unwrap(), "expired");
}

async fn a_password_change_keeps_one_session(store: SqlStore) {
    with_user(&store, "u1").await;
    store.create_session(&session("keep", "u1"), b"r1").await.unwrap();
    store.create_session(&session("other", "u1"), b"r2").await.unwrap();
    assert!(store.change_password("u1", "$argon2id$new", Some("keep"), 1100).await.unwrap());
    assert!(store.active_session("keep", 1100).await.unwrap().is_some());
    assert_eq!(store.active_session("other", 1100).await.unwrap(), None);
    assert_eq!(
        store.user_by_id("u1").await.unwrap().unwrap().password_hash.as_deref(),
        Some("$argon2id$new")
    );
    assert!(!store.change_password("nobody", "$argon2id$new", None, 1100).await.unwrap());
}

async fn an_email_change_moves_the_factors_that_sent_to_the_old_address(store: SqlStore) {
    with_user(&store, "u1").await;
    active(&store, contact("mail", "u1", FactorType::Email, "U1@Example.com")).await;
    store
        .create_pending_factor(&contact("link", "u1", FactorType::MagicLink, "u1@example.com"))
        .await
        .unwrap();
    store
        .create_pending_factor(&contact("elsewhere", "u1", FactorType::Email, "work@example.org"))
        .await
        .unwrap();
    let change = NewAccountToken {
        new_address: Some("new@example.net".into()),
        ..token("t1", "u1", AccountTokenPurpose::EmailChange, 1000)
    };
    store.create_account_token(&change).await.unwrap();
    let address = NewAddress::Email { address: "New@example.net", normalized: "new@example.net" };
    let changed = store.change_address("t1", address, 1100).await.unwrap();
    assert_eq!(changed, Some(AddressChanged { old: Some("u1@example.com".into()), moved_factors: 2 }));
    let user = store.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!((user.email.as_str(), user.email_normalized.as_str()), ("New@example.net", "new@example.net"));
    assert!(store.user_by_email("u1@example.com").await.unwrap().is_none());
    assert_eq!(destination(&store, "u1", "mail").await.as_deref(), Some("New@example.net"));
    assert_eq!(destination(&store, "u1", "link").await.as_deref(), Some("New@example.net"));
    assert_eq!(destination(&store, "u1", "elsewhere").await.as_deref(), Some("work@example.org"));
    assert_eq!(store.change_address("t1", address, 1101).await.unwrap(), None, "once");
}

async fn an_email_taken_meanwhile_changes_nothing(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    store.create_account_token(&token("t1", "u1", AccountTokenPurpose::EmailChange, 1000)).await.unwrap();
    let address = NewAddress::Email { address: "u2@example.com", normalized: "u2@example.com" };
    assert!(matches!(store.change_address("t1", address, 1100).await, Err(StoreError::EmailTaken)));
    assert_eq!(store.user_by_id("u1").await.unwrap().unwrap().email, "u1@example.com");
    assert!(store.spend_account_token("t1", 1100).await.unwrap(), "the refused change left the code unspent");
}

async fn a_phone_change_moves_the_sms_factors(store: SqlStore) {
    let user = latchkey_store::NewUser {
        phone: Some("+14155550100".into()),
        ..crate::accounts::new_user("u1", "u1@example.com")
    };
    store.create_user(&user).await.unwrap();
    active(&store, contact("sms", "u1", FactorType::Sms, "+14155550100")).await;
    active(&store, contact("other", "u1", FactorType::Sms, "+14155550111")).await;
    store.create_account_token(&token("t1", "u1", AccountTokenPurpose::PhoneChange, 1000)).await.unwrap();
    let changed =
        store.change_address("t1", NewAddress::Phone { number: "+14155550199" }, 1100).await.unwrap();
    assert_eq!(changed, Some(AddressChanged { old: Some("+14155550100".into()), moved_factors: 1 }));
    assert_eq!(store.user_by_id("u1").await.unwrap().unwrap().phone.as_deref(), Some("+14155550199"));
    assert_eq!(destination(&store, "u1", "sms").await.as_deref(), Some("+14155550199"));
    assert_eq!(destination(&store, "u1", "other").await.as_deref(), Some("+14155550111"));
}

async fn codes_take_a_limited_number_of_attempts(store: SqlStore) {
    with_user(&store, "u1").await;
    store.create_account_token(&token("t1", "u1", AccountTokenPurpose::EmailChange, 1000)).await.unwrap();
    for attempt in 1..=5 {
        let open = store.attempt_account_code("u1", AccountTokenPurpose::EmailChange, 5, 1100).await.unwrap();
        assert_eq!(open.unwrap().attempts, attempt);
    }
    assert_eq!(
        store.attempt_account_code("u1", AccountTokenPurpose::EmailChange, 5, 1100).await.unwrap(),
        None
    );
    assert_eq!(
        store.attempt_account_code("u1", AccountTokenPurpose::PhoneChange, 5, 1100).await.unwrap(),
        None
    );
}

async fn tokens_are_cancelled_and_purged(store: SqlStore) {
    with_user(&store, "u1").await;
    store.create_account_token(&token("t1", "u1", AccountTokenPurpose::SelfRecovery, 1000)).await.unwrap();
    store.create_account_token(&token("t2", "u1", AccountTokenPurpose::PasswordReset, 1000)).await.unwrap();
    assert_eq!(store.cancel_account_tokens("u1", AccountTokenPurpose::SelfRecovery, 1100).await.unwrap(), 1);
    assert_eq!(store.cancel_account_tokens("u1", AccountTokenPurpose::SelfRecovery, 1100).await.unwrap(), 0);
    assert!(!store.spend_account_token("t1", 1100).await.unwrap());
    assert_eq!(store.purge_account_tokens(1050).await.unwrap(), 0, "nothing over before then");
    assert_eq!(store.purge_account_tokens(1200).await.unwrap(), 1, "the cancelled one");
    assert_eq!(store.purge_account_tokens(3000).await.unwrap(), 1, "the expired one");
}
