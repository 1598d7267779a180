//! Integration tests: each test starts the real server on a random port with a fresh
//! database and talks to it over HTTP. Every test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod helpers;

mod admin;
mod at_rest;
mod auth;
mod cli;
mod contact;
mod delivery;
mod factors;
mod flashback;
mod input;
mod integration;
mod keys;
mod lerian;
mod lifecycle;
mod login_throttle;
mod logs;
mod magic_link;
mod mail;
mod metrics;
mod mfa;
mod mudbase;
mod openapi;
mod ops;
mod overload;
mod pages;
mod prisme;
mod reauth;
mod schema;
mod send_limits;
mod sessions;
mod timing;
mod tokens;
mod totp;
mod webauthn;
mod webauthn_policy;
mod webhooks;
