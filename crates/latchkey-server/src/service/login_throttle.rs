//! Throttling of first factors (DESIGN rule 16), the one place every password check
//! asks whether it may go ahead.
//!
//! An attempt is judged by two counts, both in the database so they hold across
//! instances:
//!
//! - **who it claims to be**: the account named by the address, or, when the client
//!   presents a remembered-device token the account trusts, that device instead. A
//!   trusted client is judged by its own count alone, so someone guessing from many
//!   addresses can delay the account for everyone else but not for its owner's devices;
//! - **where it comes from**: the client IP, with more free failures, since many people
//!   can share one address.
//!
//! Both must be free for the attempt to go ahead; it is then counted on both before the
//! password is checked, so concurrent guesses see each other. A success starts the
//! first count again and takes the attempt back from the second. Unknown accounts are
//! counted exactly like known ones (by the address given), so the throttle answers the
//! same for both and reveals nothing.

use latchkey_core::crypto::HashPurpose;
use latchkey_core::token::TokenKind;
use latchkey_store::{LoginClaim, ThrottleKey, User};

use crate::http::error::ApiError;
use crate::http::extract::ClientMeta;
use crate::service::audit::{self, Event};
use crate::state::AppState;

/// Who is attempting a first factor: where from, and the remembered-device token they
/// presented, if any.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub meta: &'a ClientMeta,
    pub device: Option<&'a str>,
}

impl<'a> Client<'a> {
    /// A client without a remembered-device token.
    pub fn new(meta: &'a ClientMeta) -> Self {
        Self { meta, device: None }
    }

    pub fn with_device(meta: &'a ClientMeta, device: Option<&'a str>) -> Self {
        Self { meta, device }
    }
}

/// An attempt that was allowed and counted; settle it with [`Claimed::succeeded`]
/// when the password is right (a failure stays counted).
pub struct Claimed {
    identity: [u8; 32],
    ip: Option<[u8; 32]>,
}

impl Claimed {
    pub async fn succeeded(self, state: &AppState) -> Result<(), ApiError> {
        let forgive: Vec<&[u8]> = self.ip.iter().map(|hash| hash.as_slice()).collect();
        Ok(state.store.login_succeeded(&self.identity, &forgive).await?)
    }
}

fn key(state: &AppState, kind: &str, value: &str) -> [u8; 32] {
    state.keys.hashing.hash(HashPurpose::LoginThrottle, format!("{kind}:{value}").as_bytes())
}

/// The remembered device of `user` that `token` names, if it is live.
async fn trusted_device(state: &AppState, user: &User, token: &str) -> Result<Option<String>, ApiError> {
    let token = token.trim();
    if !TokenKind::Device.is_well_formed(token) {
        return Ok(None);
    }
    let hash = state.keys.hashing.hash(HashPurpose::DeviceToken, token.as_bytes());
    let device = state.store.remembered_device(&user.id, &hash, state.now()).await?;
    Ok(device.map(|device| device.id))
}

/// Counts an attempt at the first factor of the account `address` names (`user`, if
/// it exists), or answers `too_many_attempts` with the wait, audited as
/// `login.throttled`. `address` is what the client typed, normalised when it parses.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim(
    state: &AppState,
    address: &str,
    user: Option<&User>,
    client: Client<'_>,
) -> Result<Claimed, ApiError> {
    let device = match (user, client.device) {
        (Some(user), Some(token)) => trusted_device(state, user, token).await?,
        _ => None,
    };
    let identity = match &device {
        Some(device_id) => key(state, "device", device_id),
        None => key(state, "account", address),
    };
    let ip = client.meta.ip.as_deref().map(|ip| key(state, "ip", ip));
    let throttle = &state.config.login_throttle;
    let mut keys = vec![ThrottleKey { hash: &identity, policy: throttle.account() }];
    if let Some(ip) = &ip {
        keys.push(ThrottleKey { hash: ip, policy: throttle.client_ip() });
    }
    let now = state.now();
    match state.store.claim_login_attempt(&keys, now).await? {
        LoginClaim::Granted => Ok(Claimed { identity, ip }),
        LoginClaim::Throttled { until } => {
            let event = Event::about("login.throttled", user.map(|u| u.id.as_str()), client.meta);
            audit::record(state, event.failed()).await;
            Err(ApiError::retry_after((until - now).max(1)))
        }
    }
}
