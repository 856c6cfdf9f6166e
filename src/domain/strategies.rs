//! Generated field values for the property tests, here and in `http`: valid one-line text,
//! and a valid value carrying one character that no text field accepts.

use proptest::prelude::*;

/// Characters no text field accepts (text.rs): they forge log lines or hide text.
const FORBIDDEN: &[char] = &[
    '\0', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{2029}', '\u{200B}', '\u{200F}', '\u{202E}',
    '\u{2066}', '\u{FEFF}',
];

/// A valid value with one forbidden character put somewhere in it.
pub(crate) fn with_forbidden(
    valid: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    (valid, 0..FORBIDDEN.len(), any::<prop::sample::Index>()).prop_map(|(text, c, at)| {
        let chars: Vec<char> = text.chars().collect();
        let at = at.index(chars.len() + 1);
        chars[..at]
            .iter()
            .chain(std::iter::once(&FORBIDDEN[c]))
            .chain(&chars[at..])
            .collect()
    })
}

/// Printable text of one line: letters (some non-ASCII), digits, punctuation, inner spaces.
pub(crate) const LINE: &str = "[A-Za-z0-9éßж][A-Za-z0-9éßж ,.!?'&<>\"-]{0,30}";
