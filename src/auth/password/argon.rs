//! argon2id into memory the caller owns: each hashing thread keeps one block of the configured
//! size and every hash and verification it runs reuses it, so no computation allocates (or
//! leaves behind in an allocator arena) its 19 MiB. The algorithm, the PHC encoding and the
//! constant-time comparison are the `argon2` / `password-hash` crates'; only where the memory
//! comes from is chosen here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::HashError;

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// The parameters new hashes are made with.
#[expect(
    clippy::expect_used,
    reason = "the parameters are constants, checked by the tests"
)]
pub(super) fn configured() -> Params {
    Params::new(MEMORY_KIB, PASSES, LANES, None).expect("constant argon2 parameters are valid")
}

/// The pool's argon2 memory as numbers: bytes held now, and allocations made since start (one
/// per thread unless a stored hash needed more).
#[derive(Default)]
pub(super) struct MemoryGauge {
    pub(super) bytes: AtomicUsize,
    pub(super) allocations: AtomicUsize,
}

/// One hashing thread's argon2 memory, allocated once and counted in the pool's gauge while it
/// lives, so the pool's whole hashing memory can be read (and tested) as a number.
pub(super) struct Memory {
    blocks: Vec<Block>,
    gauge: Arc<MemoryGauge>,
}

impl Memory {
    /// No blocks yet: the first computation allocates them (see [`Memory::fit`]), so a server
    /// that has not hashed holds no argon2 memory, and one that has holds one block per
    /// thread that ran a computation.
    pub(super) fn new(gauge: Arc<MemoryGauge>) -> Self {
        Self {
            blocks: Vec::new(),
            gauge,
        }
    }

    /// Hashes a new password with the configured parameters and a random salt, as a PHC
    /// string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
    pub(super) fn hash(&mut self, password: &[u8]) -> Result<String, HashError> {
        let params = configured();
        let salt_bytes: [u8; Salt::RECOMMENDED_LENGTH] = rand::random();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.fit(params.block_count());
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password, &salt_bytes, &mut out, &mut self.blocks)
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        phc_string(&params, &salt_bytes, &out)
    }

    /// Whether `password` matches the PHC string `stored`. The algorithm, version, parameters,
    /// salt and output length all come from `stored`, so hashes made with older parameters
    /// keep verifying; the outputs are compared by `Output`'s constant-time equality. Anything
    /// unparsable is a mismatch.
    pub(super) fn verify(&mut self, password: &[u8], stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let Ok(version) = parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from)
        else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let mut buffer = [0u8; Output::MAX_LENGTH];
        let Some(out) = buffer.get_mut(..expected.len()) else {
            return false;
        };
        self.fit(params.block_count());
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password,
            salt.as_ref(),
            out,
            &mut self.blocks,
        );
        computed.is_ok() && Output::new(out).is_ok_and(|computed| computed == expected)
    }

    /// Bytes of argon2 memory this thread holds.
    pub(super) fn bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    /// Allocates the configured parameters' blocks on the first computation, and grows them
    /// to `count` when a stored hash was made with more memory than that (never the case for
    /// hashes made by this build); they are kept, so the pool's memory is bounded by its
    /// thread count times the largest cost stored.
    fn fit(&mut self, count: usize) {
        let count = count.max(configured().block_count());
        if self.blocks.len() < count {
            let before = self.bytes();
            self.blocks.resize(count, Block::new());
            self.gauge
                .bytes
                .fetch_add(self.bytes() - before, Ordering::Relaxed);
            self.gauge.allocations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.gauge.bytes.fetch_sub(self.bytes(), Ordering::Relaxed);
    }
}

/// A PHC string with the configured parameters, a random salt and a random output: verifying
/// any password against it costs one full argon2 computation, like a real hash, and matches
/// only if that password's output equals 32 random bytes (chance 2^-256). Nothing is hashed to
/// make it, so start-up neither spends a computation nor holds argon2 memory for it.
pub(super) fn unmatchable_hash() -> Result<String, HashError> {
    let salt: [u8; Salt::RECOMMENDED_LENGTH] = rand::random();
    let output: [u8; Params::DEFAULT_OUTPUT_LEN] = rand::random();
    phc_string(&configured(), &salt, &output)
}

/// `$argon2id$v=19$<params>$<salt>$<output>`.
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> Result<String, HashError> {
    let encoded = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(argon2_error)?,
        salt: Some(Salt::new(salt).map_err(argon2_error)?),
        hash: Some(Output::new(output).map_err(argon2_error)?),
    };
    Ok(encoded.to_string())
}

fn argon2_error(error: impl std::fmt::Display) -> HashError {
    HashError::Argon2(error.to_string())
}
