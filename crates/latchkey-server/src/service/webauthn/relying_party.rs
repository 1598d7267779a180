//! The relying party: `webauthn-rs` set up from `webauthn.*`, with the two policies
//! the configuration chooses between, user verification and attestation, applied in
//! one place.
//!
//! | `user_verification` | `attestation` | registration | second factor |
//! |---|---|---|---|
//! | `required` | `none` | passkey | passkey |
//! | `required` | `direct` | attested passkey (roots, allow-list, not synced) | passkey |
//! | `preferred` | either | security key (roots and allow-list when `direct`) | security key |
//!
//! Whatever was registered is stored as one credential type, so a change of policy
//! applies to credentials already registered. Signing in with a passkey alone
//! always requires user verification, whatever the policy.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    AttestationCaList, AttestationCaListBuilder, AttestedPasskeyRegistration, AuthenticationResult,
    CreationChallengeResponse, Credential, CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, SecurityKey,
    SecurityKeyAuthentication, SecurityKeyRegistration, Uuid, WebauthnResult,
};

use crate::config::{Config, UserVerification};

pub struct RelyingParty {
    /// The library, for what does not depend on the policies (signing in).
    pub library: Webauthn,
    user_verification: UserVerification,
    /// With `attestation = "direct"`: the makers' roots, each with the allowed models.
    attestation: Option<AttestationCaList>,
}

/// The server's half of a registration, of the kind the policy asked for.
#[derive(Serialize, Deserialize)]
pub enum Registration {
    Passkey(PasskeyRegistration),
    Attested(AttestedPasskeyRegistration),
    SecurityKey(SecurityKeyRegistration),
}

/// The server's half of an authentication with known credentials.
#[derive(Serialize, Deserialize)]
pub enum Authentication {
    /// User verification required.
    Passkey(PasskeyAuthentication),
    /// User verification preferred.
    SecurityKey(SecurityKeyAuthentication),
}

impl RelyingParty {
    /// The relying party the configuration describes; reads `attestation_roots`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let (rp_id, origins) = config.relying_party()?;
        let rp_name = config.webauthn.rp_name.as_deref().unwrap_or(&config.totp.issuer);
        let Some((first, others)) = origins.split_first() else { anyhow::bail!("webauthn.origins is empty") };
        let mut builder = webauthn_rs::WebauthnBuilder::new(&rp_id, first)
            .with_context(|| format!("webauthn: the origin {first} is not within the RP id {rp_id}"))?
            .rp_name(rp_name);
        for origin in others {
            builder = builder.append_allowed_origin(origin);
        }
        let library = builder.build().context("webauthn: the relying party is not valid")?;
        let aaguids = config.webauthn.attestation_policy().map_err(anyhow::Error::msg)?;
        let attestation = match &config.webauthn.attestation_roots {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading webauthn.attestation_roots {}", path.display()))?;
                Some(attestation_roots(&pem, &aaguids).with_context(|| {
                    format!("webauthn.attestation_roots {}: not PEM certificates", path.display())
                })?)
            }
            None => None,
        };
        Ok(Self { library, user_verification: config.webauthn.user_verification, attestation })
    }

    /// Starts registering a credential for the user with handle `user` (shown to them
    /// as `name`), excluding the credentials they already have.
    pub fn start_registration(
        &self,
        user: Uuid,
        name: &str,
        exclude: Vec<CredentialID>,
    ) -> WebauthnResult<(CreationChallengeResponse, Registration)> {
        let roots = self.attestation.clone();
        let lib = &self.library;
        Ok(match (self.user_verification, roots) {
            (UserVerification::Required, None) => {
                let (options, state) = lib.start_passkey_registration(user, name, name, Some(exclude))?;
                (options, Registration::Passkey(state))
            }
            (UserVerification::Required, Some(roots)) => {
                let (options, state) =
                    lib.start_attested_passkey_registration(user, name, name, Some(exclude), roots, None)?;
                (options, Registration::Attested(state))
            }
            (UserVerification::Preferred, roots) => {
                let (options, state) =
                    lib.start_securitykey_registration(user, name, name, Some(exclude), roots, None)?;
                (options, Registration::SecurityKey(state))
            }
        })
    }

    /// Finishes a registration: the credential, stored as a [`Passkey`] whatever kind
    /// it was registered as.
    pub fn finish_registration(
        &self,
        answer: &RegisterPublicKeyCredential,
        state: &Registration,
    ) -> WebauthnResult<Passkey> {
        let lib = &self.library;
        Ok(match state {
            Registration::Passkey(state) => lib.finish_passkey_registration(answer, state)?,
            Registration::Attested(state) => lib.finish_attested_passkey_registration(answer, state)?.into(),
            Registration::SecurityKey(state) => {
                Credential::from(lib.finish_securitykey_registration(answer, state)?).into()
            }
        })
    }

    /// Starts authenticating with one of `keys`, as a second factor.
    pub fn start_authentication(
        &self,
        keys: &[Passkey],
    ) -> WebauthnResult<(RequestChallengeResponse, Authentication)> {
        Ok(match self.user_verification {
            UserVerification::Required => {
                let (options, state) = self.library.start_passkey_authentication(keys)?;
                (options, Authentication::Passkey(state))
            }
            UserVerification::Preferred => {
                let keys: Vec<SecurityKey> =
                    keys.iter().map(|key| Credential::from(key.clone()).into()).collect();
                let (options, state) = self.library.start_securitykey_authentication(&keys)?;
                (options, Authentication::SecurityKey(state))
            }
        })
    }

    /// Checks an assertion against the authentication it answers.
    pub fn finish_authentication(
        &self,
        answer: &PublicKeyCredential,
        state: &Authentication,
    ) -> WebauthnResult<AuthenticationResult> {
        match state {
            Authentication::Passkey(state) => self.library.finish_passkey_authentication(answer, state),
            Authentication::SecurityKey(state) => {
                self.library.finish_securitykey_authentication(answer, state)
            }
        }
    }
}

/// Every certificate in `pem` as a root trusted for each of `aaguids`.
fn attestation_roots(pem: &str, aaguids: &[Uuid]) -> anyhow::Result<AttestationCaList> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let mut builder = AttestationCaListBuilder::new();
    let mut roots = 0;
    for block in pem.split(BEGIN).skip(1) {
        let certificate = format!("{BEGIN}{block}");
        for aaguid in aaguids {
            builder
                .insert_device_pem(certificate.as_bytes(), *aaguid, aaguid.to_string(), Default::default())
                .map_err(|error| anyhow::anyhow!("{error:?}"))?;
        }
        roots += 1;
    }
    anyhow::ensure!(roots > 0, "no certificate found");
    Ok(builder.build())
}
