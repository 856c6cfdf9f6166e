//! One `Host` header per HTTP/1.1 request (RFC 9112 §3.2).
//!
//! Guards against requests whose target is ambiguous: a proxy and this server could each pick
//! a different one of two `Host` fields (the seed of cache poisoning and routing confusion),
//! and a request without one is malformed. Both are refused with 400 before any route runs.
//! HTTP/2 names its target in `:authority` and HTTP/1.0 predates the rule, so neither needs it.

use axum::http::{HeaderMap, Version, header};

/// Why a request's `Host` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("Host header missing")]
    Missing,
    #[error("Host header repeated")]
    Repeated,
}

/// Refuses an HTTP/1.1 request that carries no `Host` field or more than one.
pub fn check(version: Version, headers: &HeaderMap) -> Result<(), HostError> {
    if version != Version::HTTP_11 {
        return Ok(());
    }
    match headers.get_all(header::HOST).iter().count() {
        0 => Err(HostError::Missing),
        1 => Ok(()),
        _ => Err(HostError::Repeated),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_hosts(hosts: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for host in hosts {
            headers.append(header::HOST, HeaderValue::from_static(host));
        }
        headers
    }

    #[test]
    fn http_1_1_needs_exactly_one_host() {
        assert_eq!(
            check(Version::HTTP_11, &with_hosts(&[])),
            Err(HostError::Missing)
        );
        assert_eq!(check(Version::HTTP_11, &with_hosts(&["a"])), Ok(()));
        assert_eq!(
            check(Version::HTTP_11, &with_hosts(&["a", "b"])),
            Err(HostError::Repeated)
        );
    }

    #[test]
    fn http_1_0_and_http_2_are_exempt() {
        assert_eq!(check(Version::HTTP_10, &with_hosts(&[])), Ok(()));
        assert_eq!(check(Version::HTTP_2, &with_hosts(&[])), Ok(()));
    }
}
