//! Drop-in compatible surfaces for other products' MFA APIs. Each module translates
//! requests, responses and error bodies to and from the native services; none holds
//! MFA logic of its own.

pub mod lerian;
pub mod mudbase;
pub mod prisme;

use latchkey_core::recovery;

use crate::service::second_factor::Proof;

/// A code typed where either a TOTP code or a recovery code may appear: recovery
/// codes have their own unmistakable shape.
pub fn totp_or_recovery(code: &str) -> Proof<'_> {
    if recovery::normalize(code).is_some() { Proof::RecoveryCode(code) } else { Proof::AnyTotp { code } }
}
