//! The HTML of article and comment bodies: rendered when written, read back as stored.
//!
//! A row written before the HTML was stored (migration 0005) has none: it is rendered on its
//! first read, on the rendering pool, and stored, so each such row is rendered once in all.

use super::AppState;
use super::error::Result;
use crate::store::{ArticleRow, CommentRow};

/// Renders a new body (422 on `body` when it passes a Markdown limit).
pub async fn render(state: &AppState, source: &str) -> Result<String> {
    Ok(state.markdown.render(source).await?)
}

/// The article's stored HTML, taken out of the row (the response owns it; no copy), or
/// rendered and backfilled first if it has none yet.
pub async fn article_html(state: &AppState, row: &mut ArticleRow) -> Result<String> {
    if let Some(html) = row.body_html.take() {
        return Ok(html);
    }
    let html = state.markdown.render_stored(&row.body).await?;
    state.store.backfill_article_html(row.id, &html).await?;
    Ok(html)
}

/// The comment's stored HTML, taken out of the row, or rendered and backfilled first if it
/// has none yet.
pub async fn comment_html(state: &AppState, row: &mut CommentRow) -> Result<String> {
    if let Some(html) = row.body_html.take() {
        return Ok(html);
    }
    let html = state.markdown.render_stored(&row.body).await?;
    state.store.backfill_comment_html(row.id, &html).await?;
    Ok(html)
}
