//! The rate-limit layers: the global per-IP policy around every request, and the tighter
//! policy a route declares (`post(login).layer(rate_limit::route(Policy::LoginIp))`), with the
//! `RateLimit` headers of an allowed request.
//!
//! A refused request is answered by a function the HTTP layer hands over when it builds the
//! stack ([`Enforcement`]), so a layer's 429 is byte for byte a handler's 429 without this
//! defence depending on the HTTP error type.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use tower::{Layer, Service};

use super::limiter::{Allowed, RateLimiter, Refused, ceil_secs};
use super::policy::Policy;
use crate::defense::client_ip::ClientIp;
use crate::stack::{Answer, Stack};

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

/// The outermost rate-limit layer: counts every request against `global` by client IP, and
/// makes the limiter available to route policies. A tower service that calls the stack in
/// place: with memory buckets the check needs no future, and only the Redis store's round
/// trip keeps a clone of the stack for after it.
#[derive(Clone)]
pub struct Global(pub Enforcement);

impl<S> Layer<S> for Global {
    type Service = GlobalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GlobalService {
            enforcement: self.0.clone(),
            inner,
        }
    }
}

/// [`Global`] around the stack `S`.
#[derive(Clone)]
pub struct GlobalService<S> {
    enforcement: Enforcement,
    inner: S,
}

impl<S> Service<Request> for GlobalService<S>
where
    S: Stack + Clone + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let ip = request
            .extensions()
            .get::<ClientIp>()
            .map(|ClientIp(ip)| *ip);
        request.extensions_mut().insert(self.enforcement.clone());
        let Some(ip) = ip else {
            return self.inner.call_boxed(request);
        };
        match self.enforcement.limiter.check_ip_now(Policy::Global, ip) {
            Some(Ok(_)) => self.inner.call_boxed(request),
            Some(Err(refused)) => {
                Box::pin(std::future::ready(Ok((self.enforcement.refuse)(refused))))
            }
            None => {
                // The clone that was polled ready is the one that serves this request.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let enforcement = self.enforcement.clone();
                Box::pin(async move {
                    match enforcement.limiter.check_ip(Policy::Global, ip).await {
                        Ok(_) => inner.call_boxed(request).await,
                        Err(refused) => Ok((enforcement.refuse)(refused)),
                    }
                })
            }
        }
    }
}

/// The layer a route declares to take `policy` per client IP:
/// `post(login).layer(rate_limit::route(Policy::LoginIp))`.
pub fn route(policy: Policy) -> RoutePolicy {
    RoutePolicy(policy)
}

/// See [`route`].
#[derive(Debug, Clone, Copy)]
pub struct RoutePolicy(Policy);

impl<S> Layer<S> for RoutePolicy {
    type Service = RoutePolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RoutePolicyService {
            policy: self.0,
            inner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoutePolicyService<S> {
    policy: Policy,
    inner: S,
}

impl<S> Service<Request> for RoutePolicyService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy;
        Box::pin(async move {
            let enforcement = request.extensions().get::<Enforcement>().cloned();
            let ip = request
                .extensions()
                .get::<ClientIp>()
                .map(|ClientIp(ip)| *ip);
            let (Some(enforcement), Some(ip)) = (enforcement, ip) else {
                return inner.call(request).await;
            };
            match enforcement.limiter.check_ip(policy, ip).await {
                Ok(Some(allowed)) => {
                    let mut response = inner.call(request).await?;
                    add_headers(response.headers_mut(), &allowed);
                    Ok(response)
                }
                Ok(None) => inner.call(request).await,
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
