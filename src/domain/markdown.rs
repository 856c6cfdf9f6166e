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
    use crate::domain::script_check::{XSS_CORPUS, first_script_capable};
    use proptest::prelude::*;

    /// Fails with the construct found when `html` could run script.
    fn assert_inert(html: &str) {
        if let Some(construct) = first_script_capable(html) {
            panic!("{construct} survived in {html}");
        }
    }

    #[test]
    fn xss_corpus_renders_inert() {
        for payload in XSS_CORPUS {
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

    /// Random text between corpus fragments: Markdown and HTML punctuation, so the fragments
    /// land inside links, code spans, emphasis, attribute values and half-open tags.
    const GLUE: &str = "[ a-zA-Z0-9<>\"'=/&#;:()\\[\\]!*_`\n-]{0,24}";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_mix_of_corpus_fragments_renders_inert(
            parts in proptest::collection::vec((0..XSS_CORPUS.len(), GLUE), 1..5),
            lead in GLUE,
        ) {
            let mut source = lead;
            for (i, glue) in &parts {
                source.push_str(XSS_CORPUS[*i]);
                source.push_str(glue);
            }
            assert_inert(&render_markdown(&source));
        }

        #[test]
        fn cut_corpus_fragments_render_inert(i in 0..XSS_CORPUS.len(), cut in 0usize..80, tail in GLUE) {
            // A payload cut short leaves half-open tags and quotes for the tail to complete.
            let head: String = XSS_CORPUS[i].chars().take(cut).collect();
            assert_inert(&render_markdown(&format!("{head}{tail}")));
        }

        #[test]
        fn sanitizing_is_idempotent(parts in proptest::collection::vec((0..XSS_CORPUS.len(), GLUE), 1..4)) {
            // attacks.md §6: the stored payload comes back sanitized the same way every time.
            let source: String = parts.iter().map(|(i, g)| format!("{}{g}", XSS_CORPUS[*i])).collect();
            let once = SANITIZER.clean(&render_markdown(&source)).to_string();
            prop_assert_eq!(SANITIZER.clean(&once).to_string(), once);
        }
    }
}
