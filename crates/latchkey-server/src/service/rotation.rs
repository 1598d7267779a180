//! Master-key rotation: every value sealed under the master key (TOTP secrets and
//! WebAuthn credentials, queued messages, WebAuthn ceremonies, signing keys, webhook
//! secrets, the service's own secrets) is re-sealed under a new one, a batch at a time,
//! while the service keeps serving (each sealed value names the key that sealed it,
//! and instances given the other key as `keys.accepted_master_key` open both). It is
//! resumable: a run after a crash picks up what is not yet under the new key.
//!
//! Keyed hashes (refresh tokens, API keys, recovery codes, sent codes) cannot be
//! re-made without the values they hash, so the hashing key itself is kept: the first
//! rotation stores it sealed (`server_secrets.hashing`), and every instance uses the
//! stored one from then on instead of deriving it from its master key.

use latchkey_core::crypto::{HashKey, MasterKey, ServerKeys};
use latchkey_store::{CeremonyPurpose, SealedTable, SealedValue};

use crate::keys;
use crate::service::{outgoing, second_factor, webauthn, webhooks};
use crate::state::AppState;

const HASHING: &str = "hashing";

fn server_secret_context(name: &str) -> Vec<u8> {
    format!("server-secret:{name}").into_bytes()
}

/// The hashing key stored by a rotation, if one was: it replaces the derived one.
pub async fn stored_hashing_key(
    store: &dyn latchkey_store::Store,
    keys: &ServerKeys,
) -> anyhow::Result<Option<HashKey>> {
    let Some(stored) = store.server_secret(HASHING).await? else { return Ok(None) };
    let plain = keys::open_secret(keys, &stored, &server_secret_context(HASHING))
        .map_err(|e| anyhow::anyhow!("the stored hashing key does not open with the master key: {e}"))?;
    let bytes: [u8; 32] =
        plain.as_slice().try_into().map_err(|_| anyhow::anyhow!("the stored hashing key is not 32 bytes"))?;
    Ok(Some(HashKey::from_bytes(bytes)))
}

/// The associated data a value was sealed with, rebuilt from its row.
fn context(value: &SealedValue) -> Option<Vec<u8>> {
    let id = String::from_utf8(value.id.clone()).ok();
    Some(match value.table {
        SealedTable::Factors => {
            let (id, user) = (id?, value.user_id.as_deref()?);
            match value.kind.as_deref()? {
                "totp" => second_factor::secret_context(user, &id),
                "webauthn" => webauthn::credential_context(user, &id),
                _ => return None,
            }
        }
        SealedTable::Outbox => outgoing::payload_context(&id?),
        SealedTable::Ceremonies => {
            let purpose = CeremonyPurpose::parse(value.kind.as_deref()?)?;
            webauthn::ceremony_context(purpose, value.user_id.as_deref())
        }
        SealedTable::SigningKeys => keys::sealing_context(&id?),
        SealedTable::Webhooks => webhooks::secrets_context(&id?),
        SealedTable::ServerSecrets => server_secret_context(&id?),
    })
}

/// What a rotation did to one table.
#[derive(Debug, Clone, Copy)]
pub struct Resealed {
    pub table: SealedTable,
    pub resealed: u64,
    /// Values left as they were: they open with neither key.
    pub failed: usize,
}

/// Re-seals everything under `new`, `batch` values at a time.
pub async fn rotate_master(state: &AppState, new: &MasterKey, batch: u32) -> anyhow::Result<Vec<Resealed>> {
    let new_keys = new.derive();
    // First the hashing key, so that instances moving to the new master key keep it.
    if state.store.server_secret(HASHING).await?.is_none() {
        let hashing = state.keys.hashing.to_bytes();
        let sealed = keys::seal_secret(&new_keys, hashing.as_slice(), &server_secret_context(HASHING))?;
        state.store.insert_server_secret(HASHING, &sealed, state.now()).await?;
    }
    let mut report = Vec::new();
    for table in SealedTable::ALL {
        let mut done = Resealed { table, resealed: 0, failed: 0 };
        let mut failed = std::collections::HashSet::new();
        loop {
            let values = state.store.sealed_values(table, &new_keys.key_id, batch.max(1)).await?;
            let mut progressed = false;
            for value in &values {
                let resealed = context(value).and_then(|context| {
                    let plain = keys::open_secret(&state.keys, &value.secret, &context).ok()?;
                    keys::seal_secret(&new_keys, &plain, &context).ok()
                });
                match resealed {
                    Some(resealed) if state.store.reseal(value, &resealed).await? => {
                        done.resealed += 1;
                        progressed = true;
                    }
                    _ => {
                        failed.insert(value.id.clone());
                    }
                }
            }
            // A batch of nothing but values that will not move ends the table.
            if values.is_empty() || !progressed {
                break;
            }
        }
        done.failed = failed.len();
        tracing::info!(table = table.as_str(), resealed = done.resealed, failed = done.failed, "re-sealed");
        report.push(done);
    }
    Ok(report)
}
