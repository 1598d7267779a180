//! The `otpauth://` URI we hand to authenticator apps, built from whatever issuer and
//! account name (an email address a user chose) it is given: a URI parser reads back
//! exactly the label, issuer, secret and parameters that went in.
#![no_main]

use latchkey_core::{base32, totp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, Vec<u8>, u8, u8, u16)| {
    let (issuer, account, key, algorithm, digits, period) = input;
    let algorithm = [totp::Algorithm::Sha1, totp::Algorithm::Sha256, totp::Algorithm::Sha512][usize::from(algorithm % 3)];
    let params = totp::Params { algorithm, digits: 6 + u32::from(digits % 3), period: 15 + u32::from(period % 286) };
    let uri = totp::otpauth_uri(&issuer, &account, &key, params);

    let parsed = url::Url::parse(&uri).expect("the URI parses");
    assert_eq!(parsed.scheme(), "otpauth");
    assert_eq!(parsed.host_str(), Some("totp"));
    let label = parsed.path().strip_prefix('/').expect("a label");
    let label = url::form_urlencoded::parse(format!("l={label}").as_bytes()).next().expect("label").1.into_owned();
    assert_eq!(label, format!("{issuer}:{account}"));

    let mut seen = std::collections::BTreeMap::new();
    for (name, value) in parsed.query_pairs() {
        assert!(seen.insert(name.into_owned(), value.into_owned()).is_none(), "no parameter twice");
    }
    assert_eq!(seen.get("issuer"), Some(&issuer));
    assert_eq!(seen.get("secret").and_then(|s| base32::decode(s)), Some(key.clone()));
    let algorithm_name = seen.get("algorithm").map_or("SHA1", String::as_str);
    assert_eq!(totp::Algorithm::parse(algorithm_name), Some(params.algorithm));
    assert_eq!(seen.get("digits").map_or(Ok(6), |d| d.parse()), Ok(params.digits));
    assert_eq!(seen.get("period").map_or(Ok(30), |p| p.parse()), Ok(params.period));
});
