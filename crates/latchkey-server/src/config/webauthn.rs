//! The `[webauthn]` section: passkeys and security keys.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::Url;

/// Passkeys and security keys (WebAuthn).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnConfig {
    /// The relying party id: the domain credentials are bound to. Unset: the host of
    /// `public_url`, except that an IP address, which is never a valid RP id, becomes
    /// `localhost`.
    pub rp_id: Option<String>,
    /// The name authenticators show. Unset: `totp.issuer`.
    pub rp_name: Option<String>,
    /// The origins (`https://host[:port]`) pages may use passkeys from. Unset:
    /// `public_url`'s, on the host `localhost` when the RP id defaults to it.
    #[serde(deserialize_with = "super::sections::list_or_comma_separated")]
    pub origins: Vec<String>,
    /// Whether the authenticator must verify the user (PIN, biometrics) when it is used
    /// as a second factor. Signing in with a passkey alone always requires it.
    pub user_verification: UserVerification,
    /// What registration asks the authenticator to prove about its make and model.
    pub attestation: Attestation,
    /// With `attestation = "direct"`: a PEM file of the attestation root certificates
    /// of the security keys' makers; a registration must chain up to one of them.
    pub attestation_roots: Option<PathBuf>,
    /// With `attestation = "direct"`: the authenticator models (AAGUIDs) that may
    /// register; any other is refused.
    #[serde(deserialize_with = "super::sections::list_or_comma_separated")]
    pub allowed_aaguids: Vec<String>,
}

/// `webauthn.user_verification`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserVerification {
    /// Every use verifies the user: a passkey is then a factor of its own.
    #[default]
    Required,
    /// Asked for, not required, as a second factor: security keys without a PIN work.
    Preferred,
}

/// `webauthn.attestation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attestation {
    /// Any authenticator may register; its make is not checked.
    #[default]
    None,
    /// Only authenticators whose attestation chains up to `attestation_roots` and whose
    /// model is in `allowed_aaguids` may register (security keys a company issues).
    Direct,
}

impl WebauthnConfig {
    /// The AAGUIDs `allowed_aaguids` lists, when the attestation settings hang together.
    pub fn attestation_policy(&self) -> Result<Vec<uuid::Uuid>, String> {
        let aaguids = self
            .allowed_aaguids
            .iter()
            .map(|text| {
                uuid::Uuid::parse_str(text)
                    .map_err(|_| format!("webauthn.allowed_aaguids: `{text}` is not a UUID"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self.attestation {
            Attestation::None if !aaguids.is_empty() || self.attestation_roots.is_some() => Err(
                "webauthn.allowed_aaguids and webauthn.attestation_roots need webauthn.attestation = \"direct\""
                    .to_owned(),
            ),
            Attestation::None => Ok(aaguids),
            Attestation::Direct if aaguids.is_empty() || self.attestation_roots.is_none() => Err(
                "webauthn.attestation = \"direct\" needs webauthn.attestation_roots (the makers' root \
                 certificates, PEM) and webauthn.allowed_aaguids: an AAGUID alone is only the \
                 authenticator's claim"
                    .to_owned(),
            ),
            Attestation::Direct => Ok(aaguids),
        }
    }

    /// The relying party's id and the origins allowed to use it, with the defaults the
    /// fields describe, for a service at `public_url`; what is wrong, if anything.
    pub fn relying_party(&self, public_url: &str) -> Result<(String, Vec<Url>), &'static str> {
        let is_ip = |host: &str| host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok();
        let public = Url::parse(public_url).map_err(|_| "public_url must be an http(s) URL")?;
        let public_host = public.host_str().unwrap_or_default().to_owned();
        let rp_id = match &self.rp_id {
            Some(rp_id) => rp_id.clone(),
            None if is_ip(&public_host) => "localhost".to_owned(),
            None => public_host.clone(),
        };
        if rp_id.is_empty() || is_ip(&rp_id) {
            return Err("webauthn.rp_id must be a domain name (an IP address is not a valid RP id)");
        }
        if !self.origins.is_empty() {
            let origins = self.origins.iter().map(|origin| Url::parse(origin));
            let origins = origins.collect::<Result<_, _>>();
            return Ok((
                rp_id,
                origins.map_err(|_| "webauthn.origins holds URLs like \"https://example.com\"")?,
            ));
        }
        let mut origin = public;
        if is_ip(&public_host) && self.rp_id.is_none() {
            origin.set_host(Some("localhost")).map_err(|_| "public_url has no host")?;
        }
        Ok((rp_id, vec![origin]))
    }
}
