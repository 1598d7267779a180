//! Names for the authenticator models people use most, by AAGUID, so a listing can
//! say "iCloud Keychain" rather than a UUID. A model not listed here shows its AAGUID
//! alone. The AAGUID is what the authenticator says of itself: a label for people,
//! never a security decision (`webauthn.attestation = "direct"` is that).

/// Known models: AAGUID (lowercase) and the name the maker uses.
const MODELS: &[(&str, &str)] = &[
    ("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4", "Google Password Manager"),
    ("adce0002-35bc-c60a-648b-0b25f1f05503", "Chrome on Mac"),
    ("fbfc3007-154e-4ecc-8c0b-6e020557d7bd", "iCloud Keychain"),
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", "Windows Hello"),
    ("9ddd1817-af5a-4672-a2b9-3e3dd95000a9", "Windows Hello"),
    ("6028b017-b1d4-4c02-b4b3-afcdafc96bb2", "Windows Hello"),
    ("bada5566-a7aa-401f-bd96-45619a55120d", "1Password"),
    ("d548826e-79b4-db40-a3d8-11116f7e8349", "Bitwarden"),
    ("531126d6-e717-415c-9320-3d9aa6981239", "Dashlane"),
    ("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5 Series"),
    ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5 Series"),
    ("fa2b99dc-9e39-4257-8f92-4a30d23c4118", "YubiKey 5 Series with NFC"),
    ("2fc0579f-8113-47ea-b116-bb5a8db9202a", "YubiKey 5 Series with NFC"),
];

/// The name of the authenticator model `aaguid`, when it is a known one.
pub fn model_name(aaguid: &str) -> Option<&'static str> {
    MODELS.iter().find(|(id, _)| id.eq_ignore_ascii_case(aaguid)).map(|(_, name)| *name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_models_are_named_and_others_are_not() {
        assert_eq!(model_name("FBFC3007-154E-4ECC-8C0B-6E020557D7BD"), Some("iCloud Keychain"));
        assert_eq!(model_name("0fb9bcbc-a0d4-4042-bbb0-559bc1631e28"), None);
        for (aaguid, _) in MODELS {
            assert_eq!(uuid::Uuid::parse_str(aaguid).unwrap().to_string(), *aaguid, "lowercase UUIDs");
        }
    }
}
