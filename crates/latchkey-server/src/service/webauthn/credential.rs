//! What a browser sends back from a WebAuthn ceremony, read: the credential JSON,
//! the challenge it answers, the authenticator model it names, and why it was refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use webauthn_rs::prelude::WebauthnError;

use crate::http::error::{ApiError, ErrorCode};

/// Why a credential was refused; `details.reason` of `invalid_credential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No live ceremony has this challenge: never issued, expired, or already used.
    UnknownChallenge,
    /// The ceremony was for another user, factor, login or purpose.
    WrongCeremony,
    /// Signed for another origin or relying party.
    WrongOrigin,
    /// The authenticator did not verify the user (PIN, biometrics) and it is required.
    UserNotVerified,
    /// The signature does not verify, or the credential is not the one asked for.
    BadSignature,
    /// The signature counter went backwards: the authenticator may have been cloned.
    CounterRegressed,
    /// With `webauthn.attestation = "direct"`: the authenticator's attestation does not
    /// chain up to a configured root, or its model is not on the allow-list.
    AttestationNotAllowed,
    /// The answer is not a well-formed WebAuthn answer.
    Malformed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownChallenge => "unknown_challenge",
            Self::WrongCeremony => "wrong_ceremony",
            Self::WrongOrigin => "wrong_origin",
            Self::UserNotVerified => "user_not_verified",
            Self::BadSignature => "bad_signature",
            Self::CounterRegressed => "counter_regressed",
            Self::AttestationNotAllowed => "attestation_not_allowed",
            Self::Malformed => "malformed",
        }
    }

    pub(super) fn of(error: &WebauthnError) -> Self {
        use WebauthnError as E;
        match error {
            E::InvalidRPOrigin | E::InvalidRPIDHash | E::CredentialCrossOrigin => Self::WrongOrigin,
            E::UserNotVerified | E::UserNotPresent | E::InconsistentUserVerificationPolicy => {
                Self::UserNotVerified
            }
            E::MismatchedChallenge | E::ChallengeNotFound => Self::UnknownChallenge,
            E::CredentialPossibleCompromise => Self::CounterRegressed,
            E::AttestationNotSupported
            | E::AttestationTrustFailure
            | E::AttestationCertificateTrustStoreEmpty
            | E::AttestationLeafCertMissing
            | E::AttestationNotVerifiable
            | E::AttestationUntrustedAaguid
            | E::AttestationFormatMissingAaguid
            | E::AttestationChainNotTrusted(_)
            | E::CredentialMayNotBeHardwareBound => Self::AttestationNotAllowed,
            E::ParseCBORFailure(_)
            | E::ParseJSONFailure(_)
            | E::ParseNOMFailure
            | E::ParseInsufficientBytesAvailable
            | E::InvalidClientDataType
            | E::MissingAttestationCredentialData => Self::Malformed,
            _ => Self::BadSignature,
        }
    }

    /// The error a client gets.
    pub fn error(self) -> ApiError {
        ApiError::new(ErrorCode::InvalidCredential).with_details(json!({ "reason": self.as_str() }))
    }
}

/// The challenge a `clientDataJSON` answers.
pub(super) fn challenge_of(client_data_json: &[u8]) -> Option<Vec<u8>> {
    let client_data: Value = serde_json::from_slice(client_data_json).ok()?;
    let challenge = client_data.get("challenge")?.as_str()?;
    URL_SAFE_NO_PAD.decode(challenge.trim_end_matches('=')).ok()
}

/// Reads a credential the browser returned. Binary fields may come as URL-safe base64
/// with or without padding, or as standard base64, as clients written for other
/// libraries send them; a malformed answer is a 400 naming the field.
pub fn parse_credential<T: DeserializeOwned>(credential: &Value) -> Result<T, ApiError> {
    let mut credential = credential.clone();
    for pointer in [
        "/rawId",
        "/response/clientDataJSON",
        "/response/attestationObject",
        "/response/authenticatorData",
        "/response/signature",
        "/response/userHandle",
    ] {
        if let Some(Value::String(text)) = credential.pointer_mut(pointer) {
            *text = text.trim_end_matches('=').replace('+', "-").replace('/', "_");
        }
    }
    serde_path_to_error::deserialize(credential).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "credential".to_owned() } else { format!("credential.{path}") };
        ApiError::field(ErrorCode::InvalidField, &field)
            .with_message(format!("`{field}` is not a well-formed WebAuthn credential field."))
    })
}

/// The authenticator model (AAGUID, lowercase UUID text) a registration's
/// `attestationObject` names in its attested credential data; `None` when it names
/// none or the all-zero one (authenticators that keep their model private).
pub fn aaguid_of(attestation_object: &[u8]) -> Option<String> {
    use serde_cbor_2::Value as Cbor;
    let Cbor::Map(fields) = serde_cbor_2::from_slice::<Cbor>(attestation_object).ok()? else { return None };
    let Cbor::Bytes(auth_data) = fields.get(&Cbor::Text("authData".into()))? else { return None };
    // rpIdHash (32 bytes), flags (1), signCount (4), then the attested credential
    // data, present when flag AT (0x40) is set, which opens with the AAGUID (16).
    const ATTESTED_CREDENTIAL_DATA: u8 = 0x40;
    let flags = *auth_data.get(32)?;
    if flags & ATTESTED_CREDENTIAL_DATA == 0 {
        return None;
    }
    let aaguid = uuid::Uuid::from_slice(auth_data.get(37..53)?).ok()?;
    (!aaguid.is_nil()).then(|| aaguid.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attestation_object(flags: u8, aaguid: [u8; 16]) -> Vec<u8> {
        use serde_cbor_2::Value as Cbor;
        let mut auth_data = vec![7u8; 32];
        auth_data.push(flags);
        auth_data.extend([0, 0, 0, 1]);
        auth_data.extend(aaguid);
        auth_data.extend([0, 4, 1, 2, 3, 4]);
        let fields = [
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(Default::default())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ];
        serde_cbor_2::to_vec(&Cbor::Map(fields.into_iter().collect())).unwrap()
    }

    #[test]
    fn the_model_is_read_from_the_attested_credential_data() {
        let model = uuid::uuid!("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4");
        assert_eq!(aaguid_of(&attestation_object(0x45, *model.as_bytes())), Some(model.to_string()));
        assert_eq!(aaguid_of(&attestation_object(0x45, [0; 16])), None, "a private model");
        assert_eq!(aaguid_of(&attestation_object(0x05, *model.as_bytes())), None, "no attested data");
        assert_eq!(aaguid_of(b"not cbor"), None);
    }
}
