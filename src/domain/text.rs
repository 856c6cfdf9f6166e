//! Shared rules for user-supplied text: length bounds counted in characters, and the
//! characters that may never appear because they forge log lines, hide text or reorder it.

use super::Invalid;

/// Which control characters a field tolerates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
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

fn forbidden(c: char, lines: Lines) -> bool {
    let allowed_whitespace = lines == Lines::Multi && matches!(c, '\n' | '\r' | '\t');
    if c.is_control() {
        return !allowed_whitespace;
    }
    // Line/paragraph separators break log lines; bidi overrides and zero-width characters
    // make text display differently from what it is (spoofed names, hidden content).
    matches!(
        c,
        '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
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
}
