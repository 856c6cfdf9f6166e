//! Markdown to safe HTML. pulldown-cmark renders (raw HTML passes through it), then ammonia
//! cleans with an allowlist: no scripts, no event handlers, no `javascript:` or `data:` URLs,
//! no styles, frames, forms or SVG. Links get `rel="noopener noreferrer nofollow"`.

use std::sync::LazyLock;

use ammonia::Builder;
use pulldown_cmark::{Options, Parser, html};

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::default();
    builder
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"));
    builder
});

/// Renders Markdown source to sanitized HTML.
pub fn render_markdown(source: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut unsafe_html = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(source, options));
    SANITIZER.clean(&unsafe_html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A selection of the XSS corpus in shared/security/attacks.md §6.
    const XSS: &[&str] = &[
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//x.y/a.js></SCRIPT>",
        "<scr<script>ipt>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<svg onload=alert(1)>",
        "<svg><script>alert(1)</script></svg>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
        "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
        "<iframe src=\"data:text/html,<script>alert(1)</script>\">",
        "<iframe srcdoc=\"<script>alert(1)</script>\">",
        "<details open ontoggle=alert(1)>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
        "<form><button formaction=javascript:alert(1)>x",
        "<base href=\"javascript:/\">",
        "<style>@import 'javascript:alert(1)';</style>",
        "<div style=\"background:url(javascript:alert(1))\">x</div>",
        "<!--<img src=\"--><img src=x onerror=alert(1)//\">",
        "[x](javascript:alert(1))",
        "![x](x\" onerror=\"alert(1))",
        "<https://x\" onmouseover=\"alert(1)>",
        "<object data=x></object><embed src=x><meta http-equiv=refresh><link rel=import>",
    ];

    /// Checks every real tag in the output. Text cannot hide a tag: a `<` in text is always
    /// escaped to `&lt;`, and a `"` inside an attribute value to `&quot;`.
    fn assert_inert(html: &str) {
        const FORBIDDEN_TAGS: &[&str] = &[
            "script", "iframe", "object", "embed", "svg", "math", "style", "form", "base", "meta",
            "link", "button", "input", "noscript", "video", "source", "body", "marquee",
        ];
        for tag in html
            .split('<')
            .skip(1)
            .map(|rest| rest.split('>').next().unwrap_or(rest))
        {
            let tag = tag.to_ascii_lowercase();
            let name = tag
                .trim_start_matches('/')
                .split_whitespace()
                .next()
                .unwrap_or_default();
            assert!(
                !FORBIDDEN_TAGS.contains(&name),
                "<{name}> survived in {html}"
            );
            // Attribute names: the words before each `=` once quoted values are removed.
            let unquoted: String = tag.split('"').step_by(2).collect::<Vec<_>>().join(" ");
            for attribute in unquoted
                .split_whitespace()
                .skip(1)
                .filter_map(|a| a.split('=').next())
            {
                let dangerous = attribute.starts_with("on")
                    || matches!(attribute, "style" | "srcdoc" | "formaction" | "xlink:href");
                assert!(!dangerous, "attribute {attribute} survived in {html}");
            }
            for value in tag.split('"').skip(1).step_by(2) {
                let value = value.trim_start();
                for scheme in ["javascript:", "vbscript:", "data:"] {
                    assert!(
                        !value.starts_with(scheme),
                        "{scheme} URL survived in {html}"
                    );
                }
            }
        }
    }

    #[test]
    fn xss_corpus_renders_inert() {
        for payload in XSS {
            assert_inert(&render_markdown(payload));
        }
    }

    #[test]
    fn ordinary_markdown_survives() {
        let html = render_markdown("# Hi\n\n**bold** [link](https://example.com)");
        assert!(html.contains("<h1>Hi</h1>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("href=\"https://example.com\""));
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""));
    }

    #[test]
    fn escaped_markup_stays_escaped() {
        let html = render_markdown("&lt;script&gt;");
        assert!(html.contains("&lt;script&gt;"));
    }

    proptest! {
        #[test]
        fn any_mix_of_corpus_fragments_renders_inert(parts in proptest::collection::vec(0..XSS.len(), 1..4), glue in "[ a-z<>\"'=/\n]{0,8}") {
            let source = parts.iter().map(|&i| XSS[i]).collect::<Vec<_>>().join(&glue);
            assert_inert(&render_markdown(&source));
        }
    }
}
