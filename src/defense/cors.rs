//! Cross-origin access from an explicit allowlist of origins.
//!
//! Guards against other sites reading API responses in a victim's browser. Origins match
//! exactly (scheme, host and port; no wildcards, no suffix matching, so
//! `https://app.example.com.evil.io` and `http://app.example.com` are refused), the `null`
//! origin is refused, and `*` is never sent. Development also allows `http://localhost:*` and
//! `http://127.0.0.1:*`, so a RealWorld front end on a dev server works with no setup.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

/// Which browser origins may call the API cross-origin.
#[derive(Debug, Clone, Default)]
pub struct CorsSettings {
    /// Exact `scheme://host[:port]` origins, canonical (see [`parse_origin`]).
    pub origins: Vec<String>,
    /// Also allow loopback development origins (`http://localhost:*`): development only.
    pub allow_local_dev: bool,
}

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

/// The origins whose browser requests this server trusts: the configured CORS origins, the
/// origin of `AERIE_PUBLIC_URL` (the server's own, for a front end it serves itself) and, in
/// development, loopback origins. CORS and the cookie mode's CSRF check both ask this.
#[derive(Clone)]
pub struct AllowedOrigins {
    exact: Arc<HashSet<Vec<u8>>>,
    local_dev: bool,
}

impl AllowedOrigins {
    /// Built once at start: the configured origins and the origin of `public_url`.
    pub fn new(settings: &CorsSettings, public_url: Option<&str>) -> Self {
        let own = public_url
            .and_then(|url| url::Url::parse(url).ok())
            .map(|url| url.origin().ascii_serialization());
        let exact = settings
            .origins
            .iter()
            .cloned()
            .chain(own)
            .map(String::into_bytes)
            .collect();
        Self {
            exact: Arc::new(exact),
            local_dev: settings.allow_local_dev,
        }
    }

    pub fn allows(&self, origin: &[u8]) -> bool {
        self.exact.contains(origin) || (self.local_dev && is_local_dev_origin(origin))
    }
}

pub fn layer(allowed: AllowedOrigins) -> CorsLayer {
    let for_credentials = allowed.clone();
    let origin =
        AllowOrigin::predicate(move |origin: &HeaderValue, _| allowed.allows(origin.as_bytes()));
    // Never `Access-Control-Allow-Credentials` for an origin that is refused anyway: the
    // header says nothing to a browser without a matching `Allow-Origin`, but nothing is the
    // right thing for it to say.
    let credentials = AllowCredentials::predicate(move |origin: &HeaderValue, _| {
        for_credentials.allows(origin.as_bytes())
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
            // Cookie mode: a front end on another origin cannot read the API's CSRF cookie,
            // so the token also travels in this header of login, register and refresh.
            HeaderName::from_static("x-csrf-token"),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            // A 403 asking for re-authentication names the step-up route here.
            HeaderName::from_static("x-aerie-step-up"),
        ])
        .allow_credentials(credentials)
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
