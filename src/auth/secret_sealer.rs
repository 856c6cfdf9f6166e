//! Sealing secrets the server must read back (TOTP secrets) before they reach the database.
//!
//! Guards against a database dump or backup being enough to mint an account's codes: each
//! secret is encrypted with XChaCha20-Poly1305 under a key kept in its own file (mode 0600,
//! like the audit key), never in the database. The associated data names the account and
//! the column, so a sealed value copied to another account's row (by someone who can write
//! the database) fails to open instead of letting them log in as that account.
//!
//! [`SecretSealer`] is the seam the data-protection work replaces with its keyring (key ids,
//! rotation): callers only `seal` and `open`, and the stored form carries a version prefix so
//! a later format can sit beside this one.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::keyfile;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// The stored form: `v1.` then base64 of nonce ‖ ciphertext ‖ tag.
const FORMAT: &str = "v1.";

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
#[error("AERIE_MFA_KEY_FILE {path}: {problem}")]
pub struct SealerKeyError {
    path: String,
    problem: String,
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The cipher refused (only for lengths far beyond any secret).
    #[error("a secret could not be sealed")]
    Seal,
    /// Wrong key, another row's value, or altered.
    #[error("a sealed secret failed to open (wrong key, moved between rows, or altered)")]
    Open,
}

/// Which stored column a secret belongs to: part of the associated data.
#[derive(Debug, Clone, Copy)]
pub enum SealedColumn {
    TotpSecret,
}

impl SealedColumn {
    fn name(self) -> &'static str {
        match self {
            Self::TotpSecret => "mfa_totp.secret_sealed",
        }
    }
}

/// Encrypts and decrypts secrets kept in the database. Cheap to clone.
#[derive(Clone)]
pub struct SecretSealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretSealer(..)")
    }
}

impl SecretSealer {
    /// Reads the key (32 random bytes); when `generate` (development) and the file is
    /// missing, writes a new one. A key readable by group or others is refused.
    pub fn load_or_generate(path: &Path, generate: bool) -> Result<Self, SealerKeyError> {
        let key = keyfile::load_or_generate_random_key::<KEY_BYTES>(path, generate).map_err(
            |problem| SealerKeyError {
                path: path.display().to_string(),
                problem,
            },
        )?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: [u8; KEY_BYTES]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    fn associated_data(user_id: i64, column: SealedColumn) -> String {
        format!("aerie:{}:{user_id}", column.name())
    }

    /// Seals `secret` for `column` of account `user_id`, under a fresh random nonce.
    pub fn seal(
        &self,
        secret: &[u8],
        user_id: i64,
        column: SealedColumn,
    ) -> Result<String, SealError> {
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let aad = Self::associated_data(user_id, column);
        let payload = Payload {
            msg: secret,
            aad: aad.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce_bytes), payload)
            .map_err(|_| SealError::Seal)?;
        let mut stored = nonce_bytes.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(format!("{FORMAT}{}", STANDARD_NO_PAD.encode(stored)))
    }

    /// Opens what [`Self::seal`] made for the same account and column.
    pub fn open(
        &self,
        sealed: &str,
        user_id: i64,
        column: SealedColumn,
    ) -> Result<Vec<u8>, SealError> {
        let encoded = sealed.strip_prefix(FORMAT).ok_or(SealError::Open)?;
        let bytes = STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| SealError::Open)?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_BYTES).ok_or(SealError::Open)?;
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Open)?;
        let aad = Self::associated_data(user_id, column);
        let payload = Payload {
            msg: ciphertext,
            aad: aad.as_bytes(),
        };
        self.cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> SecretSealer {
        SecretSealer::from_key([7; KEY_BYTES])
    }

    #[test]
    fn sealed_secrets_open_only_for_their_own_row_and_key() {
        let sealed = sealer()
            .seal(b"totp secret bytes", 42, SealedColumn::TotpSecret)
            .expect("seals");
        assert!(!sealed.contains("totp"), "the secret is not readable");
        assert_eq!(
            sealer()
                .open(&sealed, 42, SealedColumn::TotpSecret)
                .expect("opens"),
            b"totp secret bytes"
        );
        assert!(
            sealer()
                .open(&sealed, 43, SealedColumn::TotpSecret)
                .is_err(),
            "copied to another account's row it does not open"
        );
        let other_key = SecretSealer::from_key([8; KEY_BYTES]);
        assert!(
            other_key
                .open(&sealed, 42, SealedColumn::TotpSecret)
                .is_err()
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(
            sealer()
                .open(&tampered, 42, SealedColumn::TotpSecret)
                .is_err()
        );
        assert!(
            sealer()
                .open("garbage", 42, SealedColumn::TotpSecret)
                .is_err()
        );
    }

    #[test]
    fn each_seal_uses_a_new_nonce() {
        let a = sealer()
            .seal(b"same", 1, SealedColumn::TotpSecret)
            .expect("seals");
        let b = sealer()
            .seal(b"same", 1, SealedColumn::TotpSecret)
            .expect("seals");
        assert_ne!(a, b);
    }
}
