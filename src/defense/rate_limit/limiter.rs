//! The limiter: every policy's buckets, in memory or shared in Redis, the allowlist, and the
//! count and sampled audit of refusals. Keys are built here, so a client cannot pick its own,
//! and every store holds a key's [`Fingerprint`], never the key: whatever a client sends, a
//! bucket costs the same few bytes.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::memory::MemoryBuckets;
use super::policy::{Decision, Policy, Rate};
use super::redis::{Probe, RedisBuckets};
use super::settings::{RateLimits, StoreFailure};
use super::trips;
use crate::clock::Clock;
use crate::defense::client_ip::is_trusted;
use crate::fingerprint::Fingerprint;

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
    /// Sampled refusals go to the audit trail, once the server hands over its log.
    trips: Option<trips::Trips>,
    /// The most keys any one policy's buckets, or the trips, keep in memory.
    max_tracked_keys: usize,
}

/// Whether a decision takes a cell or only looks.
#[derive(Clone, Copy)]
enum Mode {
    Take,
    Peek,
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
                let buckets = MemoryBuckets::new(rate, limits.max_tracked_keys, clock.clone());
                (*policy, rate, buckets)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                buckets,
                shared,
                allowlist: limits.allowlist.clone(),
                trips: None,
                max_tracked_keys: limits.max_tracked_keys,
            }),
        }
    }

    /// Records sampled refusals on `audit` (see [`trips`]). Called once, while building the
    /// server, before the limiter is shared.
    pub fn with_audit(mut self, audit: crate::audit::AuditLog, clock: Arc<dyn Clock>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                inner.trips = Some(trips::Trips::new(audit, clock, inner.max_tracked_keys));
            }
            None => tracing::error!("rate limiter already shared: refusals will not be audited"),
        }
        self
    }

    /// Takes one request's worth of `policy`'s budget for `key`.
    pub async fn check(&self, policy: Policy, key: &str) -> Result<Allowed, Refused> {
        self.decide(policy, key, Mode::Take).await
    }

    /// Whether `policy` would let `key` through now, without taking anything: login asks
    /// before the password and charges only failures ([`Self::charge`]). A refusal is counted
    /// and audited like a check's.
    pub async fn peek(&self, policy: Policy, key: &str) -> Result<Allowed, Refused> {
        self.decide(policy, key, Mode::Peek).await
    }

    /// Takes one cell for a failure already seen. The cell that empties the bucket starts a
    /// lockout, so it is audited then (sampled as refusals are), not only at the next try.
    pub async fn charge(&self, policy: Policy, key: &str) -> Result<Allowed, Refused> {
        let charged = self.check(policy, key).await;
        if let (Ok(allowed), Some(trips)) = (&charged, &self.inner.trips)
            && allowed.remaining == 0
        {
            trips.refused(policy, key, &Fingerprint::of(key), allowed.rate.interval());
        }
        charged
    }

    async fn decide(&self, policy: Policy, key: &str, mode: Mode) -> Result<Allowed, Refused> {
        let Some(shared) = &self.inner.shared else {
            return self.decide_in_memory(policy, &Fingerprint::of(key), || key.into(), mode);
        };
        let (rate, buckets) = self.buckets_of(policy)?;
        let fingerprint = Fingerprint::of(key);
        // Boxed: a Redis round trip is a large future, and inline it would make every
        // check's future (and the global layer's, on every request) as large.
        let answer = match mode {
            Mode::Take => Box::pin(shared.check(policy, rate, &fingerprint)).await,
            Mode::Peek => Box::pin(shared.peek(policy, rate, &fingerprint)).await,
        };
        let decision = match answer {
            Ok(decision) => decision,
            Err(error) => {
                shared.report(&error);
                if shared.failure.refuses(policy) {
                    return Err(Refused::StoreUnavailable);
                }
                self.check_memory(policy, buckets, &fingerprint, mode)
            }
        };
        self.conclude(policy, rate, &fingerprint, || key.into(), decision)
    }

    /// [`Self::decide`] on this instance's buckets, which answer without waiting. `key` is
    /// asked for only when a refusal is audited.
    fn decide_in_memory<'k>(
        &self,
        policy: Policy,
        fingerprint: &Fingerprint,
        key: impl FnOnce() -> Cow<'k, str>,
        mode: Mode,
    ) -> Result<Allowed, Refused> {
        let (rate, buckets) = self.buckets_of(policy)?;
        let decision = self.check_memory(policy, buckets, fingerprint, mode);
        self.conclude(policy, rate, fingerprint, key, decision)
    }

    /// `policy`'s rate and memory buckets.
    fn buckets_of(&self, policy: Policy) -> Result<(Rate, &MemoryBuckets), Refused> {
        match self.inner.buckets.iter().find(|(p, _, _)| *p == policy) {
            Some((_, rate, buckets)) => Ok((*rate, buckets)),
            // Every policy gets buckets in `new`; a missing one would be a build bug.
            None => Err(Refused::Limited(Limited {
                policy,
                rate: policy.default_rate(),
                retry_after: Duration::from_secs(1),
            })),
        }
    }

    /// The answer to a decision: what an allowed request reports, or a refusal counted and
    /// (sampled) audited.
    fn conclude<'k>(
        &self,
        policy: Policy,
        rate: Rate,
        fingerprint: &Fingerprint,
        key: impl FnOnce() -> Cow<'k, str>,
        decision: Decision,
    ) -> Result<Allowed, Refused> {
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
                if let Some(trips) = &self.inner.trips {
                    trips.refused(policy, &key(), fingerprint, retry_after);
                }
                Err(Refused::Limited(Limited {
                    policy,
                    rate,
                    retry_after,
                }))
            }
        }
    }

    /// A check on this instance's buckets, which also reports how many it holds.
    fn check_memory(
        &self,
        policy: Policy,
        buckets: &MemoryBuckets,
        key: &Fingerprint,
        mode: Mode,
    ) -> Decision {
        let decision = match mode {
            Mode::Take => buckets.check(key),
            Mode::Peek => buckets.peek(key),
        };
        buckets.report_len(|tracked| {
            #[allow(clippy::cast_precision_loss)] // a count far below 2^52
            metrics::gauge!("aerie_rate_limit_tracked_keys", "policy" => policy.name())
                .set(tracked as f64);
        });
        decision
    }

    /// `None` without Redis; otherwise one PING's verdict, bounded by `limit` (at start).
    pub async fn probe_shared_store(&self, limit: Duration) -> Option<Probe> {
        Some(self.inner.shared.as_ref()?.probe(limit).await)
    }

    /// `None` without Redis; otherwise whether it answers in time, and whether its absence
    /// stops requests (fail closed). For `/readyz`.
    pub async fn shared_store_health(&self) -> Option<(bool, bool)> {
        let shared = self.inner.shared.as_ref()?;
        Some((shared.ping().await, shared.failure == StoreFailure::Closed))
    }

    /// Checks `policy` for a client address, unless it is allowlisted.
    pub async fn check_ip(&self, policy: Policy, ip: IpAddr) -> Result<Option<Allowed>, Refused> {
        match self.check_ip_now(policy, ip) {
            Some(answer) => answer,
            None => self.check(policy, &ip_key(ip)).await.map(Some),
        }
    }

    /// [`Self::check_ip`] answered at once, for an allowlisted address or when the buckets
    /// are this instance's own; `None` when the shared store must be asked (then call
    /// [`Self::check_ip`]). The global layer checks every request this way, without a future.
    /// The bucket is the address's own fingerprint ([`Fingerprint::of_address`]): no text, no
    /// digest.
    pub fn check_ip_now(
        &self,
        policy: Policy,
        ip: IpAddr,
    ) -> Option<Result<Option<Allowed>, Refused>> {
        if is_trusted(ip, &self.inner.allowlist) {
            return Some(Ok(None));
        }
        if self.inner.shared.is_some() {
            return None;
        }
        let counted = counted_address(ip);
        let fingerprint = Fingerprint::of_address(counted);
        let key = || address_key(counted).into();
        Some(
            self.decide_in_memory(policy, &fingerprint, key, Mode::Take)
                .map(Some),
        )
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
pub fn ip_key(ip: IpAddr) -> String {
    address_key(counted_address(ip))
}

/// The address a client is counted as: an IPv4 address (also when mapped into IPv6), or the
/// network of an IPv6 address's /64.
fn counted_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), 64).map_or(IpAddr::V6(v6), |n| n.network()),
    }
}

/// The bucket key of a counted address.
fn address_key(counted: IpAddr) -> String {
    match counted {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(prefix) => format!("ip:{prefix}/64"),
    }
}

/// The IPv6 /48 around `ip` (a site's usual allocation), for limits on many /64s at once;
/// `None` for IPv4, whose addresses are limited one by one.
pub fn prefix_key(ip: IpAddr) -> Option<String> {
    match ip.to_canonical() {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => {
            let prefix = IpNet::new(IpAddr::V6(v6), 48).map_or(IpAddr::V6(v6), |n| n.network());
            Some(format!("prefix:{prefix}/48"))
        }
    }
}

impl RateLimiter {
    /// Whether `ip` skips every policy (`AERIE_RATE_LIMIT_ALLOWLIST`).
    pub fn allowlisted(&self, ip: IpAddr) -> bool {
        is_trusted(ip, &self.inner.allowlist)
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
            max_tracked_keys: 100,
        };
        RateLimiter::new(&limits, clock)
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
