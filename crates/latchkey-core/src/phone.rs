//! Phone numbers in E.164 form: `+`, a country code not starting with 0, and at most
//! 15 digits in all.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an E.164 phone number")]
pub struct InvalidPhone;

/// Checks an E.164 number, allowing spaces, dots, dashes and parentheses between
/// digits for readability, and returns the bare `+digits` form.
pub fn normalize_e164(input: &str) -> Result<String, InvalidPhone> {
    let rest = input.trim().strip_prefix('+').ok_or(InvalidPhone)?;
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return Err(InvalidPhone),
        }
    }
    if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
        return Err(InvalidPhone);
    }
    Ok(format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_with_separators() {
        assert_eq!(normalize_e164("+1 (415) 555-0123"), Ok("+14155550123".into()));
        assert_eq!(normalize_e164("+33612345678"), Ok("+33612345678".into()));
    }

    #[test]
    fn refuses_other_forms() {
        for bad in ["4155550123", "+0123456789", "+1234", "+1234567890123456", "+1415555O123", "", "+"] {
            assert_eq!(normalize_e164(bad), Err(InvalidPhone), "{bad}");
        }
    }
}
