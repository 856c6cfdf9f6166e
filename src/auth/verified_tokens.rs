//! Access tokens this process has already verified, so a client's next request with the same
//! token skips the Ed25519 signature check (about a tenth of a simple read's CPU).
//!
//! Only what cannot change for the same bytes is remembered: the signature, key id, header,
//! issuer and audience checks passed under this process's keyring, which is fixed for its
//! life (a rotated or withdrawn signing key takes a restart, which starts an empty cache).
//! The time checks run again on every use against the injected clock, so a remembered token
//! still expires, and the session's revocation is checked after verification as before.
//! Entries are keyed by the token's SHA-256 (no bearer token is kept), and the map is bounded:
//! when full, the tokens that expire soonest go first.

use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::bounded_map::BoundedMap;

/// Tokens remembered at most: with a session id and a few numbers each, well under 2 MB.
const CAPACITY: usize = 8192;

/// A token's time claims, in Unix seconds, checked again on every use.
#[derive(Debug, Clone, Copy)]
pub struct TimeClaims {
    pub iat: i64,
    pub exp: i64,
    pub nbf: Option<i64>,
}

/// What verifying a token found (`T`: the token service's verified claims), and its times.
#[derive(Debug, Clone)]
pub struct Remembered<T> {
    pub verified: T,
    pub times: TimeClaims,
}

#[derive(Debug)]
pub struct VerifiedTokens<T> {
    entries: Mutex<BoundedMap<[u8; 32], Remembered<T>>>,
}

impl<T> Default for VerifiedTokens<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(BoundedMap::new(CAPACITY)),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl<T: Clone> VerifiedTokens<T> {
    /// What verifying `token` found before, if this process verified it.
    pub fn get(&self, token: &str) -> Option<Remembered<T>> {
        let key = digest(token);
        match self.entries.lock() {
            Ok(entries) => entries.get(&key).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&key).cloned(),
        }
    }

    /// Remembers a token that passed every check.
    pub fn remember(&self, token: &str, remembered: Remembered<T>) {
        let key = digest(token);
        let soonest_expiring_first = |entry: &Remembered<T>| entry.times.exp;
        match self.entries.lock() {
            Ok(mut entries) => entries.insert(key, remembered, soonest_expiring_first),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(key, remembered, soonest_expiring_first),
        };
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }
}
