//! Passwords that appear on public breach lists, refused as new passwords whatever their
//! zxcvbn score.
//!
//! Guards against credential stuffing and dictionary guessing (ASVS V2.1.7): an attacker's
//! first guesses are the passwords people choose most often, and zxcvbn's estimate can still
//! rate some of them as strong (`yfdbufnjh10305070` is a Russian word typed on an English
//! keyboard plus digits). The list is Django's, compiled from breaches (see
//! `breached/NOTICE.md` for source and licence): 20 322 entries, gzip-compressed inside the
//! binary, decompressed into a `HashSet` on first use (a few milliseconds, once; the server
//! calls [`warm`] at start so no request pays it). A lookup is one hash of the candidate:
//! well under a microsecond.
//!
//! The list is lowercase, so the candidate is lowercased before the lookup: `Qwerty123456`
//! is as common as `qwerty123456`.

use std::collections::HashSet;
use std::io::Read;
use std::sync::LazyLock;

use flate2::read::GzDecoder;

static COMPRESSED: &[u8] = include_bytes!("breached/common-passwords.txt.gz");

static COMMON: LazyLock<HashSet<Box<str>>> = LazyLock::new(decompress);

#[expect(
    clippy::expect_used,
    reason = "the list is a constant inside the binary; its unit test decompresses it"
)]
fn decompress() -> HashSet<Box<str>> {
    let mut text = String::with_capacity(COMPRESSED.len() * 4);
    GzDecoder::new(COMPRESSED)
        .read_to_string(&mut text)
        .expect("the bundled common-password list is valid gzip and UTF-8");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(Box::from)
        .collect()
}

/// Whether `password`, lowercased as the list is, is on the list of common breached passwords.
pub fn is_common_password(password: &str) -> bool {
    COMMON.contains(password.to_lowercase().as_str())
}

/// Loads the list now; returns how many entries it holds. Called once at start.
pub fn warm() -> usize {
    COMMON.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_list_holds_at_least_twenty_thousand_passwords() {
        assert!(warm() >= 20_000, "{}", warm());
    }

    #[test]
    fn lookups_follow_the_lists_lowercase_normalisation() {
        for common in [
            "password",
            "qwerty123456",
            "QWERTY123456",
            "YfdbUfnjh10305070",
        ] {
            assert!(is_common_password(common), "{common}");
        }
        for rare in ["correct horse battery staple 42", "qwerty123456 "] {
            assert!(!is_common_password(rare), "{rare}");
        }
    }
}
