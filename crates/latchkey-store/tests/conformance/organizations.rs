//! Organisations: one membership per user, enforcement per organisation, and the
//! preferred factor type.

use latchkey_store::{Membership, OrgRole, OrganizationStore, SqlStore};

use crate::factors::with_user;

on_both_backends!(a_user_belongs_to_one_organization_which_may_enforce_mfa);

async fn a_user_belongs_to_one_organization_which_may_enforce_mfa(store: SqlStore) {
    with_user(&store, "u1").await;
    with_user(&store, "u2").await;
    assert_eq!(store.membership("u1").await.unwrap(), None);
    assert!(!store.set_mfa_enforced("acme", true, 1000).await.unwrap(), "no such organisation yet");
    store.set_membership("u1", Some(("acme", OrgRole::Owner)), 1000).await.unwrap();
    store.set_membership("u2", Some(("acme", OrgRole::Member)), 1000).await.unwrap();
    assert!(store.set_mfa_enforced("acme", true, 1001).await.unwrap());
    let expected = Membership { org_id: "acme".into(), role: OrgRole::Member, mfa_enforced: true };
    assert_eq!(store.membership("u2").await.unwrap(), Some(expected));
    // Moving to another organisation leaves the first.
    store.set_membership("u2", Some(("globex", OrgRole::Administrator)), 1002).await.unwrap();
    let moved = store.membership("u2").await.unwrap().unwrap();
    assert_eq!(
        (moved.org_id.as_str(), moved.role, moved.mfa_enforced),
        ("globex", OrgRole::Administrator, false)
    );
    store.set_membership("u2", None, 1003).await.unwrap();
    assert_eq!(store.membership("u2").await.unwrap(), None);

    assert_eq!(store.preferred_factor_type("u1").await.unwrap(), None);
    store.set_preferred_factor_type("u1", Some("webauthn")).await.unwrap();
    assert_eq!(store.preferred_factor_type("u1").await.unwrap().as_deref(), Some("webauthn"));
}
