//! Opaque bearer secrets (refresh tokens, API keys, MFA tokens, magic-link
//! and device tokens): how they are written and how a
//! presented value is checked for shape before any look-up. The random bytes come from
//! the caller; storage keeps only a keyed hash (see [`crate::crypto::HashKey`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Random bytes in every opaque token: 256 bits.
pub const TOKEN_BYTES: usize = 32;
const ENCODED_LEN: usize = 43;

/// The kinds of opaque token, each with a prefix that makes leaked ones easy to spot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    ApiKey,
    /// Proof of the first factor, exchanged for a session after the second.
    Mfa,
    /// The secret in a magic link.
    MagicLink,
    /// A remembered device, which skips the second factor at password login.
    Device,
    /// A link that changes an account: a password reset or a recovery link.
    Account,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Refresh => "lkr_",
            Self::ApiKey => "lk_",
            Self::Mfa => "lkm_",
            Self::MagicLink => "lkl_",
            Self::Device => "lkd_",
            Self::Account => "lka_",
        }
    }

    /// Writes fresh random bytes as a token of this kind.
    pub fn encode(self, random: &[u8; TOKEN_BYTES]) -> String {
        format!("{}{}", self.prefix(), URL_SAFE_NO_PAD.encode(random))
    }

    /// Whether `presented` has the exact shape of a token of this kind. Anything else
    /// is refused without being hashed or looked up.
    pub fn is_well_formed(self, presented: &str) -> bool {
        presented.strip_prefix(self.prefix()).is_some_and(|body| {
            body.len() == ENCODED_LEN
                && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_prefix_and_256_bits() {
        let refresh = TokenKind::Refresh.encode(&[0xab; TOKEN_BYTES]);
        assert!(refresh.starts_with("lkr_"));
        assert_eq!(refresh.len(), 4 + ENCODED_LEN);
        assert!(TokenKind::Refresh.is_well_formed(&refresh));
        assert!(!TokenKind::ApiKey.is_well_formed(&refresh));
        let key = TokenKind::ApiKey.encode(&[1; TOKEN_BYTES]);
        assert!(TokenKind::ApiKey.is_well_formed(&key));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = TokenKind::ApiKey.encode(&[7; TOKEN_BYTES]);
        assert!(!TokenKind::ApiKey.is_well_formed(&good[..good.len() - 1]));
        assert!(!TokenKind::ApiKey.is_well_formed(&format!("{good}A")));
        assert!(!TokenKind::ApiKey.is_well_formed(&good.replace('l', "L")));
        assert!(!TokenKind::ApiKey.is_well_formed(&format!("lk_{}", "=".repeat(ENCODED_LEN))));
        assert!(!TokenKind::ApiKey.is_well_formed(""));
    }
}
