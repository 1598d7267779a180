//! DESIGN rule 3, the logging half: the release binary, logging everything at `trace`
//! level, is driven through every surface (native, Prisme.ai, Lerian, Mudbase, the
//! magic-link page and the CLI), and afterwards its log must hold none of the
//! passwords, TOTP secrets and codes, email and SMS codes, link tokens, recovery
//! codes, access, refresh and MFA tokens or API keys it handed out or was sent.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use latchkey_server::clock::{Clock, SystemClock};
use latchkey_store::testing::TestDatabase;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::contact::{sms_code, wait_for_text};
use crate::helpers::{PASSWORD, ServeLog, oathtool};
use crate::mail;

on_both_backends_raw!(no_secret_reaches_the_logs_at_trace_level_on_any_surface);

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");
const MASTER_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// The binary serving on its own port and data directory, logging at `trace`.
struct Server {
    child: Option<Child>,
    log: Option<ServeLog>,
    base: String,
    client: reqwest::Client,
    data_dir: tempfile::TempDir,
    database: String,
    /// Every value that must never be logged, with what it is.
    secrets: Vec<(&'static str, String)>,
}

impl Server {
    fn command(data_dir: &std::path::Path, database: &str) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "trace")
            .env("LATCHKEY_KEYS__MASTER_KEY", MASTER_KEY)
            .env("LATCHKEY_MAGIC_LINK__REDIRECT_URL", "https://app.example/signed-in")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--database-url")
            .arg(database);
        command
    }

    async fn start(db: &TestDatabase) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = Self::command(data_dir.path(), &db.url);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let log = ServeLog::watch(&mut child).await;
        let base = log.base.clone();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let database = db.url.clone();
        let server = Self {
            child: Some(child),
            log: Some(log),
            base,
            client,
            data_dir,
            database,
            secrets: Vec::new(),
        };
        for _ in 0..200 {
            let ready = server.client.get(format!("{}/readyz", server.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not become ready");
    }

    fn keep(&mut self, what: &'static str, value: &str) -> String {
        assert!(value.len() >= 6, "{what}: {value:?}");
        self.secrets.push((what, value.to_owned()));
        value.to_owned()
    }

    /// Keeps every string in `value` under `fields` (and their array items) as secrets.
    fn keep_fields(&mut self, value: &Value, fields: &[(&'static str, &str)]) {
        for (what, field) in fields {
            match &value[*field] {
                Value::String(s) => {
                    self.keep(what, s);
                }
                Value::Array(items) => {
                    for item in items {
                        self.keep(what, item.as_str().unwrap());
                    }
                }
                other => panic!("{field} is {other}"),
            }
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, token, Some(body)).await;
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A code from the binary's own clock (the system clock), `steps` periods on.
    fn totp(&self, secret: &str, steps: i64) -> String {
        oathtool(secret, SystemClock.now() + 30 * steps)
    }

    fn outbox(&self) -> std::path::PathBuf {
        self.data_dir.path().join("outbox")
    }

    /// Stops the server and returns everything it logged.
    fn stop(&mut self) -> String {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "exit {exit:?}");
        self.log.take().unwrap().finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn native(server: &mut Server) {
    let credentials = json!({ "email": "nat@example.com", "password": PASSWORD });
    server.keep("a password", PASSWORD);
    server.post("/v1/auth/signup", None, credentials.clone()).await;
    let wrong = json!({ "email": "nat@example.com", "password": "a wrong guess at it" });
    server.keep("a wrong password", "a wrong guess at it");
    let (status, _) = server.call(reqwest::Method::POST, "/v1/auth/login", None, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let tokens = server.post("/v1/auth/login", None, credentials.clone()).await;
    server.keep_fields(&tokens, &[("an access token", "access_token"), ("a refresh token", "refresh_token")]);
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    let factor = server.post("/v1/me/factors", Some(&access), json!({ "type": "totp" })).await;
    let secret = server.keep("a TOTP secret", factor["totp"]["secret"].as_str().unwrap());
    server.keep("an otpauth URI", factor["totp"]["otpauth_uri"].as_str().unwrap());
    let factor_id = factor["id"].as_str().unwrap().to_owned();
    let code = server.keep("a TOTP code", &server.totp(&secret, 0));
    let confirmed = server
        .post(&format!("/v1/me/factors/{factor_id}/verify"), Some(&access), json!({ "code": code }))
        .await;
    server.keep_fields(&confirmed, &[("a recovery code", "recovery_codes")]);

    // Email and SMS codes, each used to confirm its factor.
    let body = json!({ "type": "email", "email": "nat.mail@example.com" });
    let email = server.post("/v1/me/factors", Some(&access), body).await;
    let email_code = mail::nth(&server.outbox(), "nat.mail@example.com", 1).await.code();
    server.keep("an email code", &email_code);
    let path = format!("/v1/me/factors/{}/verify", email["id"].as_str().unwrap());
    server.post(&path, Some(&access), json!({ "code": email_code })).await;
    let sms =
        server.post("/v1/me/factors", Some(&access), json!({ "type": "sms", "phone": "+14155550177" })).await;
    let text = wait_for_text(&server.outbox(), "+14155550177").await;
    let sms_code = sms_code(&text);
    server.keep("an SMS code", &sms_code);
    let path = format!("/v1/me/factors/{}/verify", sms["id"].as_str().unwrap());
    server.post(&path, Some(&access), json!({ "code": sms_code })).await;

    // A login: a wrong code, then the right one, then a recovery code; a refresh.
    let step = server.post("/v1/auth/login", None, credentials.clone()).await;
    let mfa_token = server.keep("an MFA token", step["mfa_token"].as_str().unwrap());
    let wrong = json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": "000000" });
    let (status, _) = server.call(reqwest::Method::POST, "/v1/auth/mfa/verify", None, Some(wrong)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let next = server.keep("a TOTP code", &server.totp(&secret, 1));
    let done = server
        .post(
            "/v1/auth/mfa/verify",
            None,
            json!({ "mfa_token": mfa_token, "factor_id": factor_id, "code": next }),
        )
        .await;
    server.keep_fields(&done, &[("an access token", "access_token"), ("a refresh token", "refresh_token")]);
    let step = server.post("/v1/auth/login", None, credentials).await;
    let mfa_token = server.keep("an MFA token", step["mfa_token"].as_str().unwrap());
    let recovery = confirmed["recovery_codes"][0].as_str().unwrap();
    server
        .post("/v1/auth/mfa/verify", None, json!({ "mfa_token": mfa_token, "recovery_code": recovery }))
        .await;
    let refreshed =
        server.post("/v1/auth/refresh", None, json!({ "refresh_token": done["refresh_token"] })).await;
    server.keep_fields(
        &refreshed,
        &[("an access token", "access_token"), ("a refresh token", "refresh_token")],
    );
}

async fn magic_link(server: &mut Server) {
    server.post("/v1/auth/signup", None, json!({ "email": "link@example.com", "password": PASSWORD })).await;
    server.post("/v1/auth/magic-link", None, json!({ "email": "link@example.com" })).await;
    let link = mail::nth(&server.outbox(), "link@example.com", 1).await.link();
    let token = server.keep("a link token", link.split("token=").nth(1).unwrap());
    // The link is on the default public URL; the server listens on a port of its own.
    assert!(link.starts_with("http://127.0.0.1:8080/magic-link?token="), "{link}");
    let page = server.client.get(format!("{}/magic-link?token={token}", server.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    server.keep("a CSRF cookie", cookie.split_once('=').unwrap().1);
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let csrf = server.keep("a CSRF token", csrf);
    let confirmed = server
        .client
        .post(format!("{}/magic-link", server.base))
        .header(COOKIE, cookie)
        .form(&[("token", token.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    let location = confirmed.headers()[LOCATION].to_str().unwrap().to_owned();
    let fragment: Vec<(String, String)> =
        serde_urlencoded::from_str(location.split_once('#').unwrap().1).unwrap();
    for (name, value) in fragment {
        if name == "access_token" || name == "refresh_token" {
            server.keep("a token from a link", &value);
        }
    }
}

async fn prisme(server: &mut Server) {
    server.post("/v1/auth/signup", None, json!({ "email": "pri@example.com", "password": PASSWORD })).await;
    let credentials = json!({ "email": "pri@example.com", "password": PASSWORD });
    let login = server.post("/v2/login", None, credentials.clone()).await;
    let token = server.keep("a Prisme token", login["token"].as_str().unwrap());
    let setup = json!({ "method": "totp", "currentPassword": PASSWORD });
    let secret =
        server.post("/v2/user/mfa", Some(&token), setup).await["secret"].as_str().unwrap().to_owned();
    server.keep("a TOTP secret", &secret);
    let login = server.post("/v2/login", None, credentials).await;
    let token = server.keep("a Prisme token", login["token"].as_str().unwrap());
    let code = server.keep("a TOTP code", &server.totp(&secret, 0));
    server.post("/v2/login/mfa", Some(&token), json!({ "totp": code })).await;
}

async fn lerian(server: &mut Server) {
    server.post("/v1/auth/signup", None, json!({ "email": "ler@example.com", "password": PASSWORD })).await;
    let grant = json!({ "grantType": "password", "username": "ler@example.com", "password": PASSWORD });
    let tokens = server.post("/v1/login/oauth/access_token", None, grant.clone()).await;
    server.keep_fields(
        &tokens,
        &[("a Lerian access token", "accessToken"), ("a Lerian refresh token", "refreshToken")],
    );
    let access = tokens["accessToken"].as_str().unwrap().to_owned();
    let (_, me) = server.call(reqwest::Method::GET, "/v1/me", Some(&access), None).await;
    let id = me["id"].as_str().unwrap().to_owned();
    let setup =
        server.post(&format!("/v1/users/{id}/mfa/setup"), Some(&access), json!({ "mfaType": "app" })).await;
    server.keep_fields(
        &setup,
        &[("a TOTP secret", "secret"), ("an otpauth URI", "url"), ("a recovery code", "recoveryCodes")],
    );
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let code = server.keep("a TOTP code", &server.totp(&secret, 0));
    let verify = json!({ "passcode": code, "mfaType": "app", "secret": secret });
    server.post(&format!("/v1/users/{id}/mfa/verify"), Some(&access), verify).await;
    let enable = json!({ "recoveryCode": setup["recoveryCodes"][0], "mfaType": "app", "secret": secret });
    server.post(&format!("/v1/users/{id}/mfa/enable"), Some(&access), enable).await;
    let step = server.post("/v1/login/oauth/access_token", None, grant).await;
    let mfa_token = server.keep("a Lerian MFA token", step["mfaToken"].as_str().unwrap());
    let next = server.keep("a TOTP code", &server.totp(&secret, 1));
    let verify = json!({ "mfaToken": mfa_token, "mfaType": "app", "passcode": next });
    let tokens = server.post("/v1/login/mfa/verify", None, verify).await;
    server.keep_fields(
        &tokens,
        &[("a Lerian access token", "accessToken"), ("a Lerian refresh token", "refreshToken")],
    );
}

async fn mudbase(server: &mut Server) {
    server.post("/v1/auth/signup", None, json!({ "email": "mud@example.com", "password": PASSWORD })).await;
    let credentials = json!({ "email": "mud@example.com", "password": PASSWORD });
    let login = server.post("/api/auth/login", None, credentials.clone()).await;
    server.keep_fields(&login, &[("a Mudbase token", "token"), ("a Mudbase refresh token", "refreshToken")]);
    let token = login["token"].as_str().unwrap().to_owned();
    let setup = server.post("/api/users/2fa/setup", Some(&token), json!({})).await;
    server.keep_fields(&setup, &[("a TOTP secret", "secret"), ("a backup code", "backupCodes")]);
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let code = server.keep("a TOTP code", &server.totp(&secret, 0));
    server.post("/api/users/2fa/verify", Some(&token), json!({ "token": code })).await;
    let next = server.keep("a TOTP code", &server.totp(&secret, 1));
    let mut with_code = credentials;
    with_code["totpToken"] = json!(next);
    let login = server.post("/api/auth/login", None, with_code).await;
    server.keep_fields(&login, &[("a Mudbase token", "token"), ("a Mudbase refresh token", "refreshToken")]);
    let refreshed =
        server.post("/api/auth/refresh", None, json!({ "refreshToken": login["refreshToken"] })).await;
    server.keep_fields(
        &refreshed,
        &[("a Mudbase token", "token"), ("a Mudbase refresh token", "refreshToken")],
    );
}

async fn api_key(server: &mut Server) {
    let mut create = Server::command(server.data_dir.path(), &server.database);
    create.args(["apikey", "create", "--name", "logs"]);
    let output = create.output().unwrap();
    assert!(output.status.success());
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    server.keep("an API key", &key);
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&key), "the CLI logs no key it prints");
    let listed = server
        .client
        .get(format!("{}/v1/users", server.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
}

async fn no_secret_reaches_the_logs_at_trace_level_on_any_surface(db: TestDatabase) {
    let mut server = Server::start(&db).await;
    native(&mut server).await;
    magic_link(&mut server).await;
    prisme(&mut server).await;
    lerian(&mut server).await;
    mudbase(&mut server).await;
    api_key(&mut server).await;
    // Let the delivery worker finish logging what it sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.stop();
    assert!(logs.lines().count() > 100 && logs.contains("TRACE"), "trace logging was on");
    assert!(logs.contains("mfa.verified") && logs.contains("mfa.failed"), "the flows were logged");
    let kinds: std::collections::BTreeSet<&str> = server.secrets.iter().map(|(what, _)| *what).collect();
    assert!(kinds.len() >= 20, "every kind of secret was collected: {kinds:?}");
    // Each line's timestamp is left out of the search: its six digits of microseconds
    // matched a six-digit code by chance about once in forty runs.
    let logged: Vec<&str> = logs
        .lines()
        .map(|line| match line.split_once(' ') {
            Some((time, rest)) if time.len() >= 20 && time.ends_with('Z') && time.starts_with("20") => rest,
            _ => line,
        })
        .collect();
    for (what, value) in &server.secrets {
        let leak = logged.iter().find(|line| line.contains(value.as_str()));
        // The line is shown with the value masked, to tell a leak from a chance match.
        assert!(
            leak.is_none(),
            "{what} reached the logs: {}",
            leak.unwrap_or(&"").replace(value.as_str(), "<HERE>")
        );
    }
}
