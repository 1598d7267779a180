//! Preparing a run: TOTP users in bulk through the store, others through the admin API, sessions for
//! the scenarios that need a signed-in user, and the supply of fresh codes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::Context;
use latchkey_core::factor::FactorType;
use latchkey_core::{base32, totp};
use latchkey_server::Config;
use latchkey_server::clock::SystemClock;
use latchkey_server::keys;
use latchkey_server::service::second_factor;
use latchkey_server::state::AppState;
use latchkey_store::{NewFactor, NewUser, TotpSettings};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use uuid::Uuid;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, Url};

pub const PASSWORD: &str = "correct horse battery staple bench";

/// A user with a TOTP factor whose key the bench knows.
pub struct TotpUser {
    pub id: String,
    pub key: Vec<u8>,
}

/// Creates `count` users through the admin API (`password` makes the server hash one
/// for each); returns `(id, email)` pairs.
pub async fn create_users(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    prefix: &str,
    count: usize,
    password: Option<&str>,
    concurrency: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let email = format!("{prefix}{i}@bench.example");
        let mut body = json!({ "email": email });
        if let Some(password) = password {
            body["password"] = json!(password);
        }
        let request = client.post(format!("{base}/v1/users")).header("x-api-key", api_key).json(&body);
        let permits = Arc::clone(&permits);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let reply: Value = request.send().await?.error_for_status()?.json().await?;
            let id = reply["id"].as_str().context("user id")?.to_owned();
            anyhow::Ok((id, email))
        }));
    }
    let mut users = Vec::with_capacity(count);
    for task in tasks {
        users.push(task.await??);
    }
    Ok(users)
}

/// Users per import transaction.
const IMPORT_BATCH: usize = 10_000;

/// Adds `count` users, each with a confirmed TOTP factor whose key the bench keeps,
/// straight into the server's database through the store's bulk import: creating a
/// million users through the API would take hours. Each secret is sealed with the
/// server's master key and bound to its user and factor, as enrolment does.
pub async fn import_totp_users(config: Config, count: usize) -> anyhow::Result<Vec<TotpUser>> {
    latchkey_server::startup::install_crypto_provider();
    let state = AppState::build(config, Arc::new(SystemClock)).await?;
    let params = state.totp;
    let settings = TotpSettings {
        algorithm: params.algorithm.as_str().into(),
        digits: i64::from(params.digits),
        period: i64::from(params.period),
    };
    let now = state.now();
    let mut imported = Vec::with_capacity(count);
    for first in (0..count).step_by(IMPORT_BATCH) {
        let batch = first..count.min(first + IMPORT_BATCH);
        let (mut users, mut factors) = (Vec::with_capacity(batch.len()), Vec::with_capacity(batch.len()));
        for i in batch {
            let (id, factor_id) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
            let email = format!("totp{i}@bench.example");
            let key = latchkey_server::random::bytes::<20>().to_vec();
            let secret =
                keys::seal_secret(&state.keys, &key, &second_factor::secret_context(&id, &factor_id))?;
            users.push(NewUser {
                id: id.clone(),
                email_normalized: email.clone(),
                email,
                phone: None,
                password_hash: None,
                created_at: now,
            });
            factors.push(NewFactor {
                id: factor_id,
                user_id: id.clone(),
                factor_type: FactorType::Totp,
                friendly_name: Some("bench".into()),
                secret: Some(secret),
                totp: Some(settings.clone()),
                destination: None,
                created_at: now,
                expires_at: now,
            });
            imported.push(TotpUser { id, key });
        }
        state.store.import_users(&users, &factors).await?;
    }
    Ok(imported)
}

/// Logs in with the bench password; returns the token response.
pub async fn login(client: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<Value> {
    let reply = client
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?
        .error_for_status()?;
    Ok(reply.json().await?)
}

/// Starts setting up a factor of `factor_type` for the user of `access`.
async fn start_factor(
    client: &reqwest::Client,
    base: &str,
    access: &str,
    factor_type: &str,
) -> anyhow::Result<Value> {
    let reply = client
        .post(format!("{base}/v1/me/factors"))
        .bearer_auth(access)
        .json(&json!({ "type": factor_type }))
        .send()
        .await?
        .error_for_status()?;
    Ok(reply.json().await?)
}

/// Enrols and confirms TOTP through the API as the signed-in user.
pub async fn enrol_via_api(
    client: &reqwest::Client,
    base: &str,
    access: &str,
) -> anyhow::Result<(String, Vec<u8>)> {
    let factor = start_factor(client, base, access, "totp").await?;
    let factor_id = factor["id"].as_str().context("factor id")?.to_owned();
    let key = base32::decode(factor["totp"]["secret"].as_str().context("secret")?).context("secret")?;
    let params = totp::Params::default();
    let code = totp::code_at_step(&key, params, params.step_at(now()));
    client
        .post(format!("{base}/v1/me/factors/{factor_id}/verify"))
        .bearer_auth(access)
        .json(&json!({ "code": code.as_str() }))
        .send()
        .await?
        .error_for_status()?;
    Ok((factor_id, key))
}

/// The origin the benchmarked server's relying party expects: its `public_url` is
/// the default, whose RP id is `localhost`.
pub const PASSKEY_ORIGIN: &str = "http://localhost:8080";

/// Registers a passkey, held by a software authenticator, for the user of `access`.
pub async fn enrol_passkey(
    client: &reqwest::Client,
    base: &str,
    access: &str,
) -> anyhow::Result<SoftPasskey> {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let factor = start_factor(client, base, access, "webauthn").await?;
    let factor_id = factor["id"].as_str().context("factor id")?.to_owned();
    let options: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": factor["webauthn"]["creation_options"] }))?;
    let mut authenticator = SoftPasskey::new(true);
    let credential = authenticator
        .do_registration(Url::parse(PASSKEY_ORIGIN)?, options)
        .map_err(|e| anyhow::anyhow!("the software authenticator failed: {e:?}"))?;
    client
        .post(format!("{base}/v1/me/factors/{factor_id}/verify"))
        .bearer_auth(access)
        .json(&json!({ "credential": credential }))
        .send()
        .await?
        .error_for_status()?;
    Ok(authenticator)
}

/// The bench's own clock: it is a client measuring real time.
#[allow(clippy::disallowed_methods)]
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Hands out first-use codes: each user's codes go T-1, T, T+1 around the current
/// step and never repeat a step, so every code is one the server must accept.
pub struct CodeSupply {
    keys: Vec<Vec<u8>>,
    last_steps: Vec<AtomicI64>,
}

impl CodeSupply {
    pub fn new(keys: Vec<Vec<u8>>, confirmed_at_step: Option<i64>) -> Self {
        let last = confirmed_at_step.unwrap_or(i64::MIN);
        let last_steps = keys.iter().map(|_| AtomicI64::new(last)).collect();
        Self { keys, last_steps }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// A fresh code for user `index`, or `None` when its window is used up.
    pub fn next(&self, index: usize) -> Option<String> {
        let params = totp::Params::default();
        let current = params.step_at(now());
        let last = &self.last_steps[index];
        let mut seen = last.load(Ordering::SeqCst);
        loop {
            let step = seen.saturating_add(1).max(current - 1);
            if step > current + 1 {
                return None;
            }
            match last.compare_exchange(seen, step, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(totp::code_at_step(&self.keys[index], params, step).to_string()),
                Err(actual) => seen = actual,
            }
        }
    }
}
