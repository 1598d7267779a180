//! What a person types where a code goes: one-time codes, recovery codes, TOTP codes,
//! phone numbers, email addresses and base32 secrets. No input panics, and every
//! normal form is a fixed point of its normaliser.
#![no_main]

use latchkey_core::{base32, challenge, email, phone, recovery, totp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Some(code) = recovery::normalize(&text) {
        assert_eq!(code.len(), 16);
        assert_eq!(recovery::normalize(&code).as_deref(), Some(code.as_str()));
        let grouped = code.as_bytes().chunks(4).map(|g| String::from_utf8_lossy(g).into_owned()).collect::<Vec<_>>();
        assert_eq!(recovery::normalize(&grouped.join("-").to_lowercase()).as_deref(), Some(code.as_str()));
    }

    if let Some(code) = challenge::normalize_code(&text) {
        assert_eq!(code.len(), challenge::CODE_DIGITS);
        assert_eq!(challenge::normalize_code(&code).as_deref(), Some(code.as_str()));
    }

    if let Ok(number) = phone::normalize_e164(&text) {
        assert_eq!(phone::normalize_e164(&number).as_deref(), Ok(number.as_str()));
    }

    if let Ok(address) = email::Email::parse(&text) {
        assert_eq!(email::Email::parse(&address.address).as_ref(), Ok(&address));
    }

    if let Some(bytes) = base32::decode(&text) {
        assert_eq!(base32::decode(&base32::encode(&bytes)).as_deref(), Some(bytes.as_slice()));
    }

    let key = [7u8; totp::SECRET_BYTES];
    for params in [
        totp::Params::default(),
        totp::Params { algorithm: totp::Algorithm::Sha512, digits: 8, period: 15 },
    ] {
        let check = totp::verify(&key, params, &text, 1_790_000_000, Some(59_666_666));
        if let totp::Check::Accepted { step } = check {
            let expected = totp::code_at_step(&key, params, step);
            let presented: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            assert_eq!(presented.as_str(), expected.as_str());
        }
    }
});
