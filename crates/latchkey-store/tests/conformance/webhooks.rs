//! Webhook endpoints and their delivery attempts.

use latchkey_store::{SqlStore, StoredSecret, WebhookAttempt, WebhookEndpoint, WebhookStore};

on_both_backends!(
    endpoints_keep_their_types_and_secrets,
    attempts_are_listed_newest_first_and_go_with_their_endpoint
);

fn endpoint(id: &str, created_at: i64) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        url: format!("https://hooks.example.com/{id}"),
        description: "feed".into(),
        event_types: vec!["mfa.failed".into(), "mfa.verified".into()],
        secrets: StoredSecret { sealed: vec![1, 2, 3], nonce: vec![0; 12], key_id: "mk".into() },
        created_at,
    }
}

fn attempt(id: &str, endpoint_id: &str, at: i64, status: Option<i64>) -> WebhookAttempt {
    WebhookAttempt {
        id: id.into(),
        endpoint_id: endpoint_id.into(),
        message_id: "m1".into(),
        event_id: "e1".into(),
        event_type: "mfa.failed".into(),
        attempt: 1,
        attempted_at: at,
        status,
        error: status.is_none().then(|| "the endpoint could not be reached".into()),
    }
}

async fn endpoints_keep_their_types_and_secrets(store: SqlStore) {
    store.create_webhook(&endpoint("w2", 20)).await.unwrap();
    store.create_webhook(&endpoint("w1", 10)).await.unwrap();
    let all = store.webhooks().await.unwrap();
    assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["w1", "w2"], "oldest first");
    assert_eq!(all[0], endpoint("w1", 10));
    let rotated = StoredSecret { sealed: vec![9; 40], nonce: vec![7; 12], key_id: "mk".into() };
    assert!(store.set_webhook_secrets("w1", &rotated).await.unwrap());
    assert!(!store.set_webhook_secrets("nope", &rotated).await.unwrap());
    assert_eq!(store.webhook("w1").await.unwrap().unwrap().secrets, rotated);
    assert!(store.delete_webhook("w1").await.unwrap());
    assert!(!store.delete_webhook("w1").await.unwrap());
    assert_eq!(store.webhook("w1").await.unwrap(), None);
}

async fn attempts_are_listed_newest_first_and_go_with_their_endpoint(store: SqlStore) {
    store.create_webhook(&endpoint("w1", 10)).await.unwrap();
    store.record_webhook_attempt(&attempt("a1", "w1", 100, None)).await.unwrap();
    store.record_webhook_attempt(&attempt("a2", "w1", 110, Some(204))).await.unwrap();
    store.record_webhook_attempt(&attempt("a3", "w1", 120, Some(503))).await.unwrap();
    let listed = store.webhook_attempts("w1", 2).await.unwrap();
    assert_eq!(listed, vec![attempt("a3", "w1", 120, Some(503)), attempt("a2", "w1", 110, Some(204))]);
    assert_eq!(store.purge_webhook_attempts(110).await.unwrap(), 1, "only a1 is older");
    // An attempt for an endpoint removed meanwhile is dropped, not an error.
    store.record_webhook_attempt(&attempt("a4", "gone", 130, Some(204))).await.unwrap();
    assert!(store.delete_webhook("w1").await.unwrap());
    assert!(store.webhook_attempts("w1", 10).await.unwrap().is_empty());
}

on_both_backends!(resealing_moves_values_to_the_new_key_unless_they_changed);

async fn resealing_moves_values_to_the_new_key_unless_they_changed(store: SqlStore) {
    use latchkey_store::{KeyStore, SealedTable};
    store.create_webhook(&endpoint("w1", 10)).await.unwrap();
    store.create_webhook(&endpoint("w2", 20)).await.unwrap();
    let old = store.sealed_values(SealedTable::Webhooks, "new", 10).await.unwrap();
    assert_eq!(old.len(), 2);
    assert_eq!((old[0].secret.key_id.as_str(), old[0].user_id.clone()), ("mk", None));
    let resealed = StoredSecret { sealed: vec![5; 20], nonce: vec![6; 12], key_id: "new".into() };
    let w1 = old.iter().find(|v| v.id == b"w1").unwrap();
    assert!(store.reseal(w1, &resealed).await.unwrap());
    assert!(!store.reseal(w1, &resealed).await.unwrap(), "the row changed since it was read");
    assert_eq!(store.webhook("w1").await.unwrap().unwrap().secrets, resealed);
    let left = store.sealed_values(SealedTable::Webhooks, "new", 10).await.unwrap();
    assert_eq!(left.iter().map(|v| v.id.clone()).collect::<Vec<_>>(), [b"w2".to_vec()]);

    let hashing = StoredSecret { sealed: vec![1; 48], nonce: vec![2; 12], key_id: "new".into() };
    assert!(store.insert_server_secret("hashing", &hashing, 1).await.unwrap());
    assert!(!store.insert_server_secret("hashing", &resealed, 2).await.unwrap(), "the first one stays");
    assert_eq!(store.server_secret("hashing").await.unwrap(), Some(hashing));
}
