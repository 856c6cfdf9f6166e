//! The audit chain's HMAC key: 32 random bytes in a file of its own (mode 0600), never in the
//! database, so someone who can write the database still cannot forge a valid chain.

use std::fmt;
use std::path::Path;

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

#[derive(Clone)]
pub struct AuditKey([u8; KEY_BYTES]);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// Reads the key; when `generate` (development) and the file is missing, writes a new one.
    /// A key readable by group or others is refused: it may already have leaked.
    pub fn load_or_generate(path: &Path, generate: bool) -> Result<Self, KeyError> {
        let key = keyfile::load_or_generate_random_key::<KEY_BYTES>(path, generate).map_err(
            |problem| KeyError {
                path: path.display().to_string(),
                problem,
            },
        )?;
        Ok(Self(key))
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
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
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}
