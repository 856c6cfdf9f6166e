//! The rate-limit layers: the global per-IP policy around every request, and the tighter
//! policy a route declares (`post(login).layer(rate_limit::route(Policy::LoginIp))`), with the
//! `RateLimit` headers of an allowed request.
//!
//! A refused request is answered by a function the HTTP layer hands over when it builds the
//! stack ([`Enforcement`]), so a layer's 429 is byte for byte a handler's 429 without this
//! defence depending on the HTTP error type.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

use super::limiter::{Allowed, RateLimiter, Refused, ceil_secs};
use super::policy::Policy;
use crate::defense::client_ip::ClientIp;
use crate::stack::{Answer, InPlace, Stack, Step, answered, take_ready};

/// How a refused request is answered: the HTTP layer's own 429 (or 503), handed over when
/// the layer stack is built.
pub type RefusalResponse = fn(Refused) -> Response;

/// The limiter and the answer to a refusal: the global layer's state, which it also puts in
/// every request's extensions for the route policies further in.
#[derive(Clone)]
pub struct Enforcement {
    limiter: RateLimiter,
    refuse: RefusalResponse,
}

impl Enforcement {
    pub fn new(limiter: RateLimiter, refuse: RefusalResponse) -> Self {
        Self { limiter, refuse }
    }
}

/// The outermost rate-limit step ([`crate::stack::InPlace`] makes it a layer): counts every
/// request against `global` by client IP, and makes the limiter available to route
/// policies. It calls the stack in place: with memory buckets the check needs no future, and
/// only the Redis store's round trip keeps a clone of the stack for after it.
#[derive(Clone)]
pub struct Global(pub Enforcement);

impl<S: Stack + Clone + Send + 'static> Step<S> for Global {
    type Future = Answer;

    fn call(&self, inner: &mut S, mut request: Request) -> Answer {
        let Self(enforcement) = self;
        let ip = request
            .extensions()
            .get::<ClientIp>()
            .map(|ClientIp(ip)| *ip);
        request.extensions_mut().insert(enforcement.clone());
        let Some(ip) = ip else {
            return inner.call_boxed(request);
        };
        match enforcement.limiter.check_ip_now(Policy::Global, ip) {
            Some(Ok(_)) => inner.call_boxed(request),
            Some(Err(refused)) => answered((enforcement.refuse)(refused)),
            None => {
                let mut inner = take_ready(inner);
                let enforcement = enforcement.clone();
                Box::pin(async move {
                    match enforcement.limiter.check_ip(Policy::Global, ip).await {
                        Ok(_) => inner.answer(request).await,
                        Err(refused) => Ok((enforcement.refuse)(refused)),
                    }
                })
            }
        }
    }
}

/// The layer a route declares to take `policy` per client IP:
/// `post(login).layer(rate_limit::route(Policy::LoginIp))`.
pub fn route(policy: Policy) -> InPlace<RoutePolicy> {
    InPlace(RoutePolicy(policy))
}

/// See [`route`]: the step, which waits on the limiter (its Redis store may be a round trip
/// away) and so takes the route out for after the check.
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy(Policy);

impl<S: Stack + Clone + Send + 'static> Step<S> for RoutePolicy {
    type Future = Answer;

    fn call(&self, inner: &mut S, request: Request) -> Answer {
        let mut inner = take_ready(inner);
        let Self(policy) = *self;
        Box::pin(async move {
            let enforcement = request.extensions().get::<Enforcement>().cloned();
            let ip = request
                .extensions()
                .get::<ClientIp>()
                .map(|ClientIp(ip)| *ip);
            let (Some(enforcement), Some(ip)) = (enforcement, ip) else {
                return inner.answer(request).await;
            };
            match enforcement.limiter.check_ip(policy, ip).await {
                Ok(Some(allowed)) => {
                    let mut response = inner.answer(request).await?;
                    add_headers(response.headers_mut(), &allowed);
                    Ok(response)
                }
                Ok(None) => inner.answer(request).await,
                Err(refused) => Ok((enforcement.refuse)(refused)),
            }
        })
    }
}

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `RateLimit-Policy: "login-ip";q=10;w=300` and `RateLimit: "login-ip";r=3;t=90`
/// (draft-ietf-httpapi-ratelimit-headers); appended, so a response may name several policies.
pub fn add_headers(headers: &mut HeaderMap, allowed: &Allowed) {
    let Allowed {
        policy,
        rate,
        remaining,
        reset,
    } = *allowed;
    let name = policy.name();
    let policy_value = format!("\"{name}\";q={};w={}", rate.burst, rate.window.as_secs());
    let state_value = format!("\"{name}\";r={remaining};t={}", ceil_secs(reset));
    for (header, value) in [(RATELIMIT_POLICY, policy_value), (RATELIMIT, state_value)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(header, value);
        }
    }
}
