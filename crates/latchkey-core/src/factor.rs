//! The kinds of second factor and the states a factor moves through. Parsed once at
//! the edge (a request, a stored row), stored as the same text as always, so a
//! misspelt kind is a compile error and a `match` shows every case.
//!
//! A factor is `pending` from set-up until its first code (or its credential) is
//! confirmed, then `active`; a pending factor lapses after `mfa.pending_factor_ttl_secs`.

use std::fmt;

/// A kind of second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FactorType {
    /// An authenticator app (TOTP, RFC 6238).
    Totp,
    /// A code sent by email.
    Email,
    /// A code sent by SMS.
    Sms,
    /// A passkey or security key.
    Webauthn,
    /// A link sent by email.
    MagicLink,
}

impl FactorType {
    pub const ALL: [FactorType; 5] = [Self::Totp, Self::Email, Self::Sms, Self::Webauthn, Self::MagicLink];

    /// The name the API and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webauthn => "webauthn",
            Self::MagicLink => "magic_link",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether a code is sent to the factor's destination (email and SMS).
    pub fn sends_codes(self) -> bool {
        matches!(self, Self::Email | Self::Sms)
    }

    /// Whether something is sent for each use, a code or a link: the kinds NIST SP
    /// 800-63B calls restricted (delivered over channels an attacker can intercept or
    /// redirect), which apps may steer people away from.
    pub fn is_restricted(self) -> bool {
        matches!(self, Self::Email | Self::Sms | Self::MagicLink)
    }
}

impl fmt::Display for FactorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a factor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorStatus {
    /// Set up, waiting for its first code or credential.
    Pending,
    /// Confirmed: it counts as the user's second factor.
    Active,
}

impl FactorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Active].into_iter().find(|status| status.as_str() == text)
    }
}

impl fmt::Display for FactorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_as_stored() {
        for kind in FactorType::ALL {
            assert_eq!(FactorType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FactorType::parse("magic_link"), Some(FactorType::MagicLink));
        assert_eq!(FactorType::parse("TOTP"), None);
        assert_eq!(FactorStatus::parse("active"), Some(FactorStatus::Active));
        assert_eq!(FactorStatus::parse("gone"), None);
    }

    #[test]
    fn restricted_kinds_are_those_that_send() {
        let restricted: Vec<FactorType> = FactorType::ALL.into_iter().filter(|k| k.is_restricted()).collect();
        assert_eq!(restricted, [FactorType::Email, FactorType::Sms, FactorType::MagicLink]);
        assert!(FactorType::Sms.sends_codes() && !FactorType::MagicLink.sends_codes());
    }
}
