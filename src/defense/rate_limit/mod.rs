//! Rate limiting: named policies, each a GCRA bucket per key (client IP, account, user).
//!
//! Guards against brute force and credential stuffing on login (attacks.md §3 A1–A3), signup
//! floods, and one client or one account taking more than its share (§8). Every request is
//! counted against the `global` per-IP policy; a route adds a tighter one where it is declared,
//! in one line: `post(login).layer(rate_limit::route(Policy::LoginIp))`. Because that layer sits
//! on the matched route, path variants (`/api/users/login/`, `/API/users/login`) never reach
//! the handler (404) and cannot open a fresh bucket.
//!
//! Keys: the client IP comes from [`super::client_ip`] (trusted proxies only), so forged
//! `X-Forwarded-For` headers land in the caller's own bucket; IPv6 clients are bucketed by
//! their /64, which one subscriber usually owns whole.
//!
//! Login is limited twice. Per IP at the route (`login-ip`), and per target account inside the
//! handler (`login-account`, on the normalized email): the handler already parses the body, so
//! it asks [`RateLimiter::check`] directly rather than a layer parsing the body a second time
//! and handing it back. Many IPs against one account and one IP against many accounts both hit
//! a wall. The victim-lockout rule: the per-account budget is larger than the per-IP one, so a
//! single attacking IP is stopped before the account is touched, and the owner logging in from
//! their own address still gets in; a distributed attack can exhaust the account's budget, and
//! then every attempt on it (the owner's too) waits at most one refill interval of that policy,
//! never longer, because a refused attempt does not consume budget.
//!
//! Authenticated writes are limited per user (`writes`) by the [`crate::http::extract::AuthUser`]
//! extractor. Callers in `AERIE_RATE_LIMIT_ALLOWLIST` skip every policy.
//!
//! Stores: the buckets live in memory ([`memory`]) unless `AERIE_REDIS_URL` names a Redis that
//! several instances share ([`redis`]). Either way the policy logic, the headers and the
//! metrics are this file's, once; a store only answers "allowed, with this much left" or
//! "limited, for this long". When Redis fails, `AERIE_REDIS_FAILURE` decides: `open` falls
//! back to the memory buckets (limits still hold, per instance), `closed` answers 503, and
//! `auth-closed` answers 503 for the credential policies only.

mod memory;
pub mod redis;
mod trips;

use std::convert::Infallible;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use tower::{Layer, Service};

use self::memory::MemoryBuckets;
use self::redis::{RedisBuckets, RedisSettings, StoreFailure};
use super::client_ip::{ClientIp, is_trusted};
use crate::clock::Clock;
use crate::http::error::Error;

/// The named policies. A route takes one with [`route`]; the handler-level ones are checked
/// with [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Every request, per client IP.
    Global,
    /// `POST /api/users/login`, per client IP.
    LoginIp,
    /// Login attempts per target account (normalized email), from any IP.
    LoginAccount,
    /// `POST /api/users`, per client IP.
    Register,
    /// Token refresh, per client IP (for the sessions issue's `POST /api/auth/refresh`).
    Refresh,
    /// The MFA step, per client IP.
    Mfa,
    /// Authenticated writes (non-GET), per user.
    Writes,
}

impl Policy {
    const ALL: [Policy; 7] = [
        Policy::Global,
        Policy::LoginIp,
        Policy::LoginAccount,
        Policy::Register,
        Policy::Refresh,
        Policy::Mfa,
        Policy::Writes,
    ];

    /// The name in `RateLimit-Policy` headers and logs.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Global => "global",
            Policy::LoginIp => "login-ip",
            Policy::LoginAccount => "login-account",
            Policy::Register => "register",
            Policy::Refresh => "refresh",
            Policy::Mfa => "mfa",
            Policy::Writes => "writes",
        }
    }

    /// Policies that slow down guessing of passwords, tokens and codes.
    pub fn guards_credentials(self) -> bool {
        matches!(
            self,
            Policy::LoginIp
                | Policy::LoginAccount
                | Policy::Register
                | Policy::Refresh
                | Policy::Mfa
        )
    }

    /// The setting that configures this policy.
    pub fn setting(self) -> &'static str {
        match self {
            Policy::Global => "AERIE_RATE_LIMIT_GLOBAL",
            Policy::LoginIp => "AERIE_RATE_LIMIT_LOGIN_IP",
            Policy::LoginAccount => "AERIE_RATE_LIMIT_LOGIN_ACCOUNT",
            Policy::Register => "AERIE_RATE_LIMIT_REGISTER",
            Policy::Refresh => "AERIE_RATE_LIMIT_REFRESH",
            Policy::Mfa => "AERIE_RATE_LIMIT_MFA",
            Policy::Writes => "AERIE_RATE_LIMIT_WRITES",
        }
    }

    /// Defaults: generous for people, tight for guessing. Login per account is above login
    /// per IP on purpose (see the module doc: no victim lockout from one address).
    pub fn default_rate(self) -> Rate {
        let (burst, secs) = match self {
            Policy::Global => (300, 60),
            Policy::LoginIp => (10, 300),
            Policy::LoginAccount => (20, 900),
            Policy::Register => (10, 3600),
            Policy::Refresh => (30, 60),
            Policy::Mfa => (10, 300),
            Policy::Writes => (60, 60),
        };
        Rate {
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            window: Duration::from_secs(secs),
        }
    }
}

/// `burst` requests at once, refilled evenly over `window`: `N/SECS` in settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: NonZeroU32,
    pub window: Duration,
}

impl Rate {
    /// Parses `N/SECS` (1 ≤ N ≤ 1 000 000, 1 s ≤ SECS ≤ 1 day).
    pub fn parse(text: &str) -> Option<Self> {
        let (burst, secs) = text.trim().split_once('/')?;
        let burst: u32 = burst.trim().parse().ok()?;
        let secs: u64 = secs.trim().trim_end_matches('s').parse().ok()?;
        if !(1..=1_000_000).contains(&burst) || !(1..=86_400).contains(&secs) {
            return None;
        }
        Some(Self {
            burst: NonZeroU32::new(burst)?,
            window: Duration::from_secs(secs),
        })
    }

    /// The time one request's worth of budget takes to come back.
    pub fn interval(self) -> Duration {
        self.window / self.burst.get()
    }
}

/// Every policy's rate, the allowlist and the store, as configured.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub rates: Vec<(Policy, Rate)>,
    /// Callers in these networks skip every policy (internal health checks, batch jobs).
    pub allowlist: Vec<IpNet>,
    /// Shared buckets in Redis; `None` keeps them in this process.
    pub redis: Option<RedisSettings>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            rates: Policy::ALL.iter().map(|p| (*p, p.default_rate())).collect(),
            allowlist: Vec::new(),
            redis: None,
        }
    }
}

impl RateLimits {
    pub fn rate(&self, policy: Policy) -> Rate {
        self.rates
            .iter()
            .find(|(p, _)| *p == policy)
            .map_or_else(|| policy.default_rate(), |(_, rate)| *rate)
    }

    pub fn all_policies() -> &'static [Policy] {
        &Policy::ALL
    }
}

/// A store's answer to one check.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    Allowed { remaining: u32 },
    Limited { retry_after: Duration },
}

/// A refused request: which policy, and when to come back. Answered as a 429 by the error type.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    pub policy: Policy,
    pub rate: Rate,
    pub retry_after: Duration,
}

/// Why a request may not pass: a policy refused it, or the shared store failed and is
/// configured to fail closed (503).
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    Limited(Limited),
    StoreUnavailable,
}

/// All policies' buckets; shared by every request (cheap to clone).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    /// The store when Redis is not configured, and the fallback when it fails open.
    buckets: Vec<(Policy, Rate, MemoryBuckets)>,
    shared: Option<RedisBuckets>,
    allowlist: Vec<IpNet>,
    /// Refusals per policy, in `Policy::ALL` order: the hook for the metrics endpoint.
    refused: [AtomicU64; Policy::ALL.len()],
    /// Sampled refusals go to the audit trail, once the server hands over its log.
    trips: Option<trips::Trips>,
}

/// What an allowed check reports, for the `RateLimit` headers.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub policy: Policy,
    pub rate: Rate,
    pub remaining: u32,
    pub reset: Duration,
}

impl RateLimiter {
    /// The limiter as configured: memory buckets, plus Redis when `limits.redis` is set.
    /// Must run inside the Tokio runtime (the Redis connection is made there, lazily).
    pub fn from_config(limits: &RateLimits, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let shared = match &limits.redis {
            Some(settings) => Some(RedisBuckets::new(settings, clock.clone())?),
            None => None,
        };
        Ok(Self::with_store(limits, clock, shared))
    }

    /// Memory buckets only.
    pub fn new(limits: &RateLimits, clock: Arc<dyn Clock>) -> Self {
        Self::with_store(limits, clock, None)
    }

    fn with_store(
        limits: &RateLimits,
        clock: Arc<dyn Clock>,
        shared: Option<RedisBuckets>,
    ) -> Self {
        let buckets = Policy::ALL
            .iter()
            .map(|policy| {
                let rate = limits.rate(*policy);
                (*policy, rate, MemoryBuckets::new(rate, clock.clone()))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                buckets,
                shared,
                allowlist: limits.allowlist.clone(),
                refused: Default::default(),
                trips: None,
            }),
        }
    }

    /// Records sampled refusals on `audit` (see [`trips`]). Called once, while building the
    /// server, before the limiter is shared.
    pub fn with_audit(mut self, audit: crate::audit::AuditLog, clock: Arc<dyn Clock>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.trips = Some(trips::Trips::new(audit, clock)),
            None => tracing::error!("rate limiter already shared: refusals will not be audited"),
        }
        self
    }

    /// Takes one request's worth of `policy`'s budget for `key`.
    pub async fn check(&self, policy: Policy, key: &str) -> Result<Allowed, Refused> {
        let Some((_, rate, buckets)) = self.inner.buckets.iter().find(|(p, _, _)| *p == policy)
        else {
            // Every policy gets buckets in `new`; a missing one would be a build bug.
            return Err(Refused::Limited(Limited {
                policy,
                rate: policy.default_rate(),
                retry_after: Duration::from_secs(1),
            }));
        };
        let rate = *rate;
        let decision = match &self.inner.shared {
            None => buckets.check(key),
            Some(shared) => match shared.check(policy, rate, key).await {
                Ok(decision) => decision,
                Err(error) => {
                    shared.report(&error);
                    if shared.failure.refuses(policy) {
                        return Err(Refused::StoreUnavailable);
                    }
                    buckets.check(key)
                }
            },
        };
        match decision {
            Decision::Allowed { remaining } => Ok(Allowed {
                policy,
                rate,
                remaining,
                reset: rate.interval() * rate.burst.get().saturating_sub(remaining),
            }),
            Decision::Limited { retry_after } => {
                tracing::info!(policy = policy.name(), "rate limited");
                metrics::counter!("aerie_rate_limited_total", "policy" => policy.name())
                    .increment(1);
                if let Some(counter) = self.counter(policy) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(trips) = &self.inner.trips {
                    trips.refused(policy, key, retry_after);
                }
                Err(Refused::Limited(Limited {
                    policy,
                    rate,
                    retry_after,
                }))
            }
        }
    }

    /// `None` without Redis; otherwise whether it answers in time, and whether its absence
    /// stops requests (fail closed). For `/readyz`.
    pub async fn shared_store_health(&self) -> Option<(bool, bool)> {
        let shared = self.inner.shared.as_ref()?;
        Some((shared.ping().await, shared.failure == StoreFailure::Closed))
    }

    /// How many requests `policy` has refused since start (for the metrics endpoint).
    pub fn refused(&self, policy: Policy) -> u64 {
        self.counter(policy)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    fn counter(&self, policy: Policy) -> Option<&AtomicU64> {
        let index = Policy::ALL.iter().position(|p| *p == policy)?;
        self.inner.refused.get(index)
    }

    /// Checks `policy` for a client address, unless it is allowlisted.
    pub async fn check_ip(&self, policy: Policy, ip: IpAddr) -> Result<Option<Allowed>, Refused> {
        if is_trusted(ip, &self.inner.allowlist) {
            return Ok(None);
        }
        self.check(policy, &ip_key(ip)).await.map(Some)
    }

    /// Checks `policy` for a login target, by its normalized email.
    pub async fn check_account(&self, policy: Policy, email: &str) -> Result<Allowed, Refused> {
        self.check(policy, &account_key(email)).await
    }

    /// Checks the per-user write budget, unless the caller is allowlisted.
    pub async fn check_user(
        &self,
        policy: Policy,
        user_id: i64,
        ip: Option<IpAddr>,
    ) -> Result<(), Refused> {
        if ip.is_some_and(|ip| is_trusted(ip, &self.inner.allowlist)) {
            return Ok(());
        }
        self.check(policy, &format!("user:{user_id}"))
            .await
            .map(|_| ())
    }
}

/// IPv4 addresses whole; IPv6 by /64, so rotating through one's own prefix gains nothing.
fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let prefix = IpNet::new(IpAddr::V6(v6), 64).map_or(IpAddr::V6(v6), |n| n.network());
            format!("ip:{prefix}/64")
        }
    }
}

/// `Bob+x@Example.com ` and `bob@example.com` are one target: trimmed, lowercased, and any
/// `+tag` dropped, so sub-addressing cannot open fresh buckets on one mailbox.
pub fn account_key(email: &str) -> String {
    let email = email.trim().to_lowercase();
    let key = match email.split_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => email,
    };
    format!("account:{key}")
}

/// The outermost rate-limit layer: counts every request against `global` by client IP, and
/// makes the limiter available to route policies.
pub async fn global(
    State(limiter): State<RateLimiter>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map(|ClientIp(ip)| *ip);
    request.extensions_mut().insert(limiter.clone());
    let Some(ip) = ip else {
        return next.run(request).await;
    };
    match limiter.check_ip(Policy::Global, ip).await {
        Ok(_) => next.run(request).await,
        Err(refused) => Error::from(refused).into_response(),
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
            let limiter = request.extensions().get::<RateLimiter>().cloned();
            let ip = request
                .extensions()
                .get::<ClientIp>()
                .map(|ClientIp(ip)| *ip);
            let (Some(limiter), Some(ip)) = (limiter, ip) else {
                return inner.call(request).await;
            };
            match limiter.check_ip(policy, ip).await {
                Ok(Some(allowed)) => {
                    let mut response = inner.call(request).await?;
                    add_headers(response.headers_mut(), &allowed);
                    Ok(response)
                }
                Ok(None) => inner.call(request).await,
                Err(refused) => Ok(Error::from(refused).into_response()),
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

/// Whole seconds, rounded up: a client that waits `Retry-After` seconds must find budget.
pub fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter(rate: &str, clock: Arc<ManualClock>) -> RateLimiter {
        let rate = Rate::parse(rate).expect("rate");
        let limits = RateLimits {
            rates: Policy::ALL.iter().map(|p| (*p, rate)).collect(),
            allowlist: vec!["10.0.0.0/8".parse().expect("net")],
            redis: None,
        };
        RateLimiter::new(&limits, clock)
    }

    #[test]
    fn rates_parse_and_reject_nonsense() {
        let rate = Rate::parse("5/60").expect("valid");
        assert_eq!(rate.burst.get(), 5);
        assert_eq!(rate.interval(), Duration::from_secs(12));
        assert_eq!(Rate::parse("5/60s"), Some(rate));
        for bad in ["", "5", "0/60", "5/0", "-1/60", "x/60", "5/100000"] {
            assert!(Rate::parse(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn burst_then_refusal_then_refill_with_the_manual_clock() {
        let clock = Arc::new(ManualClock::starting_now());
        let limiter = limiter("3/30", clock.clone());
        for _ in 0..3 {
            assert!(limiter.check(Policy::LoginIp, "k").await.is_ok());
        }
        let Err(Refused::Limited(limited)) = limiter.check(Policy::LoginIp, "k").await else {
            panic!("fourth is refused");
        };
        assert_eq!(ceil_secs(limited.retry_after), 10);
        assert!(
            limiter.check(Policy::LoginIp, "other").await.is_ok(),
            "keys are separate"
        );
        assert!(
            limiter.check(Policy::Register, "k").await.is_ok(),
            "policies are separate"
        );
        clock.advance(Duration::from_secs(9));
        assert!(
            limiter.check(Policy::LoginIp, "k").await.is_err(),
            "not before Retry-After"
        );
        clock.advance(Duration::from_secs(1));
        assert!(
            limiter.check(Policy::LoginIp, "k").await.is_ok(),
            "after Retry-After"
        );
        assert_eq!(limiter.refused(Policy::LoginIp), 2, "refusals are counted");
        assert_eq!(limiter.refused(Policy::Register), 0);
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert_eq!(ip_key(mapped), "ip:127.0.0.1");
    }

    #[test]
    fn account_variants_share_one_bucket() {
        let key = account_key("bob@example.com");
        for variant in [
            "Bob@Example.com",
            " bob@example.com ",
            "bob+1@example.com",
            "BOB+x@EXAMPLE.COM",
        ] {
            assert_eq!(account_key(variant), key, "{variant}");
        }
        assert_ne!(account_key("bobby@example.com"), key);
    }

    #[tokio::test]
    async fn allowlisted_callers_skip_limits() {
        let clock = Arc::new(ManualClock::starting_now());
        let limiter = limiter("1/60", clock);
        let internal: IpAddr = "10.1.2.3".parse().expect("ip");
        for _ in 0..5 {
            assert!(matches!(
                limiter.check_ip(Policy::Global, internal).await,
                Ok(None)
            ));
        }
        let outside: IpAddr = "198.51.100.1".parse().expect("ip");
        assert!(limiter.check_ip(Policy::Global, outside).await.is_ok());
        assert!(limiter.check_ip(Policy::Global, outside).await.is_err());
    }
}
