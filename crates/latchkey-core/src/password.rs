//! The password policy: length limits and a refusal of the most common passwords.
//! Hashing lives in the server (it needs the blocking thread pool); this module only
//! decides whether a password is acceptable.

/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest accepted password, in characters. Longer ones are refused, never truncated.
pub const MAX_CHARS: usize = 256;

const COMMON: &str = include_str!("../data/common-passwords.txt");

/// Why a password was refused. The messages never contain the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("the password must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_CHARS} characters long")]
    TooLong,
    #[error("the password is too common or too easy to guess")]
    TooCommon,
    #[error("the password must not be the email address")]
    SameAsEmail,
}

impl PasswordRejection {
    /// A stable machine-readable reason, used in API error details.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::TooCommon => "too_common",
            Self::SameAsEmail => "same_as_email",
        }
    }
}

/// Checks a new password against the policy. `email` is the account's address, which
/// (or whose local part) may not serve as the password.
pub fn check_new_password(password: &str, email: &str) -> Result<(), PasswordRejection> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRejection::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordRejection::TooLong);
    }
    let lower = password.to_lowercase();
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || (!local.is_empty() && lower == local) {
        return Err(PasswordRejection::SameAsEmail);
    }
    if is_common(&lower) || is_trivial_pattern(&lower) {
        return Err(PasswordRejection::TooCommon);
    }
    Ok(())
}

/// Whether a password may be presented at login at all: over-long input is refused
/// before any hashing work, so it cannot be used to burn CPU.
pub fn within_login_limits(password: &str) -> bool {
    !password.is_empty() && password.chars().count() <= MAX_CHARS
}

fn is_common(lower: &str) -> bool {
    COMMON
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .any(|common| common == lower)
}

/// One repeated character ("aaaaaaaa"), or a run of consecutive characters in either
/// direction ("12345678", "hgfedcba").
fn is_trivial_pattern(lower: &str) -> bool {
    let chars: Vec<char> = lower.chars().collect();
    let steps: Vec<i64> =
        chars.windows(2).map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0]))).collect();
    match steps.first() {
        Some(&first) => (-1..=1).contains(&first) && steps.iter().all(|&s| s == first),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits_count_characters_not_bytes() {
        assert_eq!(check_new_password("short", "a@b.c"), Err(PasswordRejection::TooShort));
        assert_eq!(check_new_password("ééééééé", "a@b.c"), Err(PasswordRejection::TooShort));
        assert_eq!(check_new_password("éèàùçôîx", "a@b.c"), Ok(()));
        let longest = "Zq7!".repeat(64);
        assert_eq!(check_new_password(&longest, "a@b.c"), Ok(()));
        assert_eq!(check_new_password(&format!("{longest}x"), "a@b.c"), Err(PasswordRejection::TooLong));
    }

    #[test]
    fn common_and_trivial_passwords_are_refused_in_any_case() {
        for weak in
            ["password", "PASSWORD123", "Qwerty123", "12345678", "aaaaaaaaaa", "hgfedcba", "ABCDEFGHI"]
        {
            assert_eq!(check_new_password(weak, "a@b.c"), Err(PasswordRejection::TooCommon), "{weak}");
        }
        assert_eq!(check_new_password("correct horse battery", "a@b.c"), Ok(()));
    }

    #[test]
    fn the_email_address_is_not_a_password() {
        assert_eq!(
            check_new_password("Alice@Example.com", "alice@example.com"),
            Err(PasswordRejection::SameAsEmail)
        );
        assert_eq!(
            check_new_password("alice.smith", "alice.smith@example.com"),
            Err(PasswordRejection::SameAsEmail)
        );
    }

    #[test]
    fn login_limits_refuse_empty_and_oversized_input() {
        assert!(!within_login_limits(""));
        assert!(within_login_limits("x"));
        assert!(!within_login_limits(&"x".repeat(MAX_CHARS + 1)));
    }
}
