//! The flows behind the HTTP surfaces. Native routes and compatibility modules call
//! these functions and only translate their inputs and results.

pub mod account_tokens;
pub mod accounts;
pub mod addresses;
pub mod api_keys;
pub mod audit;
pub mod challenges;
pub mod devices;
pub mod enrolment;
pub mod exchange;
pub mod factors;
pub mod introspection;
pub mod login;
pub mod login_throttle;
pub mod magic_link;
pub mod notify;
pub mod organizations;
pub mod outgoing;
pub mod password_changes;
pub mod reauth;
pub mod recovery;
pub mod recovery_codes;
pub mod rotation;
pub mod second_factor;
pub mod sessions;
pub mod webauthn;
pub mod webhooks;
