//! DESIGN rule 8, timing half: answers that must not reveal whether an account exists
//! take about as long for a known address as for an unknown one. Many interleaved
//! samples and a generous bound, so the host's noise cannot fail it, while skipping
//! the password hash for unknown addresses (a gap of the hash's whole cost) would.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{PASSWORD, TestApp};

with_each_backend!(known_and_unknown_addresses_take_as_long);

const SAMPLES: usize = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `request` for a known and an unknown address, alternating, and asserts the
/// medians are within a factor of three of each other (or 5 ms apart).
async fn assert_alike<F, Fut>(what: &str, mut request: F)
where
    F: FnMut(bool, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        for is_known in [i % 2 == 0, i % 2 == 1] {
            let started = Instant::now();
            request(is_known, i).await;
            let took = started.elapsed();
            if is_known { known.push(took) } else { unknown.push(took) }
        }
    }
    let (known, unknown) = (median(known), median(unknown));
    let (fast, slow) = if known < unknown { (known, unknown) } else { (unknown, known) };
    assert!(
        slow.as_secs_f64() < fast.as_secs_f64() * 3.0 || slow - fast < Duration::from_millis(5),
        "{what}: median for a known address {known:?}, for an unknown one {unknown:?}"
    );
}

async fn known_and_unknown_addresses_take_as_long(backend: latchkey_store::Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.magic_link.redirect_url = Some("https://app.example/in".into());
        // Timing, not throttling, is on trial: the known address fails many times.
        c.login_throttle.account_free_failures = 1_000;
        c.login_throttle.ip_free_failures = 1_000;
    })
    .await;
    app.signup("known@example.com").await;
    let address = |known: bool, i: usize| {
        if known { "known@example.com".to_owned() } else { format!("unknown{i}@example.com") }
    };

    assert_alike("login", |known, i| {
        let body = json!({ "email": address(known, i), "password": "not the password at all" });
        let app = &app;
        async move {
            let reply = app.post("/v1/auth/login", body).await;
            assert_eq!(reply.code(), "invalid_credentials");
        }
    })
    .await;

    assert_alike("signup", |known, i| {
        let body = json!({ "email": address(known, i), "password": PASSWORD });
        let app = &app;
        async move {
            let reply = app.post("/v1/auth/signup", body).await;
            assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED, "{}", reply.body);
        }
    })
    .await;

    assert_alike("magic link", |known, i| {
        // Each address may be sent one link a minute and ten an hour.
        app.advance(361);
        let body = json!({ "email": address(known, i + 100) });
        let app = &app;
        async move {
            let reply = app.post("/v1/auth/magic-link", body).await;
            assert_eq!(reply.status, reqwest::StatusCode::ACCEPTED, "{}", reply.body);
        }
    })
    .await;
}
