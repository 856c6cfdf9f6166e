//! Password hashing with argon2id on a fixed pool of dedicated, low-priority threads.
//!
//! Guards against: offline cracking of a stolen database (argon2id, OWASP parameters, a
//! random salt per hash), a login flood starving every other request (at most N hashes run
//! at once, on N threads at a low scheduling priority (nice 10), so reads win the CPU; the
//! rest wait for a permit) or exhausting memory (each thread allocates one argon2 block on its
//! first computation and reuses it: hashing memory is at most N × 19 MiB whatever the load,
//! and none before the first password), and account enumeration by timing
//! (an unknown account is verified against a dummy hash, so it costs what a wrong password
//! costs).

mod argon;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Semaphore, oneshot};

use pool::{Job, Pool};

/// How passwords are hashed and how strong a new one must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSettings {
    /// How many argon2 computations may run at once (the number of hashing threads); the
    /// rest queue, so a login flood cannot take every core or more memory.
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
    /// One permit per hashing thread: a job holds one from before it is handed over until
    /// its thread is done with it, so a handed-over job always finds an idle thread.
    permits: Arc<Semaphore>,
    pool: Arc<Pool>,
    /// Hashes waiting for a permit: the queue depth a login flood builds up (a metric).
    waiting: Arc<AtomicUsize>,
    /// A hash no password matches, with the configured parameters, verified when the account
    /// does not exist.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// Starts `concurrency` hashing threads. Nothing is hashed and no argon2 memory is held
    /// until the first password arrives.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let pool = Pool::start(concurrency)?;
        let dummy_hash = argon::unmatchable_hash()?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(pool.threads())),
            pool: Arc::new(pool),
            waiting: Arc::default(),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move |memory| memory.hash(password.expose_secret().as_bytes()))
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
            .run(move |memory| memory.verify(password.expose_secret().as_bytes(), &hash))
            .await?;
        Ok(known && matches)
    }

    /// Hashes waiting for a slot.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes running now.
    pub fn in_progress(&self) -> usize {
        self.pool
            .threads()
            .saturating_sub(self.permits.available_permits())
    }

    /// Bytes of argon2 memory the hashing threads hold: the configured memory cost for each
    /// thread that has computed a hash (more only once a stored hash made with a larger cost
    /// was verified), none before the first.
    pub fn memory_bytes(&self) -> usize {
        self.pool.memory_bytes()
    }

    /// argon2 memory blocks allocated since start: at most one per thread (more only for
    /// stored hashes made with a larger memory cost), never one per computation.
    pub fn memory_allocations(&self) -> usize {
        self.pool.memory_allocations()
    }

    /// Hashing threads running now (the configured concurrency while the hasher lives).
    pub fn threads(&self) -> usize {
        self.pool.threads_alive()
    }

    /// The kernel's thread id of each hashing thread (Linux; empty elsewhere), as `ps -L`
    /// and `/proc/<pid>/task` list them.
    pub fn thread_ids(&self) -> &[i32] {
        self.pool.thread_ids()
    }

    /// Waits for a permit, hands `job` to a hashing thread and waits for its answer. A caller
    /// that goes away while waiting for a permit leaves the queue at once; one that goes away
    /// after the hand-over is not computed for if its thread has not started yet.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut argon::Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let waiting = Waiting::enter(&self.waiting);
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::PoolClosed)?;
        drop(waiting);
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            if answer.is_closed() {
                return;
            }
            let result = work(memory);
            // Released when this thread is done, before the caller can read the answer (so
            // `in_progress` no longer counts it), not when the caller gets round to it. The
            // thread may not be back at the channel yet: the channel has room for that.
            drop(permit);
            let _ = answer.send(result);
        });
        self.pool.send(job)?;
        answered.await.map_err(|_| HashError::PoolClosed)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        // Bounded, so a queue that never counts fails here rather than hanging the run.
        let counted = tokio::time::timeout(Duration::from_secs(10), async {
            while hasher.queue_depth() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(counted.is_ok(), "the waiting hash is never counted");
        assert_eq!(hasher.queue_depth(), 1);
        queued.abort();
        let _ = queued.await;
        assert_eq!(hasher.queue_depth(), 0, "a cancelled wait leaves the queue");
        drop(held);
        assert_eq!(hasher.in_progress(), 0);
    }

    /// One slot per hashing thread: fewer would queue logins behind an idle thread (half
    /// the login throughput on two cores), more would queue jobs inside the pool where no
    /// one counts them.
    #[tokio::test]
    async fn as_many_hashes_run_at_once_as_there_are_threads() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        let slots = Arc::clone(&hasher.permits);
        let first = Arc::clone(&slots).try_acquire_owned();
        let second = Arc::clone(&slots).try_acquire_owned();
        assert!(first.is_ok() && second.is_ok(), "a slot for each thread");
        assert!(
            Arc::clone(&slots).try_acquire_owned().is_err(),
            "no slot without a thread"
        );
        assert_eq!(hasher.in_progress(), 2);
    }

    const CONFIGURED_BYTES: usize = 19 * 1024 * 1024;

    #[tokio::test]
    async fn hashing_memory_is_one_block_per_thread_whatever_the_load() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        assert_eq!(hasher.threads(), 2);
        assert_eq!(
            (hasher.memory_bytes(), hasher.memory_allocations()),
            (0, 0),
            "nothing is held before the first password"
        );
        let right = SecretString::from("correct horse battery staple");
        let stored = hasher.hash(&right).await.expect("hash");
        // Four times as many computations as threads, all at once: hashes, right and wrong
        // passwords, unknown accounts.
        let mut jobs = tokio::task::JoinSet::new();
        for round in 0..2 {
            let (h, s) = (hasher.clone(), stored.clone());
            let r = right.clone();
            jobs.spawn(async move { (round, "right", h.verify(&r, Some(&s)).await) });
            let (h, s) = (hasher.clone(), stored.clone());
            jobs.spawn(async move {
                let wrong = SecretString::from("correct horse battery stapler");
                (round, "wrong", h.verify(&wrong, Some(&s)).await)
            });
            let (h, r) = (hasher.clone(), right.clone());
            jobs.spawn(async move { (round, "unknown", h.verify(&r, None).await) });
            let (h, r) = (hasher.clone(), right.clone());
            jobs.spawn(async move {
                let fresh = h.hash(&r).await.expect("hash");
                (round, "fresh", h.verify(&r, Some(&fresh)).await)
            });
        }
        while let Some(done) = jobs.join_next().await {
            let (round, case, verified) = done.expect("task");
            let expected = matches!(case, "right" | "fresh");
            assert_eq!(
                verified.expect("verify"),
                expected,
                "{case} in round {round}"
            );
        }
        assert_eq!(hasher.threads(), 2, "no thread was added under load");
        // Eighteen computations ran; each thread that took one allocated its block once.
        // (Both threads almost always took some, but the scheduler does not promise it.)
        let allocations = hasher.memory_allocations();
        assert!(
            (1..=2).contains(&allocations),
            "at most one allocation per thread, none per computation: {allocations}"
        );
        assert_eq!(
            hasher.memory_bytes(),
            allocations * CONFIGURED_BYTES,
            "one configured block per allocation, kept"
        );
        assert_eq!((hasher.queue_depth(), hasher.in_progress()), (0, 0));
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        use argon2::password_hash::PasswordHasher as _;
        use argon2::{Algorithm, Argon2, Params, Version};
        let hasher = PasswordHasher::new(1).expect("hasher");
        let password = b"an older password 1";
        let old = |algorithm, version, m, t, p| {
            let params = Params::new(m, t, p, None).expect("params");
            Argon2::new(algorithm, version, params)
                .hash_password(password)
                .expect("hash")
                .to_string()
        };
        let smaller = [
            old(Algorithm::Argon2id, Version::V0x13, 4096, 3, 1),
            old(Algorithm::Argon2i, Version::V0x13, 8192, 2, 1),
            old(Algorithm::Argon2id, Version::V0x10, 4096, 2, 2),
        ];
        // Larger than the configured cost: the thread's memory grows to it, once.
        let larger = old(Algorithm::Argon2id, Version::V0x13, 24 * 1024, 1, 2);
        let right = SecretString::from(String::from_utf8_lossy(password).into_owned());
        let wrong = SecretString::from("an older password 2");
        for stored in smaller.iter().chain([&larger]) {
            assert!(
                hasher.verify(&right, Some(stored)).await.expect("verify"),
                "{stored}"
            );
            assert!(
                !hasher.verify(&wrong, Some(stored)).await.expect("verify"),
                "{stored}"
            );
        }
        assert_eq!(hasher.memory_bytes(), 24 * 1024 * 1024);
        assert_eq!(hasher.memory_allocations(), 2, "grown once, then kept");
        // Not argon2, or not a hash at all: a mismatch, never an error.
        let pbkdf2 = "$pbkdf2-sha256$i=600000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        for stored in [
            pbkdf2,
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
        ] {
            assert!(!hasher.verify(&right, Some(stored)).await.expect("verify"));
        }
    }

    /// The hashing threads run at a low priority (nice 10), so the async workers that
    /// serve reads win the CPU; the caller's thread keeps its own. Read from the kernel.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_low_priority() {
        let nice = |task: &str| {
            let stat =
                std::fs::read_to_string(format!("/proc/thread-self/../{task}/stat")).expect("stat");
            // After the name: state (field 3), ...; nice is field 19 of proc_pid_stat(5).
            let (_, rest) = stat.rsplit_once(") ").expect("stat format");
            let nice: i32 = rest
                .split_whitespace()
                .nth(16)
                .expect("nice")
                .parse()
                .expect("nice");
            nice
        };
        let caller = rustix::thread::gettid().as_raw_nonzero().to_string();
        let callers_own = nice(&caller);
        let hasher = PasswordHasher::new(2).expect("hasher");
        assert_eq!(hasher.thread_ids().len(), 2);
        for id in hasher.thread_ids() {
            assert_eq!(
                nice(&id.to_string()),
                pool::HASHING_NICE,
                "hashing thread {id}"
            );
        }
        assert_eq!(
            nice(&caller),
            callers_own,
            "only the hashing threads are lowered"
        );
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
        // What an unknown account is verified against costs what a real hash costs: the
        // same algorithm and parameters, a full-length salt and output.
        let real = hasher
            .hash(&SecretString::from("anything"))
            .await
            .expect("hash");
        let shape = |phc: &str| {
            let parts: Vec<usize> = phc.split('$').map(str::len).collect();
            let params = phc.split('$').take(4).collect::<Vec<_>>().join("$");
            (params, parts)
        };
        assert_eq!(shape(&hasher.dummy_hash), shape(&real));
        assert_ne!(
            PasswordHasher::new(1).expect("hasher").dummy_hash,
            hasher.dummy_hash,
            "random per server"
        );
    }
}
