//! The outermost layer: observes every request (metrics by route template, the repeated-5xx
//! alert, the request's span and its log line) around everything else, sets the security
//! headers and the request id on whatever answer comes back, and on the way in gives the
//! request its id (the client's when well formed, otherwise a fresh one), marks the
//! credentials it carries as sensitive (a debug print of its headers, or an HTTP/2 header
//! table, never holds them) and resolves the client's address.
//!
//! A step that calls the stack in place (see [`crate::stack`]) and boxes its answer once,
//! together with the scope of the server's metrics registry. The request id and the sensitive
//! marks were three `tower-http` layers of their own, each cloned with the stack and run for
//! every request (BENCHMARKS.md, "The request id at the edge"), and the span and log line a
//! fourth (its trace layer, which wrapped every body in one more box).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::{self, Entry};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use ipnet::IpNet;
use tracing::Instrument;

use super::observe::RequestObserver;
use crate::metrics::Scoped;
use crate::stack::{Stack, Step};

/// The header that carries a request's id, the client's when well formed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the edge works with, decided once at start.
pub struct EdgeSettings {
    pub observer: RequestObserver,
    /// `Strict-Transport-Security`, when clients reach the server over HTTPS.
    pub hsts: Option<HeaderValue>,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: Arc<[IpNet]>,
}

/// See the module documentation.
#[derive(Clone)]
pub struct Edge(Arc<EdgeSettings>);

impl Edge {
    pub fn new(settings: EdgeSettings) -> Self {
        Self(Arc::new(settings))
    }
}

/// The edge's answer: boxed once, and polled inside the server's metrics registry.
pub type EdgeFuture = Scoped<dyn Future<Output = Result<Response, Infallible>> + Send>;

impl<S: Stack> Step<S> for Edge {
    type Future = EdgeFuture;

    fn call(&self, inner: &mut S, mut request: Request) -> EdgeFuture {
        let request_id = identify(request.headers_mut());
        mark_credentials_sensitive(request.headers_mut());
        crate::defense::client_ip::attach(&mut request, &self.0.trusted_proxies);
        let observation = RequestObserver::start(&request);
        let span = crate::telemetry::request_span(&request, &request_id);
        let metrics = &self.0.observer.metrics;
        // The stack's synchronous part runs in the registry's scope and the request's span
        // too, as its polls will.
        let answer = span.in_scope(|| metrics.scope(|| inner.answer(request)));
        let edge = self.0.clone();
        let answered = async move {
            let Ok(mut response) = answer.await;
            let took = edge.observer.finish(observation, response.status());
            crate::telemetry::log_response(response.status(), took);
            crate::defense::headers::apply(response.headers_mut(), edge.hsts.clone());
            // After the preset: into its map, which has room, rather than into the handler's,
            // whose headers the preset then takes over. A handler's own id is left alone.
            if let Entry::Vacant(slot) = response.headers_mut().entry(REQUEST_ID) {
                slot.insert(request_id);
            }
            Ok(response)
        };
        metrics.instrument_pinned(Box::pin(answered.instrument(span)))
    }
}

/// The request's `X-Request-Id`, set on it and returned for the answer: the client's when it
/// sent exactly one of 1–64 characters of `[A-Za-z0-9._-]`; anything else could smuggle
/// markup or line breaks into logs, so a fresh UUID replaces every value sent.
fn identify(headers: &mut HeaderMap) -> HeaderValue {
    let well_formed = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let mut ids = headers.get_all(&REQUEST_ID).iter();
    if let (Some(id), None) = (ids.next(), ids.next())
        && well_formed(id)
    {
        return id.clone();
    }
    let fresh = fresh_request_id();
    headers.insert(REQUEST_ID, fresh.clone());
    fresh
}

/// A random (version 4) UUID, hyphenated, as the header value.
fn fresh_request_id() -> HeaderValue {
    let mut text = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // Hex digits and hyphens are always a valid header value: the fallback is never taken.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unidentified"))
}

/// Marks the values of `Authorization` and `Cookie` sensitive.
fn mark_credentials_sensitive(headers: &mut HeaderMap) {
    for name in [header::AUTHORIZATION, header::COOKIE] {
        if let Entry::Occupied(mut values) = headers.entry(name) {
            for value in values.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_marked_sensitive_and_nothing_else() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Token abc.def"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("aerie_refresh=r1"));
        headers.append(header::COOKIE, HeaderValue::from_static("other=o2"));
        headers.insert(header::USER_AGENT, HeaderValue::from_static("curl/8"));
        mark_credentials_sensitive(&mut headers);
        let credentials: Vec<_> = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .chain(headers.get_all(header::COOKIE))
            .collect();
        assert_eq!(credentials.len(), 3);
        assert!(credentials.iter().all(|value| value.is_sensitive()));
        assert!(!headers[header::USER_AGENT].is_sensitive());
        // What a debug print of the request would show.
        let printed = format!("{headers:?}");
        for secret in ["abc.def", "r1", "o2"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn a_request_without_a_usable_id_gets_a_fresh_uuid() {
        let mut headers = HeaderMap::new();
        headers.append(&REQUEST_ID, HeaderValue::from_static("one"));
        headers.append(&REQUEST_ID, HeaderValue::from_static("two"));
        let id = identify(&mut headers);
        let parsed = uuid::Uuid::parse_str(id.to_str().unwrap_or_default()).ok();
        assert_eq!(parsed.map(|uuid| uuid.get_version_num()), Some(4));
        let on_request: Vec<_> = headers.get_all(&REQUEST_ID).iter().collect();
        assert_eq!(on_request, [&id], "the fresh id replaces every value sent");
        assert_ne!(identify(&mut HeaderMap::new()), id, "a fresh id each time");
    }
}
