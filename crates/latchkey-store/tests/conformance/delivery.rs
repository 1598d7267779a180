//! The send throttle and the delivery queue.

use latchkey_store::{
    Channel, DeliveryStore, NewMessage, OutboxCounts, SendClaim, SendKey, SendLimits, SqlStore, StoredSecret,
};

on_both_backends!(
    sends_are_spaced_and_counted_per_window,
    a_send_counts_on_every_key_or_on_none,
    concurrent_sends_to_one_destination_have_one_winner,
    messages_are_leased_retried_and_finished,
    a_lapsed_lease_makes_a_message_due_again,
    concurrent_workers_never_lease_one_message_twice,
    purge_removes_finished_messages_and_idle_throttles,
);

const LIMITS: SendLimits = SendLimits { min_interval_secs: 60, per_window: 10, window_secs: 3600 };

fn one(hash: &[u8]) -> SendKey<'_> {
    SendKey { hash, limits: LIMITS }
}

/// Two sends an hour for a user, under no spacing.
const PER_USER: SendLimits = SendLimits { min_interval_secs: 0, per_window: 2, window_secs: 3600 };

async fn a_send_counts_on_every_key_or_on_none(store: SqlStore) {
    let to = |destination: &'static [u8]| [one(destination), SendKey { hash: b"user", limits: PER_USER }];
    assert_eq!(store.claim_send(&to(b"+14155550101"), 1000).await.unwrap(), SendClaim::Granted);
    // The destination refuses: the user's count does not move.
    assert_eq!(
        store.claim_send(&to(b"+14155550101"), 1001).await.unwrap(),
        SendClaim::Throttled { until: 1060 }
    );
    assert_eq!(store.claim_send(&to(b"+14155550102"), 1002).await.unwrap(), SendClaim::Granted);
    // The user has had their two: a fresh destination waits for the user's window, and
    // is not counted either.
    assert_eq!(
        store.claim_send(&to(b"+14155550103"), 1003).await.unwrap(),
        SendClaim::Throttled { until: 4600 }
    );
    assert_eq!(store.claim_send(&[one(b"+14155550103")], 1004).await.unwrap(), SendClaim::Granted);
}

async fn sends_are_spaced_and_counted_per_window(store: SqlStore) {
    let dest = b"alice@example.com";
    assert_eq!(store.claim_send(&[one(dest)], 1000).await.unwrap(), SendClaim::Granted);
    assert_eq!(store.claim_send(&[one(dest)], 1059).await.unwrap(), SendClaim::Throttled { until: 1060 });
    assert_eq!(store.claim_send(&[one(b"bob@example.com")], 1059).await.unwrap(), SendClaim::Granted);
    for i in 1..10 {
        assert_eq!(
            store.claim_send(&[one(dest)], 1000 + 60 * i).await.unwrap(),
            SendClaim::Granted,
            "send {i}"
        );
    }
    // Ten sends in the window that began at 1000: the eleventh waits for it to end.
    assert_eq!(store.claim_send(&[one(dest)], 1600).await.unwrap(), SendClaim::Throttled { until: 4600 });
    assert_eq!(store.claim_send(&[one(dest)], 4599).await.unwrap(), SendClaim::Throttled { until: 4600 });
    assert_eq!(store.claim_send(&[one(dest)], 4600).await.unwrap(), SendClaim::Granted);
    assert_eq!(store.claim_send(&[one(dest)], 4660).await.unwrap(), SendClaim::Granted, "a new window");
}

async fn concurrent_sends_to_one_destination_have_one_winner(store: SqlStore) {
    let claims = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_send(&[one(b"+14155550123")], 1000).await.unwrap() })
    });
    let mut granted = 0;
    for claim in claims {
        granted += usize::from(claim.await.unwrap() == SendClaim::Granted);
    }
    assert_eq!(granted, 1);
}

fn message(id: &str) -> NewMessage {
    NewMessage {
        id: id.into(),
        channel: Channel::Email,
        kind: "email_code".into(),
        user_id: Some("u1".into()),
        payload: StoredSecret { sealed: vec![1, 2, 3], nonce: vec![0; 12], key_id: "mk".into() },
        created_at: 1000,
    }
}

async fn messages_are_leased_retried_and_finished(store: SqlStore) {
    store.enqueue_message(&message("m1"), 1000).await.unwrap();
    store.enqueue_message(&NewMessage { channel: Channel::Sms, ..message("m2") }, 1001).await.unwrap();
    let first = store.lease_message(1001, 30).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.attempts, first.channel), ("m1", 1, Channel::Email));
    assert_eq!(first.payload.sealed, vec![1, 2, 3]);
    let second = store.lease_message(1001, 30).await.unwrap().unwrap();
    assert_eq!((second.id.as_str(), second.channel), ("m2", Channel::Sms));
    assert_eq!(store.lease_message(1001, 30).await.unwrap(), None, "both are leased");

    store.message_failed("m1", "connection refused", Some(1010), 1002).await.unwrap();
    store.message_sent("m2", 1002).await.unwrap();
    assert_eq!(store.lease_message(1009, 30).await.unwrap(), None, "not due until 1010");
    let retry = store.lease_message(1010, 30).await.unwrap().unwrap();
    assert_eq!((retry.id.as_str(), retry.attempts), ("m1", 2));
    store.message_failed("m1", "connection refused", None, 1011).await.unwrap();
    assert_eq!(store.lease_message(5000, 30).await.unwrap(), None, "given up");
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        OutboxCounts { queued: 0, sent: 1, failed: 1, oldest_queued_at: None }
    );
}

async fn a_lapsed_lease_makes_a_message_due_again(store: SqlStore) {
    store.enqueue_message(&message("m1"), 1000).await.unwrap();
    assert!(store.lease_message(1000, 30).await.unwrap().is_some());
    assert_eq!(store.lease_message(1029, 30).await.unwrap(), None);
    let again = store.lease_message(1030, 30).await.unwrap().unwrap();
    assert_eq!(again.attempts, 2, "the worker that held it died");
}

async fn concurrent_workers_never_lease_one_message_twice(store: SqlStore) {
    for i in 0..10 {
        store.enqueue_message(&message(&format!("m{i}")), 1000).await.unwrap();
    }
    let workers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut leased = Vec::new();
            for _ in 0..30 {
                if let Some(message) = store.lease_message(1000, 30).await.unwrap() {
                    leased.push(message.id);
                }
            }
            leased
        })
    });
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "a message was leased twice");
    assert!(count <= 10);
}

async fn purge_removes_finished_messages_and_idle_throttles(store: SqlStore) {
    for id in ["sent", "failed", "queued"] {
        store.enqueue_message(&message(id), 1000).await.unwrap();
    }
    store.message_sent("sent", 1001).await.unwrap();
    store.message_failed("failed", "refused", None, 1001).await.unwrap();
    store.claim_send(&[one(b"dest")], 1000).await.unwrap();
    assert_eq!(store.purge_delivery(1000, 999).await.unwrap(), 0);
    assert_eq!(store.purge_delivery(1001, 1000).await.unwrap(), 3);
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        OutboxCounts { queued: 1, sent: 0, failed: 0, oldest_queued_at: Some(1000) }
    );
    assert_eq!(store.claim_send(&[one(b"dest")], 1001).await.unwrap(), SendClaim::Granted, "forgotten");
}
