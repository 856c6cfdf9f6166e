//! Device tokens: proof that this browser or app logged in to this account before.
//!
//! Guards against a forged "known device" claim (the token is `v1.<id>.<HMAC-SHA256(key,
//! id, account)>`; without the server's key no one can make one, and a token made for one
//! account says nothing about another) and against a stolen token being worth more than it is:
//! it only lifts the account-wide failure budget and the address blocks for its holder, who
//! still needs the password and still meets the per-device failure budget.
//!
//! The key is derived from the audit key (like the refresh successor key), so every instance
//! of a deployment accepts every instance's tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie that carries the token to browsers: `HttpOnly`, `Secure`, `SameSite=Strict`.
pub const DEVICE_COOKIE: &str = "__Host-aerie-device";
/// The header by which a client without a cookie jar presents the same token.
pub const DEVICE_HEADER: &str = "x-aerie-device";
/// The label that separates this key from every other key derived from the audit key.
pub const DEVICE_KEY_LABEL: &str = "aerie login device token key v1";

const ID_BYTES: usize = 16;
const ID_CHARS: usize = 22;
const MAC_CHARS: usize = 43;

#[derive(Clone)]
pub struct DeviceKey([u8; 32]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

impl DeviceKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A token for the device `id` (a new random one when `None`) and `account` (the
    /// normalized login key).
    pub fn issue(&self, id: Option<&str>, account: &str) -> String {
        let id = id.map_or_else(
            || URL_SAFE_NO_PAD.encode(rand::random::<[u8; ID_BYTES]>()),
            str::to_owned,
        );
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&id, account).finalize().into_bytes());
        format!("v1.{id}.{mac}")
    }

    /// The device id, when `token` is one of ours for `account`. Anything else (wrong shape,
    /// another account's, forged) is `None`, in constant time for the MAC comparison.
    pub fn verify(&self, token: &str, account: &str) -> Option<String> {
        let rest = token.strip_prefix("v1.")?;
        let (id, mac) = rest.split_once('.')?;
        if id.len() != ID_CHARS || mac.len() != MAC_CHARS {
            return None;
        }
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        URL_SAFE_NO_PAD.decode(id).ok()?;
        self.mac(id, account).verify_slice(&mac).ok()?;
        Some(id.to_owned())
    }

    #[expect(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length; 32 bytes can never be refused"
    )]
    fn mac(&self, id: &str, account: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b"\n");
        mac.update(account.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_proves_its_device_for_its_account_only() {
        let key = DeviceKey::new([3; 32]);
        let token = key.issue(None, "account:bob@example.com");
        let id = key.verify(&token, "account:bob@example.com").expect("ours");
        assert_eq!(key.issue(Some(&id), "account:bob@example.com"), token);
        assert_eq!(key.verify(&token, "account:eve@example.com"), None);
        assert_eq!(
            DeviceKey::new([4; 32]).verify(&token, "account:bob@example.com"),
            None
        );
        for bad in [
            "",
            "v1.",
            "v1.x.y",
            &token[..token.len() - 1],
            &format!("{token}A"),
        ] {
            assert_eq!(key.verify(bad, "account:bob@example.com"), None, "{bad}");
        }
        assert_eq!(format!("{key:?}"), "DeviceKey(..)");
    }
}
