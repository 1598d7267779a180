//! Prometheus metrics: one registry per running service (not the process-wide recorder
//! of the `metrics` crate, so two services in one process, as in the tests, count
//! apart), fed by the HTTP layer ([`Metrics::http_request`]), the audit trail
//! ([`Metrics::audit_event`]: every login and second-factor decision passes there) and
//! the delivery worker ([`Metrics::message`]); the gauges are read when scraped
//! ([`Metrics::render`]). Labels never hold user data: routes are templates
//! (`/v1/users/{id}`), never paths.

use std::time::Duration;

use ::metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

const HTTP_REQUESTS: &str = "latchkey_http_requests_total";
const HTTP_DURATION: &str = "latchkey_http_request_duration_seconds";
const HTTP_SHED: &str = "latchkey_http_requests_shed_total";
const LOGINS: &str = "latchkey_logins_total";
const SECOND_FACTOR: &str = "latchkey_second_factor_attempts_total";
const LOCKOUTS: &str = "latchkey_second_factor_lockouts_total";
const MESSAGES: &str = "latchkey_messages_total";
const QUEUE_DEPTH: &str = "latchkey_outbox_queued_messages";
const QUEUE_AGE: &str = "latchkey_outbox_oldest_message_age_seconds";
const POOL_CONNECTIONS: &str = "latchkey_db_pool_connections";
const POOL_MAX: &str = "latchkey_db_pool_max_connections";
const POOL_ACQUIRE: &str = "latchkey_db_pool_acquire_seconds";
const HASH_QUEUE: &str = "latchkey_password_hash_queue_length";

/// Seconds: from half a millisecond (a cached answer) to ten seconds (a time-out).
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// What a decision recorded in the audit trail counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Login(&'static str),
    SecondFactor(&'static str),
    Lockout,
}

/// The counter an audit event feeds, with its outcome label; `None` for events that
/// are not logins or second-factor decisions.
fn counted(event_type: &str) -> Option<Counted> {
    Some(match event_type {
        "login.succeeded" => Counted::Login("succeeded"),
        "login.failed" => Counted::Login("failed"),
        "login.throttled" => Counted::Login("throttled"),
        "mfa.verified" | "recovery_code.used" => Counted::SecondFactor("succeeded"),
        "mfa.failed" | "webauthn.counter_regressed" => Counted::SecondFactor("failed"),
        "mfa.replay_refused" => Counted::SecondFactor("replay_refused"),
        "mfa.throttled" => Counted::SecondFactor("throttled"),
        "mfa.refused_locked" => Counted::SecondFactor("locked"),
        "mfa.locked" => Counted::Lockout,
        _ => return None,
    })
}

/// What the gauges show, read from the store and the hashing pool at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub queued_messages: i64,
    pub oldest_message_age_secs: i64,
    pub pool_in_use: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
    pub pool_acquire: Duration,
    pub hash_queue: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // The buckets are constants the builder accepts (finite, not empty).
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let counters: [(&'static str, &'static str); 6] = [
            (HTTP_REQUESTS, "HTTP requests answered, by route template, method and status."),
            (HTTP_SHED, "HTTP requests refused with 503 because too many were in flight."),
            (LOGINS, "First-factor logins by surface and outcome (succeeded, failed, throttled)."),
            (
                SECOND_FACTOR,
                "Second-factor attempts by surface, factor type and outcome \
                 (succeeded, failed, replay_refused, throttled, locked).",
            ),
            (LOCKOUTS, "Second factors locked after too many failures, by surface."),
            (MESSAGES, "Delivery attempts of queued messages by channel, kind and outcome (sent, failed)."),
        ];
        for (name, help) in counters {
            self.recorder.describe_counter(KeyName::from(name), None, SharedString::from(help));
        }
        self.recorder.describe_histogram(
            KeyName::from(HTTP_DURATION),
            Some(Unit::Seconds),
            SharedString::from("Time to answer an HTTP request, by route template and method."),
        );
        let gauges: [(&'static str, &'static str); 6] = [
            (QUEUE_DEPTH, "Messages (email, SMS, webhooks) waiting in the database-backed queue."),
            (QUEUE_AGE, "Age of the oldest message still waiting, 0 when none is."),
            (POOL_CONNECTIONS, "Database connections of this instance by state (in_use, idle)."),
            (POOL_MAX, "The database pool's size limit."),
            (POOL_ACQUIRE, "Time to acquire a database connection, measured at the scrape."),
            (HASH_QUEUE, "Password hashes and checks waiting for an Argon2 thread."),
        ];
        for (name, help) in gauges {
            self.recorder.describe_gauge(KeyName::from(name), None, SharedString::from(help));
        }
    }

    /// One answered request: `route` is the matched route template, or `unmatched`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let route = Label::new("route", route.to_owned());
        let method = Label::new("method", method.to_owned());
        let status = Label::new("status", status.to_string());
        let key = Key::from_parts(HTTP_REQUESTS, vec![route.clone(), method.clone(), status]);
        self.recorder.register_counter(&key, &METADATA).increment(1);
        let key = Key::from_parts(HTTP_DURATION, vec![route, method]);
        self.recorder.register_histogram(&key, &METADATA).record(elapsed.as_secs_f64());
    }

    /// One request shed by the in-flight limit.
    pub fn http_shed(&self) {
        self.recorder.register_counter(&Key::from_name(HTTP_SHED), &METADATA).increment(1);
    }

    /// One audit event: logins and second-factor decisions are counted, by the surface
    /// the request came through.
    pub fn audit_event(&self, event_type: &str, surface: &'static str, factor_type: Option<&'static str>) {
        let Some(counted) = counted(event_type) else { return };
        let surface = Label::from_static_parts("surface", surface_label(surface));
        let key = match counted {
            Counted::Login(outcome) => {
                Key::from_parts(LOGINS, vec![surface, Label::from_static_parts("outcome", outcome)])
            }
            Counted::SecondFactor(outcome) => {
                let factor_type = match (event_type, factor_type) {
                    ("recovery_code.used", _) => "recovery_code",
                    (_, Some(factor_type)) => factor_type,
                    (_, None) => "unknown",
                };
                Key::from_parts(
                    SECOND_FACTOR,
                    vec![
                        surface,
                        Label::from_static_parts("factor_type", factor_type),
                        Label::from_static_parts("outcome", outcome),
                    ],
                )
            }
            Counted::Lockout => Key::from_parts(LOCKOUTS, vec![surface]),
        };
        self.recorder.register_counter(&key, &METADATA).increment(1);
    }

    /// One delivery attempt of a queued message.
    pub fn message(&self, channel: &'static str, kind: &str, sent: bool) {
        let key = Key::from_parts(
            MESSAGES,
            vec![
                Label::from_static_parts("channel", channel),
                Label::new("kind", kind.to_owned()),
                Label::from_static_parts("outcome", if sent { "sent" } else { "failed" }),
            ],
        );
        self.recorder.register_counter(&key, &METADATA).increment(1);
    }

    /// Drops what the registry no longer needs (histogram samples already summed).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The exposition text, with the gauges set to `gauges` first.
    pub fn render(&self, gauges: &Gauges) -> String {
        let set = |name: &'static str, labels: Vec<Label>, value: f64| {
            self.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA).set(value);
        };
        set(QUEUE_DEPTH, vec![], gauges.queued_messages as f64);
        set(QUEUE_AGE, vec![], gauges.oldest_message_age_secs as f64);
        set(
            POOL_CONNECTIONS,
            vec![Label::from_static_parts("state", "in_use")],
            f64::from(gauges.pool_in_use),
        );
        set(POOL_CONNECTIONS, vec![Label::from_static_parts("state", "idle")], f64::from(gauges.pool_idle));
        set(POOL_MAX, vec![], f64::from(gauges.pool_max));
        set(POOL_ACQUIRE, vec![], gauges.pool_acquire.as_secs_f64());
        set(HASH_QUEUE, vec![], gauges.hash_queue as f64);
        self.handle.render()
    }
}

/// The surface label of a request (`""` for work no request started: `internal`).
fn surface_label(surface: &'static str) -> &'static str {
    if surface.is_empty() { "internal" } else { surface }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_counted_by_surface_factor_type_and_outcome() {
        let metrics = Metrics::new();
        metrics.audit_event("mfa.verified", "prisme", Some("totp"));
        metrics.audit_event("mfa.replay_refused", "prisme", Some("totp"));
        metrics.audit_event("recovery_code.used", "native", None);
        metrics.audit_event("login.throttled", "pages", None);
        metrics.audit_event("factor.renamed", "native", None);
        metrics.http_request("/v1/users/{id}", "GET", 200, Duration::from_millis(3));
        let text = metrics.render(&Gauges { queued_messages: 2, ..Gauges::default() });
        for line in [
            r#"latchkey_second_factor_attempts_total{surface="prisme",factor_type="totp",outcome="succeeded"} 1"#,
            r#"latchkey_second_factor_attempts_total{surface="prisme",factor_type="totp",outcome="replay_refused"} 1"#,
            r#"latchkey_second_factor_attempts_total{surface="native",factor_type="recovery_code",outcome="succeeded"} 1"#,
            r#"latchkey_logins_total{surface="pages",outcome="throttled"} 1"#,
            r#"latchkey_http_requests_total{route="/v1/users/{id}",method="GET",status="200"} 1"#,
            r#"latchkey_http_request_duration_seconds_bucket{route="/v1/users/{id}",method="GET",le="0.005"} 1"#,
            "latchkey_outbox_queued_messages 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("factor.renamed"));
    }
}
