//! Organisations (the Flashback surface's): who belongs where with which role, an
//! organisation's MFA enforcement, and the rules that follow from them — a member of
//! an enforcing organisation without a factor must set one up before anything else,
//! and only an organisation's owners and administrators manage its members.

use latchkey_store::{Membership, OrgRole};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::service::factors;
use crate::state::AppState;

/// The user's organisation, role and its enforcement.
pub async fn membership(state: &AppState, user_id: &str) -> Result<Option<Membership>, ApiError> {
    Ok(state.store.membership(user_id).await?)
}

/// Whether the user must set up a second factor before their login gives them
/// anything else: their organisation enforces MFA and they have no active factor.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn setup_required(state: &AppState, user_id: &str) -> Result<bool, ApiError> {
    let enforced = membership(state, user_id).await?.is_some_and(|m| m.mfa_enforced);
    Ok(enforced && !factors::has_active(state, user_id, None).await?)
}

/// Puts a user in an organisation with a role, or takes them out (an operator's act:
/// the native admin API and the CLI).
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
pub async fn set_membership(
    state: &AppState,
    user_id: &str,
    member: Option<(&str, OrgRole)>,
    actor: &str,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    if let Some((org_id, _)) = member {
        let valid = !org_id.is_empty()
            && org_id.len() <= 100
            && org_id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(ApiError::field(ErrorCode::InvalidField, "org_id")
                .with_message("`org_id` is 1–100 letters, digits, `-`, `_` or `.`."));
        }
    }
    state.store.set_membership(user_id, member, state.now()).await?;
    let event = Event::new("organization.membership_changed", user_id, meta).actor(Some(actor.to_owned()));
    audit::record(state, event).await;
    Ok(())
}

/// The membership of `actor_id` when it lets them manage the organisation's members:
/// `insufficient_role` otherwise.
async fn manager(state: &AppState, actor_id: &str) -> Result<Membership, ApiError> {
    match membership(state, actor_id).await? {
        Some(membership) if membership.role.manages() => Ok(membership),
        _ => Err(ErrorCode::InsufficientRole.into()),
    }
}

/// Turns MFA enforcement on or off for the organisation of `actor_id`, who must be
/// one of its owners or administrators.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %actor_id))]
pub async fn enforce(
    state: &AppState,
    actor_id: &str,
    enforced: bool,
    meta: &ClientMeta,
) -> Result<(), ApiError> {
    let membership = manager(state, actor_id).await?;
    state.store.set_mfa_enforced(&membership.org_id, enforced, state.now()).await?;
    let event_type = if enforced { "organization.mfa_enforced" } else { "organization.mfa_unenforced" };
    audit::record(state, Event::new(event_type, actor_id, meta)).await;
    Ok(())
}

/// Whether `actor_id` may reset the factors of `target_id`, another member of their
/// organisation: they must be one of its owners or administrators.
#[tracing::instrument(level = "debug", skip_all, fields(user_id = %actor_id))]
pub async fn authorise_reset(state: &AppState, actor_id: &str, target_id: &str) -> Result<(), ApiError> {
    let manager = manager(state, actor_id).await?;
    match membership(state, target_id).await? {
        Some(target) if target.org_id == manager.org_id => Ok(()),
        _ => Err(ErrorCode::InsufficientRole.into()),
    }
}

/// Whether the organisation of `user_id` enforces MFA for every member.
pub async fn enforced(state: &AppState, user_id: &str) -> Result<bool, ApiError> {
    Ok(membership(state, user_id).await?.is_some_and(|m| m.mfa_enforced))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_owners_and_administrators_manage() {
        use latchkey_store::OrgRole;
        assert!(OrgRole::Owner.manages() && OrgRole::Administrator.manages() && !OrgRole::Member.manages());
    }
}
