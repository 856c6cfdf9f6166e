//! Refresh-token parsing and lookup-key derivation (`aerie::auth::refresh`): never panics,
//! and only the one canonical text of 32 random bytes yields a lookup key, so no two
//! spellings of a token reach the database as the same key, and junk reaches it never.
#![no_main]

use aerie::auth::refresh::hash_of_presented;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As presented in the JSON body: any string.
    let presented = String::from_utf8_lossy(data);
    if let Some(hash) = hash_of_presented(&presented) {
        let bytes = URL_SAFE_NO_PAD
            .decode(presented.as_bytes())
            .unwrap_or_default();
        assert_eq!(
            bytes.len(),
            32,
            "a key for a token that is not 32 bytes: {presented:?}"
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&bytes),
            presented,
            "a non-canonical spelling"
        );
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // The same bytes as a token we could have minted: always accepted.
    if let Some(bytes) = data.get(..32) {
        let minted = URL_SAFE_NO_PAD.encode(bytes);
        assert!(
            hash_of_presented(&minted).is_some(),
            "a minted token was refused"
        );
    }
});
