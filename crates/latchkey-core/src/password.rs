//! The password policy: length limits, a refusal of the most common passwords, and a
//! guessability estimate (zxcvbn, with its bundled frequency lists: a score below 3
//! is refused, with its advice). Passwords are compared in Unicode NFKC form, so the
//! same password typed on keyboards that compose characters differently is the same.
//! Hashing lives in the server (it needs the blocking thread pool); this module only
//! decides whether a password is acceptable and what form is hashed.

use std::borrow::Cow;

use unicode_normalization::{UnicodeNormalization, is_nfkc_quick};

/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest accepted password, in characters. Longer ones are refused, never truncated.
pub const MAX_CHARS: usize = 256;

const COMMON: &str = include_str!("../data/common-passwords.txt");

/// The lowest zxcvbn score a new password may have (of 0–4): 3 is "safely
/// unguessable: moderate protection from an offline slow-hash scenario".
pub const MIN_SCORE: u8 = 3;

/// zxcvbn's work grows with length; the first this many characters are judged, and a
/// password longer than that is not short of guesses.
const SCORED_CHARS: usize = 100;

/// Why a password was refused. The messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("the password must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_CHARS} characters long")]
    TooLong,
    #[error("the password is too common or too easy to guess")]
    TooCommon,
    #[error("the password must not be the email address")]
    SameAsEmail,
    /// zxcvbn scored it below [`MIN_SCORE`]; its advice, in English.
    #[error("the password is too easy to guess")]
    Guessable { score: u8, warning: Option<String>, suggestions: Vec<String> },
}

impl PasswordRejection {
    /// A stable machine-readable reason, used in API error details.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::TooCommon => "too_common",
            Self::SameAsEmail => "same_as_email",
            Self::Guessable { .. } => "too_guessable",
        }
    }
}

/// The form of `password` that is hashed and compared: its NFKC normalisation.
pub fn normalize(password: &str) -> Cow<'_, str> {
    if is_nfkc_quick(password.chars()) == unicode_normalization::IsNormalized::Yes {
        Cow::Borrowed(password)
    } else {
        Cow::Owned(password.nfkc().collect())
    }
}

/// Checks a new password against the policy. `email` is the account's address, which
/// (or whose local part) may not serve as the password, and which zxcvbn counts as
/// known to a guesser.
pub fn check_new_password(password: &str, email: &str) -> Result<(), PasswordRejection> {
    let password = normalize(password);
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
    let scored: String = password.chars().take(SCORED_CHARS).collect();
    let mut known: Vec<&str> = vec![email.as_str(), local, "latchkey"];
    known.extend(local.split(['.', '_', '-', '+']).filter(|part| part.len() > 2));
    let estimate = zxcvbn::zxcvbn(&scored, &known);
    let score = u8::from(estimate.score());
    if score < MIN_SCORE {
        let feedback = estimate.feedback();
        return Err(PasswordRejection::Guessable {
            score,
            warning: feedback.and_then(|f| f.warning()).map(|w| w.to_string()),
            suggestions: feedback
                .map(|f| f.suggestions().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        });
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
        assert_eq!(check_new_password("éèàùçôîx", "a@b.c").map_err(|e| e.reason()), Err("too_guessable"));
        assert_eq!(check_new_password("éèàù çôîx 9Q", "a@b.c"), Ok(()));
        let longest: String = (0..MAX_CHARS)
            .map(|i| char::from(b'!' + u8::try_from((i * 37 + i * i * 11) % 90).unwrap_or(0)))
            .collect();
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
    }

    #[test]
    fn guessable_variations_are_refused_with_advice() {
        for weak in ["Password123!", "Summer2024!", "Welcome1!", "P@ssw0rd2025", "letmein!!", "Dragon12345"] {
            let refused = check_new_password(weak, "a@b.c");
            let guessable =
                matches!(&refused, Err(PasswordRejection::Guessable { score, .. }) if *score < MIN_SCORE);
            assert!(guessable || refused == Err(PasswordRejection::TooCommon), "{weak}: {refused:?}");
        }
        for strong in ["correct horse battery staple", "vT8#qLz2!mW9", "plum ankle seventy canoe"] {
            assert_eq!(check_new_password(strong, "a@b.c"), Ok(()), "{strong}");
        }
        // What the guesser knows of the account counts against the password.
        assert!(check_new_password("jonathan.harker1", "jonathan.harker@example.com").is_err());
    }

    #[test]
    fn passwords_are_compared_in_nfkc_form() {
        let composed = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
        let decomposed = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
        assert_ne!(composed, decomposed);
        assert_eq!(normalize(composed), normalize(decomposed));
        assert!(matches!(normalize(composed), Cow::Borrowed(_)), "an NFKC password is not copied");
        // Compatibility forms fold too: a full-width letter is the letter.
        assert_eq!(normalize("\u{ff21}bc"), "Abc");
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
