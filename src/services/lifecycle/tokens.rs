//! Mailed tokens: 256 random bits from the OS, URL-safe; only their SHA-256 is stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A freshly made token, in clear only on its way into a sealed mail.
pub struct MailToken(String);

impl MailToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_of(&self.0)
    }
}

/// The stored form of a presented token. Anything that is not a token's shape hashes to a
/// value no token has, so it simply finds nothing.
pub fn hash_of(token: &str) -> String {
    let digest = Sha256::digest(token.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_256_bits_and_are_stored_only_as_a_hash() {
        let token = MailToken::generate();
        assert_eq!(token.expose().len(), 43);
        assert_ne!(token.hash(), token.expose());
        assert_eq!(token.hash(), hash_of(token.expose()));
        assert_ne!(MailToken::generate().expose(), token.expose());
    }
}
