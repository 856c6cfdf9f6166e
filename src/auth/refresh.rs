//! Refresh tokens: opaque random values that let a client get a new access token.
//!
//! Guards against a database leak turning into session theft (only a SHA-256 hash of each
//! token is stored; 256 random bits make a hash lookup as strong as the token), and against
//! junk reaching the database (a value of the wrong length or alphabet is refused before any
//! query). Rotation and reuse detection live with the handler and the store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
    if value.len() != TOKEN_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    (bytes.len() == TOKEN_BYTES).then(|| hash(&bytes))
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
    fn malformed_tokens_are_refused_before_lookup() {
        let token = mint().value;
        assert_eq!(hash_of_presented(&token[..42]), None);
        assert_eq!(hash_of_presented(&format!("{token}A")), None);
        assert_eq!(hash_of_presented(&"!".repeat(TOKEN_CHARS)), None);
        assert_eq!(hash_of_presented("eyJhbGciOiJFZERTQSJ9.e30.sig"), None);
    }
}
