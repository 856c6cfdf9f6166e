//! What "inert HTML" means for rendered Markdown, as a checker the unit tests, the property
//! tests and the fuzz target (fuzz/fuzz_targets/markdown.rs) share, with the XSS corpus of
//! shared/security/attacks.md §6 they start from. Not used on the request path: the
//! sanitizer in [`super::markdown`] is the defence; this is how we check it.

/// Every payload of attacks.md §6 (the fuzz target's seed corpus holds the same strings).
pub const XSS_CORPUS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//x.y/a.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"x\" onerror=\"alert(1)\"//",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
    "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
    "<a href=\" javascript:alert(1)\">x</a>",
    "<iframe src=\"data:text/html,<script>alert(1)</script>\">",
    "<iframe srcdoc=\"<script>alert(1)</script>\">",
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<marquee onstart=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<form><button formaction=javascript:alert(1)>x",
    "<base href=\"javascript:/\">",
    "<style>@import 'javascript:alert(1)';</style>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<!--<img src=\"--><img src=x onerror=alert(1)//\">",
    "\"><script>alert(1)</script>",
    "'-alert(1)-'",
    "</textarea><script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "![x](x\" onerror=\"alert(1))",
    "<https://x\" onmouseover=\"alert(1)>",
    "<div>\n<script>alert(1)</script>\n</div>",
    "<object data=x></object><embed src=x><meta http-equiv=refresh><link rel=import>",
    "<a xlink:href=\"javascript:alert(1)\">x</a>",
    "<a href=\"vbscript:msgbox(1)\">x</a>",
    "%3Cscript%3E",
    "&lt;script&gt;",
    "+ADw-script+AD4-",
    "<scr\0ipt>alert(1)</scr\0ipt>",
    "\u{C0}\u{BC}script\u{C0}\u{BE}",
];

/// Elements that run script, load active content, or change how the page parses.
const FORBIDDEN_ELEMENTS: &[&str] = &[
    "script", "iframe", "frame", "object", "embed", "svg", "math", "style", "form", "base", "meta",
    "link", "button", "input", "noscript", "video", "audio", "source", "body", "marquee",
    "template", "textarea", "applet",
];

/// Attributes that run script or carry a document of their own.
const FORBIDDEN_ATTRIBUTES: &[&str] = &["style", "srcdoc", "formaction", "xlink:href"];

/// Attributes a browser reads as a URL (a `title="javascript:..."` is only text).
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "data",
    "poster",
    "cite",
    "background",
    "srcset",
    "longdesc",
    "lowsrc",
    "dynsrc",
    "ping",
    "manifest",
    "codebase",
    "icon",
    "xlink:href",
];

/// URL schemes that run script or render attacker HTML.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript:", "vbscript:", "data:"];

/// The first script-capable construct in `html`, described, or `None` when it is inert.
///
/// Reads the markup as a browser would read tags: text cannot hide a tag, because the
/// serializer escapes every `<` in text as `&lt;`, so each `<` starts a real tag, and a `>`
/// only ends it outside a quoted attribute value.
pub fn first_script_capable(html: &str) -> Option<String> {
    for tag in tags(html) {
        let tag = tag.to_ascii_lowercase();
        let (name, attributes) = split_tag(&tag);
        let name = name.trim_start_matches('/');
        // Comments, doctypes, CDATA and processing instructions: none belongs in an article.
        if name.starts_with(['!', '?']) {
            return Some(format!("markup declaration <{name}>"));
        }
        if FORBIDDEN_ELEMENTS.contains(&name) {
            return Some(format!("element <{name}>"));
        }
        for (attribute, value) in attributes {
            if attribute.starts_with("on") || FORBIDDEN_ATTRIBUTES.contains(&attribute.as_str()) {
                return Some(format!("attribute {attribute} on <{name}>"));
            }
            if !URL_ATTRIBUTES.contains(&attribute.as_str()) {
                continue;
            }
            let squeezed = as_url_parser_reads(&decode_entities(&value));
            if let Some(scheme) = FORBIDDEN_SCHEMES.iter().find(|s| squeezed.starts_with(**s)) {
                return Some(format!("{scheme} URL in {attribute} on <{name}>"));
            }
        }
    }
    None
}

/// A URL as the WHATWG URL parser sees it before reading the scheme: leading and trailing
/// C0 controls and spaces trimmed, tabs and newlines removed anywhere (so `java\tscript:`
/// is `javascript:`). Other control characters stay and make the scheme invalid, which
/// turns the URL into a harmless relative one.
fn as_url_parser_reads(url: &str) -> String {
    url.trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// The inside of every tag (between `<` and its closing `>`), respecting quoted values.
fn tags(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in html.chars() {
        match (&mut current, quote) {
            (None, _) => {
                if c == '<' {
                    current = Some(String::new());
                }
            }
            (Some(tag), Some(q)) => {
                tag.push(c);
                if c == q {
                    quote = None;
                }
            }
            (Some(tag), None) => match c {
                '>' => {
                    found.push(std::mem::take(tag));
                    current = None;
                }
                '"' | '\'' => {
                    tag.push(c);
                    quote = Some(c);
                }
                _ => tag.push(c),
            },
        }
    }
    // An unterminated tag is still checked: a browser may complete it.
    found.extend(current);
    found
}

/// A tag's name and its `(attribute, value)` pairs; a bare attribute has an empty value.
fn split_tag(tag: &str) -> (String, Vec<(String, String)>) {
    let mut chars = tag.chars().peekable();
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == '/' && !name.is_empty() {
            break;
        }
        name.push(c);
        chars.next();
    }
    let mut attributes = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '/') {
            chars.next();
        }
        let mut attribute = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '/' {
                break;
            }
            attribute.push(c);
            chars.next();
        }
        if attribute.is_empty() && chars.peek().is_none_or(|c| *c != '=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            match chars.peek().copied() {
                Some(q @ ('"' | '\'')) => {
                    chars.next();
                    value.extend(chars.by_ref().take_while(|c| *c != q));
                }
                _ => {
                    while let Some(&c) = chars.peek() {
                        if c.is_whitespace() {
                            break;
                        }
                        value.push(c);
                        chars.next();
                    }
                }
            }
        }
        attributes.push((attribute, value));
    }
    (name, attributes)
}

/// Decodes the character references a browser decodes in an attribute value (`&#106;`,
/// `&#x6a;`, `&colon;`, `&tab;` ...), enough to see a scheme hidden behind them.
fn decode_entities(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let reference = &rest[..e];
            let code = if let Some(hex) = reference
                .strip_prefix("#x")
                .or_else(|| reference.strip_prefix("#X"))
            {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(decimal) = reference.strip_prefix('#') {
                decimal.parse().ok()
            } else {
                match reference {
                    "colon" => Some(u32::from(':')),
                    "tab" => Some(u32::from('\t')),
                    "newline" => Some(u32::from('\n')),
                    "amp" => Some(u32::from('&')),
                    _ => None,
                }
            };
            code.and_then(char::from_u32).map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => out.push('&'),
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_spots_each_kind_of_construct() {
        for (html, what) in [
            ("<p>hi</p><script>x</script>", "element <script>"),
            ("<img src=\"x\" onerror=\"a\">", "attribute onerror"),
            (
                "<a href=\"x\" title=\"a>b\" onclick=\"a\">",
                "attribute onclick",
            ),
            ("<a href=\"&#106;avascript:a\">", "javascript: URL"),
            ("<a href=\" java\tscript:a\">", "javascript: URL"),
            ("<a href=\"\u{1}java&#x0A;script:a\">", "javascript: URL"),
            ("<a href='data:text/html,x'>", "data: URL"),
            ("<div style=\"color:red\">", "attribute style"),
            ("<!-- x -->", "markup declaration"),
            ("<!doctype html>", "markup declaration"),
            ("<![CDATA[x]]>", "markup declaration"),
            ("<?xml-stylesheet href=\"x.xsl\"?>", "markup declaration"),
            ("<svg", "element <svg>"),
            ("</script>", "element <script>"),
        ] {
            let found = first_script_capable(html).unwrap_or_default();
            assert!(found.starts_with(what), "{html}: {found:?}");
        }
    }

    #[test]
    fn a_slash_or_a_bare_attribute_does_not_hide_a_handler() {
        for html in [
            "<svg/onload=alert(1)>",
            "<img/onerror=alert(1)>",
            "<img src x onerror=alert(1)>",
            "<img =x onerror=alert(1)>",
        ] {
            let found = first_script_capable(html).unwrap_or_default();
            assert!(
                found.starts_with("element <svg>") || found == "attribute onerror on <img>",
                "{html}: {found:?}"
            );
        }
    }

    #[test]
    fn named_references_do_not_hide_a_scheme() {
        for html in [
            "<a href=\"javascript&colon;alert(1)\">x</a>",
            "<a href=\"java&Tab;script:alert(1)\">x</a>",
            "<a href=\"java&NewLine;script:alert(1)\">x</a>",
        ] {
            let found = first_script_capable(html).unwrap_or_default();
            assert!(found.starts_with("javascript: URL"), "{html}: {found:?}");
        }
    }

    #[test]
    fn references_decode_once_as_a_browser_decodes_them() {
        for (value, decoded) in [
            ("a&amp;b", "a&b"),
            ("&amp;colon;", "&colon;"),
            ("&#106;&#x61;&#X76;&colon;&tab;&newline;", "jav:\t\n"),
            ("&unknown;&#xZZ;&", "&unknown;&#xZZ;&"),
            ("&averylongname;", "&averylongname;"),
        ] {
            assert_eq!(decode_entities(value), decoded, "{value}");
        }
    }

    #[test]
    fn escaped_text_and_safe_markup_pass() {
        for html in [
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; javascript:alert(1) onload=x</p>",
            "<a href=\"https://example.com\" rel=\"noopener noreferrer nofollow\">x</a>",
            "<img src=\"https://x.io/a.png\" alt=\"a &gt; b\">",
            "<table><tr><td>x</td></tr></table>",
            "<p title=\"javascript:alert(1)\">text, not a URL</p>",
            // A backspace inside the scheme makes it a relative URL for browsers.
            "<a href=\"jav&#x08;ascript:alert(1)\">x</a>",
        ] {
            assert_eq!(first_script_capable(html), None, "{html}");
        }
    }
}
