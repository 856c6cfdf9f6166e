//! Bounds every JSON body before it is parsed: nesting depth and string length.
//!
//! Guards against resource exhaustion through a body's shape (attacks.md §9): a body of
//! `[[[[…]]]]` or `{"a":{"a":…}}` ten thousand levels deep, or one huge string (in a field the
//! domain bounds only after it was read, or in a key). serde_json stops at 128 levels on its
//! own, but that is a library default, not our rule; this pass is a single linear scan of
//! the bytes, with no recursion and no allocation, so it cannot itself be the stack overflow
//! or the memory spike it guards against. Request types nest two or three levels; the
//! longest legitimate string is an article body (60 000 characters).

/// Objects and arrays inside one another, the outermost counting as 1.
pub const MAX_DEPTH: usize = 32;
/// Characters in one string value or key, an escape sequence counting as one.
pub const MAX_STRING_CHARS: usize = 65_536;

/// Which bound a body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Depth,
    StringLength,
}

/// Scans `bytes` as JSON text. Malformed JSON passes: the parser refuses it afterwards; in
/// well-formed JSON every bracket outside a string is structure, so the count is exact.
pub fn check(bytes: &[u8]) -> Result<(), Exceeded> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut after_backslash = false;
    let mut hex_digits_left = 0u8;
    let mut chars = 0usize;
    for &byte in bytes {
        if !in_string {
            match byte {
                b'"' => {
                    in_string = true;
                    chars = 0;
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Exceeded::Depth);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            continue;
        }
        if after_backslash {
            after_backslash = false;
            if byte == b'u' {
                hex_digits_left = 4;
            }
            continue;
        }
        if hex_digits_left > 0 {
            hex_digits_left -= 1;
            continue;
        }
        match byte {
            b'"' => in_string = false,
            b'\\' => {
                after_backslash = true;
                chars += 1;
            }
            // UTF-8 continuation bytes belong to the character already counted.
            _ if byte & 0xC0 != 0x80 => chars += 1,
            _ => {}
        }
        if chars > MAX_STRING_CHARS {
            return Err(Exceeded::StringLength);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_bounded_at_exactly_the_limit() {
        assert_eq!(check(nested(MAX_DEPTH).as_bytes()), Ok(()));
        assert_eq!(
            check(nested(MAX_DEPTH + 1).as_bytes()),
            Err(Exceeded::Depth)
        );
        assert_eq!(check(nested(1_000_000).as_bytes()), Err(Exceeded::Depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(40), "}".repeat(40));
        assert_eq!(check(objects.as_bytes()), Err(Exceeded::Depth));
    }

    /// Closing brackets take a level off: a body of many siblings is as shallow as one of
    /// them (a legitimate list of objects is not refused as deep).
    #[test]
    fn siblings_do_not_add_up_to_depth() {
        let siblings = format!("[{}[]]", "[],".repeat(MAX_DEPTH * 4));
        assert_eq!(check(siblings.as_bytes()), Ok(()));
        let objects = format!(r#"[{}{{}}]"#, r#"{"a":{}},"#.repeat(MAX_DEPTH * 4));
        assert_eq!(check(objects.as_bytes()), Ok(()));
    }

    /// Escapes count as characters, and a `\u` escape is four hex digits, not the rest of
    /// the string: neither hides a string past the bound.
    #[test]
    fn escapes_do_not_hide_a_long_string() {
        let escapes = format!(r#"{{"a":"{}"}}"#, r"\u00e9".repeat(MAX_STRING_CHARS + 1));
        assert_eq!(check(escapes.as_bytes()), Err(Exceeded::StringLength));
        let backslashes = format!(r#"{{"a":"{}"}}"#, r"\\".repeat(MAX_STRING_CHARS + 1));
        assert_eq!(check(backslashes.as_bytes()), Err(Exceeded::StringLength));
        let after_one = format!(r#"{{"a":"\u0041{}"}}"#, "a".repeat(MAX_STRING_CHARS));
        assert_eq!(check(after_one.as_bytes()), Err(Exceeded::StringLength));
    }

    #[test]
    fn brackets_inside_strings_are_text() {
        let body = format!(r#"{{"user":{{"bio":"{}"}}}}"#, "[{".repeat(1000));
        assert_eq!(check(body.as_bytes()), Ok(()));
        let escaped_quote = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(100));
        assert_eq!(check(escaped_quote.as_bytes()), Ok(()));
    }

    #[test]
    fn long_strings_are_bounded_in_characters_not_bytes() {
        let at_limit = format!(r#"{{"a":"{}"}}"#, "é".repeat(MAX_STRING_CHARS));
        assert_eq!(check(at_limit.as_bytes()), Ok(()));
        let escapes = format!(r#"{{"a":"{}"}}"#, r"\u00e9".repeat(MAX_STRING_CHARS));
        assert_eq!(check(escapes.as_bytes()), Ok(()));
        let over = format!(r#"{{"a":"{}"}}"#, "a".repeat(MAX_STRING_CHARS + 1));
        assert_eq!(check(over.as_bytes()), Err(Exceeded::StringLength));
        let long_key = format!(r#"{{"{}":1}}"#, "k".repeat(MAX_STRING_CHARS + 1));
        assert_eq!(check(long_key.as_bytes()), Err(Exceeded::StringLength));
    }
}
