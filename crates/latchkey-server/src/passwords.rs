//! Password hashing with Argon2id (m = 19456 KiB, t = 2, p = 1) on a small pool of
//! dedicated threads, never on the async workers. The pool's size caps how many hashes
//! run at once, so logins cannot starve other requests; and each thread owns one
//! 19 MiB block buffer for its whole life. (Allocating that buffer per hash, as
//! Argon2's convenience API does, left the allocator holding on to several of them:
//! 109 MiB of RSS after ten logins, measured with `latchkey-bench`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use latchkey_core::crypto::constant_time_eq;
use latchkey_core::password;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::random;

/// Work for a hashing thread, given that thread's Argon2 memory.
type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

pub struct PasswordHasher {
    jobs: Mutex<Sender<Job>>,
    /// Jobs handed to the pool that no thread has started yet.
    queued: Arc<AtomicUsize>,
    /// A real hash of a random password, verified against when an account has no
    /// password, so that unknown accounts take as long as known ones.
    dummy_hash: String,
}

/// Argon2id with m = 19456 KiB, t = 2, p = 1 (OWASP's first recommendation).
fn params() -> Params {
    // The parameters are constants that Params accepts.
    #[allow(clippy::expect_used)]
    Params::new(19_456, 2, 1, Some(32)).expect("valid Argon2 parameters")
}

/// Hashes `password` with a fresh salt into a PHC string, using `memory`.
fn hash_with(memory: &mut [Block], password: &[u8]) -> anyhow::Result<String> {
    let params = params();
    let salt = random::bytes::<16>();
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            out.as_mut_slice(),
            &mut memory[..params.block_count()],
        )
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?),
        hash: Some(Output::new(out.as_slice()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the Argon2id PHC string `stored`, using `memory` (or a
/// larger temporary buffer for a hash made with more memory than ours).
fn verify_with(memory: &mut [Block], password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let blocks = params.block_count();
    let computed = if blocks <= memory.len() {
        argon2.hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut memory[..blocks])
    } else {
        argon2.hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            vec![Block::default(); blocks],
        )
    };
    computed.is_ok() && constant_time_eq(&out, expected.as_bytes())
}

/// One hashing thread: owns its Argon2 memory (made at its first job, so an idle
/// server stays small) and runs jobs until the pool is dropped.
fn work(jobs: Arc<Mutex<Receiver<Job>>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                if memory.is_empty() {
                    memory = vec![Block::default(); params().block_count()];
                }
                job(&mut memory)
            }
            Err(_) => return,
        }
    }
}

impl PasswordHasher {
    /// Starts `threads` hashing threads (at least one).
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("password-hasher-{index}"))
                .spawn(move || work(receiver))?;
        }
        let mut memory = vec![Block::default(); params().block_count()];
        let dummy_hash = hash_with(&mut memory, &random::bytes::<16>())?;
        drop(memory);
        Ok(Self { jobs: Mutex::new(sender), queued: Arc::new(AtomicUsize::new(0)), dummy_hash })
    }

    /// Runs `task` on a hashing thread and waits for it without blocking the caller's
    /// async worker.
    async fn run<T: Send + 'static>(
        &self,
        task: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = oneshot::channel();
        let queued = Arc::clone(&self.queued);
        let job: Job = Box::new(move |memory| {
            queued.fetch_sub(1, Ordering::Relaxed);
            let _ = reply.send(task(memory));
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.jobs
            .lock()
            .map_err(|_| anyhow::anyhow!("the password hashing pool is poisoned"))?
            .send(job)
            .map_err(|_| anyhow::anyhow!("the password hashing pool has stopped"))?;
        Ok(answer.await?)
    }

    /// Hashes and checks waiting for a free hashing thread now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Hashes a new password, in its NFKC form, into a PHC string.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        self.run(move |memory| {
            let normalized = Zeroizing::new(password::normalize(password.expose_secret()).into_owned());
            hash_with(memory, normalized.as_bytes())
        })
        .await?
    }

    /// Checks `password` against `stored` (a PHC string). With no stored hash, the
    /// dummy hash is checked instead and the answer is always `false`. The NFKC form
    /// is checked first; a password that is not in that form is also checked as typed,
    /// for hashes made before passwords were normalised.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run(move |memory| {
                let typed = password.expose_secret();
                let normalized = Zeroizing::new(password::normalize(typed).into_owned());
                verify_with(memory, normalized.as_bytes(), &hash)
                    || (*normalized != typed && verify_with(memory, typed.as_bytes(), &hash))
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

    #[tokio::test]
    async fn a_password_matches_in_any_unicode_form_and_old_hashes_still_work() {
        let hasher = PasswordHasher::new(1).unwrap();
        let (composed, decomposed) = ("m\u{f6}tley cr\u{fc}e", "mo\u{308}tley cru\u{308}e");
        let hash = hasher.hash(SecretString::from(decomposed)).await.unwrap();
        assert!(hasher.verify(SecretString::from(composed), Some(hash.clone())).await.unwrap());
        assert!(hasher.verify(SecretString::from(decomposed), Some(hash)).await.unwrap());
        // A hash made from the password as typed, before normalisation, still opens.
        let mut memory = vec![Block::default(); params().block_count()];
        let legacy = hash_with(&mut memory, decomposed.as_bytes()).unwrap();
        assert!(hasher.verify(SecretString::from(decomposed), Some(legacy.clone())).await.unwrap());
        assert!(!hasher.verify(SecretString::from("motley crue"), Some(legacy)).await.unwrap());
    }
}
