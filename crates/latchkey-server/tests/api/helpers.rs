//! The test application: a server on 127.0.0.1:0 over a fresh database, a manual
//! clock, and a small HTTP client.

use std::sync::Arc;

use latchkey_server::clock::ManualClock;
use latchkey_server::config::Config;
use latchkey_server::service::api_keys;
use latchkey_server::state::AppState;
use latchkey_server::{Application, startup};
use latchkey_store::Backend;
use latchkey_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

/// Runs each named test on SQLite and on PostgreSQL, as `name::sqlite` and
/// `name::postgres`. The test is an `async fn(TestApp)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::spawn(latchkey_store::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::TestApp::spawn(latchkey_store::Backend::Postgres).await).await
            }
        }
    )*};
}

/// Like `on_both_backends!`, for tests that start servers themselves: the test is an
/// `async fn(TestDatabase)`.
macro_rules! on_both_backends_raw {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(latchkey_store::testing::TestDatabase::create(latchkey_store::Backend::Sqlite).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(latchkey_store::testing::TestDatabase::create(latchkey_store::Backend::Postgres).await).await
            }
        }
    )*};
}

/// Runs each named `async fn(Backend)` on SQLite and on PostgreSQL; for tests that
/// configure real delivery counterparts before the server starts.
macro_rules! with_each_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(latchkey_store::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(latchkey_store::Backend::Postgres).await
            }
        }
    )*};
}

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    /// `http://` and the address of `/metrics`' own listener, when it has one.
    pub metrics_base: Option<String>,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub db: TestDatabase,
    pub data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response with its status, headers and JSON body (`Value::Null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

pub fn test_config(db: &TestDatabase, data_dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.database.url = Some(db.url.clone());
    config.database.max_connections = 5;
    config.keys.master_key = Some(SecretString::from("11".repeat(32)));
    config.passwords.max_concurrent_hashes = 2;
    config
}

impl TestApp {
    /// Starts a server over a fresh database.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(TestDatabase::create(backend).await, adjust).await
    }

    /// Starts a server over `db`, configured by `adjust`.
    pub async fn spawn_on(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&db, data_dir.path());
        adjust(&mut config);
        let clock = ManualClock::starting_now();
        let app = Application::build_with_clock(config, Arc::new(clock.clone()))
            .await
            .expect("build the application");
        let base = format!("http://{}", app.local_addr().unwrap());
        let metrics_base = app.metrics_addr().map(|address| format!("http://{address}"));
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        startup::install_crypto_provider();
        Self {
            base,
            metrics_base,
            client,
            clock,
            state,
            db,
            data_dir,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body ({status}): {}", String::from_utf8_lossy(&bytes)))
        };
        Reply { status, headers, body }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(&body)).await
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    pub async fn admin(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path)).header("x-api-key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Signs up `email` with [`PASSWORD`].
    pub async fn signup(&self, email: &str) {
        let reply = self.post("/v1/auth/signup", json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, email: &str) -> Value {
        let reply = self.post("/v1/auth/login", json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Trades a refresh token for new tokens.
    pub async fn refresh_tokens(&self, refresh_token: &str) -> Value {
        let reply = self.post("/v1/auth/refresh", json!({ "refresh_token": refresh_token })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Signs up and logs in; returns the token response.
    pub async fn user(&self, email: &str) -> Value {
        self.signup(email).await;
        self.login(email).await
    }

    /// Creates an API key with the given scopes (admin when empty).
    pub async fn api_key(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        api_keys::create(&self.state, "tests", &scopes).await.unwrap().secret
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs a real counterpart (an authenticator, a QR decoder) and returns its output.
pub fn tool(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("{program} is needed for this test (scripts/ensure-tools installs it): {e}")
    });
    assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The code oathtool computes from a base32 `secret` at Unix time `at`. Tests pass the
/// server's clock (`app.now()`), never the wall clock, so a 30-second boundary passing
/// mid-test cannot turn a code into a replay.
pub fn oathtool(secret: &str, at: i64) -> String {
    tool("oathtool", &["--totp", "-b", secret, "--now", &format!("@{at}")])
}

/// The code pyotp computes from a whole `otpauth://` URI at Unix time `at`.
pub fn pyotp(uri: &str, at: i64) -> String {
    tool("python3", &["-c", &format!("import pyotp; print(pyotp.parse_uri({uri:?}).at({at}))")])
}

/// The `access_token` of a token response.
pub fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The `refresh_token` of a token response.
pub fn refresh(tokens: &Value) -> String {
    tokens["refresh_token"].as_str().unwrap().to_owned()
}

/// A confirmed TOTP factor and what a test needs to make its codes.
pub struct Enrolled {
    pub factor_id: String,
    pub otpauth_uri: String,
    pub key: Vec<u8>,
    pub recovery_codes: Vec<String>,
}

/// The secret key in an `otpauth://` URI.
pub fn key_of(uri: &str) -> Vec<u8> {
    let secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
    latchkey_core::base32::decode(secret).unwrap()
}

impl TestApp {
    pub fn now(&self) -> i64 {
        use latchkey_server::clock::Clock;
        self.clock.now()
    }

    /// The default-parameter TOTP code for `key`, `offset` steps from the test clock.
    pub fn code(&self, key: &[u8], offset: i64) -> String {
        let params = latchkey_core::totp::Params::default();
        latchkey_core::totp::code_at_step(key, params, params.step_at(self.now()) + offset).to_string()
    }

    /// Starts TOTP enrolment; returns the 201 response body.
    pub async fn enroll(&self, access: &str) -> Value {
        let reply = self
            .send(
                self.client
                    .post(self.url("/v1/me/factors"))
                    .bearer_auth(access)
                    .json(&json!({ "type": "totp" })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Confirms a factor with `code`.
    pub async fn confirm(&self, access: &str, factor_id: &str, code: &str) -> Reply {
        self.send(
            self.client
                .post(self.url(&format!("/v1/me/factors/{factor_id}/verify")))
                .bearer_auth(access)
                .json(&json!({ "code": code })),
        )
        .await
    }

    /// Enrols and confirms a TOTP factor with a code from the test clock.
    pub async fn enroll_confirmed(&self, access: &str) -> Enrolled {
        let body = self.enroll(access).await;
        let factor_id = body["id"].as_str().unwrap().to_owned();
        let otpauth_uri = body["totp"]["otpauth_uri"].as_str().unwrap().to_owned();
        let key = key_of(&otpauth_uri);
        let reply = self.confirm(access, &factor_id, &self.code(&key, 0)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let recovery_codes = reply.body["recovery_codes"]
            .as_array()
            .map(|codes| codes.iter().map(|c| c.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        Enrolled { factor_id, otpauth_uri, key, recovery_codes }
    }

    /// Logs in a user with MFA; returns the `mfa_token`.
    pub async fn mfa_token(&self, email: &str) -> String {
        let body = self.login(email).await;
        assert_eq!(body["mfa_required"], true, "{body}");
        body["mfa_token"].as_str().unwrap().to_owned()
    }

    pub async fn mfa_verify(&self, body: Value) -> Reply {
        self.post("/v1/auth/mfa/verify", body).await
    }
}

impl TestApp {
    /// Where the file outbox writes messages (no SMTP server configured).
    pub fn outbox(&self) -> std::path::PathBuf {
        self.data_dir.path().join("outbox")
    }

    /// `method path` with an optional Bearer `token` and JSON `body`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn post_bearer(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).bearer_auth(token).json(&body)).await
    }

    /// The single integer `sql` returns, read straight from the test's database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.column(sql).await[0].parse().unwrap()
    }

    /// The first column of every row `sql` returns, as text, read straight from the
    /// test's database (write the query to return text: `CAST(x AS TEXT)`).
    pub async fn column(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.db.url).await.unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows.iter()
            .map(|row| {
                row.try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                    .unwrap()
            })
            .collect()
    }

    /// Advances the test clock.
    pub fn advance(&self, seconds: i64) {
        self.clock.advance(seconds);
    }
}

/// Polls all the futures at once on this task (they borrow the test app, so they
/// cannot be spawned) and returns their outputs in order.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Option<std::pin::Pin<Box<F>>>> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.unwrap()).collect()
}

/// The four API surfaces, for tests that run one rule through each of them.
#[derive(Debug, Clone, Copy)]
pub enum Surface {
    Native,
    Prisme,
    Lerian,
    Mudbase,
    Flashback,
}

pub const SURFACES: [Surface; 5] =
    [Surface::Native, Surface::Prisme, Surface::Lerian, Surface::Mudbase, Surface::Flashback];

/// The error code of `reply` in its surface's own format.
pub fn error_code(surface: Surface, reply: &Reply) -> Value {
    match surface {
        Surface::Native => reply.body["error"]["code"].clone(),
        Surface::Prisme => reply.body["error"].clone(),
        Surface::Lerian | Surface::Mudbase => reply.body["code"].clone(),
        // The login's `{error_code, message}`, or the envelope's `error` text.
        Surface::Flashback => match reply.body.get("error_code") {
            Some(code) => code.clone(),
            None => reply.body["error"].clone(),
        },
    }
}

/// The log of a `latchkey serve` child, read as it is written (a full pipe would stall
/// the server), and the address it listens on.
pub struct ServeLog {
    pub base: String,
    text: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeLog {
    /// Takes `child`'s stderr (it must run `serve --listen 127.0.0.1:0 --log-format
    /// json`) and waits for the line naming the port the kernel gave it, so no other
    /// process can take the port between a probe and the bind.
    pub async fn watch(child: &mut std::process::Child) -> Self {
        let stderr = child.stderr.take().expect("stderr is piped");
        let text = Arc::new(std::sync::Mutex::new(String::new()));
        let sink = Arc::clone(&text);
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        for _ in 0..400 {
            let address = text.lock().unwrap().lines().find_map(|line| {
                // JSON logs put an event's fields at the top level.
                let entry: Value = serde_json::from_str(line).ok()?;
                (entry["message"] == "latchkey is listening")
                    .then(|| entry["address"].as_str().map(str::to_owned))?
            });
            if let Some(address) = address {
                return Self { base: format!("http://{address}"), text, reader: Some(reader) };
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("latchkey serve did not say where it listens: {}", text.lock().unwrap());
    }

    /// Everything logged, once the child has exited.
    pub fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.text.lock().unwrap())
    }
}
