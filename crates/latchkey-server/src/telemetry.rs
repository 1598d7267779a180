//! Logging: text (default) or JSON lines on standard error, filtered by `RUST_LOG`
//! (default `info`). Codes, secrets and tokens are never logged anywhere.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Service and store functions have `debug` spans (ids and kinds, never a secret);
    // when they are on, each one's end is logged with its time, so a slow request shows
    // where its time went.
    let timings = filter.max_level_hint().is_none_or(|level| level >= LevelFilter::DEBUG);
    let span_events = if timings { FmtSpan::CLOSE } else { FmtSpan::NONE };
    let builder = tracing_subscriber::fmt()
        .with_span_events(span_events)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialisation (in tests) is harmless and ignored.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}
