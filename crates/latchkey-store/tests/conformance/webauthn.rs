//! WebAuthn: ceremonies spent once, credential ids unique across accounts.

use latchkey_core::factor::FactorType;
use latchkey_store::{Ceremony, CeremonyPurpose, FactorStore, NewFactor, SqlStore, StoreError, StoredSecret};

use crate::factors::with_user;

on_both_backends!(
    a_ceremony_is_spent_once_even_concurrently,
    a_credential_belongs_to_one_factor_of_one_account,
);

fn sealed(byte: u8) -> StoredSecret {
    StoredSecret { sealed: vec![byte; 8], nonce: vec![0; 12], key_id: "mk".into() }
}

fn ceremony(challenge: &[u8], now: i64) -> Ceremony {
    Ceremony {
        challenge_hash: challenge.to_vec(),
        purpose: CeremonyPurpose::Login,
        user_id: Some("u1".into()),
        factor_id: None,
        mfa_token_hash: Some(vec![7; 32]),
        state: sealed(1),
        created_at: now,
        expires_at: now + 300,
    }
}

fn pending_key(id: &str, user_id: &str) -> NewFactor {
    NewFactor {
        id: id.into(),
        user_id: user_id.into(),
        factor_type: FactorType::Webauthn,
        friendly_name: None,
        secret: None,
        totp: None,
        destination: None,
        created_at: 1000,
        expires_at: 1600,
    }
}

async fn a_ceremony_is_spent_once_even_concurrently(store: SqlStore) {
    with_user(&store, "u1").await;
    store.create_ceremony(&ceremony(b"expires", 1000)).await.unwrap();
    assert!(store.take_ceremony(b"expires", 1300).await.unwrap().is_none(), "5 minutes, no more");
    assert!(store.take_ceremony(b"unknown", 1000).await.unwrap().is_none());

    store.create_ceremony(&ceremony(b"raced", 1000)).await.unwrap();
    let takers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_ceremony(b"raced", 1001).await.unwrap() })
        })
        .collect();
    let mut taken = Vec::new();
    for taker in takers {
        taken.extend(taker.await.unwrap());
    }
    assert_eq!(taken.len(), 1, "one finish of one ceremony");
    let ceremony = &taken[0];
    assert_eq!(
        (ceremony.purpose, ceremony.user_id.as_deref(), ceremony.mfa_token_hash.as_deref(), &ceremony.state),
        (CeremonyPurpose::Login, Some("u1"), Some(&[7u8; 32][..]), &sealed(1))
    );
}

/// An authenticator model's AAGUID.
const KEY_MODEL: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

async fn a_credential_belongs_to_one_factor_of_one_account(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    store.create_pending_factor(&pending_key("k1", "u1")).await.unwrap();
    store.create_pending_factor(&pending_key("k2", "u2")).await.unwrap();
    assert!(
        store.set_factor_credential("u1", "k1", b"cred", Some(KEY_MODEL), &sealed(2), 1001).await.unwrap()
    );
    assert!(matches!(
        store.set_factor_credential("u2", "k2", b"cred", None, &sealed(3), 1001).await,
        Err(StoreError::CredentialTaken)
    ));
    assert!(
        !store.set_factor_credential("u2", "k1", b"other", None, &sealed(3), 1001).await.unwrap(),
        "not u2's factor"
    );
    let found = store.factor_by_credential(b"cred", 1002).await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.credential_id.as_deref(), found.aaguid.as_deref(), found.secret),
        ("k1", Some(&b"cred"[..]), Some(KEY_MODEL), Some(sealed(2)))
    );
    assert!(store.factor_by_credential(b"nothing", 1002).await.unwrap().is_none());
}
