//! Sessions: assurance levels, authentication methods (RFC 8176) and the expiry rules.

use crate::UnixTime;

/// Authenticator assurance level of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aal {
    /// One factor (for example a password) was verified.
    Aal1,
    /// A second factor was verified as well.
    Aal2,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aal1 => "aal1",
            Self::Aal2 => "aal2",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "aal1" => Some(Self::Aal1),
            "aal2" => Some(Self::Aal2),
            _ => None,
        }
    }
}

/// Authentication method references (RFC 8176) recorded on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amr {
    /// Password.
    Pwd,
    /// One-time password (TOTP app).
    Otp,
    /// Code sent by SMS.
    Sms,
    /// Code or link sent by email.
    Mail,
    /// Hardware-protected key (passkey, security key).
    Hwk,
    /// Software-protected key.
    Swk,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Otp => "otp",
            Self::Sms => "sms",
            Self::Mail => "mail",
            Self::Hwk => "hwk",
            Self::Swk => "swk",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pwd, Self::Otp, Self::Sms, Self::Mail, Self::Hwk, Self::Swk]
            .into_iter()
            .find(|amr| amr.as_str() == text)
    }
}

/// The methods of a session that has just proven `second`: `amr` (the names a session
/// stores) with `second` added once, in the order they were used. Unknown names are
/// dropped.
pub fn after_second_factor(amr: &[String], second: Amr) -> Vec<Amr> {
    let mut methods: Vec<Amr> = amr.iter().filter_map(|m| Amr::parse(m)).collect();
    if !methods.contains(&second) {
        methods.push(second);
    }
    methods
}

/// Whether a session at `aal` with the methods `amr` proved a second factor itself:
/// two methods, or a passkey alone (a multi-factor authenticator: the device and the
/// user verification it did). A session a remembered device opened is `aal2` with only
/// its first factor in `amr`, and did not.
pub fn proved_second_factor(aal: &str, amr: &[String]) -> bool {
    let passkey = |m: &String| matches!(Amr::parse(m), Some(Amr::Hwk | Amr::Swk));
    aal == Aal::Aal2.as_str() && (amr.len() >= 2 || amr.iter().any(passkey))
}

/// How long sessions live. The idle timeout restarts whenever the session's refresh
/// token is used; the absolute timeout never moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle_timeout_secs: i64,
    pub absolute_timeout_secs: i64,
}

/// When a session stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpiry {
    pub idle_expires_at: UnixTime,
    pub expires_at: UnixTime,
}

impl SessionPolicy {
    /// Expiry of a session created at `now`.
    pub fn new_session(&self, now: UnixTime) -> SessionExpiry {
        let expires_at = now.saturating_add(self.absolute_timeout_secs);
        SessionExpiry {
            idle_expires_at: now.saturating_add(self.idle_timeout_secs).min(expires_at),
            expires_at,
        }
    }

    /// The idle deadline after activity at `now`, never past the absolute deadline.
    pub fn extend_idle(&self, now: UnixTime, expires_at: UnixTime) -> UnixTime {
        now.saturating_add(self.idle_timeout_secs).min(expires_at)
    }
}

impl SessionExpiry {
    pub fn is_live(&self, now: UnixTime) -> bool {
        now < self.idle_expires_at && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_factor_is_proven_by_two_methods_or_a_passkey() {
        let amr = |methods: &[&str]| methods.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>();
        assert!(proved_second_factor("aal2", &amr(&["pwd", "otp"])));
        assert!(proved_second_factor("aal2", &amr(&["hwk"])));
        assert!(proved_second_factor("aal2", &amr(&["swk"])));
        assert!(!proved_second_factor("aal2", &amr(&["pwd"])), "a remembered device");
        assert!(!proved_second_factor("aal2", &amr(&["mail"])), "a remembered device after a sign-in link");
        assert!(!proved_second_factor("aal1", &amr(&["pwd"])));
        assert!(!proved_second_factor("aal1", &amr(&["hwk"])), "never below aal2");
    }

    const POLICY: SessionPolicy = SessionPolicy { idle_timeout_secs: 1800, absolute_timeout_secs: 43_200 };

    #[test]
    fn idle_deadline_moves_with_activity_but_not_past_the_absolute_one() {
        let expiry = POLICY.new_session(1_000);
        assert_eq!(expiry, SessionExpiry { idle_expires_at: 2_800, expires_at: 44_200 });
        assert!(expiry.is_live(2_799));
        assert!(!expiry.is_live(2_800));
        assert_eq!(POLICY.extend_idle(2_000, expiry.expires_at), 3_800);
        assert_eq!(POLICY.extend_idle(43_000, expiry.expires_at), 44_200);
    }

    #[test]
    fn names_round_trip() {
        for aal in [Aal::Aal1, Aal::Aal2] {
            assert_eq!(Aal::parse(aal.as_str()), Some(aal));
        }
        for amr in [Amr::Pwd, Amr::Otp, Amr::Sms, Amr::Mail, Amr::Hwk, Amr::Swk] {
            assert_eq!(Amr::parse(amr.as_str()), Some(amr));
        }
        assert_eq!(Aal::parse("aal3"), None);
        assert_eq!(Amr::parse("face"), None);
    }

    #[test]
    fn a_second_factor_is_added_once_in_order() {
        let amr = vec!["pwd".to_owned()];
        assert_eq!(after_second_factor(&amr, Amr::Otp), vec![Amr::Pwd, Amr::Otp]);
        let twice = vec!["pwd".to_owned(), "otp".to_owned()];
        assert_eq!(after_second_factor(&twice, Amr::Otp), vec![Amr::Pwd, Amr::Otp]);
        assert_eq!(after_second_factor(&["mail".to_owned()], Amr::Sms), vec![Amr::Mail, Amr::Sms]);
    }
}
