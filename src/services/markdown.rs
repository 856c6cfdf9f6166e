//! Rendering Markdown bodies, once, when they are written: on a bounded pool of blocking
//! threads, within the content limits.
//!
//! Guards against a body that is cheap to send and dear to render stalling the server
//! (issue 22): rendering never runs on an async worker (it runs in `spawn_blocking`, so
//! `/healthz` and every other request keep their workers), at most `render_concurrency`
//! renders run at once (the rest queue for a permit, like password hashes), a body that
//! passes a limit is refused before it is rendered ([`MarkdownLimits`]), and reads never
//! render: the HTML is stored beside the source. Rows stored before the HTML column existed
//! are rendered on their first read, once, and the HTML is stored (see `docs/security.md`).

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::domain::{MarkdownLimits, MarkdownRefusal, render_markdown, render_verbatim};
use crate::metrics::names;

/// What the content subsystem is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSettings {
    /// How much structure and output one body may have.
    pub limits: MarkdownLimits,
    /// How many renders may run at once; the rest wait for a permit.
    pub render_concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The body passes a limit: the client's 422, on the body field.
    #[error("{0}")]
    Refused(#[from] MarkdownRefusal),
    #[error("markdown rendering pool closed")]
    PoolClosed,
}

/// The rendering pool. Cheap to clone.
#[derive(Clone)]
pub struct Renderer {
    limits: MarkdownLimits,
    permits: Arc<Semaphore>,
}

impl Renderer {
    pub fn new(settings: ContentSettings) -> Self {
        Self {
            limits: settings.limits,
            permits: Arc::new(Semaphore::new(settings.render_concurrency.max(1))),
        }
    }

    /// Renders a new body, or refuses it with the limit it passes.
    pub async fn render(&self, source: &str) -> Result<String, RenderError> {
        let limits = self.limits;
        let source = source.to_owned();
        match self.run(move || render_markdown(&source, &limits)).await? {
            Ok(html) => {
                metrics::counter!(names::MARKDOWN_RENDERS).increment(1);
                Ok(html)
            }
            Err(refusal) => {
                metrics::counter!(names::MARKDOWN_REFUSED, "limit" => refusal.limit()).increment(1);
                Err(RenderError::Refused(refusal))
            }
        }
    }

    /// The HTML of a body stored before HTML was stored with it. It was accepted then, so
    /// it is served even if it passes today's limits: as its escaped source, which costs
    /// nothing to render and stays bounded.
    pub async fn render_stored(&self, source: &str) -> Result<String, RenderError> {
        let limits = self.limits;
        let source = source.to_owned();
        let html = self
            .run(move || {
                render_markdown(&source, &limits).unwrap_or_else(|_| render_verbatim(&source))
            })
            .await?;
        metrics::counter!(names::MARKDOWN_RENDERS).increment(1);
        Ok(html)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RenderError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RenderError::PoolClosed)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| RenderError::PoolClosed)
    }
}
