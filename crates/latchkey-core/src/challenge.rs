//! One-time codes and links sent by email or SMS: their shape, lifetimes and limits
//! (DESIGN rule 5 and 6), and how destinations are shown back to people.

use crate::UnixTime;
use crate::factor::FactorType;

/// Digits in an emailed or texted code.
pub const CODE_DIGITS: usize = 6;
/// A code is good for 10 minutes.
pub const CODE_TTL_SECS: UnixTime = 600;
/// A magic link is good for 15 minutes.
pub const LINK_TTL_SECS: UnixTime = 900;
/// Wrong codes a challenge takes before it is dead.
pub const MAX_ATTEMPTS: i64 = 5;
/// At most one send per destination in this many seconds...
pub const SEND_MIN_INTERVAL_SECS: i64 = 60;
/// ...and at most this many per hour.
pub const SENDS_PER_HOUR: i64 = 10;

/// Writes a code from 64 random bits. The modulo bias is below 10^-13.
pub fn format_code(random: u64) -> String {
    format!("{:0width$}", random % 10u64.pow(CODE_DIGITS as u32), width = CODE_DIGITS)
}

/// The code a person typed, without spaces or dashes, if it has the right shape.
pub fn normalize_code(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// An email address with most of its local part hidden: `a***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// A phone number with all but its last two digits hidden: `+*********23`.
pub fn mask_phone(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let shown = digits.len().saturating_sub(2);
    let mut masked = String::from("+");
    masked.extend(digits.iter().enumerate().map(|(i, d)| if i < shown { '*' } else { *d }));
    masked
}

/// A factor's destination as shown back to people: a phone number for `sms`, an email
/// address for the other types.
pub fn mask_destination(factor_type: FactorType, destination: &str) -> String {
    if factor_type == FactorType::Sms { mask_phone(destination) } else { mask_email(destination) }
}

/// Whether `number` (E.164) is in one of `country_codes` (calling codes without `+`);
/// an empty list allows every country. Calling codes are prefix-free, so a prefix
/// match is exact.
pub fn phone_country_allowed(number: &str, country_codes: &[String]) -> bool {
    country_codes.is_empty() || country_codes.iter().any(|code| in_country(number, code))
}

/// A calling code as a client gives it (`44`, `+44`, spaces around): its digits, or
/// `None` unless it is one to three digits.
pub fn parse_calling_code(input: &str) -> Option<&str> {
    let digits = input.trim().trim_start_matches('+');
    (!digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Whether `number` (E.164) belongs to the calling code `code` (with or without `+`).
/// Calling codes are prefix-free, so a prefix match is exact.
pub fn in_country(number: &str, code: &str) -> bool {
    number.trim_start_matches('+').starts_with(code.trim_start_matches('+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_six_digits_with_leading_zeros() {
        assert_eq!(format_code(42), "000042");
        assert_eq!(format_code(u64::MAX), "551615");
        assert_eq!(format_code(999_999), "999999");
        assert_eq!(format_code(1_000_000), "000000");
    }

    #[test]
    fn typed_codes_are_normalized() {
        assert_eq!(normalize_code(" 123 456 "), Some("123456".into()));
        assert_eq!(normalize_code("123-456"), Some("123456".into()));
        for bad in ["12345", "1234567", "12345a", "", "１２３４５６"] {
            assert_eq!(normalize_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn destinations_are_masked() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_phone("+14155550123"), "+*********23");
        assert_eq!(mask_destination(FactorType::Sms, "+14155550123"), "+*********23");
        assert_eq!(mask_destination(FactorType::MagicLink, "bob@example.com"), "b***@example.com");
    }

    #[test]
    fn country_allowlist_matches_calling_codes() {
        let allowed = vec!["1".to_string(), "+44".to_string()];
        assert!(phone_country_allowed("+14155550123", &allowed));
        assert!(phone_country_allowed("+447700900123", &allowed));
        assert!(!phone_country_allowed("+33612345678", &allowed));
        assert!(phone_country_allowed("+33612345678", &[]));
    }

    #[test]
    fn calling_codes_are_read_and_matched() {
        assert_eq!(parse_calling_code(" +44 "), Some("44"));
        assert_eq!(parse_calling_code("1"), Some("1"));
        for bad in ["", "+", "4444", "4a", "+-1"] {
            assert_eq!(parse_calling_code(bad), None, "{bad:?}");
        }
        assert!(in_country("+447700900123", "44") && in_country("+447700900123", "+44"));
        assert!(!in_country("+14155550123", "44"));
    }
}
