//! The `latchkey` binary: `config check`, `migrate`, `apikey`, `user create`,
//! `user organization|recovery|mfa-reset|list|show|disable|enable|sessions-revoke|delete`,
//! `audit tail`, and
//! `serve` with graceful shutdown on SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, ServeLog, TestApp};

on_both_backends!(operator_commands_share_the_database_with_the_server, serve_starts_and_stops_on_sigterm);

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
const MASTER_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// `latchkey` with a clean environment apart from what the test sets.
fn latchkey(app: &TestApp) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LATCHKEY_KEYS__MASTER_KEY", MASTER_KEY)
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .arg("--database-url")
        .arg(&app.db.url)
        .current_dir(app.data_dir.path());
    command
}

fn run(mut command: Command, stdin: Option<&str>) -> (bool, String, String) {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The data directory holds the master key and, on SQLite, password hashes: a fresh one
/// is readable by the service's user alone, and so are the files in it.
#[test]
fn a_new_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data").join("latchkey");
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(root.path()).arg("--data-dir").arg(&data).arg("migrate");
    let (ok, _, stderr) = run(command, None);
    assert!(ok, "{stderr}");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    assert_eq!(mode(&data.join("master.key")), 0o600, "the generated master key");
    let mut database_files = 0;
    for name in ["latchkey.db", "latchkey.db-wal", "latchkey.db-shm"] {
        if data.join(name).exists() {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
            database_files += 1;
        }
    }
    assert!(database_files >= 1, "the SQLite database is in the data directory");
}

#[test]
fn config_check_refuses_unknown_keys_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latchkey.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nsignup_enabeld = false\n").unwrap();
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir.path()).args(["config", "check"]);
    let (ok, _, stderr) = run(command, None);
    assert!(!ok);
    assert!(stderr.contains("signup_enabeld"), "{stderr}");
    assert_eq!(stderr.matches("unknown field").count(), 1, "the error is printed once: {stderr}");

    // A misspelt environment variable is named as the operator wrote it.
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir.path()).env("LATCHKEY_SIGNUP_ENABELD", "0").args(["config", "check"]);
    std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n").unwrap();
    let (ok, _, stderr) = run(command, None);
    assert!(!ok && stderr.contains("LATCHKEY_SIGNUP_ENABELD"), "{stderr}");

    // A master key `serve` would refuse is refused here too.
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .current_dir(dir.path())
        .env("LATCHKEY_KEYS__MASTER_KEY", "abcd")
        .args(["config", "check"]);
    let (ok, _, stderr) = run(command, None);
    assert!(!ok && stderr.contains("keys.master_key") && !stderr.contains("abcd"), "{stderr}");

    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir.path()).args(["serve", "--log-format", "yaml"]);
    let (ok, _, stderr) = run(command, None);
    assert!(!ok && stderr.contains("possible values: text, json"), "{stderr}");

    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[keys]\nmaster_key = \"".to_owned() + MASTER_KEY + "\"\n",
    )
    .unwrap();
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .current_dir(dir.path())
        .env("LATCHKEY_SIGNUP_ENABLED", "false")
        .args(["config", "check"]);
    let (ok, stdout, stderr) = run(command, None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:9000\""), "{stdout}");
    assert!(stdout.contains("signup_enabled = false"), "{stdout}");
    assert!(stdout.contains("[redacted]") && !stdout.contains(MASTER_KEY), "{stdout}");

    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir.path()).args(["--database-url", "mysql://db/x", "config", "check"]);
    let (ok, _, stderr) = run(command, None);
    assert!(!ok && stderr.contains("unsupported database URL scheme"), "{stderr}");
}

/// A port another program holds fails at once, naming `--listen`, and before the
/// database is created or migrated.
#[test]
fn a_port_in_use_fails_before_the_database_is_touched() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir.path()).env("LATCHKEY_KEYS__MASTER_KEY", MASTER_KEY).args([
        "--data-dir",
        "data",
        "serve",
        "--listen",
        &taken,
    ]);
    let (ok, _, stderr) = run(command, None);
    assert!(!ok && stderr.contains(&taken) && stderr.contains("--listen"), "{stderr}");
    assert!(!dir.path().join("data").join("latchkey.db").exists(), "no database was created");
}

/// DESIGN rule 17: a real SMS provider with no country allow-list is allowed, with a
/// warning; the allow-list silences it.
#[test]
fn config_check_warns_when_texts_may_go_to_every_country() {
    let dir = tempfile::tempdir().unwrap();
    let check = |countries: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .current_dir(dir.path())
            .env("LATCHKEY_SMS__PROVIDER", "webhook")
            .env("LATCHKEY_SMS__WEBHOOK_URL", "https://sms.example/send")
            .env("LATCHKEY_SMS__WEBHOOK_SECRET", "a webhook secret of some length")
            .args(["config", "check"]);
        if let Some(countries) = countries {
            command.env("LATCHKEY_SMS__ALLOWED_COUNTRY_CODES", countries);
        }
        run(command, None)
    };
    let (ok, _, stderr) = check(None);
    assert!(ok && stderr.contains("warning: sms.allowed_country_codes is empty"), "{stderr}");
    let (ok, _, stderr) = check(Some("1,44"));
    assert!(ok && !stderr.contains("warning"), "{stderr}");
}

async fn operator_commands_share_the_database_with_the_server(app: TestApp) {
    let mut migrate = latchkey(&app);
    migrate.arg("migrate");
    let (ok, _, stderr) = run(migrate, None);
    assert!(ok, "{stderr}");

    let mut create = latchkey(&app);
    create.args(["apikey", "create", "--name", "ci", "--scope", "users:read", "--scope", "users:write"]);
    let (ok, key, stderr) = run(create, None);
    assert!(ok, "{stderr}");
    let scheme = if app.db.url.starts_with("postgres") { "postgres://" } else { "sqlite://" };
    assert!(stderr.contains(&format!(" in {scheme}")), "the CLI says which database it wrote to: {stderr}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("lk_") && !stderr.contains(&key), "the key is printed once, on stdout");
    let listed = app.admin(Method::GET, "/v1/users", &key, None).await;
    assert_eq!(listed.status, StatusCode::OK, "the server accepts a key made by the CLI");

    let mut user = latchkey(&app);
    user.args(["user", "create", "--email", "ops@example.com", "--password-stdin"]);
    let (ok, id, stderr) = run(user, Some(&format!("{PASSWORD}\n")));
    assert!(ok, "{stderr}");
    let fetched = app.admin(Method::GET, &format!("/v1/users/{}", id.trim()), &key, None).await;
    assert_eq!(fetched.body["email"], "ops@example.com");
    app.login("ops@example.com").await;

    let mut org = latchkey(&app);
    org.args([
        "user",
        "organization",
        "--email",
        "ops@example.com",
        "--org",
        "acme",
        "--role",
        "administrator",
    ]);
    let (ok, _, stderr) = run(org, None);
    assert!(ok, "{stderr}");
    let membership =
        app.admin(Method::GET, &format!("/v1/users/{}/organization", id.trim()), &key, None).await;
    assert_eq!(membership.body, json!({ "org_id": "acme", "role": "administrator", "mfa_enforced": false }));
    let mut bad_role = latchkey(&app);
    bad_role.args(["user", "organization", "--email", "ops@example.com", "--org", "acme", "--role", "king"]);
    assert!(!run(bad_role, None).0);

    // A user who lost every factor: a recovery link from the CLI, then a reset.
    let tokens = app.login("ops@example.com").await;
    app.enroll_confirmed(&crate::helpers::access(&tokens)).await;
    let mut recovery = latchkey(&app);
    recovery.args(["user", "recovery", "--email", "ops@example.com", "--reason", "ticket 7", "--print-link"]);
    let (ok, link, stderr) = run(recovery, None);
    assert!(ok && link.contains("/recover?token=lka_"), "{stderr}");
    assert!(!stderr.contains("lka_"), "the link is printed once, on stdout");
    assert_eq!(
        app.get_bearer("/v1/me", &crate::helpers::access(&tokens)).await.status,
        StatusCode::UNAUTHORIZED,
        "every session ended"
    );
    let token = link.trim().split("token=").nth(1).unwrap().to_owned();
    // The binary issued the link on the system clock, ahead of the test server's.
    app.advance(60);
    let used = app.post("/v1/auth/recovery", json!({ "token": token })).await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);
    app.enroll_confirmed(&crate::helpers::access(&used.body)).await;
    let mut reset = latchkey(&app);
    reset.args(["user", "mfa-reset", "--email", "ops@example.com"]);
    let (ok, _, stderr) = run(reset, None);
    assert!(ok && stderr.contains("removed 1 factors"), "{stderr}");
    let mut nobody = latchkey(&app);
    nobody.args(["user", "mfa-reset", "--email", "nobody@example.com"]);
    assert!(!run(nobody, None).0);

    // Looking at users, disabling one, ending sessions, the audit log, deleting.
    let cli = |args: &[&str]| {
        let mut command = latchkey(&app);
        command.args(args);
        run(command, None)
    };
    let (ok, listing, stderr) = cli(&["user", "list"]);
    assert!(ok && listing.contains("ops@example.com\t") && listing.contains("\tactive"), "{listing}{stderr}");
    assert!(stderr.contains(&format!(" in {scheme}")), "{stderr}");
    let (ok, listed, _) = cli(&["user", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert!(ok && listed.as_array().unwrap().iter().any(|u| u["email"] == "ops@example.com"));
    let (ok, shown, _) = cli(&["user", "show", "--email", "ops@example.com", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(ok && shown["factors"].as_array().unwrap().is_empty() && shown["disabled"] == false, "{shown}");
    let signed_in = app.login("ops@example.com").await;
    let (ok, _, stderr) = cli(&["user", "disable", "--email", "ops@example.com"]);
    assert!(ok, "{stderr}");
    let refused =
        app.post("/v1/auth/login", json!({ "email": "ops@example.com", "password": PASSWORD })).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "a disabled user cannot log in");
    assert_eq!(
        app.get_bearer("/v1/me", &crate::helpers::access(&signed_in)).await.status,
        StatusCode::UNAUTHORIZED,
        "their sessions ended"
    );
    assert!(cli(&["user", "enable", "--email", "ops@example.com"]).0);
    let again = app.login("ops@example.com").await;
    let (ok, _, stderr) = cli(&["user", "sessions-revoke", "--email", "ops@example.com"]);
    assert!(ok && stderr.contains("ended 1 sessions"), "{stderr}");
    assert_eq!(
        app.get_bearer("/v1/me", &crate::helpers::access(&again)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (ok, tail, _) = cli(&["audit", "tail", "--email", "ops@example.com", "--json"]);
    let kinds: Vec<String> = tail
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        ok && kinds.contains(&"user.disabled".to_owned()) && kinds.contains(&"recovery.issued".to_owned()),
        "{kinds:?}"
    );
    assert!(
        kinds.last().is_some_and(|k| k == "user.enabled" || k == "login.succeeded"),
        "oldest first: {kinds:?}"
    );

    let mut weak = latchkey(&app);
    weak.args(["user", "create", "--email", "weak@example.com", "--password-stdin"]);
    let (ok, _, stderr) = run(weak, Some("password\n"));
    assert!(!ok && stderr.contains("weak_password") && !stderr.contains("password\n"), "{stderr}");

    let mut list = latchkey(&app);
    list.args(["apikey", "list"]);
    let (ok, listing, _) = run(list, None);
    assert!(
        ok && listing.contains("ci") && listing.contains("users:read,users:write") && !listing.contains(&key)
    );
    let id = listing.split('\t').next().unwrap().to_owned();
    let mut revoke = latchkey(&app);
    revoke.args(["apikey", "revoke", &id]);
    assert!(run(revoke, None).0);
    // The server looked the key up moments ago; the revocation reaches it within the
    // lifetime of its cache.
    crate::admin::refused_within_the_cache_lifetime(&app, &key).await;
    let mut revoke_again = latchkey(&app);
    revoke_again.args(["apikey", "revoke", &id]);
    assert!(!run(revoke_again, None).0);

    let mut delete = latchkey(&app);
    delete.args(["user", "delete", "--email", "ops@example.com"]);
    assert!(run(delete, None).0);
    assert!(app.state.store.user_by_email("ops@example.com").await.unwrap().is_none());
}

async fn serve_starts_and_stops_on_sigterm(app: TestApp) {
    let mut serve = latchkey(&app);
    serve.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    serve.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = serve.spawn().unwrap();
    let log = ServeLog::watch(&mut child).await;
    let base = log.base.clone();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(reply) = app.client.get(format!("{base}/readyz")).send().await {
            ready = reply.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "latchkey serve became ready");
    // A whole two-factor flow against the binary, to check what its logs contain.
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut request = app.client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let reply = request.send().await.unwrap();
            let status = reply.status();
            (status, reply.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let credentials = json!({ "email": "sig@example.com", "password": PASSWORD });
    assert_eq!(post("/v1/auth/signup", None, credentials.clone()).await.0, StatusCode::ACCEPTED);
    let tokens = post("/v1/auth/login", None, credentials.clone()).await.1;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let factor = post("/v1/me/factors", Some(&access), json!({ "type": "totp" })).await.1;
    let factor_id = factor["id"].as_str().unwrap().to_owned();
    let secret = factor["totp"]["secret"].as_str().unwrap().to_owned();
    // The binary runs on the system clock: its codes come from that clock, read once,
    // so `next` stays one step ahead of `code` whenever the 30-second boundary falls.
    let now = latchkey_server::clock::Clock::now(&latchkey_server::clock::SystemClock);
    let code = crate::helpers::oathtool(&secret, now);
    let next = crate::helpers::oathtool(&secret, now + 30);
    let confirmed =
        post(&format!("/v1/me/factors/{factor_id}/verify"), Some(&access), json!({ "code": code })).await;
    assert_eq!(confirmed.0, StatusCode::OK, "{}", confirmed.1);
    let recovery = confirmed.1["recovery_codes"][0].as_str().unwrap().to_owned();
    let mfa_token =
        post("/v1/auth/login", None, credentials).await.1["mfa_token"].as_str().unwrap().to_owned();
    let wrong = post(
        "/v1/auth/mfa/verify",
        None,
        json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": "000000" }),
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNPROCESSABLE_ENTITY);
    let done = post(
        "/v1/auth/mfa/verify",
        None,
        json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": next }),
    )
    .await;
    assert_eq!(done.0, StatusCode::OK, "{}", done.1);
    let secrets = [
        PASSWORD.to_owned(),
        secret.clone(),
        code,
        next,
        recovery,
        mfa_token,
        access,
        tokens["refresh_token"].as_str().unwrap().to_owned(),
        done.1["access_token"].as_str().unwrap().to_owned(),
    ];
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    let logs = log.finish();
    assert!(exit.success(), "exit {exit:?}: {logs}");
    assert!(logs.contains("\"shutting down\"") || logs.contains("shutting down"), "{logs}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret, code or token reached the logs: {secret}");
    }
    assert!(
        logs.contains("\"mfa.failed\"") && logs.contains("\"mfa.verified\""),
        "audit lines are logged: {logs}"
    );
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "--log-format json: {line}");
    }
}
