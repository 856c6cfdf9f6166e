//! Password hashing with argon2id on a bounded pool of blocking threads.
//!
//! Guards against: offline cracking of a stolen database (argon2id, OWASP parameters, a
//! random salt per hash), a login flood starving every other request (at most N hashes run
//! at once; the rest wait for a permit), and account enumeration by timing (an unknown
//! account is verified against a dummy hash, so it costs what a wrong password costs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// How passwords are hashed and how strong a new one must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSettings {
    /// How many argon2 computations may run at once; the rest queue, so a login flood
    /// cannot take every core from other requests.
    pub hash_concurrency: usize,
    /// Minimum zxcvbn score (0–4) for a new password.
    pub min_score: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Argon2(String),
    #[error("password hashing pool closed")]
    PoolClosed,
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// Hashes waiting for a permit: the queue depth a login flood builds up (a metric).
    waiting: Arc<AtomicUsize>,
    /// A hash of a random password nobody knows, verified when the account does not exist.
    dummy_hash: Arc<str>,
}

#[expect(
    clippy::expect_used,
    reason = "the parameters are constants, checked by the tests"
)]
fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasher {
    /// Builds the pool and computes the dummy hash (one hash at start-up).
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let random: [u8; 32] = rand::random();
        let dummy_hash = hash_blocking(&random)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            waiting: Arc::default(),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move || hash_blocking(password.expose_secret().as_bytes()))
            .await?
    }

    /// Checks a password against the stored hash, or against the dummy hash when there is no
    /// account, so both cases take the same time. Returns false for any mismatch.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let password = password.clone();
        let matches = self
            .run(move || verify_blocking(password.expose_secret().as_bytes(), &hash))
            .await?;
        Ok(known && matches)
    }

    /// Hashes waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes running now.
    pub fn in_progress(&self) -> usize {
        self.concurrency
            .saturating_sub(self.permits.available_permits())
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let waiting = Waiting::enter(&self.waiting);
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::PoolClosed)?;
        drop(waiting);
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| HashError::PoolClosed)
    }
}

/// One place in the queue, given up when the permit arrives or the caller goes away (a client
/// that disconnects while queued must not leave the gauge counting it).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hash_blocking(password: &[u8]) -> Result<String, HashError> {
    argon2()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

fn verify_blocking(password: &[u8], hash: &str) -> bool {
    // Parameters come from the stored PHC string, so old hashes keep verifying after the
    // defaults are raised.
    PasswordHash::new(hash).is_ok_and(|parsed| argon2().verify_password(password, &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify_exactly() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        let password = SecretString::from("a".repeat(80) + "X");
        let hash = hasher.hash(&password).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&password, Some(&hash)).await.expect("verify"));
        // No truncation (bcrypt's 72-byte cliff): only the 81st byte differs.
        let other = SecretString::from("a".repeat(80) + "Y");
        assert!(!hasher.verify(&other, Some(&hash)).await.expect("verify"));
        // No trimming.
        let spaced = SecretString::from(" ".to_owned() + &"a".repeat(80) + "X");
        assert!(!hasher.verify(&spaced, Some(&hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn the_queue_depth_counts_hashes_waiting_for_a_slot() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        let held = hasher
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("permit");
        assert_eq!(hasher.in_progress(), 1);
        let queued = {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(&SecretString::from("queued password")).await })
        };
        while hasher.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(hasher.queue_depth(), 1);
        queued.abort();
        let _ = queued.await;
        assert_eq!(hasher.queue_depth(), 0, "a cancelled wait leaves the queue");
        drop(held);
        assert_eq!(hasher.in_progress(), 0);
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        assert!(
            !hasher
                .verify(&SecretString::from("anything"), None)
                .await
                .expect("verify")
        );
    }
}
