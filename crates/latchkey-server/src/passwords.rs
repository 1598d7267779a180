//! Password hashing with Argon2id (m = 19456 KiB, t = 2, p = 1) on the blocking thread
//! pool, never on the async workers, with a cap on how many run at once so logins
//! cannot starve other requests or exhaust memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::random;

pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when an account has no
    /// password, so that unknown accounts take as long as known ones.
    dummy_hash: String,
}

fn argon2() -> Argon2<'static> {
    // The parameters are constants that Params accepts.
    #[allow(clippy::expect_used)]
    let params = Params::new(19_456, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> anyhow::Result<String> {
    let salt = random::bytes::<16>();
    let hash =
        argon2().hash_password_with_salt(password, &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

impl PasswordHasher {
    pub fn new(max_concurrent: usize) -> anyhow::Result<Self> {
        let dummy_password = random::bytes::<16>();
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: hash_blocking(&dummy_password)?,
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret().as_bytes())).await?
    }

    /// Checks `password` against `stored` (a PHC string). With no stored hash, the
    /// dummy hash is checked instead and the answer is always `false`.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            argon2().verify_password(password.expose_secret().as_bytes(), hash.as_str()).is_ok()
        })
        .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_parameters() {
        let hasher = PasswordHasher::new(1).unwrap();
        let hash = hasher.hash(SecretString::from("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(SecretString::from("correct horse"), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(SecretString::from("correct horsE"), Some(hash)).await.unwrap());
        assert!(!hasher.verify(SecretString::from("anything"), None).await.unwrap());
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let hasher = PasswordHasher::new(1).unwrap();
        let long = "x".repeat(256);
        let hash = hasher.hash(SecretString::from(long.clone())).await.unwrap();
        let mut other = long.clone();
        other.replace_range(255.., "y");
        assert!(hasher.verify(SecretString::from(long), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(SecretString::from(other), Some(hash)).await.unwrap());
    }
}
