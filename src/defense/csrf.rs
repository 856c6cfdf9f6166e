//! Cross-site request forgery defence for cookie mode.
//!
//! Guards against another site making a signed-in browser act on its user's behalf: a cookie
//! travels with every request the browser sends to us, whoever caused it, so a request that
//! is authenticated by a cookie and changes state must prove it comes from our own front end.
//! Two independent proofs are required (OWASP's double submit plus origin verification):
//!
//! - the `X-CSRF-Token` header equals the `__Host-aerie-csrf` cookie (compared in constant
//!   time). Another site can neither read that cookie nor set a header on a cross-site
//!   request without a CORS preflight we refuse, and the `__Host-` prefix stops a sibling
//!   subdomain from planting its own value;
//! - the `Origin` header (or, when a browser leaves it out, the `Referer`'s origin) is one we
//!   trust ([`AllowedOrigins`]). A missing or `null` origin is refused.
//!
//! Requests authenticated by the `Authorization` header need neither: a browser never adds
//! that header on another site's behalf.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

use super::cors::AllowedOrigins;

/// Why a cookie-authenticated request was refused. The HTTP layer answers every one with the
/// same 403, so a probing page learns nothing about which proof failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("the request names no origin")]
    MissingOrigin,
    #[error("the request's origin is repeated, unreadable or null")]
    UnusableOrigin,
    #[error("the request's origin is not trusted")]
    UntrustedOrigin,
    #[error("the CSRF token is missing or does not match its cookie")]
    TokenMismatch,
}

/// The request header that echoes the CSRF cookie (and the response header that hands a
/// fresh token to a front end on another origin, which cannot read our cookies).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Random bytes per CSRF token: 256 bits, like the refresh token.
const TOKEN_BYTES: usize = 32;
/// Length of the base64url text of [`TOKEN_BYTES`] bytes, without padding.
const TOKEN_CHARS: usize = 43;

/// A fresh, unguessable CSRF token (base64url).
pub fn mint_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; TOKEN_BYTES]>())
}

/// Whether `value` has the shape of a token [`mint_token`] makes.
pub fn is_well_formed(value: &str) -> bool {
    value.len() == TOKEN_CHARS
        && URL_SAFE_NO_PAD
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES)
}

/// The full check for a state-changing request authenticated by a cookie: trusted origin and
/// matching double-submit token.
pub fn check_state_change(
    headers: &HeaderMap,
    csrf_cookie: Option<&str>,
    origins: &AllowedOrigins,
) -> Result<(), CsrfError> {
    check_origin(headers, origins, OriginRule::Required)?;
    let header_token = single_header(headers, CSRF_HEADER).ok_or(CsrfError::TokenMismatch)?;
    let cookie_token = csrf_cookie.ok_or(CsrfError::TokenMismatch)?;
    let matches: bool = header_token
        .as_bytes()
        .ct_eq(cookie_token.as_bytes())
        .into();
    if matches && is_well_formed(cookie_token) {
        Ok(())
    } else {
        Err(CsrfError::TokenMismatch)
    }
}

/// Whether a request must name its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginRule {
    /// A browser always sends `Origin` (or at least `Referer`) on a state-changing request;
    /// a request authenticated by a cookie that names neither is refused.
    Required,
    /// A request that starts a cookie session (login, register) may come from a client that
    /// is no browser and names no origin; when it names one, that origin must be trusted,
    /// which stops a login CSRF (another site signing the browser into its own account).
    IfPresent,
}

/// Refuses the request unless its origin is trusted (see [`OriginRule`]).
pub fn check_origin(
    headers: &HeaderMap,
    origins: &AllowedOrigins,
    rule: OriginRule,
) -> Result<(), CsrfError> {
    let origin = match request_origin(headers) {
        Presented::Origin(origin) => origin,
        Presented::Nothing if rule == OriginRule::IfPresent => return Ok(()),
        Presented::Nothing => return Err(CsrfError::MissingOrigin),
        Presented::Unusable => return Err(CsrfError::UnusableOrigin),
    };
    if origins.allows(origin.as_bytes()) {
        Ok(())
    } else {
        Err(CsrfError::UntrustedOrigin)
    }
}

enum Presented {
    Origin(String),
    Nothing,
    /// Repeated, unreadable, `null`, or a `Referer` that is no URL: never trusted.
    Unusable,
}

/// The `Origin` header, else the origin of the `Referer`. Our `Referrer-Policy: no-referrer`
/// only governs links out of our own responses; front ends served elsewhere send their own.
fn request_origin(headers: &HeaderMap) -> Presented {
    if headers.contains_key(header::ORIGIN) {
        return match single_header(headers, header::ORIGIN.as_str()) {
            Some(origin) if origin != "null" => Presented::Origin(origin.to_owned()),
            _ => Presented::Unusable,
        };
    }
    if headers.contains_key(header::REFERER) {
        return single_header(headers, header::REFERER.as_str())
            .and_then(|referer| url::Url::parse(referer).ok())
            .map(|url| url.origin())
            .filter(url::Origin::is_tuple)
            .map_or(Presented::Unusable, |origin| {
                Presented::Origin(origin.ascii_serialization())
            });
    }
    Presented::Nothing
}

/// The value of a header sent exactly once, as text.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defense::test_headers as headers;

    fn origins() -> AllowedOrigins {
        let settings = crate::defense::cors::CorsSettings {
            origins: vec!["https://app.example.com".into()],
            allow_local_dev: true,
        };
        AllowedOrigins::new(&settings, Some("https://api.example.com/base"))
    }

    #[test]
    fn only_trusted_origins_pass() {
        let origins = origins();
        for good in [
            vec![("origin", "https://app.example.com")],
            vec![("origin", "https://api.example.com")],
            vec![("referer", "https://app.example.com/editor?x=1")],
            vec![("origin", "http://localhost:4200")], // development only
        ] {
            assert!(
                check_origin(&headers(&good), &origins, OriginRule::Required).is_ok(),
                "{good:?}"
            );
        }
        for bad in [
            vec![],
            vec![("origin", "null")],
            vec![("origin", "https://evil.example")],
            vec![("origin", "https://app.example.com.evil.io")],
            vec![("origin", "http://app.example.com")],
            vec![("referer", "https://evil.example/https://app.example.com")],
            vec![("referer", "not a url")],
            vec![
                ("origin", "https://app.example.com"),
                ("origin", "https://evil.example"),
            ],
            // Origin wins over Referer: a trusted Referer cannot vouch for a foreign Origin.
            vec![
                ("origin", "https://evil.example"),
                ("referer", "https://app.example.com/"),
            ],
        ] {
            assert!(
                check_origin(&headers(&bad), &origins, OriginRule::Required).is_err(),
                "{bad:?}"
            );
        }
        assert!(check_origin(&headers(&[]), &origins, OriginRule::IfPresent).is_ok());
        assert!(
            check_origin(
                &headers(&[("origin", "https://evil.example")]),
                &origins,
                OriginRule::IfPresent
            )
            .is_err()
        );
    }

    #[test]
    fn the_double_submit_token_must_match_exactly() {
        let origins = origins();
        let token = mint_token();
        let trusted = ("origin", "https://app.example.com");
        let ok = headers(&[trusted, ("x-csrf-token", &token)]);
        assert!(check_state_change(&ok, Some(&token), &origins).is_ok());
        assert!(
            check_state_change(&ok, None, &origins).is_err(),
            "no cookie"
        );
        let other = mint_token();
        assert!(check_state_change(&ok, Some(&other), &origins).is_err());
        let missing = headers(&[trusted]);
        assert!(check_state_change(&missing, Some(&token), &origins).is_err());
        let twice = headers(&[trusted, ("x-csrf-token", &token), ("x-csrf-token", &token)]);
        assert!(check_state_change(&twice, Some(&token), &origins).is_err());
        let empty = headers(&[trusted, ("x-csrf-token", "")]);
        assert!(
            check_state_change(&empty, Some(""), &origins).is_err(),
            "empty equals empty"
        );
        let foreign = headers(&[("origin", "https://evil.example"), ("x-csrf-token", &token)]);
        assert!(check_state_change(&foreign, Some(&token), &origins).is_err());
    }
}
