//! The Latchkey service: configuration, start-up, the HTTP surfaces and the CLI.
//!
//! Handlers are thin: they parse a request, call a function in [`service`] (which
//! holds the flows and talks to the [`latchkey_store::Store`]), and shape the answer.

pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod flashback;
pub mod http;
pub mod keys;
pub mod lerian;
pub mod metrics;
pub mod mudbase;
pub mod native;
pub mod pages;
pub mod passwords;
pub mod prisme;
pub mod qr;
pub mod random;
pub mod service;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;

pub use config::Config;
pub use startup::Application;
