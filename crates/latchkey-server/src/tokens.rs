//! Access tokens (EdDSA JWTs) and refresh tokens (opaque, stored as keyed hashes).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latchkey_core::UnixTime;
use latchkey_core::crypto::{HashKey, HashPurpose};
use latchkey_core::token::{TOKEN_BYTES, TokenKind};
use latchkey_store::Session;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{PublicKey, SIGNING_ALGORITHM, SigningKey};
use crate::random;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: UnixTime,
    pub iat: UnixTime,
    pub auth_time: UnixTime,
    pub sid: String,
    pub aal: String,
    pub amr: Vec<String>,
    pub jti: String,
}

/// The claims of a client's access token (Lerian's `client_credentials` grant): an
/// API key acting as itself, with no session. It lacks `sid`, so it never passes for a
/// user's token, and a user's lacks `client_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientClaims {
    pub iss: String,
    /// `client:<the API key's id>`.
    pub sub: String,
    pub aud: String,
    pub exp: UnixTime,
    pub iat: UnixTime,
    /// The API key's id.
    pub client_id: String,
    pub jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed, wrongly signed or for another audience")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// Signs and verifies access tokens. The keys can be swapped while serving
/// ([`replace_keys`](Self::replace_keys)), so a signing-key rotation needs no restart.
pub struct AccessTokens {
    issuer: String,
    audience: String,
    ttl_secs: i64,
    keys: RwLock<Arc<Keyring>>,
    validation: Validation,
}

/// The key that signs, and every key that verifies with the key set published.
struct Keyring {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: Arc<Value>,
}

impl Keyring {
    fn new(signing: &SigningKey, public: &[PublicKey]) -> anyhow::Result<Self> {
        let mut decoding = HashMap::new();
        let mut jwks = Vec::new();
        for key in public {
            let x = URL_SAFE_NO_PAD.encode(&key.public_key);
            decoding.insert(key.kid.clone(), DecodingKey::from_ed_components(&x)?);
            jwks.push(json!({
                "kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "alg": SIGNING_ALGORITHM, "use": "sig"
            }));
        }
        Ok(Self {
            kid: signing.kid.clone(),
            encoding: EncodingKey::from_ed_der(&signing.pkcs8),
            decoding,
            jwks: Arc::new(json!({ "keys": jwks })),
        })
    }
}

impl AccessTokens {
    pub fn new(
        issuer: &str,
        audience: &str,
        ttl_secs: i64,
        signing: &SigningKey,
        public: &[PublicKey],
    ) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        // Expiry is checked against the injected clock in `verify`.
        validation.validate_exp = false;
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
            keys: RwLock::new(Arc::new(Keyring::new(signing, public)?)),
            validation,
        })
    }

    fn keyring(&self) -> Arc<Keyring> {
        // A poisoned lock still holds a complete keyring: it is only ever replaced whole.
        Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Signs with `signing` from now on and verifies with `public`; false when these
    /// are the keys already in use.
    pub fn replace_keys(&self, signing: &SigningKey, public: &[PublicKey]) -> anyhow::Result<bool> {
        let current = self.keyring();
        let same = current.kid == signing.kid
            && current.decoding.len() == public.len()
            && public.iter().all(|k| current.decoding.contains_key(&k.kid));
        if same {
            return Ok(false);
        }
        let next = Arc::new(Keyring::new(signing, public)?);
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok(true)
    }

    /// The id of the key that signs now.
    pub fn signing_kid(&self) -> String {
        self.keyring().kid.clone()
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// The JSON Web Key Set of the verification keys.
    pub fn jwks(&self) -> Arc<Value> {
        Arc::clone(&self.keyring().jwks)
    }

    /// Issues an access token for `session`, good for the configured lifetime.
    pub fn issue(&self, session: &Session, now: UnixTime) -> anyhow::Result<String> {
        self.issue_until(session, now, now + self.ttl_secs)
    }

    /// Issues an access token for `session` that expires at `exp`.
    pub fn issue_until(&self, session: &Session, now: UnixTime, exp: UnixTime) -> anyhow::Result<String> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: session.user_id.clone(),
            aud: self.audience.clone(),
            exp,
            iat: now,
            auth_time: session.auth_time,
            sid: session.id.clone(),
            aal: session.aal.clone(),
            amr: session.amr.clone(),
            jti: URL_SAFE_NO_PAD.encode(random::bytes::<16>()),
        };
        let keys = self.keyring();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &keys.encoding)?)
    }

    /// Checks signature, algorithm, issuer, audience and expiry. The caller must still
    /// check that the session is live.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = self.decode(token)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// Issues a client's access token for the API key `client_id`, good for the
    /// configured lifetime.
    pub fn issue_client(&self, client_id: &str, now: UnixTime) -> anyhow::Result<String> {
        let claims = ClientClaims {
            iss: self.issuer.clone(),
            sub: format!("client:{client_id}"),
            aud: self.audience.clone(),
            exp: now + self.ttl_secs,
            iat: now,
            client_id: client_id.to_owned(),
            jti: URL_SAFE_NO_PAD.encode(random::bytes::<16>()),
        };
        let keys = self.keyring();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &keys.encoding)?)
    }

    /// [`verify`](Self::verify) for a client's token. The caller must still check that
    /// its API key is not revoked.
    pub fn verify_client(&self, token: &str, now: UnixTime) -> Result<ClientClaims, TokenError> {
        let claims: ClientClaims = self.decode(token)?;
        if claims.exp <= now || claims.sub != format!("client:{}", claims.client_id) {
            return Err(if claims.exp <= now { TokenError::Expired } else { TokenError::Invalid });
        }
        Ok(claims)
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let keys = self.keyring();
        let key = header.kid.as_deref().and_then(|kid| keys.decoding.get(kid)).ok_or(TokenError::Invalid)?;
        let data =
            jsonwebtoken::decode::<T>(token, key, &self.validation).map_err(|_| TokenError::Invalid)?;
        Ok(data.claims)
    }
}

/// A fresh refresh token and the keyed hash under which it is stored.
pub fn new_refresh_token(hashing: &HashKey) -> (String, [u8; 32]) {
    let token = TokenKind::Refresh.encode(&random::bytes::<TOKEN_BYTES>());
    let hash = hashing.hash(HashPurpose::RefreshToken, token.as_bytes());
    (token, hash)
}
