//! `latchkey keys ...`: rotating the token-signing key and the master key while the
//! service runs (docs/OPERATIONS.md).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::database;
use crate::clock::rfc3339;
use crate::state::AppState;

#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// A new token-signing key: published at once, signing from three key refreshes
    /// later; the old key stays in the key set until every token it signed has expired.
    RotateSigning,
    /// Re-seal every sealed value under a new master key, in batches, while the
    /// service runs; resumable. Run it with the current master key configured, after
    /// giving every instance the new one as keys.accepted_master_key.
    RotateMaster {
        /// A file holding the new master key (64 hex digits or base64).
        #[arg(long)]
        new_key_file: PathBuf,
        /// Values re-sealed per batch.
        #[arg(long, default_value_t = 200)]
        batch: u32,
    },
}

pub(super) async fn run(state: AppState, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::RotateMaster { new_key_file, batch } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&new_key_file)
                    .with_context(|| format!("reading {}", new_key_file.display()))?,
            );
            let new = latchkey_core::crypto::MasterKey::parse(&text).map_err(|_| {
                anyhow::anyhow!("{} must hold 32 bytes as 64 hex digits or base64", new_key_file.display())
            })?;
            let report = crate::service::rotation::rotate_master(&state, &new, batch).await?;
            let mut failed = 0;
            for table in &report {
                println!(
                    "{:<20} {:>8} re-sealed {:>6} left",
                    table.table.as_str(),
                    table.resealed,
                    table.failed
                );
                failed += table.failed;
            }
            eprintln!(
                "every sealed value in {} is now under the new master key (id {}){}",
                database(&state),
                new.derive().key_id,
                if failed > 0 {
                    format!(", but {failed} opened with neither key and were left")
                } else {
                    String::new()
                }
            );
            if failed > 0 {
                bail!("{failed} sealed values could not be re-sealed");
            }
            Ok(())
        }
        KeysCommand::RotateSigning => {
            let config = &state.config;
            // Every instance reloads within key_refresh_secs; three of them is the margin.
            let publish_ahead = 3 * i64::try_from(config.tokens.key_refresh_secs).unwrap_or(60);
            // The longest a token lives: an access token, or a Prisme.ai session's.
            let longest = config.tokens.access_ttl_secs.max(config.prisme.session_ttl_secs);
            let retire_after = longest + publish_ahead + 60;
            let (kid, signs_from) = crate::keys::rotate_signing_key(
                state.store.as_ref(),
                &state.keys,
                state.now(),
                publish_ahead,
                retire_after,
            )
            .await?;
            eprintln!(
                "new signing key {kid} in {}: published now, signing from {}; the old key stays in the key set until {}",
                database(&state),
                rfc3339(signs_from),
                rfc3339(signs_from + retire_after)
            );
            println!("{kid}");
            Ok(())
        }
    }
}
