//! The load generator: a fixed number of workers, each sending one request after
//! another until the time is up (or the scenario runs out of work), recording the
//! latency and status of every request.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Stats {
    pub latencies_us: Vec<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub elapsed: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
    }

    pub fn requests(&self) -> usize {
        self.latencies_us.len()
    }

    pub fn throughput(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at percentile `p` (0–100), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests(),
            "throughput_rps": self.throughput(),
            "p50_ms": self.percentile_ms(50.0),
            "p95_ms": self.percentile_ms(95.0),
            "p99_ms": self.percentile_ms(99.0),
            "max_ms": self.percentile_ms(100.0),
            "statuses": self.statuses.iter().map(|(s, c)| (s.to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// Runs `request(n)` (n = 0, 1, 2, ... shared by all workers) from `concurrency`
/// workers for `duration`. `request` returns the status, or `None` when there is no
/// more work.
pub async fn run<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<u16>> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let request = Arc::clone(&request);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut stats = Stats::default();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let sent = Instant::now();
                    let Some(status) = request(n).await else { break };
                    stats.latencies_us.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    *stats.statuses.entry(status).or_default() += 1;
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::default();
    for worker in workers {
        if let Ok(stats) = worker.await {
            total.merge(stats);
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Issues `request(n)` on a fixed schedule of `rate` per second for `duration`
/// (open loop: a slow answer does not delay the next request, so queueing shows in
/// the latencies), with at most `max_in_flight` outstanding; at that cap it waits, so
/// an achieved rate below `rate` means the server (or this client) could not keep up.
/// Stops early when `request` has no more work.
pub async fn run_at_rate<F, Fut>(rate: f64, duration: Duration, max_in_flight: usize, request: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<u16>> + Send + 'static,
{
    let started = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0u64;
    let mut stats = Stats::default();
    let record = |stats: &mut Stats, done: Result<Option<(u16, Duration)>, tokio::task::JoinError>| {
        if let Ok(Some((status, latency))) = done {
            stats.latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            *stats.statuses.entry(status).or_default() += 1;
        }
    };
    while started.elapsed() < duration {
        ticks.tick().await;
        while tasks.len() >= max_in_flight.max(1) {
            if let Some(done) = tasks.join_next().await {
                record(&mut stats, done);
            }
        }
        let future = request(n);
        n += 1;
        tasks.spawn(async move {
            let sent = Instant::now();
            future.await.map(|status| (status, sent.elapsed()))
        });
    }
    while let Some(done) = tasks.join_next().await {
        record(&mut stats, done);
    }
    stats.elapsed = started.elapsed();
    stats
}

/// Sends one GET to `url` every 10 ms for `duration`, timing each request alone.
pub async fn probe(url: String, duration: Duration) -> Stats {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut stats = Stats::default();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let sent = Instant::now();
        let status = status_of(client.get(&url)).await;
        stats.latencies_us.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        *stats.statuses.entry(status).or_default() += 1;
    }
    stats.elapsed = started.elapsed();
    stats
}

/// Sends a request and reads the whole body (so the connection is reused); the
/// status, or 0 when the request failed outright.
pub async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}
