//! The article lists' keyset cursor (`?after=…`, `nextCursor`): opaque to clients,
//! tamper-evident, and free of internal ids.
//!
//! A cursor names the last article of a page by its public identity (creation time and
//! slug, see [`ListPosition`]) and is sealed with HMAC-SHA256 under a key derived from the
//! audit key (so every instance of a deployment accepts the others' cursors) over that
//! position and the list it belongs to: a cursor edited, forged, or taken from another list
//! (another filter, another user's feed) fails the check and is a 422. Layout, base64url
//! without padding: version byte, creation time (8 bytes, big-endian), slug, 16-byte tag.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::ListPosition;

/// The label that separates the cursor key from every other use of the audit key.
pub const CURSOR_KEY_LABEL: &str = "aerie list cursor key v1";

const VERSION: u8 = 1;
const TAG_BYTES: usize = 16;
/// Longer than any cursor this server writes (slugs are bounded); refused before decoding.
const MAX_CURSOR_CHARS: usize = 1024;

/// The key that seals cursors.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The cursor for the page after `position` in the list `scope` names.
    pub fn seal(&self, scope: &str, position: &ListPosition) -> String {
        let mut bytes = payload(position);
        let tag = self.mac(scope, &bytes).finalize().into_bytes();
        bytes.extend(tag.iter().take(TAG_BYTES));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a cursor names, if this server sealed it for the list `scope` names.
    pub fn open(&self, scope: &str, cursor: &str) -> Option<ListPosition> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let split = bytes.len().checked_sub(TAG_BYTES)?;
        let (body, tag) = bytes.split_at(split);
        self.mac(scope, body).verify_truncated_left(tag).ok()?;
        let (&version, rest) = body.split_first()?;
        if version != VERSION || rest.len() < 8 {
            return None;
        }
        let (time, slug) = rest.split_at(8);
        Some(ListPosition {
            created_at: i64::from_be_bytes(time.try_into().ok()?),
            slug: String::from_utf8(slug.to_vec()).ok()?,
        })
    }

    #[expect(
        clippy::expect_used,
        reason = "HMAC accepts keys of any length; 32 bytes can never be refused"
    )]
    fn mac(&self, scope: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        // The scope's length first, so no scope/body split is ambiguous.
        mac.update(&(scope.len() as u64).to_be_bytes());
        mac.update(scope.as_bytes());
        mac.update(body);
        mac
    }
}

fn payload(position: &ListPosition) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(9 + position.slug.len() + TAG_BYTES);
    bytes.push(VERSION);
    bytes.extend_from_slice(&position.created_at.to_be_bytes());
    bytes.extend_from_slice(position.slug.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> ListPosition {
        ListPosition {
            created_at: 1_700_000_000_123,
            slug: "how-to-train-your-dragon".into(),
        }
    }

    #[test]
    fn a_sealed_cursor_opens_only_for_its_list_and_key() {
        let key = CursorKey::new([7; 32]);
        let cursor = key.seal("articles", &position());
        assert_eq!(key.open("articles", &cursor), Some(position()));
        assert_eq!(key.open("feed", &cursor), None, "another list");
        assert_eq!(CursorKey::new([8; 32]).open("articles", &cursor), None);
    }

    #[test]
    fn an_edited_cursor_is_refused() {
        let key = CursorKey::new([7; 32]);
        let cursor = key.seal("articles", &position());
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).expect("base64");
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert_eq!(
                key.open("articles", &URL_SAFE_NO_PAD.encode(&bytes)),
                None,
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        for junk in ["", "a", "!!!", &"A".repeat(MAX_CURSOR_CHARS + 1)] {
            assert_eq!(key.open("articles", junk), None, "{junk}");
        }
    }
}
