//! The audit log.

use latchkey_store::{AuditEvent, AuditFilter, AuditStore, SqlStore};

on_both_backends!(audit_events_filter_by_user_type_and_time);

fn event(id: &str, at: i64, user: Option<&str>, kind: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        occurred_at: at,
        user_id: user.map(str::to_owned),
        event_type: kind.into(),
        outcome: "success".into(),
        factor_id: Some("f1".into()),
        factor_type: Some("totp".into()),
        actor: None,
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test".into()),
        reason: None,
    }
}

async fn audit_events_filter_by_user_type_and_time(store: SqlStore) {
    store.record_audit_event(&event("e1", 100, Some("u1"), "factor.enrolled")).await.unwrap();
    store.record_audit_event(&event("e2", 200, Some("u1"), "mfa.verified")).await.unwrap();
    store.record_audit_event(&event("e3", 300, Some("u2"), "mfa.verified")).await.unwrap();
    store.record_audit_event(&event("e4", 400, None, "user.deleted")).await.unwrap();
    let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let all = store.audit_events(&AuditFilter { limit: 10, ..AuditFilter::default() }).await.unwrap();
    assert_eq!(all[0], event("e4", 400, None, "user.deleted"));
    assert_eq!(ids(all), ["e4", "e3", "e2", "e1"]);
    let by_user = AuditFilter { user_id: Some("u1".into()), limit: 10, ..AuditFilter::default() };
    assert_eq!(ids(store.audit_events(&by_user).await.unwrap()), ["e2", "e1"]);
    let by_type =
        AuditFilter { event_type: Some("mfa.verified".into()), limit: 10, ..AuditFilter::default() };
    assert_eq!(ids(store.audit_events(&by_type).await.unwrap()), ["e3", "e2"]);
    let window = AuditFilter { since: Some(200), until: Some(400), limit: 10, ..AuditFilter::default() };
    assert_eq!(ids(store.audit_events(&window).await.unwrap()), ["e3", "e2"]);
    let limited = AuditFilter { limit: 1, ..AuditFilter::default() };
    assert_eq!(ids(store.audit_events(&limited).await.unwrap()), ["e4"]);
}
