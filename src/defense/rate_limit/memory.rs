//! The in-memory store: one GCRA limiter (the `governor` crate) per policy, keyed by the
//! bucket's key, reading time from our [`Clock`] so tests move time instead of sleeping.
//!
//! Guards against memory exhaustion by key churn: buckets that have fully refilled carry no
//! information, and are dropped every [`PRUNE_EVERY`] checks.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClockTrait;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use super::policy::{Decision, Rate};
use crate::clock::Clock;

const PRUNE_EVERY: u64 = 4096;

/// Our clock as governor sees it: nanoseconds since the Unix epoch.
#[derive(Clone)]
pub struct GovernorClock(pub Arc<dyn Clock>);

impl GovernorClockTrait for GovernorClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let millis = u64::try_from(self.0.now()).unwrap_or(0);
        Nanos::from(millis.saturating_mul(1_000_000))
    }
}

type Keyed =
    RateLimiter<String, DashMapStateStore<String>, GovernorClock, StateInformationMiddleware>;

/// One policy's buckets.
pub struct MemoryBuckets {
    limiter: Keyed,
    clock: GovernorClock,
    checks: AtomicU64,
}

impl MemoryBuckets {
    pub fn new(rate: Rate, clock: Arc<dyn Clock>) -> Self {
        let clock = GovernorClock(clock);
        let limiter = RateLimiter::dashmap_with_clock(quota(rate), clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        Self {
            limiter,
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one cell from `key`'s bucket, or says how long until one is free.
    pub fn check(&self, key: &str) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = key.to_owned();
        match self.limiter.check_key(&key) {
            Ok(snapshot) => Decision::Allowed {
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }
}

/// `burst` requests at once, refilled evenly over `window`.
fn quota(rate: Rate) -> Quota {
    let interval = rate.interval().max(Duration::from_nanos(1));
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(rate.burst)
}
