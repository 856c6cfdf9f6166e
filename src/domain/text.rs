//! Shared rules for user-supplied text: length bounds counted in characters, and the
//! characters that may never appear because they forge log lines, hide text or reorder it.

use super::Invalid;

/// Which control characters a field tolerates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Names, titles, tags: no line breaks or tabs at all.
    Single,
    /// Bios, descriptions, bodies: `\n`, `\r` and `\t` are content.
    Multi,
}

/// Checks length (in characters, after nothing is trimmed) and forbidden characters.
pub(super) fn check(
    value: &str,
    min: usize,
    max: usize,
    lines: Lines,
    too_short: &'static str,
    too_long: &'static str,
) -> Result<(), Invalid> {
    // Count lazily so a huge value costs at most `max + 1` steps.
    let length = value.chars().take(max + 1).count();
    if length < min {
        return Err(Invalid(too_short));
    }
    if length > max {
        return Err(Invalid(too_long));
    }
    if value.chars().any(|c| forbidden(c, lines)) {
        return Err(Invalid(
            "contains control or invisible formatting characters",
        ));
    }
    Ok(())
}

/// Control characters (Unicode category Cc) and the characters that forge log lines, hide
/// text or reorder it: line/paragraph separators, zero-width characters, bidi overrides and
/// isolates, the byte-order mark. Bidi overrides and zero-width characters make text display
/// differently from what it is (spoofed names, hidden content).
const REFUSED: [(char, char); 7] = [
    ('\0', '\u{1F}'),
    ('\u{7F}', '\u{9F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2066}', '\u{2069}'),
    ('\u{FEFF}', '\u{FEFF}'),
];

/// Whitespace controls that multi-line fields keep as content.
const MULTI_LINE_CONTROLS: [char; 3] = ['\t', '\n', '\r'];

fn forbidden(c: char, lines: Lines) -> bool {
    let allowed_whitespace = lines == Lines::Multi && MULTI_LINE_CONTROLS.contains(&c);
    !allowed_whitespace && REFUSED.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// The refused characters as inclusive ranges, for documents that restate the rule (the
/// OpenAPI document's patterns).
pub fn refused_ranges(lines: Lines) -> Vec<(char, char)> {
    let mut ranges: Vec<(char, char)> = Vec::new();
    let refused = REFUSED.iter().flat_map(|&(low, high)| low..=high);
    for c in refused.filter(|&c| forbidden(c, lines)) {
        match ranges.last_mut() {
            Some((_, high)) if u32::from(*high) + 1 == u32::from(c) => *high = c,
            _ => ranges.push((c, c)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert!(check("ééé", 3, 3, Lines::Single, "short", "long").is_ok());
    }

    #[test]
    fn log_forging_characters_are_refused() {
        for bad in [
            "a\nb",
            "a\rb",
            "a\u{1b}[31m",
            "a\u{2028}b",
            "a\u{202E}b",
            "a\0b",
        ] {
            assert!(
                check(bad, 1, 50, Lines::Single, "s", "l").is_err(),
                "{bad:?}"
            );
        }
        assert!(check("line\nline\tx", 1, 50, Lines::Multi, "s", "l").is_ok());
        assert!(check("a\u{1b}b", 1, 50, Lines::Multi, "s", "l").is_err());
    }

    #[test]
    fn refused_ranges_are_as_few_as_the_kept_controls_allow() {
        // Line and paragraph separators run on into the bidi overrides: one range.
        let beyond_c0 = [
            ('\u{7F}', '\u{9F}'),
            ('\u{200B}', '\u{200F}'),
            ('\u{2028}', '\u{202E}'),
            ('\u{2066}', '\u{2069}'),
            ('\u{FEFF}', '\u{FEFF}'),
        ];
        let single_c0 = [('\0', '\u{1F}')];
        let multi_c0 = [('\0', '\u{8}'), ('\u{B}', '\u{C}'), ('\u{E}', '\u{1F}')];
        assert_eq!(
            refused_ranges(Lines::Single),
            [&single_c0[..], &beyond_c0].concat()
        );
        assert_eq!(
            refused_ranges(Lines::Multi),
            [&multi_c0[..], &beyond_c0].concat()
        );
    }

    #[test]
    fn refused_ranges_are_exactly_the_refused_characters() {
        for lines in [Lines::Single, Lines::Multi] {
            let ranges = refused_ranges(lines);
            for c in (0..0x1_0000).filter_map(char::from_u32) {
                let listed = ranges.iter().any(|&(low, high)| (low..=high).contains(&c));
                assert_eq!(listed, forbidden(c, lines), "{c:?}");
                let kept = lines == Lines::Multi && MULTI_LINE_CONTROLS.contains(&c);
                assert!(
                    listed || kept || !c.is_control(),
                    "control {c:?} not refused"
                );
            }
        }
    }
}
