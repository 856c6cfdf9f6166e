//! The Markdown renderer and sanitizer (`aerie::domain::render_markdown`): for any body, the
//! HTML served as `bodyHtml` holds no script-capable construct (no `<script>` or other
//! active element, no `on*=` handler, no `javascript:`/`vbscript:`/`data:` URL, no `style`,
//! `srcdoc`, `formaction` or `xlink:href`), and rendering never panics.
#![no_main]

use aerie::domain::render_markdown;
use aerie::domain::script_check::first_script_capable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bodies arrive as JSON strings, so always valid UTF-8.
    let source = String::from_utf8_lossy(data);
    let limits = aerie::domain::MarkdownLimits::default();
    // A body past a limit is refused before it is stored: nothing to check.
    let Ok(html) = render_markdown(&source, &limits) else {
        return;
    };
    if let Some(construct) = first_script_capable(&html) {
        panic!("{construct} in the rendered HTML of {source:?}: {html}");
    }
});
