//! Latchkey's domain layer: credentials, sessions, opaque tokens and secret handling.
//!
//! Nothing here performs I/O or reads the clock or the random number generator: the
//! current time is passed in as Unix seconds and random bytes are passed in by the
//! caller, so every rule can be tested deterministically.

pub mod base32;
pub mod challenge;
pub mod crypto;
pub mod email;
pub mod factor;
pub mod lockout;
pub mod login;
pub mod password;
pub mod phone;
pub mod recovery;
pub mod session;
pub mod token;
pub mod totp;

/// A point in time as whole seconds since the Unix epoch (UTC).
pub type UnixTime = i64;
