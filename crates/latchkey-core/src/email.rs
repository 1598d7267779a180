//! Email addresses: a light syntax check and the case-insensitive form used for
//! uniqueness and look-ups.

/// Why an email address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid email address")]
pub struct InvalidEmail;

/// An address as the user wrote it (trimmed) and its normalized (lower-case) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub address: String,
    pub normalized: String,
}

impl Email {
    /// Accepts `local@domain` with a non-empty local part of at most 64 characters, a
    /// domain of dot-separated non-empty labels, no whitespace or control characters,
    /// and at most 254 characters in all.
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        let address = input.trim();
        if address.is_empty() || address.chars().count() > 254 {
            return Err(InvalidEmail);
        }
        if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail);
        }
        let (local, domain) = address.rsplit_once('@').ok_or(InvalidEmail)?;
        if local.is_empty() || local.chars().count() > 64 || local.contains('@') {
            return Err(InvalidEmail);
        }
        if domain.is_empty() || domain.split('.').any(str::is_empty) {
            return Err(InvalidEmail);
        }
        Ok(Self { address: address.to_owned(), normalized: address.to_lowercase() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_normalizes_case() {
        let email = Email::parse("  Alice.Smith+mfa@Example.COM ");
        assert_eq!(
            email,
            Ok(Email {
                address: "Alice.Smith+mfa@Example.COM".into(),
                normalized: "alice.smith+mfa@example.com".into()
            })
        );
        assert!(Email::parse("ops@localhost").is_ok());
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in ["", "plain", "@example.com", "a@", "a@b..c", "a b@c.d", "a@b@c.d", "a@.c", "x\u{0}@y.z"] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(InvalidEmail));
    }
}
