//! Server keys: the master key (from configuration, or generated into the data
//! directory for development) and the Ed25519 token-signing key, which lives in the
//! database sealed under the master key so that every instance shares it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::UnixTime;
use latchkey_core::crypto::{MasterKey, NONCE_LEN, Sealed, ServerKeys};
use latchkey_store::{SigningKeyRecord, Store, StoredSecret};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::random;

const MASTER_KEY_FILE: &str = "master.key";
pub const SIGNING_ALGORITHM: &str = "EdDSA";

/// Where the master key came from; a generated one is worth a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeySource {
    Configured,
    GeneratedFile,
    ExistingFile,
}

/// Loads the configured master key, or the one in `data_dir/master.key`, creating that
/// file (mode 0600) if it does not exist.
pub fn load_master_key(config: &Config) -> anyhow::Result<(MasterKey, MasterKeySource)> {
    if let Some(text) = &config.keys.master_key {
        let key = MasterKey::parse(text.expose_secret()).context("keys.master_key")?;
        return Ok((key, MasterKeySource::Configured));
    }
    let path = config.data_dir.join(MASTER_KEY_FILE);
    if path.exists() {
        let text = Zeroizing::new(
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        );
        let key = MasterKey::parse(&text).with_context(|| format!("the key in {}", path.display()))?;
        return Ok((key, MasterKeySource::ExistingFile));
    }
    let key = MasterKey::from_bytes(random::bytes::<32>());
    write_private_file(&path, key.to_base64().as_bytes())?;
    Ok((key, MasterKeySource::GeneratedFile))
}

/// Creates `dir` (and its missing parents) readable by this user only (0700): the data
/// directory holds the master key, the SQLite database and the outbox.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    Ok(())
}

/// An Ed25519 key pair ready for signing, with its public half.
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 document of the private key.
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub public_key: Vec<u8>,
}

/// A verification key as published in the JWKS.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub kid: String,
    pub public_key: Vec<u8>,
}

/// Seals `plaintext` under the master key with a fresh nonce, bound to `context`, in
/// the form the store keeps (TOTP secrets, queued messages).
pub fn seal_secret(keys: &ServerKeys, plaintext: &[u8], context: &[u8]) -> anyhow::Result<StoredSecret> {
    let sealed = keys.sealing.seal(&keys.key_id, random::bytes::<NONCE_LEN>(), plaintext, context)?;
    Ok(StoredSecret { sealed: sealed.ciphertext, nonce: sealed.nonce.to_vec(), key_id: sealed.key_id })
}

/// Opens a value made by [`seal_secret`] with the same `context`.
pub fn open_secret(
    keys: &ServerKeys,
    stored: &StoredSecret,
    context: &[u8],
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = stored
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("a sealed value has a bad nonce length"))?;
    let sealed = Sealed { key_id: stored.key_id.clone(), nonce, ciphertext: stored.sealed.clone() };
    Ok(keys.open(&sealed, context)?)
}

pub(crate) fn sealing_context(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

/// RFC 7638 thumbprint of an Ed25519 public key, used as its key id.
fn thumbprint(public_key: &[u8]) -> String {
    let jwk = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(public_key));
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jwk.as_bytes()))
}

/// Makes sure the database holds an active signing key (creating one on first start;
/// when several instances start at once, one key wins) and opens the one that signs
/// at `now`: the newest whose `signs_from` has come (a key just rotated in is only
/// published until then). The public keys are every key not retired.
pub async fn load_signing_keys(
    store: &dyn Store,
    keys: &ServerKeys,
    now: UnixTime,
) -> anyhow::Result<(SigningKey, Vec<PublicKey>)> {
    if !store.signing_keys(now).await?.iter().any(|k| k.active) {
        let candidate = generate_signing_key(keys, now)?;
        if store.insert_first_signing_key(&candidate).await? {
            tracing::info!(kid = %candidate.kid, "created the token-signing key");
        }
    }
    let records = store.signing_keys(now).await?;
    let signing = records
        .iter()
        .filter(|k| k.signs_from <= now)
        .max_by_key(|k| (k.signs_from, k.active))
        .or_else(|| records.iter().find(|k| k.active));
    let Some(active) = signing else { bail!("no active signing key in the database") };
    let nonce: [u8; NONCE_LEN] = active
        .nonce
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("signing key {} has a bad nonce", active.kid))?;
    let sealed =
        Sealed { key_id: active.master_key_id.clone(), nonce, ciphertext: active.sealed_private.clone() };
    let pkcs8 = keys
        .open(&sealed, &sealing_context(&active.kid))
        .context("cannot open the token-signing key: every instance must use the same master key")?;
    let signing = SigningKey { kid: active.kid.clone(), pkcs8, public_key: active.public_key.clone() };
    let public =
        records.iter().map(|k| PublicKey { kid: k.kid.clone(), public_key: k.public_key.clone() }).collect();
    Ok((signing, public))
}

/// A new signing key, published at once (in the key set every instance reloads within
/// `tokens.key_refresh_secs`) and signing from `now + publish_ahead_secs`, so that no
/// instance sees a token under a key it does not know yet. The key it replaces stays
/// in the key set until `retire_after_secs` after that, when every token it signed has
/// expired. Returns the new key's id and when it starts signing.
pub async fn rotate_signing_key(
    store: &dyn Store,
    keys: &ServerKeys,
    now: UnixTime,
    publish_ahead_secs: i64,
    retire_after_secs: i64,
) -> anyhow::Result<(String, UnixTime)> {
    let mut record = generate_signing_key(keys, now)?;
    record.signs_from = now + publish_ahead_secs;
    store.rotate_signing_key(&record, record.signs_from + retire_after_secs).await?;
    Ok((record.kid, record.signs_from))
}

fn generate_signing_key(keys: &ServerKeys, now: UnixTime) -> anyhow::Result<SigningKeyRecord> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let document = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
        .map_err(|_| anyhow::anyhow!("cannot read the new key"))?;
    let public_key = pair.public_key().as_ref().to_vec();
    let kid = thumbprint(&public_key);
    let sealed = keys.sealing.seal(
        &keys.key_id,
        random::bytes::<NONCE_LEN>(),
        document.as_ref(),
        &sealing_context(&kid),
    )?;
    Ok(SigningKeyRecord {
        kid,
        algorithm: SIGNING_ALGORITHM.into(),
        public_key,
        sealed_private: sealed.ciphertext,
        nonce: sealed.nonce.to_vec(),
        master_key_id: sealed.key_id,
        active: true,
        created_at: now,
        signs_from: now,
        retired_at: None,
    })
}
