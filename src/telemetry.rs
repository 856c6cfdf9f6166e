//! Logging: one subscriber for the process, JSON in production and pretty in development,
//! and one INFO line per request with its id, method, route template, status and latency.
//! Routes are logged as templates (`/api/profiles/{username}`), never as raw paths, so user
//! input in a URL does not reach the log line.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Request, StatusCode};
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::request_context::ClientIp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How the process logs.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive (`info`, `aerie=debug,tower_http=warn`, ...).
    pub filter: String,
}

/// Installs the global subscriber. Safe to call twice (the second call does nothing).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The span of one request, opened at the edge once the request has its id (`request_id`,
/// the edge's, so the header is not looked up again) and the client its address: method,
/// route template, request id, client address, and the user once the access token verifies
/// (see `http::extract`). Every field is read only when the span is enabled: at
/// `AERIE_LOG=error`, as benchmarks run, it costs one look at the filter.
pub fn request_span<B>(request: &Request<B>, request_id: &HeaderValue) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("(unmatched)", MatchedPath::as_str),
        request_id = request_id.to_str().unwrap_or("-"),
        // Resolved before the span opens, from trusted proxies only.
        client_ip = request
            .extensions()
            .get::<ClientIp>()
            .map(|ClientIp(ip)| tracing::field::display(*ip)),
        user_id = tracing::field::Empty,
    )
}

/// The request's line, in its span: status and time to the response head; a 5xx is also an
/// error line of its own, as `tower-http`'s trace layer logged it before.
pub fn log_response(status: StatusCode, latency: Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(status = status.as_u16(), latency_ms, "response");
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "response failed");
    }
}

/// A user-controlled string made safe for a log line: control characters (CR, LF, ESC, ...)
/// and the Unicode line and paragraph separators become `\u{..}` escapes, so a username or
/// User-Agent cannot end a line early, forge another one, or recolour a terminal.
pub fn untrusted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn control_characters_cannot_forge_log_lines() {
        assert_eq!(
            untrusted("a\r\n{\"level\":\"info\"}\u{1b}[31m\u{2028}b"),
            "a\\u{d}\\u{a}{\"level\":\"info\"}\\u{1b}[31m\\u{2028}b"
        );
        assert_eq!(untrusted("Mozilla/5.0 (X11)"), "Mozilla/5.0 (X11)");
    }
}
