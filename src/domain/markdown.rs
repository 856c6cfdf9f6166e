//! Markdown to safe HTML, within limits. pulldown-cmark renders (raw HTML passes through it),
//! then ammonia cleans with an allowlist: no scripts, no event handlers, no `javascript:` or
//! `data:` URLs, no styles, frames, forms or SVG. Links get `rel="noopener noreferrer nofollow"`.
//!
//! Guards against a body that costs far more to render than to send (issue 22): thousands of
//! nested block quotes or lists, GFM tables whose header declares hundreds of columns (every
//! row is padded to it), and in general any body whose HTML is many times its size. The
//! limits are checked on the parser's event stream before anything is rendered; the render
//! itself writes into a buffer that stops at the size cap, so a body that slips past the
//! checks still cannot allocate more than the cap. Bodies are rendered once, when written
//! (`services::markdown`), never on a read.

use std::fmt;
use std::sync::LazyLock;

use ammonia::Builder;
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd, html};

static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::default();
    builder
        .url_schemes(["http", "https", "mailto"].into())
        .link_rel(Some("noopener noreferrer nofollow"));
    builder
});

const OPTIONS: Options = Options::ENABLE_TABLES.union(Options::ENABLE_STRIKETHROUGH);

/// How much structure and output one body may have. The defaults leave every ordinary
/// article alone (a 60,000-character body of prose, lists, quotes, code and tables renders
/// to about its own size) and refuse the shapes that make rendering explode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkdownLimits {
    /// Block quotes and lists inside each other, counted together.
    pub max_nesting_depth: usize,
    /// Columns of one table (its header row decides; every row is padded to it).
    pub max_table_columns: usize,
    /// Cells of all tables of one body, padding included.
    pub max_table_cells: usize,
    /// Rendered HTML bytes per source byte, over the whole body.
    pub max_expansion: usize,
    /// Rendered HTML bytes, whatever the source: the hard cap.
    pub max_html_bytes: usize,
}

impl Default for MarkdownLimits {
    fn default() -> Self {
        Self {
            max_nesting_depth: 32,
            max_table_columns: 64,
            max_table_cells: 10_000,
            max_expansion: 16,
            max_html_bytes: 1024 * 1024,
        }
    }
}

/// Below this many bytes of HTML the expansion ratio is not applied: a short body such as
/// `- a` legitimately renders to several times its size.
pub const EXPANSION_FLOOR_BYTES: usize = 16 * 1024;

impl MarkdownLimits {
    /// The most HTML a source of `source_bytes` may render to, and the refusal that names
    /// whichever limit sets it.
    pub fn html_budget(&self, source_bytes: usize) -> (usize, MarkdownRefusal) {
        let by_ratio = source_bytes
            .saturating_mul(self.max_expansion)
            .max(EXPANSION_FLOOR_BYTES);
        if by_ratio < self.max_html_bytes {
            (by_ratio, MarkdownRefusal::Expands(self.max_expansion))
        } else {
            (
                self.max_html_bytes,
                MarkdownRefusal::TooLarge(self.max_html_bytes),
            )
        }
    }
}

/// Why a body was refused: which limit it passed. The message names the limit, for the 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkdownRefusal {
    #[error("is nested more than {0} levels deep")]
    TooDeep(usize),
    #[error("has a table wider than {0} columns")]
    TableTooWide(usize),
    #[error("has tables of more than {0} cells")]
    TooManyCells(usize),
    #[error("renders to more than {0} times its size in HTML")]
    Expands(usize),
    #[error("renders to more than {0} bytes of HTML")]
    TooLarge(usize),
}

impl MarkdownRefusal {
    /// The limit passed, as named in the message: for logs and metrics labels.
    pub fn limit(&self) -> &'static str {
        match self {
            Self::TooDeep(_) => "nesting_depth",
            Self::TableTooWide(_) => "table_columns",
            Self::TooManyCells(_) => "table_cells",
            Self::Expands(_) => "expansion",
            Self::TooLarge(_) => "html_bytes",
        }
    }
}

/// Walks the event stream once, without rendering, and stops at the first limit passed.
pub fn check_markdown(source: &str, limits: &MarkdownLimits) -> Result<(), MarkdownRefusal> {
    let mut depth = 0usize;
    let mut cells = 0usize;
    for event in Parser::new_ext(source, OPTIONS) {
        match event {
            Event::Start(Tag::BlockQuote(_) | Tag::List(_)) => {
                depth += 1;
                if depth > limits.max_nesting_depth {
                    return Err(MarkdownRefusal::TooDeep(limits.max_nesting_depth));
                }
            }
            Event::End(TagEnd::BlockQuote(_) | TagEnd::List(_)) => {
                depth = depth.saturating_sub(1);
            }
            Event::Start(Tag::Table(columns)) if columns.len() > limits.max_table_columns => {
                return Err(MarkdownRefusal::TableTooWide(limits.max_table_columns));
            }
            Event::Start(Tag::TableCell) => {
                cells += 1;
                if cells > limits.max_table_cells {
                    return Err(MarkdownRefusal::TooManyCells(limits.max_table_cells));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the limits, then renders Markdown source to sanitized HTML of at most
/// [`MarkdownLimits::html_budget`] bytes.
pub fn render_markdown(source: &str, limits: &MarkdownLimits) -> Result<String, MarkdownRefusal> {
    check_markdown(source, limits)?;
    let (budget, over_budget) = limits.html_budget(source.len());
    let mut unsafe_html = Bounded::new(budget, source.len());
    html::write_html_fmt(&mut unsafe_html, Parser::new_ext(source, OPTIONS))
        .map_err(|fmt::Error| over_budget.clone())?;
    let clean = SANITIZER.clean(&unsafe_html.0).to_string();
    if clean.len() > budget {
        // Sanitizing adds `rel` to links: a body of empty links can grow past the budget here.
        return Err(over_budget);
    }
    Ok(clean)
}

/// HTML for a body stored before the limits existed that passes them no more: its source,
/// escaped, in a code block. Escaping grows text at most sixfold, so this stays bounded, and it
/// is sanitized like any other HTML.
pub fn render_verbatim(source: &str) -> String {
    let events = [
        Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)),
        Event::Text(source.into()),
        Event::End(TagEnd::CodeBlock),
    ];
    let mut escaped = String::with_capacity(source.len() + 32);
    html::push_html(&mut escaped, events.into_iter());
    SANITIZER.clean(&escaped).to_string()
}

/// A string that refuses to grow past its capacity: the renderer stops at the cap instead
/// of allocating whatever the body expands to.
struct Bounded(String, usize);

impl Bounded {
    fn new(cap: usize, source_bytes: usize) -> Self {
        Self(String::with_capacity((source_bytes * 3 / 2).min(cap)), cap)
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.0.len() + s.len() > self.1 {
            return Err(fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::script_check::{XSS_CORPUS, first_script_capable};
    use proptest::prelude::*;

    fn render(source: &str) -> String {
        render_markdown(source, &MarkdownLimits::default()).expect("within the limits")
    }

    /// Fails with the construct found when `html` could run script.
    fn assert_inert(html: &str) {
        if let Some(construct) = first_script_capable(html) {
            panic!("{construct} survived in {html}");
        }
    }

    #[test]
    fn xss_corpus_renders_inert() {
        for payload in XSS_CORPUS {
            assert_inert(&render(payload));
        }
    }

    #[test]
    fn ordinary_markdown_survives() {
        let html = render("# Hi\n\n**bold** [link](https://example.com)");
        assert!(html.contains("<h1>Hi</h1>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("href=\"https://example.com\""));
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""));
    }

    #[test]
    fn escaped_markup_stays_escaped() {
        let html = render("&lt;script&gt;");
        assert!(html.contains("&lt;script&gt;"));
    }

    #[test]
    fn deep_nesting_is_refused_before_rendering() {
        let limits = MarkdownLimits::default();
        let quotes = ">".repeat(60_000);
        assert_eq!(
            check_markdown(&quotes, &limits),
            Err(MarkdownRefusal::TooDeep(32))
        );
        let lists: String = (0..40)
            .map(|i| format!("{}- a\n", "  ".repeat(i)))
            .collect();
        assert_eq!(
            check_markdown(&lists, &limits),
            Err(MarkdownRefusal::TooDeep(32))
        );
        assert!(check_markdown(&">".repeat(32), &limits).is_ok());
    }

    #[test]
    fn wide_and_large_tables_are_refused() {
        let limits = MarkdownLimits::default();
        let wide = format!("{}\n{}\n", "|a".repeat(362), "|-".repeat(362));
        assert_eq!(
            check_markdown(&wide, &limits),
            Err(MarkdownRefusal::TableTooWide(64))
        );
        // 64 columns is allowed, but every row is padded to them: 200 one-cell rows are
        // 12,800 cells.
        let padded = format!(
            "{}\n{}\n{}",
            "|a".repeat(64),
            "|-".repeat(64),
            "|x\n".repeat(200)
        );
        assert_eq!(
            check_markdown(&padded, &limits),
            Err(MarkdownRefusal::TooManyCells(10_000))
        );
    }

    #[test]
    fn output_is_capped_by_ratio_and_by_size() {
        let tight = MarkdownLimits {
            max_html_bytes: 20_000,
            ..MarkdownLimits::default()
        };
        // Empty list items: 2 bytes in, ~10 out each; under the floor for a short body.
        assert!(render_markdown(&"-\n".repeat(100), &tight).is_ok());
        // 40 KB of empty block quotes: 13.5 times the source, past the 20 KB cap.
        let quotes = ">\n\n".repeat(13_000);
        assert_eq!(
            render_markdown(&quotes, &tight),
            Err(MarkdownRefusal::TooLarge(20_000))
        );
        let ratio = MarkdownLimits {
            max_expansion: 4,
            ..MarkdownLimits::default()
        };
        assert_eq!(
            render_markdown(&quotes, &ratio),
            Err(MarkdownRefusal::Expands(4))
        );
    }

    #[test]
    fn html_exactly_at_the_cap_is_kept_and_one_byte_more_is_refused() {
        // Both the render buffer and the sanitized result are held to the budget, inclusive.
        // No link here: the sanitizer leaves this HTML as it is, so both are exactly the cap.
        let source = "A paragraph with *emphasis*, `code` and ~~a strike~~.";
        let mut raw = String::new();
        html::push_html(&mut raw, Parser::new_ext(source, OPTIONS));
        assert_eq!(render(source), raw);
        let exact = raw.len();
        let at_cap = MarkdownLimits {
            max_html_bytes: exact,
            ..MarkdownLimits::default()
        };
        assert_eq!(
            render_markdown(source, &at_cap).map(|html| html.len()),
            Ok(exact)
        );
        let under = MarkdownLimits {
            max_html_bytes: exact - 1,
            ..MarkdownLimits::default()
        };
        assert_eq!(
            render_markdown(source, &under),
            Err(MarkdownRefusal::TooLarge(exact - 1))
        );
        // Sanitizing adds `rel` to every link: the raw render fits, the clean one does not.
        let links = "[](https://example.com)".repeat(4);
        let raw_bytes = 4 * "<a href=\"https://example.com\"></a>".len() + "<p></p>\n".len();
        let raw_fits = MarkdownLimits {
            max_html_bytes: raw_bytes,
            ..MarkdownLimits::default()
        };
        assert_eq!(
            render_markdown(&links, &raw_fits),
            Err(MarkdownRefusal::TooLarge(raw_bytes))
        );
    }

    #[test]
    fn a_short_body_may_expand_up_to_the_floor() {
        // 1,000 bytes of empty list items render to about 5 KB: past twice their size, but
        // under the 16 KiB floor below which the ratio is not applied.
        let strict_ratio = MarkdownLimits {
            max_expansion: 2,
            ..MarkdownLimits::default()
        };
        let items = "-\n".repeat(500);
        let html = render_markdown(&items, &strict_ratio).expect("under the floor");
        assert!(html.len() > 2 * items.len() && html.len() < EXPANSION_FLOOR_BYTES);
    }

    #[test]
    fn the_refusal_names_the_cap_when_ratio_and_cap_agree() {
        let limits = MarkdownLimits {
            max_expansion: 16,
            max_html_bytes: 32 * 1024,
            ..MarkdownLimits::default()
        };
        assert_eq!(
            limits.html_budget(2 * 1024),
            (32 * 1024, MarkdownRefusal::TooLarge(32 * 1024))
        );
        assert_eq!(
            limits.html_budget(2 * 1024 - 1),
            (32 * 1024 - 16, MarkdownRefusal::Expands(16))
        );
    }

    #[test]
    fn deep_raw_html_stays_within_the_cap() {
        // Raw HTML is not Markdown structure: the sanitizer's parser takes the nesting, and
        // the output is still capped.
        let limits = MarkdownLimits::default();
        for tag in ["<div>", "<blockquote>", "<b><i>", "<table><tr><td>"] {
            let source = tag.repeat(60_000 / tag.len());
            match render_markdown(&source, &limits) {
                Ok(html) => assert!(html.len() <= limits.max_html_bytes, "{tag}"),
                Err(refusal) => assert_eq!(refusal.limit(), "expansion", "{tag}"),
            }
        }
    }

    #[test]
    fn verbatim_fallback_escapes() {
        let html = render_verbatim("<script>alert(1)</script>");
        assert!(html.starts_with("<pre><code>&lt;script&gt;"), "{html}");
        assert_inert(&html);
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
            assert_inert(&render(&source));
        }

        #[test]
        fn cut_corpus_fragments_render_inert(i in 0..XSS_CORPUS.len(), cut in 0usize..80, tail in GLUE) {
            // A payload cut short leaves half-open tags and quotes for the tail to complete.
            let head: String = XSS_CORPUS[i].chars().take(cut).collect();
            assert_inert(&render(&format!("{head}{tail}")));
        }

        #[test]
        fn sanitizing_is_idempotent(parts in proptest::collection::vec((0..XSS_CORPUS.len(), GLUE), 1..4)) {
            // attacks.md §6: the stored payload comes back sanitized the same way every time.
            let source: String = parts.iter().map(|(i, g)| format!("{}{g}", XSS_CORPUS[*i])).collect();
            let once = SANITIZER.clean(&render(&source)).to_string();
            prop_assert_eq!(SANITIZER.clean(&once).to_string(), once);
        }
    }
}
