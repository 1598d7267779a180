//! Secret handling: the master key, the keys derived from it, AES-256-GCM sealing with
//! associated data, keyed hashes for values that are only ever compared, and
//! constant-time comparison.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

type HmacSha256 = Hmac<Sha256>;

/// Length of an AES-GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;

/// Why a master key or a sealed value could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the master key must be 32 bytes, given as 64 hex digits or base64")]
    InvalidMasterKey,
    #[error("the sealed value was made with master key {found}, but the configured key is {expected}")]
    WrongKey { expected: String, found: String },
    #[error("the value is too large to seal")]
    Seal,
    #[error("the sealed value could not be decrypted (wrong key, wrong context or tampered data)")]
    Unseal,
}

/// The 32-byte root secret from which all other server keys are derived.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a key written as 64 hex digits or as standard / URL-safe base64.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let decoded = Zeroizing::new(if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            decode_hex(text).ok_or(CryptoError::InvalidMasterKey)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| CryptoError::InvalidMasterKey)?
        });
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| CryptoError::InvalidMasterKey)?;
        Ok(Self(bytes))
    }

    /// The key written as standard base64, for storing in a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// Derives the separate keys used for sealing and hashing.
    pub fn derive(&self) -> ServerKeys {
        let derive = |label: &[u8]| hmac_sha256(&self.0, &[label]);
        let id_bytes = derive(b"latchkey/v1/key-id");
        ServerKeys {
            key_id: encode_hex(&id_bytes[..8]),
            sealing: SealingKey(derive(b"latchkey/v1/sealing")),
            hashing: HashKey(derive(b"latchkey/v1/hashing")),
            accepted: Vec::new(),
        }
    }
}

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so a 32-byte key is never refused.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts 32-byte keys");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The keys derived from the master key.
pub struct ServerKeys {
    /// A short public identifier of the master key, stored beside sealed values so a
    /// rotation can tell which key sealed what.
    pub key_id: String,
    pub sealing: SealingKey,
    pub hashing: HashKey,
    /// Other master keys' sealing keys, by key id: values they sealed still open
    /// ([`ServerKeys::open`]), nothing new is sealed with them (a master-key rotation).
    pub accepted: Vec<(String, SealingKey)>,
}

impl ServerKeys {
    /// Also opens what `other` sealed.
    pub fn accepting(mut self, other: &MasterKey) -> Self {
        let other = other.derive();
        if other.key_id != self.key_id {
            self.accepted.push((other.key_id.clone(), SealingKey(other.sealing.0)));
        }
        self
    }

    /// Opens `sealed` with whichever known key sealed it: this master key's, or an
    /// accepted one's.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match self.accepted.iter().find(|(id, _)| *id == sealed.key_id) {
            Some((id, key)) => key.open(id, sealed, context),
            None => self.sealing.open(&self.key_id, sealed, context),
        }
    }
}

/// A value sealed with AES-256-GCM, with the id of the master key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

/// AES-256-GCM key for secrets stored at rest.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SealingKey([u8; 32]);

impl SealingKey {
    /// Encrypts `plaintext`, binding it to `context` (for example the owner's ids) so a
    /// sealed value copied to another row does not open. `nonce` must be fresh random bytes.
    pub fn seal(
        &self,
        key_id: &str,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Sealed, CryptoError> {
        let cipher = Aes256Gcm::new(&self.0.into());
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: context })
            .map_err(|_| CryptoError::Seal)?;
        Ok(Sealed { key_id: key_id.to_owned(), nonce, ciphertext })
    }

    /// Decrypts a sealed value made by [`SealingKey::seal`] with the same context.
    pub fn open(
        &self,
        key_id: &str,
        sealed: &Sealed,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.key_id != key_id {
            return Err(CryptoError::WrongKey { expected: key_id.to_owned(), found: sealed.key_id.clone() });
        }
        let cipher = Aes256Gcm::new(&self.0.into());
        cipher
            .decrypt(&Nonce::from(sealed.nonce), Payload { msg: &sealed.ciphertext, aad: context })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Unseal)
    }
}

/// HMAC-SHA256 key for values stored only as keyed hashes (tokens, codes, API keys).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HashKey([u8; 32]);

/// What a keyed hash is of; part of the hash input so one kind can never match another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPurpose {
    RefreshToken,
    ApiKey,
    MfaToken,
    RecoveryCode,
    /// A one-time code sent by email or SMS.
    ChallengeCode,
    /// The token in a magic link.
    LinkToken,
    /// An email address or phone number, as the key of its send throttle.
    Destination,
    /// A remembered device's token.
    DeviceToken,
    /// An account's address, a trusted device or a client IP, as the key of its
    /// first-factor throttle.
    LoginThrottle,
    /// A WebAuthn challenge, as the key of its ceremony.
    WebauthnChallenge,
    /// The source of the recovery codes shown with a factor's setup, before it is
    /// confirmed (derived from the pending factor's id; stored only once confirmed).
    SetupRecoveryCode,
    /// The session id in a hosted page's session cookie, as the cookie's signature.
    WebSession,
    /// A hosted page form's CSRF token, derived from the browser's CSRF cookie.
    Csrf,
    /// A one-time code an app exchanges for tokens after a hosted sign-in.
    ExchangeCode,
    /// A password reset or recovery link's token, or an address change's code.
    AccountToken,
}

impl HashPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::RefreshToken => b"refresh-token",
            Self::ApiKey => b"api-key",
            Self::MfaToken => b"mfa-token",
            Self::RecoveryCode => b"recovery-code",
            Self::ChallengeCode => b"challenge-code",
            Self::LinkToken => b"link-token",
            Self::Destination => b"destination",
            Self::DeviceToken => b"device-token",
            Self::SetupRecoveryCode => b"setup-recovery-code",
            Self::LoginThrottle => b"login-throttle",
            Self::WebauthnChallenge => b"webauthn-challenge",
            Self::WebSession => b"web-session",
            Self::Csrf => b"csrf",
            Self::ExchangeCode => b"exchange-code",
            Self::AccountToken => b"account-token",
        }
    }
}

impl HashKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key itself, to be stored sealed (so keyed hashes outlive a master-key
    /// rotation).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    pub fn hash(&self, purpose: HashPurpose, value: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, &[purpose.label(), &[0], value])
    }
}

/// The signature of an outgoing webhook: hex HMAC-SHA256 under `secret` over
/// `"{timestamp}.{body}"`, so a receiver can check both origin and freshness.
pub fn webhook_signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    encode_hex(&mac.finalize().into_bytes())
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn master_key_parses_hex_and_base64_and_round_trips() {
        let hex = "00".repeat(31) + "ff";
        let parsed = MasterKey::parse(&hex).map(|k| k.0);
        let mut expected = [0u8; 32];
        expected[31] = 0xff;
        assert_eq!(parsed, Ok(expected));
        let original = key(7);
        let again = MasterKey::parse(&original.to_base64()).map(|k| k.0);
        assert_eq!(again, Ok([7u8; 32]));
        assert_eq!(MasterKey::parse("too short").err(), Some(CryptoError::InvalidMasterKey));
        assert_eq!(MasterKey::parse(&STANDARD.encode([1u8; 31])).err(), Some(CryptoError::InvalidMasterKey));
    }

    #[test]
    fn derived_keys_differ_per_master_key_and_purpose() {
        let a = key(1).derive();
        let b = key(2).derive();
        assert_ne!(a.key_id, b.key_id);
        assert_eq!(a.key_id.len(), 16);
        assert_ne!(a.hashing.hash(HashPurpose::ApiKey, b"x"), b.hashing.hash(HashPurpose::ApiKey, b"x"));
        assert_ne!(
            a.hashing.hash(HashPurpose::ApiKey, b"x"),
            a.hashing.hash(HashPurpose::RefreshToken, b"x")
        );
        assert_eq!(key(1).derive().key_id, a.key_id);
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let keys = key(3).derive();
        let sealed = keys.sealing.seal(&keys.key_id, [9; NONCE_LEN], b"secret", b"user-1").unwrap();
        assert_ne!(sealed.ciphertext, b"secret");
        assert_eq!(
            keys.sealing.open(&keys.key_id, &sealed, b"user-1").map(|v| v.to_vec()),
            Ok(b"secret".to_vec())
        );
        assert_eq!(keys.sealing.open(&keys.key_id, &sealed, b"user-2").err(), Some(CryptoError::Unseal));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(keys.sealing.open(&keys.key_id, &tampered, b"user-1").err(), Some(CryptoError::Unseal));
        let other = key(4).derive();
        assert!(matches!(
            other.sealing.open(&other.key_id, &sealed, b"user-1"),
            Err(CryptoError::WrongKey { .. })
        ));
    }

    #[test]
    fn webhook_signatures_cover_timestamp_and_body() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently with Python's hmac module.
        assert_eq!(
            webhook_signature(b"key", 1_700_000_000, b"{}"),
            "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(
            webhook_signature(b"key", 1_700_000_001, b"{}"),
            webhook_signature(b"key", 1_700_000_000, b"{}")
        );
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
