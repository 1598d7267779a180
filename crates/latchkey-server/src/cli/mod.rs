//! The `latchkey` command line: `serve`, `migrate`, `config check`, `user ...`,
//! `apikey create|list|revoke`, `audit tail`; `keys ...` (`keys.rs`) and `webhook ...`
//! (`webhook.rs`).

mod keys;
mod webhook;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::clock::{SystemClock, rfc3339};
use crate::config::{Config, Overrides};
use crate::service::accounts::{self, NewAccount};
use crate::service::api_keys;
use crate::startup::{Application, install_crypto_provider, shutdown_signal};
use crate::state::AppState;
use crate::telemetry;

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Self-hosted multi-factor authentication service")]
struct Cli {
    /// Configuration file (default: ./latchkey.toml if it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, generated keys, outbox).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://path or postgres://...
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on, such as 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        /// Log format: text or json.
        #[arg(long, value_parser = ["text", "json"])]
        log_format: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys for the admin API.
    Apikey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Read the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Rotate keys without downtime.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Manage the endpoints signed events are delivered to.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The newest events, oldest first: all of them, or one user's.
    Tail {
        /// Only this user's events.
        #[arg(long)]
        email: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Phone number in E.164 form.
        #[arg(long)]
        phone: Option<String>,
    },
    /// Put a user (by email) in an organisation with a role, or take them out of it.
    Organization {
        #[arg(long)]
        email: String,
        /// The organisation's id; without it, the user leaves their organisation.
        #[arg(long)]
        org: Option<String>,
        /// owner, administrator or member.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove every second factor and recovery code of a user (by email) at once; their
    /// sessions end.
    MfaReset {
        #[arg(long)]
        email: String,
    },
    /// Every user, oldest first: id, email, created, active or disabled.
    List {
        /// A JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One user: the account, their factors and live sessions.
    Show {
        #[arg(long)]
        email: String,
        /// A JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete a user with everything that belongs to them.
    Delete {
        #[arg(long)]
        email: String,
    },
    /// Disable a user: no login on any surface; every session ends.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// End every session of a user.
    SessionsRevoke {
        #[arg(long)]
        email: String,
    },
    /// Send a user (by email) who lost every factor a recovery link: every session ends
    /// now; the link removes the old factors and signs them in to set up a new one.
    Recovery {
        #[arg(long)]
        email: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
        /// Print the link instead of emailing it, to hand over another way.
        #[arg(long)]
        print_link: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// Scope to grant (repeatable): admin, users:read, users:write. Default: admin.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let mut overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        ..Overrides::default()
    };
    if let Command::Serve { listen, log_format } = &cli.command {
        overrides.listen = listen.clone();
        overrides.log_format = log_format.clone();
    }
    let config = Config::load(cli.config.as_deref(), &env, &overrides)?;
    match cli.command {
        Command::Config { command: ConfigCommand::Check } => {
            print!("{}", config.redacted_toml());
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            eprintln!("configuration is valid");
            Ok(())
        }
        Command::Serve { .. } => {
            telemetry::init(config.log_format);
            let app = Application::build(config).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            telemetry::init(config.log_format);
            install_crypto_provider();
            let database = crate::config::redacted_url(&config.database_url());
            AppState::build(config, Arc::new(SystemClock)).await?;
            eprintln!("the database {database} is up to date");
            Ok(())
        }
        Command::User { command } => user(open(config).await?, command).await,
        Command::Apikey { command } => apikey(open(config).await?, command).await,
        Command::Webhook { command } => webhook::run(open(config).await?, command).await,
        Command::Keys { command } => keys::run(open(config).await?, command).await,
        Command::Audit { command: AuditCommand::Tail { email, limit, json } } => {
            let state = open(config).await?;
            let user_id = match &email {
                Some(email) => Some(find_user(&state, email).await?.id),
                None => None,
            };
            let filter = latchkey_store::AuditFilter {
                user_id,
                event_type: None,
                since: None,
                until: None,
                limit: limit.clamp(1, 1000),
            };
            let mut events = state.store.audit_events(&filter).await?;
            events.reverse();
            eprintln!("audit events in {}", database(&state));
            for event in events {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": event.id, "occurred_at": rfc3339(event.occurred_at), "type": event.event_type,
                            "outcome": event.outcome, "user_id": event.user_id, "factor_type": event.factor_type,
                            "actor": event.actor, "ip": event.ip, "reason": event.reason,
                        })
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        rfc3339(event.occurred_at),
                        event.event_type,
                        event.outcome,
                        event.user_id.unwrap_or_default(),
                        event.actor.unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
    }
}

/// Where a command read or wrote, as it says so (without the URL's password).
fn database(state: &AppState) -> String {
    crate::config::redacted_url(&state.config.database_url())
}

/// `latchkey user ...`: each command says which database it used, on standard error.
async fn user(state: AppState, command: UserCommand) -> anyhow::Result<()> {
    let failed = |e: crate::http::error::ApiError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
    match command {
        UserCommand::Create { email, password_stdin, phone } => {
            let password = if password_stdin { Some(read_password_line()?) } else { None };
            let user =
                accounts::create_user(&state, NewAccount { email, password, phone }).await.map_err(failed)?;
            eprintln!("created user in {}", database(&state));
            println!("{}", user.id);
        }
        UserCommand::Organization { email, org, role } => {
            let role = latchkey_store::OrgRole::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role is owner, administrator or member"))?;
            let user = find_user(&state, &email).await?;
            let member = org.as_deref().map(|org| (org, role));
            crate::service::organizations::set_membership(
                &state,
                &user.id,
                member,
                "cli",
                &Default::default(),
            )
            .await
            .map_err(failed)?;
            match org {
                Some(org) => eprintln!("{email} is now {} of {org}", role.as_str()),
                None => eprintln!("{email} belongs to no organisation"),
            }
        }
        UserCommand::MfaReset { email } => {
            let user = find_user(&state, &email).await?;
            let by = crate::service::reauth::operator(&user.id, "cli".to_owned());
            let removed =
                crate::service::factors::reset_all(&state, &by, &Default::default()).await.map_err(failed)?;
            eprintln!("removed {removed} factors of {email} in {}", database(&state));
        }
        UserCommand::Recovery { email, reason, print_link } => {
            use crate::service::recovery::{self, Delivery};
            let user = find_user(&state, &email).await?;
            let by = crate::service::reauth::operator(&user.id, "cli".to_owned());
            let delivery = if print_link { Delivery::ToAdministrator } else { Delivery::Email };
            let issued =
                recovery::issue(&state, &by, &reason, delivery, &Default::default()).await.map_err(failed)?;
            let until = rfc3339(issued.expires_at);
            match (issued.link, issued.sent_to) {
                (Some(link), _) => {
                    eprintln!("a recovery link for {email}, good once until {until}; every session ended");
                    println!("{}", link.as_str());
                }
                (None, sent_to) => eprintln!(
                    "a recovery link is queued for {} (a running server sends it), good once until {until}; \
                     every session ended",
                    sent_to.unwrap_or_default()
                ),
            }
        }
        UserCommand::List { json } => {
            let mut users = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = state.store.list_users(after.as_deref(), 200).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                users.extend(page);
            }
            eprintln!("{} users in {}", users.len(), database(&state));
            if json {
                let listed: Vec<serde_json::Value> = users.iter().map(user_json).collect();
                println!("{}", serde_json::Value::Array(listed));
            } else {
                for user in &users {
                    let status = if user.disabled_at.is_some() { "disabled" } else { "active" };
                    println!("{}\t{}\t{}\t{status}", user.id, user.email, rfc3339(user.created_at));
                }
            }
        }
        UserCommand::Show { email, json } => {
            let user = find_user(&state, &email).await?;
            let factors = crate::service::factors::active_factors(&state, &user.id).await.map_err(failed)?;
            let sessions = state.store.user_sessions(&user.id, state.now()).await?;
            eprintln!("read from {}", database(&state));
            let mut shown = user_json(&user);
            shown["factors"] = factors
                .iter()
                .map(|f| serde_json::json!({ "id": f.id, "type": f.factor_type.as_str(), "name": f.friendly_name }))
                .collect();
            shown["live_sessions"] = sessions.len().into();
            shown["recovery_codes_remaining"] = state.store.recovery_codes_remaining(&user.id).await?.into();
            if json {
                println!("{shown}");
            } else {
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
        }
        UserCommand::Delete { email } => {
            let user = find_user(&state, &email).await?;
            accounts::delete(&state, &user.id, "cli".to_owned()).await.map_err(failed)?;
            eprintln!("deleted {email} from {}", database(&state));
        }
        UserCommand::Disable { email } => {
            let user = find_user(&state, &email).await?;
            accounts::set_disabled(&state, &user.id, true, "cli".to_owned(), &Default::default())
                .await
                .map_err(failed)?;
            eprintln!("disabled {email} in {}; every session ended", database(&state));
        }
        UserCommand::Enable { email } => {
            let user = find_user(&state, &email).await?;
            accounts::set_disabled(&state, &user.id, false, "cli".to_owned(), &Default::default())
                .await
                .map_err(failed)?;
            eprintln!("enabled {email} in {}", database(&state));
        }
        UserCommand::SessionsRevoke { email } => {
            let user = find_user(&state, &email).await?;
            let ended = state.store.revoke_other_sessions(&user.id, None, state.now()).await?;
            eprintln!("ended {ended} sessions of {email} in {}", database(&state));
        }
    }
    Ok(())
}

/// A user as the listing and `show` print them.
fn user_json(user: &latchkey_store::User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "email": user.email,
        "phone": user.phone,
        "created_at": rfc3339(user.created_at),
        "disabled": user.disabled_at.is_some(),
    })
}

/// The user with this email address, for the commands that name users by it.
async fn find_user(state: &AppState, email: &str) -> anyhow::Result<latchkey_store::User> {
    let normalized = latchkey_core::email::Email::parse(email)
        .map_err(|_| anyhow::anyhow!("{email} is not an email address"))?
        .normalized;
    state.store.user_by_email(&normalized).await?.ok_or_else(|| anyhow::anyhow!("no user {email}"))
}

async fn open(config: Config) -> anyhow::Result<AppState> {
    install_crypto_provider();
    AppState::build(config, Arc::new(SystemClock)).await
}

fn read_password_line() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(SecretString::from(password))
}

async fn apikey(state: AppState, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { name, scopes } => {
            let created = api_keys::create(&state, &name, &scopes).await?;
            eprintln!(
                "created API key {} ({name}) in {}; it is shown only this once:",
                created.id,
                database(&state)
            );
            println!("{}", created.secret);
            Ok(())
        }
        ApiKeyCommand::List => {
            for key in state.store.list_api_keys().await? {
                let status =
                    key.revoked_at.map_or_else(|| "active".to_owned(), |t| format!("revoked {}", rfc3339(t)));
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    key.id,
                    key.name,
                    key.scopes.join(","),
                    rfc3339(key.created_at),
                    status
                );
            }
            Ok(())
        }
        ApiKeyCommand::Revoke { id } => {
            if !api_keys::revoke(&state, &id).await? {
                bail!("no active API key has id {id}");
            }
            eprintln!("revoked API key {id} in {}", database(&state));
            Ok(())
        }
    }
}
