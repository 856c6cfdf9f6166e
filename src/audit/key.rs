//! The audit chain's HMAC keys: 32 random bytes each, in a file of their own (mode 0600), never
//! in the database, so someone who can write the database still cannot forge a valid chain.
//!
//! The file is a ring that only grows (oldest key first): `aerie keys rotate-audit` appends a
//! key and starts a new segment of the chain under it ([`super::rotation`]). Older keys stay
//! to verify the segments they sealed; the newest seals the tail, so a leaked older key cannot
//! extend the chain unnoticed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keyfile;

pub type HmacSha256 = Hmac<Sha256>;

const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("AERIE_AUDIT_KEY_FILE {path}: {problem}")]
pub struct KeyError {
    path: String,
    problem: String,
}

const KEY_ID_LABEL: &str = "aerie audit key id v1";

#[derive(Clone)]
pub struct AuditKey {
    bytes: [u8; KEY_BYTES],
    /// [`Self::id`], computed once: the writer looks keys up by id for every row it seals.
    id: String,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    fn new(bytes: [u8; KEY_BYTES]) -> Self {
        let mut key = Self {
            bytes,
            id: String::new(),
        };
        key.id = key
            .derive(KEY_ID_LABEL)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        key
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self::new(bytes)
    }

    /// The key's public name on the chain (`audit_key_rotated`'s `next_key`, the chain
    /// head's `key_id`): derived from the key, so it says nothing about it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for another purpose, derived from this one under `label`
    /// (HMAC-SHA256(key, label)), so every instance that shares the audit key shares it too.
    /// No audit MAC can equal it: the chain MACs a JSON array (it starts with `[`), and a
    /// label never does.
    pub fn derive(&self, label: &str) -> [u8; KEY_BYTES] {
        debug_assert!(
            !label.starts_with('['),
            "a label must not look like a chain row"
        );
        let mut mac = self.mac();
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    #[expect(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length; 32 bytes can never be refused"
    )]
    pub(crate) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.bytes).expect("HMAC takes a key of any length")
    }
}

/// Every audit key, oldest first.
#[derive(Clone, Debug)]
pub struct AuditKeys {
    first: AuditKey,
    /// The keys rotated to since, in order.
    later: Vec<AuditKey>,
}

impl AuditKeys {
    /// Reads the ring; when `generate` (development) and the file is missing, writes a new one
    /// with one key. A file readable by group or others is refused: it may already have leaked.
    pub fn load_or_generate(path: &Path, generate: bool) -> Result<Self, KeyError> {
        let mut keys = keyfile::load_or_generate_random_keys::<KEY_BYTES>(path, generate)
            .map_err(|problem| key_error(path, problem))?
            .into_iter()
            .map(AuditKey::new);
        let first = keys
            .next()
            .ok_or_else(|| key_error(path, "holds no key".into()))?;
        Ok(Self {
            first,
            later: keys.collect(),
        })
    }

    /// A ring of one key.
    pub fn single(key: AuditKey) -> Self {
        Self {
            first: key,
            later: Vec::new(),
        }
    }

    /// The key that sealed the chain's first row.
    pub fn first(&self) -> &AuditKey {
        &self.first
    }

    /// The key new segments start under, and the one the chain's tail must be sealed by.
    pub fn newest(&self) -> &AuditKey {
        self.later.last().unwrap_or(&self.first)
    }

    /// The key named `id`; `""` (a chain that never rotated) names the first.
    pub fn by_id(&self, id: &str) -> Option<&AuditKey> {
        if id.is_empty() {
            return Some(&self.first);
        }
        self.iter().find(|key| key.id() == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AuditKey> {
        std::iter::once(&self.first).chain(&self.later)
    }

    /// Appends a new random key to the ring in `path` (the whole file replaced at once, so a
    /// reader sees the old ring or the new one) and answers it.
    pub fn append_new(path: &Path) -> Result<AuditKey, KeyError> {
        let ring = Self::load_or_generate(path, false)?;
        let key = AuditKey::new(keyfile::random_key::<KEY_BYTES>());
        let mut bytes: Vec<u8> = ring.iter().flat_map(|k| k.bytes).collect();
        bytes.extend_from_slice(&key.bytes);
        keyfile::replace(path, &bytes).map_err(|e| key_error(path, e.to_string()))?;
        Ok(key)
    }
}

fn key_error(path: &Path, problem: String) -> KeyError {
    KeyError {
        path: path.display().to_string(),
        problem,
    }
}

/// The ring a running server seals with, read again from its file when the chain names a key
/// it does not hold yet (another process rotated), so every instance follows a rotation
/// without a restart.
#[derive(Debug)]
pub struct LiveKeys {
    path: PathBuf,
    ring: RwLock<Arc<AuditKeys>>,
}

impl LiveKeys {
    pub fn new(path: PathBuf, ring: AuditKeys) -> Self {
        Self {
            path,
            ring: RwLock::new(Arc::new(ring)),
        }
    }

    pub fn current(&self) -> Arc<AuditKeys> {
        self.ring
            .read()
            .map_or_else(|e| e.into_inner().clone(), |r| r.clone())
    }

    /// The key named `id`, reading the file again once if the ring does not hold it.
    pub fn by_id(&self, id: &str) -> Result<AuditKey, KeyError> {
        if let Some(key) = self.current().by_id(id) {
            return Ok(key.clone());
        }
        let reloaded = AuditKeys::load_or_generate(&self.path, false)?;
        let key = reloaded.by_id(id).cloned();
        match self.ring.write() {
            Ok(mut ring) => *ring = Arc::new(reloaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(reloaded),
        }
        key.ok_or_else(|| {
            key_error(
                &self.path,
                format!("holds no key {id}, which the audit chain is sealed with now (copy the file from where `aerie keys rotate-audit` ran)"),
            )
        })
    }
}
