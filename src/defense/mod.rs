//! Cross-cutting request defences, applied as layers in [`crate::app`].

pub mod client_ip;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod host;
pub mod login_guard;
pub mod rate_limit;

/// A header map from name/value pairs, repeated names kept: for the defences' unit tests.
#[cfg(test)]
fn test_headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in pairs {
        let value = axum::http::HeaderValue::from_str(value).expect("header value");
        map.append(*name, value);
    }
    map
}
