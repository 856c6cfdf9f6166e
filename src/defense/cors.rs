//! Cross-origin access from an explicit allowlist of origins.
//!
//! Guards against other sites reading API responses in a victim's browser. Origins match
//! exactly (scheme, host and port; no wildcards, no suffix matching, so
//! `https://app.example.com.evil.io` and `http://app.example.com` are refused), the `null`
//! origin is refused, and `*` is never sent. Development also allows `http://localhost:*` and
//! `http://127.0.0.1:*`, so a RealWorld front end on a dev server works with no setup.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Parses one configured origin; returns it in canonical form, or `None` when it is not a
/// bare `scheme://host[:port]` origin.
pub fn parse_origin(value: &str) -> Option<String> {
    let url = url::Url::parse(value).ok()?;
    let canonical = url.origin().ascii_serialization();
    let bare = value.trim_end_matches('/') == canonical && matches!(url.scheme(), "https" | "http");
    let plain_host = match url.host() {
        Some(url::Host::Domain(domain)) => domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')),
        Some(_) => true, // IP addresses
        None => false,
    };
    (bare && plain_host).then_some(canonical)
}

/// Whether `origin` is a loopback development origin (`http://localhost:<port>` and the like).
fn is_local_dev_origin(origin: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() {
            host
        } else {
            ""
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

pub fn layer(allowed: &[String], allow_local_dev: bool) -> CorsLayer {
    let allowed: HashSet<Vec<u8>> = allowed.iter().map(|o| o.as_bytes().to_vec()).collect();
    let origin = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        allowed.contains(origin.as_bytes())
            || (allow_local_dev && is_local_dev_origin(origin.as_bytes()))
    });
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static("x-aerie-client"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_origins_are_accepted_in_configuration() {
        assert_eq!(
            parse_origin("https://app.example.com").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            parse_origin("https://app.example.com/").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            parse_origin("http://localhost:4200").as_deref(),
            Some("http://localhost:4200")
        );
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x.io",
            "https://*.example.com",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_dev_origins_are_loopback_http_only() {
        for good in [
            "http://localhost:4200",
            "http://127.0.0.1:3000",
            "http://localhost",
            "http://[::1]:8080",
        ] {
            assert!(is_local_dev_origin(good.as_bytes()), "{good}");
        }
        for bad in [
            "https://localhost.evil.io",
            "http://localhost.evil.io",
            "http://evil.io:localhost",
            "http://localhost:80a",
            "null",
        ] {
            assert!(!is_local_dev_origin(bad.as_bytes()), "{bad}");
        }
    }
}
