//! Refresh tokens: opaque random values that let a client get a new access token.
//!
//! Guards against a database leak turning into session theft (only a SHA-256 hash of each
//! token is stored; 256 random bits make a hash lookup as strong as the token), and against
//! junk reaching the database (a value of the wrong length or alphabet is refused before any
//! query), and against a refresh family forking: a token's successor is not random but
//! derived from it under a server-held key ([`SuccessorKey`]), so a token rotated twice (two
//! racing refreshes, a retried request) yields the same successor both times, and a family
//! stays one chain. Rotation and reuse detection live in `services::sessions`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Random bytes per token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Length of the base64url text of [`TOKEN_BYTES`] bytes, without padding.
const TOKEN_CHARS: usize = 43;

/// A freshly minted refresh token: the value for the client, the hash for the database.
pub struct NewRefreshToken {
    pub value: String,
    pub hash: String,
}

pub fn mint() -> NewRefreshToken {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    let value = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&bytes);
    NewRefreshToken { value, hash }
}

/// The stored hash of a presented token, or `None` when it cannot be one of ours (wrong
/// length, wrong alphabet): such a value never reaches the database.
pub fn hash_of_presented(value: &str) -> Option<String> {
    Presented::parse(value).map(|presented| presented.hash)
}

/// A presented token that has the shape of one of ours.
pub struct Presented {
    bytes: [u8; TOKEN_BYTES],
    /// The hash it is stored under.
    pub hash: String,
}

impl Presented {
    /// `None` when the value cannot be one of ours: it never reaches the database.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != TOKEN_CHARS {
            return None;
        }
        let bytes: [u8; TOKEN_BYTES] = URL_SAFE_NO_PAD.decode(value).ok()?.try_into().ok()?;
        let hash = hash(&bytes);
        Some(Self { bytes, hash })
    }
}

/// The label that separates the successor key from every other use of the key it is derived
/// from (see `audit::AuditKey::derive`).
pub const SUCCESSOR_KEY_LABEL: &str = "aerie refresh-token successor key v1";

/// The server-held key that derives each refresh token's one successor:
/// `successor = HMAC-SHA256(key, token)`. Every instance of a deployment holds the same key,
/// so a token rotated on two instances at once still has one successor. Without the key the
/// chain cannot be computed: a thief of one token learns nothing about the next.
#[derive(Clone)]
pub struct SuccessorKey([u8; 32]);

impl fmt::Debug for SuccessorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SuccessorKey(..)")
    }
}

impl SuccessorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The token that follows `presented` in its family: always the same one.
    #[expect(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length; 32 bytes can never be refused"
    )]
    pub fn successor_of(&self, presented: &Presented) -> NewRefreshToken {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(&presented.bytes);
        let bytes: [u8; TOKEN_BYTES] = mac.finalize().into_bytes().into();
        NewRefreshToken {
            value: URL_SAFE_NO_PAD.encode(bytes),
            hash: hash(&bytes),
        }
    }
}

fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_hash_the_same_when_presented() {
        let token = mint();
        assert_eq!(token.value.len(), TOKEN_CHARS);
        assert_eq!(hash_of_presented(&token.value), Some(token.hash.clone()));
        assert_ne!(token.value, token.hash);
        assert_ne!(mint().value, token.value);
    }

    #[test]
    fn a_token_has_one_successor_that_only_the_key_computes() {
        let token = mint();
        let presented = Presented::parse(&token.value).expect("ours");
        let key = SuccessorKey::new([7; 32]);
        let successor = key.successor_of(&presented);
        assert_eq!(successor.value, key.successor_of(&presented).value);
        assert_eq!(
            hash_of_presented(&successor.value),
            Some(successor.hash.clone())
        );
        assert_ne!(successor.value, token.value);
        let other_key = SuccessorKey::new([8; 32]);
        assert_ne!(other_key.successor_of(&presented).value, successor.value);
        let next = key.successor_of(&Presented::parse(&successor.value).expect("ours"));
        assert_ne!(next.value, successor.value);
        assert_eq!(format!("{key:?}"), "SuccessorKey(..)");
    }

    #[test]
    fn malformed_tokens_are_refused_before_lookup() {
        let token = mint().value;
        assert_eq!(hash_of_presented(&token[..42]), None);
        assert_eq!(hash_of_presented(&format!("{token}A")), None);
        assert_eq!(hash_of_presented(&"!".repeat(TOKEN_CHARS)), None);
        assert_eq!(hash_of_presented("eyJhbGciOiJFZERTQSJ9.e30.sig"), None);
    }
}
