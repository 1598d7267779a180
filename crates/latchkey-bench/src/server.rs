//! The server under test: a child process of the release build, with its own data
//! directory and database, and its memory and CPU read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Server {
    pub base: String,
    pub child: Child,
    pub cold_start: Duration,
}

/// The environment that configures the server (and the CLI) for a run: lockout
/// limits raised so that wrong-code scenarios measure work, not throttling.
pub fn environment(
    data_dir: &Path,
    database_url: &str,
    master_key: &str,
    port: u16,
) -> Vec<(String, String)> {
    [
        ("LATCHKEY_DATA_DIR", data_dir.to_string_lossy().into_owned()),
        ("LATCHKEY_DATABASE__URL", database_url.to_owned()),
        ("LATCHKEY_KEYS__MASTER_KEY", master_key.to_owned()),
        ("LATCHKEY_LISTEN", format!("127.0.0.1:{port}")),
        ("LATCHKEY_LOCKOUT__FREE_FAILURES", "1000000000".to_owned()),
        ("LATCHKEY_LOCKOUT__LOCK_AFTER", "2000000000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs a `latchkey` subcommand with the run's environment and returns its stdout.
pub fn cli(binary: &Path, env: &[(String, String)], args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(binary).envs(env.iter().cloned()).args(args).output()?;
    if !output.status.success() {
        bail!("latchkey {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

impl Server {
    /// Starts the server and waits for the first 200 from `/readyz`.
    pub async fn start(binary: &Path, env: &[(String, String)], port: u16) -> anyhow::Result<Self> {
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        let child = Command::new(binary)
            .envs(env.iter().cloned())
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        loop {
            if let Ok(reply) = client.get(format!("{base}/readyz")).send().await
                && reply.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the server did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Self { base, child, cold_start: started.elapsed() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU seconds of a process (`self` for this one).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of those.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// The release binary: `--server`, or `target/release/latchkey` under the cargo target
/// directory.
pub fn binary(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        PathBuf::from(target).join("release").join("latchkey")
    })
}

/// CPU seconds the hypervisor took from this machine so far (the `steal` column of
/// `/proc/stat`, summed over all cores). A large share during a run means the figures
/// say more about the neighbours than about Latchkey.
pub fn steal_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().find(|l| l.starts_with("cpu "))?.to_owned();
            line.split_whitespace().nth(8)?.parse::<f64>().ok()
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}
