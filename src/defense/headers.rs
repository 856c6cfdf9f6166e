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

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::header::{Entry, OccupiedEntry};
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
///
/// The answer starts from a copy of the preset map, built once, and takes the handler's
/// headers into it: a response carries a few headers of its own against the preset's
/// twelve, so this hashes a few names instead of parsing and inserting twelve (about 11,000
/// instructions before, some 6 % of an anonymous article read's; BENCHMARKS.md, "Futures
/// sized for the public path"). Header order may change; values of one name keep theirs.
pub fn apply(headers: &mut HeaderMap, hsts: Option<HeaderValue>) {
    static PRESET_MAP: LazyLock<HeaderMap> = LazyLock::new(|| {
        // Built with room for a handler's headers: a copy keeps the size of the index
        // table, so taking them in below does not rehash it.
        let mut preset = HeaderMap::with_capacity(PRESET.len() + HANDLER_ROOM);
        for (name, value) in PRESET {
            preset.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        preset
    });
    let mut answer = PRESET_MAP.clone();
    if headers.contains_key(header::CACHE_CONTROL) {
        answer.remove(header::CACHE_CONTROL);
    }
    if let Some(hsts) = hsts {
        answer.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    // `drain` names each header once, then gives its further values without the name. Only
    // the preset's names (and HSTS's, when set) are in `answer` yet: the handler's names are
    // distinct, so a name met here is never one taken in below. One lookup per name: its
    // entry is kept for the values that follow.
    let mut taking: Option<OccupiedEntry<'_, HeaderValue>> = None;
    for (name, value) in headers.drain() {
        if let Some(name) = name {
            taking = None;
            if advertises_software(&name) {
                continue;
            }
            if let Entry::Vacant(vacant) = answer.entry(name) {
                taking = Some(vacant.insert_entry(value));
                continue;
            }
        }
        if let Some(entry) = &mut taking {
            entry.append(value);
        }
    }
    *headers = answer;
}

/// Room for a handler's own headers in the preset's map (content type, length, `Vary`, the
/// request id, the rate-limit headers...); more only costs a rehash.
const HANDLER_ROOM: usize = 12;

/// Headers that only say which software answered.
fn advertises_software(name: &HeaderName) -> bool {
    name == header::SERVER || name.as_str() == "x-powered-by"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn the_preset_replaces_the_handlers_values_and_its_other_headers_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, value("application/json"));
        headers.insert(header::X_FRAME_OPTIONS, value("ALLOWALL"));
        headers.append(header::VARY, value("origin"));
        headers.append(header::VARY, value("access-control-request-method"));
        headers.insert(header::SERVER, value("aerie/1.0"));
        headers.insert("x-powered-by", value("rust"));
        apply(&mut headers, None);
        for (name, preset) in PRESET {
            assert_eq!(headers.get_all(*name).iter().collect::<Vec<_>>(), [preset]);
        }
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let vary: Vec<_> = headers.get_all(header::VARY).iter().collect();
        assert_eq!(vary, ["origin", "access-control-request-method"]);
        assert!(!headers.contains_key(header::SERVER));
        assert!(!headers.contains_key("x-powered-by"));
        assert!(!headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
        assert_eq!(headers.len(), PRESET.len() + 3);
    }

    #[test]
    fn a_handlers_cache_control_stays_and_hsts_replaces_the_handlers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, value("public, max-age=300"));
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value("max-age=1"));
        apply(&mut headers, Some(hsts(false)));
        assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
        assert_eq!(headers.get_all(header::CACHE_CONTROL).iter().count(), 1);
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], hsts(false));
        assert_eq!(
            headers
                .get_all(header::STRICT_TRANSPORT_SECURITY)
                .iter()
                .count(),
            1
        );
    }

    #[test]
    fn without_hsts_a_handlers_own_strict_transport_security_is_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value("max-age=1"));
        apply(&mut headers, None);
        assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], "max-age=1");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
}
