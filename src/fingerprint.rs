//! A fixed-size stand-in for an identifier a client chose (an email, an address, a bucket
//! key), for every in-memory map and shared-store key that counts per identifier.
//!
//! Guards against memory exhaustion through long keys: a 64 KB "email" costs a limiter, trip
//! or alert map 32 bytes, like any other. SHA-256 rather than a faster keyed hash: two
//! identifiers that collide would share one counter, and no one can find a SHA-256 collision;
//! the digest is the same in every instance, so the Redis buckets that instances share use it
//! too. (The maps' own hashing is std's randomly keyed SipHash, so flooding one bucket of a
//! map is not possible either.)

use std::net::IpAddr;

use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(identifier: &str) -> Self {
        Self(Sha256::digest(identifier.as_bytes()).into())
    }

    /// An address's stand-in, without a digest: an address is short and of fixed size
    /// already, so the fingerprint is its octets behind a family tag (4 or 6), zero-padded.
    /// Two addresses never share one, and a digest of any text landing on one would be a
    /// SHA-256 preimage. It saves a hash on every request's per-address check; only this
    /// instance's own buckets use it (the keys shared in Redis stay digests of text, alike
    /// in every instance and every version).
    pub fn of_address(address: IpAddr) -> Self {
        let mut bytes = [0; 32];
        match address {
            IpAddr::V4(v4) => {
                bytes[0] = 4;
                bytes[1..5].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                bytes[0] = 6;
                bytes[1..17].copy_from_slice(&v6.octets());
            }
        }
        Self(bytes)
    }

    /// 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        use std::fmt::Write;
        self.0
            .iter()
            .fold(String::with_capacity(64), |mut out, byte| {
                let _ = write!(out, "{byte:02x}");
                out
            })
    }
}

/// Never the identifier, and not the digest either (a digest of an email is guessable).
impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_identifier_becomes_32_bytes() {
        let long = "a".repeat(65_536);
        assert_eq!(std::mem::size_of_val(&Fingerprint::of(&long)), 32);
        assert_eq!(Fingerprint::of(&long).hex().len(), 64);
        assert_ne!(Fingerprint::of("a"), Fingerprint::of("b"));
        assert_eq!(
            Fingerprint::of("k").hex(),
            "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a"
        );
    }

    #[test]
    fn addresses_keep_their_octets_and_family_apart() {
        let v4: IpAddr = "192.0.2.1".parse().expect("address");
        let other_v4: IpAddr = "192.0.2.2".parse().expect("address");
        let v6: IpAddr = "c000:201::".parse().expect("address");
        assert_eq!(Fingerprint::of_address(v4), Fingerprint::of_address(v4));
        assert_ne!(
            Fingerprint::of_address(v4),
            Fingerprint::of_address(other_v4)
        );
        // The same leading octets in the other family are another client.
        assert_ne!(Fingerprint::of_address(v4), Fingerprint::of_address(v6));
        assert_eq!(
            Fingerprint::of_address(v4).hex(),
            format!("04c0000201{}", "0".repeat(54))
        );
        assert_ne!(Fingerprint::of_address(v4), Fingerprint::of("ip:192.0.2.1"));
    }
}
