//! `latchkey webhook ...`: the endpoints signed events are delivered to.

use clap::Subcommand;

use super::database;
use crate::clock::rfc3339;
use crate::service::webhooks;
use crate::state::AppState;

#[derive(Subcommand)]
pub(super) enum WebhookCommand {
    /// Register an endpoint; prints its signing secret, shown only this once.
    Add {
        #[arg(long)]
        url: String,
        /// An event type to deliver (repeat, or comma-separate): user.created,
        /// factor.confirmed, mfa.verified, mfa.failed, login.failed, ...
        #[arg(long = "event", required = true, value_delimiter = ',')]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Every endpoint: id, URL, event types.
    List {
        /// A JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint; events queued for it are dropped.
    Remove { id: String },
    /// A new signing secret; the old one keeps signing beside it for 24 hours.
    RotateSecret { id: String },
    /// The endpoint's latest delivery attempts, newest first.
    Attempts {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub(super) async fn run(state: AppState, command: WebhookCommand) -> anyhow::Result<()> {
    let failed = |e: crate::http::error::ApiError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
    match command {
        WebhookCommand::Add { url, events, description } => {
            let (endpoint, secret) =
                webhooks::create(&state, &url, events, description).await.map_err(failed)?;
            eprintln!(
                "added webhook {} ({}) in {}; its signing secret is shown only this once:",
                endpoint.id,
                endpoint.event_types.join(","),
                database(&state)
            );
            println!("{secret}");
        }
        WebhookCommand::List { json } => {
            let endpoints = webhooks::list(&state).await.map_err(failed)?;
            eprintln!("{} webhook endpoints in {}", endpoints.len(), database(&state));
            let shown: Vec<serde_json::Value> = endpoints
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "id": e.id, "url": e.url, "description": e.description,
                        "event_types": e.event_types, "created_at": rfc3339(e.created_at),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::from(shown));
            } else {
                for e in &endpoints {
                    println!("{}  {}  {}", e.id, e.url, e.event_types.join(","));
                }
            }
        }
        WebhookCommand::Remove { id } => {
            webhooks::remove(&state, &id).await.map_err(failed)?;
            eprintln!("removed webhook {id} from {}", database(&state));
        }
        WebhookCommand::RotateSecret { id } => {
            let secret = webhooks::rotate_secret(&state, &id).await.map_err(failed)?;
            eprintln!(
                "new signing secret for webhook {id} in {} (the old one signs for 24 hours more):",
                database(&state)
            );
            println!("{secret}");
        }
        WebhookCommand::Attempts { id, limit } => {
            let attempts = webhooks::attempts(&state, &id, limit).await.map_err(failed)?;
            eprintln!("{} attempts of webhook {id} in {}", attempts.len(), database(&state));
            for a in attempts {
                let status = a.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
                let error = a.error.unwrap_or_default();
                println!(
                    "{}  {}  #{}  {status}  {}  {error}",
                    rfc3339(a.attempted_at),
                    a.event_type,
                    a.attempt,
                    a.event_id
                );
            }
        }
    }
    Ok(())
}
