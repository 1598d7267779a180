//! HOTP (RFC 4226) and TOTP (RFC 6238): code computation, verification over the
//! window T-1..=T+1 with replay refusal, and the `otpauth://` URI that authenticator
//! apps read.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::UnixTime;
use crate::base32;

/// Bytes of a new TOTP secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// How codes are made: hash, length and time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub algorithm: Algorithm,
    /// 6 to 8.
    pub digits: u32,
    /// Seconds per time step, 15 to 300.
    pub period: u32,
}

impl Default for Params {
    /// SHA1, 6 digits, 30 seconds: what every authenticator app supports.
    fn default() -> Self {
        Self { algorithm: Algorithm::Sha1, digits: 6, period: 30 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TOTP digits must be 6 to 8 and the period 15 to 300 seconds")]
pub struct InvalidParams;

impl Params {
    pub fn validate(self) -> Result<Self, InvalidParams> {
        if (6..=8).contains(&self.digits) && (15..=300).contains(&self.period) {
            Ok(self)
        } else {
            Err(InvalidParams)
        }
    }

    /// The time step that `time` falls in.
    pub fn step_at(self, time: UnixTime) -> i64 {
        time.div_euclid(i64::from(self.period))
    }
}

/// The HOTP value (RFC 4226 section 5.3) for `counter`, as a zero-padded string.
pub fn hotp(key: &[u8], algorithm: Algorithm, counter: u64, digits: u32) -> Zeroizing<String> {
    let message = counter.to_be_bytes();
    let digest: Zeroizing<Vec<u8>> = Zeroizing::new(match algorithm {
        Algorithm::Sha1 => mac::<Hmac<Sha1>>(key, &message),
        Algorithm::Sha256 => mac::<Hmac<Sha256>>(key, &message),
        Algorithm::Sha512 => mac::<Hmac<Sha512>>(key, &message),
    });
    let offset = usize::from(digest.last().copied().unwrap_or_default() & 0x0f);
    let word = digest
        .get(offset..offset + 4)
        .map(|b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]))
        .unwrap_or_default();
    let value = word % 10u32.pow(digits);
    Zeroizing::new(format!("{value:0width$}", width = digits as usize))
}

fn mac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    #[allow(clippy::expect_used)]
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The TOTP code for the time step `step`.
pub fn code_at_step(key: &[u8], params: Params, step: i64) -> Zeroizing<String> {
    hotp(key, params.algorithm, u64::try_from(step).unwrap_or_default(), params.digits)
}

/// The result of checking a presented code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The code is right for `step`, which is later than any step accepted before.
    /// The caller must record `step` atomically before treating the code as used.
    Accepted { step: i64 },
    /// The code is right, but for a step already used (or earlier): a replay.
    Replayed,
    /// Wrong code, or not a code at all.
    Invalid,
}

/// Checks `presented` against the steps T-1, T and T+1 around `now`. Every candidate
/// is computed and compared in constant time, whatever matches. `last_step` is the
/// factor's last accepted step; a match at or below it is a replay.
pub fn verify(key: &[u8], params: Params, presented: &str, now: UnixTime, last_step: Option<i64>) -> Check {
    let presented: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    let well_formed =
        presented.len() == params.digits as usize && presented.bytes().all(|b| b.is_ascii_digit());
    let current = params.step_at(now);
    let mut matched: Option<i64> = None;
    for step in [current - 1, current, current + 1] {
        let expected = code_at_step(key, params, step);
        let equal: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
        if equal && well_formed {
            matched = Some(step);
        }
    }
    match matched {
        None => Check::Invalid,
        Some(step) if last_step.is_some_and(|last| step <= last) => Check::Replayed,
        Some(step) => Check::Accepted { step },
    }
}

/// `otpauth://totp/<Issuer>:<account>?secret=<base32>&issuer=<Issuer>`, with the
/// algorithm, digits and period added only when they differ from SHA1 / 6 / 30.
pub fn otpauth_uri(issuer: &str, account: &str, key: &[u8], params: Params) -> Zeroizing<String> {
    let mut uri = format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}",
        percent_encode(issuer),
        percent_encode(account),
        base32::encode(key),
        percent_encode(issuer)
    );
    let defaults = Params::default();
    if params.algorithm != defaults.algorithm {
        uri.push_str(&format!("&algorithm={}", params.algorithm.as_str()));
    }
    if params.digits != defaults.digits {
        uri.push_str(&format!("&digits={}", params.digits));
    }
    if params.period != defaults.period {
        uri.push_str(&format!("&period={}", params.period));
    }
    Zeroizing::new(uri)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so `:`, `@`, `&`,
/// `?` and spaces in labels cannot break the URI).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
            "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(SEED20, Algorithm::Sha1, counter as u64, 6).as_str(), *code, "counter {counter}");
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let table: [(i64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in table {
            for (algorithm, seed, code) in [
                (Algorithm::Sha1, SEED20, sha1),
                (Algorithm::Sha256, SEED32, sha256),
                (Algorithm::Sha512, SEED64, sha512),
            ] {
                let params = Params { algorithm, digits: 8, period: 30 };
                assert_eq!(
                    code_at_step(seed, params, params.step_at(time)).as_str(),
                    code,
                    "{algorithm:?} at {time}"
                );
            }
        }
    }

    #[test]
    fn window_accepts_previous_current_and_next_step_only() {
        let params = Params::default();
        let now = 1_700_000_015; // inside step 56_666_667
        let step = params.step_at(now);
        for offset in [-1, 0, 1] {
            let code = code_at_step(SEED20, params, step + offset);
            assert_eq!(
                verify(SEED20, params, &code, now, None),
                Check::Accepted { step: step + offset },
                "T{offset:+}"
            );
        }
        for offset in [-2, 2, 10] {
            let code = code_at_step(SEED20, params, step + offset);
            assert_eq!(verify(SEED20, params, &code, now, None), Check::Invalid, "T{offset:+}");
        }
    }

    #[test]
    fn steps_at_or_below_the_last_accepted_are_replays() {
        let params = Params::default();
        let now = 1_700_000_015;
        let step = params.step_at(now);
        let code = code_at_step(SEED20, params, step);
        assert_eq!(verify(SEED20, params, &code, now, Some(step)), Check::Replayed);
        assert_eq!(verify(SEED20, params, &code, now, Some(step + 1)), Check::Replayed);
        assert_eq!(verify(SEED20, params, &code, now, Some(step - 1)), Check::Accepted { step });
        let previous = code_at_step(SEED20, params, step - 1);
        assert_eq!(verify(SEED20, params, &previous, now, Some(step - 1)), Check::Replayed);
    }

    #[test]
    fn malformed_codes_are_invalid() {
        let params = Params::default();
        let now = 1_700_000_015;
        let code = code_at_step(SEED20, params, params.step_at(now));
        assert_eq!(
            verify(SEED20, params, &format!("{} {}", &code[..3], &code[3..]), now, None),
            Check::Accepted { step: params.step_at(now) }
        );
        for bad in
            ["", "12345", "1234567", "abcdef", &format!("{}0", code.as_str()), &format!("+{}", &code[1..])]
        {
            assert_eq!(verify(SEED20, params, bad, now, None), Check::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn otpauth_uri_has_the_documented_form() {
        let uri = otpauth_uri("Latchkey", "alice@example.com", SEED20, Params::default());
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Latchkey:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey"
        );
        let custom = otpauth_uri(
            "Acme Corp",
            "bob",
            SEED20,
            Params { algorithm: Algorithm::Sha256, digits: 8, period: 60 },
        );
        assert!(custom.starts_with("otpauth://totp/Acme%20Corp:bob?secret="), "{}", custom.as_str());
        assert!(
            custom.ends_with("&issuer=Acme%20Corp&algorithm=SHA256&digits=8&period=60"),
            "{}",
            custom.as_str()
        );
    }

    #[test]
    fn params_are_validated() {
        assert!(Params::default().validate().is_ok());
        assert!(Params { digits: 5, ..Params::default() }.validate().is_err());
        assert!(Params { digits: 9, ..Params::default() }.validate().is_err());
        assert!(Params { period: 10, ..Params::default() }.validate().is_err());
        assert_eq!(Algorithm::parse("sha512"), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::parse("md5"), None);
    }
}
