//! `latchkey-bench`: starts a release build of Latchkey on SQLite or PostgreSQL,
//! prepares users with TOTP factors, and drives each scenario for a fixed time at a
//! fixed concurrency, reporting throughput, latency percentiles, statuses, and the
//! CPU and memory of the server (and the CPU of this client, to show it is not the
//! bottleneck). See docs/PERFORMANCE.md.

mod load;
mod report;
mod server;
mod setup;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use latchkey_server::Config;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::load::{Stats, status_of};
use crate::report::Report;
use crate::server::{Server, cpu_seconds, memory_kib};
use crate::setup::{CodeSupply, PASSWORD};

#[derive(Parser)]
#[command(name = "latchkey-bench", about = "Measure a release build of Latchkey")]
struct Args {
    /// The latchkey binary (default: $CARGO_TARGET_DIR/release/latchkey or target/release/latchkey).
    #[arg(long)]
    server: Option<PathBuf>,
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// PostgreSQL server to create the run's database on.
    #[arg(long, env = "TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Users with a TOTP factor (for the verify scenarios).
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Users with a password (for the setup and login scenarios).
    #[arg(long, default_value_t = 100)]
    login_users: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Scenarios to run, comma-separated.
    #[arg(long, default_value = "healthz,verify-ok,verify-bad,setup,login-mfa,passkey-login")]
    scenarios: String,
    /// Whether the server keeps Prometheus metrics (`off`: to measure their cost).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    metrics: String,
    /// Whether `verify-ok` is followed by a run at half its peak rate (its p99 target).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    half_peak: String,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Another latchkey binary to judge against `--server`: each scenario runs beside
    /// `/healthz` on one binary, then the other, alternating which goes first, for
    /// `--rounds` rounds, and the ratios between them are printed.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Rounds of a `--compare` run.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One scenario's results with the resources used while it ran.
struct Measured {
    name: &'static str,
    stats: Stats,
    client_cpu: f64,
    server_cpu: f64,
    server_rss_max_kib: u64,
    /// CPU taken by the hypervisor during the scenario, as a share of all cores.
    steal: f64,
    probe: Option<Stats>,
}

/// How a scenario sends its requests.
#[derive(Clone, Copy)]
enum Pace {
    /// `--concurrency` workers, each sending as fast as answers come back.
    Closed,
    /// A fixed number of requests per second, whatever the answers do.
    Open(f64),
}

async fn measure<F, Fut>(
    name: &'static str,
    server_pid: u32,
    args: &Args,
    pace: Pace,
    with_probe: Option<&str>,
    request: F,
) -> Measured
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<u16>> + Send + 'static,
{
    let duration = Duration::from_secs(args.duration);
    let (client_before, server_before) = (cpu_seconds("self"), cpu_seconds(&server_pid.to_string()));
    let steal_before = server::steal_seconds();
    let running = Arc::new(AtomicBool::new(true));
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (running, rss_max) = (Arc::clone(&running), Arc::clone(&rss_max));
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                rss_max.fetch_max(memory_kib(server_pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // A steady /healthz probe (one request every 10 ms) beside the load, to see what
    // the scenario does to other requests.
    let probe = with_probe.map(|base| tokio::spawn(load::probe(format!("{base}/healthz"), duration)));
    let stats = match pace {
        Pace::Closed => load::run(args.concurrency, duration, request).await,
        Pace::Open(rate) => load::run_at_rate(rate, duration, args.concurrency * 4, request).await,
    };
    running.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let probe = match probe {
        Some(task) => task.await.ok(),
        None => None,
    };
    let wall = stats.elapsed.as_secs_f64().max(1e-9);
    Measured {
        name,
        client_cpu: (cpu_seconds("self") - client_before) / wall,
        server_cpu: (cpu_seconds(&server_pid.to_string()) - server_before) / wall,
        server_rss_max_kib: rss_max.load(Ordering::Relaxed),
        steal: (server::steal_seconds() - steal_before) / (wall * cores() as f64),
        stats,
        probe,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let binary = server::binary(args.server.clone());
    for binary in std::iter::once(&binary).chain(args.compare.as_ref()) {
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: build it with `cargo build --release --bin latchkey`",
            binary.display()
        );
    }
    if let Some(other) = &args.compare {
        return compare(&args, &binary, other).await;
    }
    let wanted: Vec<&str> = args.scenarios.split(',').map(str::trim).collect();
    let report = measure_binary(&args, &binary, &wanted).await?;
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.to_json())?)?;
        eprintln!("results written to {}", path.display());
    }
    report.faults()
}

/// Runs `wanted` on `binary`, one scenario after another, against a server started
/// for the run and users prepared for it.
async fn measure_binary<'a>(
    args: &'a Args,
    binary: &std::path::Path,
    wanted: &[&str],
) -> anyhow::Result<Report<'a>> {
    let needs = |scenario: &str| wanted.contains(&scenario);
    let work = tempfile::tempdir()?;
    let database = Database::create(args, work.path()).await?;
    let master_key: String =
        latchkey_server::random::bytes::<32>().iter().map(|b| format!("{b:02x}")).collect();
    let port = server::free_port()?;
    let mut env = server::environment(work.path(), &database.url, &master_key, port);
    env.push(("LATCHKEY_METRICS__ENABLED".into(), (args.metrics == "on").to_string()));
    let api_key = server::cli(binary, &env, &["apikey", "create", "--name", "bench"])?;
    let mut server = Server::start(binary, &env, port).await?;
    let pid = server.pid();
    let idle_rss_kib = memory_kib(pid, "VmRSS:");
    eprintln!(
        "ready in {:.0} ms; preparing {} TOTP users and {} login users",
        server.cold_start.as_secs_f64() * 1e3,
        args.users,
        args.login_users
    );

    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency * 2).build()?;
    let base = server.base.clone();
    let mut config = Config::default();
    config.database.url = Some(database.url.clone());
    config.data_dir = work.path().join("bench-state");
    config.keys.master_key = Some(SecretString::from(master_key.clone()));
    let started = std::time::Instant::now();
    let totp_users = setup::import_totp_users(config, args.users).await?;
    let preparation = started.elapsed();
    // Password users only for the scenarios that sign in: each costs Argon2 hashes.
    let login_users = |scenario: &str| if needs(scenario) { args.login_users } else { 0 };
    let password_users =
        setup::create_users(&client, &base, &api_key, "setup", login_users("setup"), Some(PASSWORD), 4)
            .await?;
    let mut setup_tokens = Vec::new();
    for (_, email) in &password_users {
        setup_tokens.push(
            setup::login(&client, &base, email).await?["access_token"].as_str().context("token")?.to_owned(),
        );
    }
    let mfa_users =
        setup::create_users(&client, &base, &api_key, "mfa", login_users("login-mfa"), Some(PASSWORD), 4)
            .await?;
    let mut mfa_accounts = Vec::new();
    for (_, email) in &mfa_users {
        let access =
            setup::login(&client, &base, email).await?["access_token"].as_str().context("token")?.to_owned();
        let (factor_id, key) = setup::enrol_via_api(&client, &base, &access).await?;
        mfa_accounts.push((email.clone(), factor_id, key));
    }
    let passkey_users = setup::create_users(
        &client,
        &base,
        &api_key,
        "passkey",
        login_users("passkey-login"),
        Some(PASSWORD),
        4,
    )
    .await?;
    let mut passkey_accounts = Vec::new();
    for (_, email) in &passkey_users {
        let access =
            setup::login(&client, &base, email).await?["access_token"].as_str().context("token")?.to_owned();
        let authenticator = setup::enrol_passkey(&client, &base, &access).await?;
        passkey_accounts.push((email.clone(), std::sync::Mutex::new(authenticator)));
    }
    let settled_rss_kib = memory_kib(pid, "VmRSS:");

    let mut results: Vec<Measured> = Vec::new();
    let verify_ids: Arc<Vec<String>> = Arc::new(totp_users.iter().map(|u| u.id.clone()).collect());
    for &scenario in wanted {
        let client = client.clone();
        let base = base.clone();
        let key = api_key.clone();
        let measured = match scenario {
            "healthz" => measure("healthz", pid, args, Pace::Closed, None, healthz(&client, &base)).await,
            "verify-ok" => {
                let codes =
                    Arc::new(CodeSupply::new(totp_users.iter().map(|u| u.key.clone()).collect(), None));
                let ids = Arc::clone(&verify_ids);
                let request = || verify_ok(&client, &base, &key, &codes, &ids);
                let peak = measure("verify-ok", pid, args, Pace::Closed, None, request()).await;
                if args.half_peak == "off" {
                    peak
                } else {
                    let half = Pace::Open(peak.stats.throughput() / 2.0);
                    results.push(peak);
                    measure("verify-ok@50%", pid, args, half, None, request()).await
                }
            }
            "verify-bad" => {
                let ids = Arc::clone(&verify_ids);
                measure("verify-bad", pid, args, Pace::Closed, None, move |n| {
                    let id = &ids[usize::try_from(n).unwrap_or(0) % ids.len()];
                    let request = client
                        .post(format!("{base}/v1/users/{id}/verify"))
                        .header("x-api-key", &key)
                        .json(&json!({ "code": "000000" }));
                    async move { Some(status_of(request).await) }
                })
                .await
            }
            "setup" => {
                let tokens = Arc::new(setup_tokens.clone());
                measure("setup", pid, args, Pace::Closed, None, move |n| {
                    let token = &tokens[usize::try_from(n).unwrap_or(0) % tokens.len()];
                    let request = client
                        .post(format!("{base}/v1/me/factors"))
                        .bearer_auth(token)
                        .json(&json!({ "type": "totp" }));
                    async move { Some(status_of(request).await) }
                })
                .await
            }
            "login-mfa" => {
                let params = latchkey_core::totp::Params::default();
                let confirmed = params.step_at(setup::now());
                let codes = Arc::new(CodeSupply::new(
                    mfa_accounts.iter().map(|(_, _, key)| key.clone()).collect(),
                    Some(confirmed),
                ));
                let accounts =
                    Arc::new(mfa_accounts.iter().map(|(e, f, _)| (e.clone(), f.clone())).collect::<Vec<_>>());
                let probe_base = base.clone();
                measure("login-mfa", pid, args, Pace::Closed, Some(&probe_base), move |n| {
                    let index = usize::try_from(n).unwrap_or(0) % accounts.len();
                    let (email, factor_id) = accounts[index].clone();
                    let code = codes.next(index);
                    let (client, base) = (client.clone(), base.clone());
                    async move {
                        let code = code?;
                        let login = client
                            .post(format!("{base}/v1/auth/login"))
                            .json(&json!({ "email": email, "password": PASSWORD }))
                            .send()
                            .await
                            .ok()?;
                        if !login.status().is_success() {
                            return Some(login.status().as_u16());
                        }
                        let body: Value = login.json().await.ok()?;
                        let verify = client.post(format!("{base}/v1/auth/mfa/verify")).json(&json!({
                            "mfa_token": body["mfa_token"], "factor_id": factor_id, "code": code
                        }));
                        Some(status_of(verify).await)
                    }
                })
                .await
            }
            "passkey-login" => {
                let accounts = Arc::new(std::mem::take(&mut passkey_accounts));
                measure("passkey-login", pid, args, Pace::Closed, None, move |n| {
                    let accounts = Arc::clone(&accounts);
                    let (client, base) = (client.clone(), base.clone());
                    async move {
                        let index = usize::try_from(n).unwrap_or(0) % accounts.len();
                        let email = accounts[index].0.clone();
                        let options = client
                            .post(format!("{base}/v1/auth/passkey/options"))
                            .json(&json!({ "email": email }))
                            .send()
                            .await
                            .ok()?;
                        if !options.status().is_success() {
                            return Some(options.status().as_u16());
                        }
                        let body: Value = options.json().await.ok()?;
                        let credential = passkey_answer(&accounts[index].1, &body["request_options"])?;
                        let login = client
                            .post(format!("{base}/v1/auth/passkey/login"))
                            .json(&json!({ "credential": credential }));
                        Some(status_of(login).await)
                    }
                })
                .await
            }
            other => anyhow::bail!("unknown scenario {other}"),
        };
        results.push(measured);
    }
    let peak_rss_kib = memory_kib(pid, "VmHWM:");
    let database_bytes = database.size_bytes(work.path()).await;
    server.stop();
    database.drop_if_postgres(args).await;

    Ok(Report {
        args,
        cold_start: server.cold_start,
        preparation,
        database_bytes,
        idle_rss_kib,
        settled_rss_kib,
        peak_rss_kib,
        results,
    })
}

/// `--compare`: each scenario beside `/healthz`, on `first` and `second` in turn.
async fn compare(args: &Args, first: &std::path::Path, second: &std::path::Path) -> anyhow::Result<()> {
    let scenarios: Vec<&str> = args.scenarios.split(',').map(str::trim).filter(|s| *s != "healthz").collect();
    // (scenario, binary index) -> [(req/s, share of /healthz)] over the rounds.
    let mut runs: std::collections::BTreeMap<(usize, usize), Vec<(f64, f64)>> = Default::default();
    for round in 0..args.rounds.max(1) {
        for (index, &scenario) in scenarios.iter().enumerate() {
            let order = if (round + index) % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let binary = [first, second][which];
                eprintln!(
                    "round {} of {}: {scenario} on {}",
                    round + 1,
                    args.rounds.max(1),
                    binary.display()
                );
                let report = measure_binary(args, binary, &["healthz", scenario]).await?;
                report.faults()?;
                let measured = report.results.iter().find(|m| m.name == scenario).context("no result")?;
                let ratio = report.ratio(measured).unwrap_or(0.0);
                runs.entry((index, which)).or_default().push((measured.stats.throughput(), ratio));
            }
        }
    }
    let mean = |values: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        values.iter().map(pick).sum::<f64>() / values.len().max(1) as f64
    };
    println!(
        "latchkey-bench --compare: {} , concurrency {}, {} s per scenario, {} rounds",
        args.database,
        args.concurrency,
        args.duration,
        args.rounds.max(1)
    );
    println!("A = {}", first.display());
    println!("B = {}", second.display());
    println!(
        "{:<14} {:>9} {:>8} {:>9} {:>8} {:>9} {:>11}",
        "scenario", "A req/s", "A vs hz", "B req/s", "B vs hz", "B/A req", "B/A vs hz"
    );
    for (index, scenario) in scenarios.iter().enumerate() {
        let (a, b) = (&runs[&(index, 0)], &runs[&(index, 1)]);
        let (a_rps, b_rps) = (mean(a, |r| r.0), mean(b, |r| r.0));
        let (a_share, b_share) = (mean(a, |r| r.1), mean(b, |r| r.1));
        println!(
            "{:<14} {:>9.0} {:>7.1}% {:>9.0} {:>7.1}% {:>9.2} {:>11.2}",
            scenario,
            a_rps,
            100.0 * a_share,
            b_rps,
            100.0 * b_share,
            b_rps / a_rps.max(1e-9),
            b_share / a_share.max(1e-9)
        );
    }
    Ok(())
}

/// `GET /healthz`.
fn healthz(
    client: &reqwest::Client,
    base: &str,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<u16>> + Send>> + Send + Sync + 'static
{
    let (client, url) = (client.clone(), format!("{base}/healthz"));
    move |_| {
        let request = client.get(&url);
        Box::pin(async move { Some(status_of(request).await) })
    }
}

/// What the user's software authenticator answers to sign-in `options`; `None` if it
/// cannot (counted as a failed request).
fn passkey_answer(
    authenticator: &std::sync::Mutex<webauthn_authenticator_rs::softpasskey::SoftPasskey>,
    options: &Value,
) -> Option<Value> {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    let options: webauthn_rs::prelude::RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).ok()?;
    let origin = webauthn_rs::prelude::Url::parse(setup::PASSKEY_ORIGIN).ok()?;
    let answer = authenticator.lock().ok()?.do_authentication(origin, options).ok()?;
    serde_json::to_value(answer).ok()
}

/// The sidecar verification of a fresh TOTP code for the next user in turn.
fn verify_ok(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    codes: &Arc<CodeSupply>,
    ids: &Arc<Vec<String>>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<u16>> + Send>> + Send + Sync + 'static
{
    let (client, base, key, codes, ids) =
        (client.clone(), base.to_owned(), key.to_owned(), Arc::clone(codes), Arc::clone(ids));
    move |n| {
        let index = usize::try_from(n).unwrap_or(0) % codes.len();
        let request = codes.next(index).map(|code| {
            client
                .post(format!("{base}/v1/users/{}/verify", ids[index]))
                .header("x-api-key", &key)
                .json(&json!({ "code": code }))
        });
        Box::pin(async move {
            match request {
                Some(request) => Some(status_of(request).await),
                None => None,
            }
        })
    }
}

struct Database {
    url: String,
    postgres_name: Option<String>,
}

impl Database {
    async fn create(args: &Args, dir: &std::path::Path) -> anyhow::Result<Self> {
        match args.database.as_str() {
            "sqlite" => Ok(Self { url: format!("sqlite://{}/bench.db", dir.display()), postgres_name: None }),
            "postgres" => {
                sqlx::any::install_default_drivers();
                let admin =
                    sqlx::AnyPool::connect(&args.postgres_url).await.context("connecting to PostgreSQL")?;
                let name = format!("latchkey_bench_{}", std::process::id());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&admin)
                    .await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await?;
                admin.close().await;
                // The same server and options (`?sslmode=…`), the run's own database.
                let (url, query) = args.postgres_url.split_once('?').unwrap_or((&args.postgres_url, ""));
                let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
                let query = if query.is_empty() { String::new() } else { format!("?{query}") };
                Ok(Self { url: format!("{base}/{name}{query}"), postgres_name: Some(name) })
            }
            other => anyhow::bail!("--database must be sqlite or postgres, not {other}"),
        }
    }

    /// The database's size on disk: SQLite's files (with the write-ahead log), or what
    /// PostgreSQL reports for the run's database.
    async fn size_bytes(&self, dir: &std::path::Path) -> Option<u64> {
        if self.postgres_name.is_none() {
            let files = std::fs::read_dir(dir).ok()?;
            return Some(
                files
                    .flatten()
                    .filter(|f| f.file_name().to_string_lossy().starts_with("bench.db"))
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum(),
            );
        }
        let pool = sqlx::AnyPool::connect(&self.url).await.ok()?;
        let size: i64 =
            sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&pool).await.ok()?;
        pool.close().await;
        u64::try_from(size).ok()
    }

    async fn drop_if_postgres(&self, args: &Args) {
        let Some(name) = &self.postgres_name else { return };
        if let Ok(admin) = sqlx::AnyPool::connect(&args.postgres_url).await {
            let _ =
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&admin)
                    .await;
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
