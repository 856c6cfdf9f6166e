//! Passwords that appear on public breach lists, refused as new passwords whatever their
//! zxcvbn score.
//!
//! Guards against credential stuffing and dictionary guessing (ASVS V2.1.7): an attacker's
//! first guesses are the passwords people choose most often, and zxcvbn's estimate can still
//! rate some of them as strong (`yfdbufnjh10305070` is a Russian word typed on an English
//! keyboard plus digits). The list is Django's, compiled from breaches (see
//! `breached/NOTICE.md` for source and licence): 20 322 entries, gzip-compressed inside the
//! binary, decompressed on first use (a few milliseconds, once; the server calls [`warm`] at
//! start so no request pays it). It is held as one sorted text with the offset of each entry,
//! about 0.3 MB: a set of owned strings cost an idle server 0.75 MB more anonymous memory
//! (`RssAnon` 7.39 against 6.64 MB, release builds, issue 17's idle target). A lookup is a
//! binary search, some fifteen comparisons: well under a microsecond.
//!
//! The list is lowercase, so the candidate is lowercased before the lookup: `Qwerty123456`
//! is as common as `qwerty123456`.

use std::io::Read;
use std::sync::LazyLock;

use flate2::read::GzDecoder;

static COMPRESSED: &[u8] = include_bytes!("breached/common-passwords.txt.gz");

static COMMON: LazyLock<SortedList> = LazyLock::new(decompress);

/// Distinct entries, sorted, each followed by a newline in `text`; `starts` holds where each
/// begins.
struct SortedList {
    text: Box<str>,
    starts: Box<[u32]>,
}

impl SortedList {
    /// The entry that begins at byte `start` of the text.
    fn entry_at(&self, start: u32) -> &str {
        let rest = self.text.get(start as usize..).unwrap_or_default();
        rest.split_once('\n').map_or(rest, |(entry, _)| entry)
    }

    fn contains(&self, candidate: &str) -> bool {
        self.starts
            .binary_search_by(|&start| self.entry_at(start).cmp(candidate))
            .is_ok()
    }

    fn len(&self) -> usize {
        self.starts.len()
    }
}

#[expect(
    clippy::expect_used,
    reason = "the list is a constant inside the binary; its unit test decompresses it"
)]
fn decompress() -> SortedList {
    let mut raw = String::with_capacity(COMPRESSED.len() * 4);
    GzDecoder::new(COMPRESSED)
        .read_to_string(&mut raw)
        .expect("the bundled common-password list is valid gzip and UTF-8");
    let mut entries: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    entries.sort_unstable();
    entries.dedup();
    let mut text = String::with_capacity(entries.iter().map(|entry| entry.len() + 1).sum());
    let mut starts = Vec::with_capacity(entries.len());
    for entry in entries {
        starts.push(u32::try_from(text.len()).expect("the list is far below 4 GiB"));
        text.push_str(entry);
        text.push('\n');
    }
    SortedList {
        text: text.into_boxed_str(),
        starts: starts.into_boxed_slice(),
    }
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

    /// Every entry of the bundled list is found by the binary search, and strings between
    /// or beside entries are not: the first, the last and one past each end included.
    #[test]
    fn every_entry_and_only_the_entries_are_found() {
        let list = &*COMMON;
        for &start in &list.starts {
            let entry = list.entry_at(start);
            assert!(list.contains(entry), "{entry}");
            assert!(
                !list.contains(&format!("{entry}\u{1}")),
                "{entry} and a byte more"
            );
        }
        assert!(!list.contains(""));
        assert!(!list.contains("\u{10FFFF}"));
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
