//! What a run measured, printed as a table or written as JSON.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{Args, Measured};

pub struct Report<'a> {
    pub args: &'a Args,
    pub cold_start: Duration,
    /// How long importing the TOTP users took.
    pub preparation: Duration,
    /// The database's size on disk after the run.
    pub database_bytes: Option<u64>,
    pub idle_rss_kib: u64,
    pub settled_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub results: Vec<Measured>,
}

impl Report<'_> {
    /// Timing is reported, never judged; but a server error or a failed request under
    /// load is a fault.
    pub fn faults(&self) -> anyhow::Result<()> {
        let faults: Vec<String> = self
            .results
            .iter()
            .flat_map(|m| {
                m.stats.statuses.iter().filter(|(status, _)| **status == 0 || **status >= 500).map(
                    move |(status, count)| {
                        format!(
                            "{}: {count} × {}",
                            m.name,
                            if *status == 0 { "failed request".to_owned() } else { status.to_string() }
                        )
                    },
                )
            })
            .collect();
        anyhow::ensure!(faults.is_empty(), "faults under load: {}", faults.join(", "));
        Ok(())
    }

    fn healthz_rps(&self) -> Option<f64> {
        self.results.iter().find(|m| m.name == "healthz").map(|m| m.stats.throughput())
    }

    /// The ratio column: throughput over `/healthz`'s, except for the half-peak runs,
    /// whose rate was set by the bench.
    pub fn ratio(&self, m: &Measured) -> Option<f64> {
        if m.name.ends_with("@50%") { None } else { self.healthz_rps().map(|hz| m.stats.throughput() / hz) }
    }

    pub fn print(&self) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "latchkey-bench: {} on {cores} cores, {} TOTP users, concurrency {}, {} s per scenario",
            self.args.database, self.args.users, self.args.concurrency, self.args.duration
        );
        println!(
            "cold start to ready: {:.0} ms; server RSS idle {:.1} MiB, after setup {:.1} MiB, peak {:.1} MiB",
            self.cold_start.as_secs_f64() * 1e3,
            self.idle_rss_kib as f64 / 1024.0,
            self.settled_rss_kib as f64 / 1024.0,
            self.peak_rss_kib as f64 / 1024.0
        );
        println!(
            "TOTP users imported in {:.1} s; database on disk after the run: {}",
            self.preparation.as_secs_f64(),
            self.database_bytes.map_or("unknown".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
        );
        println!(
            "{:<14} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>6}  statuses",
            "scenario",
            "req/s",
            "vs hz",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "srv cpu",
            "cli cpu",
            "rss MiB",
            "steal"
        );
        for m in &self.results {
            let ratio = self.ratio(m).map_or(String::from("-"), |r| format!("{:.1}%", 100.0 * r));
            let statuses: Vec<String> = m.stats.statuses.iter().map(|(s, c)| format!("{s}:{c}")).collect();
            println!(
                "{:<14} {:>9.0} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.0}% {:>8.0}% {:>8.1} {:>5.0}%  {}",
                m.name,
                m.stats.throughput(),
                ratio,
                m.stats.percentile_ms(50.0),
                m.stats.percentile_ms(95.0),
                m.stats.percentile_ms(99.0),
                m.stats.percentile_ms(100.0),
                m.server_cpu * 100.0,
                m.client_cpu * 100.0,
                m.server_rss_max_kib as f64 / 1024.0,
                m.steal * 100.0,
                statuses.join(" ")
            );
            if let Some(probe) = &m.probe {
                println!(
                    "{:<14} /healthz probe beside it: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} probes)",
                    "",
                    probe.percentile_ms(50.0),
                    probe.percentile_ms(99.0),
                    probe.percentile_ms(100.0),
                    probe.requests()
                );
            }
        }
    }

    pub fn to_json(&self) -> Value {
        let scenarios: Vec<Value> = self
            .results
            .iter()
            .map(|m| {
                let mut entry = m.stats.to_json();
                entry["scenario"] = json!(m.name);
                entry["vs_healthz"] = json!(self.ratio(m));
                entry["server_cpu"] = json!(m.server_cpu);
                entry["client_cpu"] = json!(m.client_cpu);
                entry["server_rss_max_mib"] = json!(m.server_rss_max_kib as f64 / 1024.0);
                entry["cpu_steal"] = json!(m.steal);
                if let Some(probe) = &m.probe {
                    entry["healthz_probe"] = probe.to_json();
                }
                entry
            })
            .collect();
        json!({
            "database": self.args.database,
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "users": self.args.users,
            "concurrency": self.args.concurrency,
            "duration_secs": self.args.duration,
            "cold_start_ms": self.cold_start.as_secs_f64() * 1e3,
            "preparation_secs": self.preparation.as_secs_f64(),
            "database_mib": self.database_bytes.map(|b| b as f64 / 1_048_576.0),
            "rss_idle_mib": self.idle_rss_kib as f64 / 1024.0,
            "rss_after_setup_mib": self.settled_rss_kib as f64 / 1024.0,
            "rss_peak_mib": self.peak_rss_kib as f64 / 1024.0,
            "scenarios": scenarios,
        })
    }
}
