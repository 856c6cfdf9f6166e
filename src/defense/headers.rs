//! Security headers on every response, errors, 404s, 405s and 429s included.
//!
//! Guards against a browser treating API output as something it is not: sniffing JSON as
//! HTML (`nosniff`), framing it (clickjacking: `frame-ancestors 'none'`, `X-Frame-Options`),
//! running anything in it (`default-src 'none'`), leaking URLs to other sites (`no-referrer`),
//! cross-origin window and resource tricks (COOP/CORP), caching tokens or personal data in
//! shared caches (`no-store`, unless the handler itself declared the response cacheable: only
//! the public keys at `/.well-known/jwks.json` do), and advertising the server's software (no
//! `Server` header).
//! The preset is at least as strict as helmet's defaults and loco's `owasp` preset, tuned for
//! a JSON API.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The preset: name and value of every header set on every response.
pub const PRESET: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    (
        "permissions-policy",
        "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), \
         magnetometer=(), microphone=(), midi=(), payment=(), usb=(), interest-cohort=()",
    ),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    // API responses carry tokens and personal data: never store them in any cache.
    ("cache-control", "no-store"),
];

/// `Strict-Transport-Security` for a server reached over HTTPS: two years, subdomains
/// included, `preload` only when asked for (it is hard to undo).
pub fn hsts(preload: bool) -> HeaderValue {
    HeaderValue::from_static(if preload {
        "max-age=63072000; includeSubDomains; preload"
    } else {
        "max-age=63072000; includeSubDomains"
    })
}

/// Sets the preset (and HSTS, when the server is reached over HTTPS) on the response,
/// replacing anything a handler set except its own `Cache-Control` (a handler that states one
/// has decided its answer is public, as the JWKS route does; every other response, errors from
/// the layers included, carries none and gets `no-store`), and removes headers that only
/// advertise the software.
pub async fn security_headers(
    State(hsts): State<Option<HeaderValue>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    apply(response.headers_mut(), hsts);
    response
}

/// What [`security_headers`] does to a response's headers (public for the micro-benchmark).
pub fn apply(headers: &mut HeaderMap, hsts: Option<HeaderValue>) {
    let handler_cache_control = headers.contains_key(header::CACHE_CONTROL);
    // Room for the whole preset at once: growing the map header by header reallocates it
    // several times per response.
    headers.reserve(PRESET.len());
    for (name, value) in PRESET {
        if handler_cache_control && *name == header::CACHE_CONTROL.as_str() {
            continue;
        }
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    headers.remove(header::SERVER);
    headers.remove("x-powered-by");
}
