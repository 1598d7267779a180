//! Challenges: codes with limited attempts, links confirmed once, resends that
//! invalidate, and single use under concurrency.

use latchkey_core::factor::FactorType;
use latchkey_store::{
    ChallengeKind, ChallengePurpose, CodeChallengeQuery, FactorStore, NewChallenge, NewFactor, SqlStore,
};

use crate::accounts::new_user;
use latchkey_store::AccountStore;

on_both_backends!(
    code_challenges_count_attempts_and_stop_at_the_limit,
    a_resend_supersedes_the_open_challenge,
    login_codes_belong_to_their_mfa_token,
    challenges_are_spent_once_even_concurrently,
    links_are_confirmed_once_and_expire,
    sign_in_links_supersede_each_other_per_user,
    purge_removes_spent_and_expired_challenges,
);

async fn setup(store: &SqlStore) {
    store.create_user(&new_user("u1", "u1@example.com")).await.unwrap();
    store
        .create_pending_factor(&NewFactor {
            id: "f1".into(),
            user_id: "u1".into(),
            factor_type: FactorType::Email,
            friendly_name: None,
            secret: None,
            totp: None,
            destination: Some("u1@example.com".into()),
            created_at: 1000,
            expires_at: 1600,
        })
        .await
        .unwrap();
}

fn code(id: &str, purpose: ChallengePurpose, hash: u8, now: i64) -> NewChallenge {
    NewChallenge {
        id: id.into(),
        user_id: "u1".into(),
        factor_id: Some("f1".into()),
        purpose,
        kind: ChallengeKind::Code,
        secret_hash: vec![hash; 32],
        mfa_token_hash: None,
        created_at: now,
        expires_at: now + 600,
    }
}

fn query(purpose: ChallengePurpose) -> CodeChallengeQuery<'static> {
    CodeChallengeQuery { user_id: "u1", factor_id: "f1", purpose, mfa_token_hash: None }
}

async fn code_challenges_count_attempts_and_stop_at_the_limit(store: SqlStore) {
    setup(&store).await;
    store.create_challenge(&code("c1", ChallengePurpose::Enroll, 7, 1000)).await.unwrap();
    for attempt in 1..=5 {
        let challenge =
            store.attempt_code_challenge(&query(ChallengePurpose::Enroll), 5, 1001).await.unwrap();
        let challenge = challenge.expect("attempts left");
        assert_eq!((challenge.id.as_str(), challenge.attempts), ("c1", attempt));
        assert_eq!(challenge.secret_hash, vec![7; 32]);
    }
    assert_eq!(store.attempt_code_challenge(&query(ChallengePurpose::Enroll), 5, 1001).await.unwrap(), None);
    assert_eq!(
        store.attempt_code_challenge(&query(ChallengePurpose::Login), 5, 1001).await.unwrap(),
        None,
        "another purpose has no challenge"
    );
    store.create_challenge(&code("c2", ChallengePurpose::Enroll, 8, 1002)).await.unwrap();
    assert_eq!(
        store.attempt_code_challenge(&query(ChallengePurpose::Enroll), 5, 1602).await.unwrap(),
        None,
        "expired"
    );
}

async fn a_resend_supersedes_the_open_challenge(store: SqlStore) {
    setup(&store).await;
    store.create_challenge(&code("c1", ChallengePurpose::Enroll, 1, 1000)).await.unwrap();
    store.create_challenge(&code("c2", ChallengePurpose::Enroll, 2, 1060)).await.unwrap();
    let open =
        store.attempt_code_challenge(&query(ChallengePurpose::Enroll), 5, 1061).await.unwrap().unwrap();
    assert_eq!((open.id.as_str(), open.secret_hash[0]), ("c2", 2));
    assert!(!store.spend_challenge("c1", false, 1061).await.unwrap(), "the first was superseded");
    assert!(store.challenge("u1", "c1").await.unwrap().unwrap().used_at.is_some());
}

async fn login_codes_belong_to_their_mfa_token(store: SqlStore) {
    setup(&store).await;
    store
        .create_challenge(&NewChallenge {
            mfa_token_hash: Some(vec![9; 32]),
            ..code("c1", ChallengePurpose::Login, 1, 1000)
        })
        .await
        .unwrap();
    static OTHER: [u8; 32] = [8; 32];
    static MINE: [u8; 32] = [9; 32];
    let with_token = |token: &'static [u8]| CodeChallengeQuery {
        mfa_token_hash: Some(token),
        ..query(ChallengePurpose::Login)
    };
    assert_eq!(store.attempt_code_challenge(&with_token(&OTHER), 5, 1001).await.unwrap(), None);
    assert_eq!(
        store.attempt_code_challenge(&with_token(&MINE), 5, 1001).await.unwrap().unwrap().attempts,
        1,
        "an attempt through another login's token did not count"
    );
}

async fn challenges_are_spent_once_even_concurrently(store: SqlStore) {
    setup(&store).await;
    store.create_challenge(&code("c1", ChallengePurpose::Enroll, 1, 1000)).await.unwrap();
    let attempts = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.spend_challenge("c1", false, 1001).await.unwrap() })
    });
    let mut winners = 0;
    for attempt in attempts {
        winners += usize::from(attempt.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(store.attempt_code_challenge(&query(ChallengePurpose::Enroll), 5, 1002).await.unwrap(), None);
}

fn link(id: &str, purpose: ChallengePurpose, hash: u8, now: i64) -> NewChallenge {
    NewChallenge {
        kind: ChallengeKind::Link,
        mfa_token_hash: Some(vec![5; 32]),
        expires_at: now + 900,
        ..code(id, purpose, hash, now)
    }
}

async fn links_are_confirmed_once_and_expire(store: SqlStore) {
    setup(&store).await;
    store.create_challenge(&link("l1", ChallengePurpose::Login, 3, 1000)).await.unwrap();
    let hash = vec![3u8; 32];
    assert_eq!(store.link_challenge(&hash, 1001).await.unwrap().unwrap().id, "l1", "a look changes nothing");
    assert!(!store.spend_challenge("l1", true, 1001).await.unwrap(), "not confirmed yet");
    let confirmations = (0..10).map(|_| {
        let (store, hash) = (store.clone(), hash.clone());
        tokio::spawn(async move { store.confirm_link_challenge(&hash, 1002).await.unwrap() })
    });
    let mut confirmed = Vec::new();
    for confirmation in confirmations {
        confirmed.extend(confirmation.await.unwrap());
    }
    assert_eq!(confirmed.len(), 1, "exactly one confirmation");
    assert_eq!(confirmed[0].confirmed_at, Some(1002));
    assert_eq!(store.link_challenge(&hash, 1003).await.unwrap(), None, "no longer open");
    assert!(store.spend_challenge("l1", true, 1003).await.unwrap());
    assert!(!store.spend_challenge("l1", true, 1003).await.unwrap());

    store.create_challenge(&link("l2", ChallengePurpose::Login, 4, 2000)).await.unwrap();
    assert_eq!(store.confirm_link_challenge(&[4u8; 32], 2900).await.unwrap(), None, "expired");
    assert_eq!(
        store.attempt_code_challenge(&query(ChallengePurpose::Login), 5, 2001).await.unwrap(),
        None,
        "a link is not a code"
    );
}

async fn sign_in_links_supersede_each_other_per_user(store: SqlStore) {
    setup(&store).await;
    store.create_user(&new_user("u2", "u2@example.com")).await.unwrap();
    let sign_in = |id: &str, user: &str, hash: u8| NewChallenge {
        user_id: user.into(),
        factor_id: None,
        mfa_token_hash: None,
        ..link(id, ChallengePurpose::SignIn, hash, 1000)
    };
    store.create_challenge(&sign_in("s1", "u1", 1)).await.unwrap();
    store.create_challenge(&sign_in("s2", "u2", 2)).await.unwrap();
    store.create_challenge(&sign_in("s3", "u1", 3)).await.unwrap();
    assert_eq!(store.link_challenge(&[1u8; 32], 1001).await.unwrap(), None, "replaced by s3");
    assert_eq!(
        store.link_challenge(&[2u8; 32], 1001).await.unwrap().unwrap().id,
        "s2",
        "another user's stays"
    );
    let s3 = store.confirm_link_challenge(&[3u8; 32], 1001).await.unwrap().unwrap();
    assert_eq!((s3.purpose, s3.factor_id), (ChallengePurpose::SignIn, None));
}

async fn purge_removes_spent_and_expired_challenges(store: SqlStore) {
    setup(&store).await;
    store.create_challenge(&code("c1", ChallengePurpose::Enroll, 1, 1000)).await.unwrap();
    store.create_challenge(&code("c2", ChallengePurpose::Login, 2, 1000)).await.unwrap();
    assert!(store.spend_challenge("c2", false, 1001).await.unwrap());
    store.purge_expired_factors(1002).await.unwrap();
    assert!(store.challenge("u1", "c1").await.unwrap().is_some());
    assert_eq!(store.challenge("u1", "c2").await.unwrap(), None);
    store.purge_expired_factors(1600).await.unwrap();
    assert_eq!(store.challenge("u1", "c1").await.unwrap(), None);
}
