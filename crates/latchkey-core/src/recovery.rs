//! One-time recovery codes: 80 random bits each, written in Crockford's base32 (no I,
//! L, O or U, so nothing is ambiguous) as four groups of four, and accepted in any case,
//! with or without separators, with the look-alikes I/L → 1 and O → 0 corrected.

/// How many codes a set holds.
pub const CODES_PER_SET: usize = 10;
/// Random bytes per code: 80 bits.
pub const CODE_BYTES: usize = 10;
const CODE_CHARS: usize = 16;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Writes 80 random bits as four groups of four characters, such as `7K2M-9QXW-H4ZT-0RCB`.
pub fn format_code(random: &[u8; CODE_BYTES]) -> String {
    let mut value = random.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let mut chars = [0u8; CODE_CHARS];
    for slot in chars.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    chars
        .chunks(4)
        .map(|group| group.iter().map(|&b| char::from(b)).collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical form of a code as a person may type it, or `None` if it cannot be a
/// recovery code. Stored hashes are of this form.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(CODE_CHARS);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '_' | '.' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        if out.len() == CODE_CHARS {
            return None;
        }
        out.push(c);
    }
    (out.len() == CODE_CHARS).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_and_unambiguous() {
        let code = format_code(&[0xff; CODE_BYTES]);
        assert_eq!(code, "ZZZZ-ZZZZ-ZZZZ-ZZZZ");
        let code = format_code(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x00, 0x42]);
        assert_eq!(code.len(), 19);
        assert!(code.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))), "{code}");
        assert!(!code.contains(['I', 'L', 'O', 'U']));
    }

    #[test]
    fn input_is_accepted_in_any_case_and_spacing() {
        let code = format_code(&[7; CODE_BYTES]);
        let canonical = normalize(&code).unwrap_or_default();
        assert_eq!(canonical.len(), 16);
        assert_eq!(normalize(&code.to_lowercase()), Some(canonical.clone()));
        assert_eq!(normalize(&code.replace('-', "")), Some(canonical.clone()));
        assert_eq!(normalize(&code.replace('-', " ")), Some(canonical.clone()));
        assert_eq!(normalize("0000-1111-2222-3333"), normalize("oooo iiii 2222 3333"));
        assert_eq!(normalize("0000-1111-2222-3333"), normalize("OOOO-llll-2222-3333"));
    }

    #[test]
    fn other_input_is_refused() {
        for bad in [
            "",
            "ZZZZ-ZZZZ-ZZZZ",
            "ZZZZ-ZZZZ-ZZZZ-ZZZZ-Z",
            "ZZZZ-ZZZZ-ZZZZ-ZZZU",
            "ZZZZ/ZZZZ/ZZZZ/ZZZZ",
            "ÄZZZ-ZZZZ-ZZZZ-ZZZZ",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
