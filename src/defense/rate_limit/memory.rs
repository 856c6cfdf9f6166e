//! The in-memory store: one GCRA limiter (the `governor` crate) per policy, keyed by the
//! bucket key's [`Fingerprint`], reading time from our [`Clock`] so tests move time instead of
//! sleeping.
//!
//! Guards against memory exhaustion by key churn and long keys: every bucket costs a 32-byte
//! fingerprint and one timestamp, and a policy keeps at most `capacity` buckets. When full,
//! the buckets with the most budget left (the earliest theoretical arrival time, fully
//! refilled ones first) make room: they hold the least information, so a spray of one-try
//! keys evicts its own kind and never the bucket of an account under attack, whose budget is
//! spent.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock as GovernorClockTrait;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::policy::{Decision, Rate};
use crate::bounded_map::BoundedMap;
use crate::clock::Clock;
use crate::fingerprint::Fingerprint;

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

/// Each bucket's theoretical arrival time, in a map of bounded size (see the module doc).
pub struct BoundedStore {
    buckets: Arc<Mutex<BoundedMap<Fingerprint, Nanos>>>,
}

impl StateStore for BoundedStore {
    type Key = Fingerprint;

    fn measure_and_replace<T, F, E>(&self, key: &Fingerprint, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            // A panic elsewhere left the map as it was between two whole updates.
            Err(poisoned) => poisoned.into_inner(),
        };
        let (answer, tat) = f(buckets.get(key).copied())?;
        let evicted = buckets.insert(*key, tat, |tat| *tat);
        if evicted > 0 {
            metrics::counter!("aerie_rate_limit_evicted_total")
                .increment(u64::try_from(evicted).unwrap_or(u64::MAX));
        }
        Ok(answer)
    }
}

type Keyed = RateLimiter<Fingerprint, BoundedStore, GovernorClock, StateInformationMiddleware>;

/// One policy's buckets.
pub struct MemoryBuckets {
    limiter: Keyed,
    /// The limiter's map, shared, so its size can be read (metrics, tests).
    buckets: Arc<Mutex<BoundedMap<Fingerprint, Nanos>>>,
    clock: GovernorClock,
    rate: Rate,
    /// The limiter's own start: the arrival times it stores count from here.
    start: Nanos,
    /// The count [`Self::report_len`] last reported (`usize::MAX` before the first report).
    reported: AtomicUsize,
    /// Held while reporting, so reports land one at a time.
    reporting: Mutex<()>,
}

impl MemoryBuckets {
    /// At most `capacity` buckets.
    pub fn new(rate: Rate, capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let clock = GovernorClock(clock);
        let buckets = Arc::new(Mutex::new(BoundedMap::new(capacity)));
        let store = BoundedStore {
            buckets: buckets.clone(),
        };
        // Read just before the limiter reads it: both come from the same millisecond clock.
        let start = clock.now();
        let limiter: Keyed = RateLimiter::new(quota(rate), store, clock.clone());
        Self {
            limiter,
            buckets,
            clock,
            rate,
            start,
            reported: AtomicUsize::new(usize::MAX),
            reporting: Mutex::new(()),
        }
    }

    /// Takes one cell from `key`'s bucket, or says how long until one is free.
    pub fn check(&self, key: &Fingerprint) -> Decision {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Decision::Allowed {
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// What [`Self::check`] would answer, without taking a cell: the remaining budget counts
    /// the cell a check would take (a full bucket reports its whole burst). Reads the stored
    /// arrival time with governor's arithmetic (the same the Redis script mirrors).
    pub fn peek(&self, key: &Fingerprint) -> Decision {
        let stored = self
            .buckets
            .lock()
            .map_or(None, |buckets| buckets.get(key).copied());
        let now = self.clock.now().saturating_sub(self.start).as_u64();
        let tat = stored.map_or(now, Nanos::as_u64).max(now);
        peek_decision(self.rate, now, tat)
    }

    /// How many buckets are held now (never more than the capacity).
    pub fn len(&self) -> usize {
        self.buckets.lock().map_or(0, |buckets| buckets.len())
    }

    /// Hands `report` the number of buckets held when it differs from the number last
    /// reported: the gauge is set on a change, not on every check, because setting it (a
    /// registry lookup) costs more than the check itself. Reports are made one at a time, each
    /// with the count read inside its turn, so the last report made is the latest count.
    pub fn report_len(&self, report: impl FnOnce(usize)) {
        if self.reported.load(Ordering::Relaxed) == self.len() {
            return;
        }
        let _turn = self
            .reporting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let len = self.len();
        if self.reported.swap(len, Ordering::Relaxed) != len {
            report(len);
        }
    }
}

/// GCRA without the update, in nanoseconds: limited while `now` is before the arrival time
/// less the burst tolerance; otherwise the cells a full check sequence could still take.
fn peek_decision(rate: Rate, now: u64, tat: u64) -> Decision {
    let interval = u64::try_from(rate.interval().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    let tau = interval.saturating_mul(u64::from(rate.burst.get() - 1));
    let allow_at = tat.saturating_sub(tau);
    if now < allow_at {
        return Decision::Limited {
            retry_after: Duration::from_nanos(allow_at - now),
        };
    }
    let cells = (now + tau - tat) / interval + 1;
    Decision::Allowed {
        remaining: u32::try_from(cells)
            .unwrap_or(u32::MAX)
            .min(rate.burst.get()),
    }
}

/// `burst` requests at once, refilled evenly over `window`.
fn quota(rate: Rate) -> Quota {
    let interval = rate.interval().max(Duration::from_nanos(1));
    Quota::with_period(interval)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(rate.burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_peek_agrees_with_the_check_and_takes_nothing() {
        let clock = Arc::new(ManualClock::starting_now());
        let rate = Rate::parse("3/30").expect("rate");
        let buckets = MemoryBuckets::new(rate, 10, clock.clone());
        let key = Fingerprint::of("k");
        assert!(matches!(
            buckets.peek(&key),
            Decision::Allowed { remaining: 3 }
        ));
        assert!(matches!(
            buckets.peek(&key),
            Decision::Allowed { remaining: 3 }
        ));
        for left in [2, 1, 0] {
            assert!(
                matches!(buckets.check(&key), Decision::Allowed { remaining } if remaining == left)
            );
        }
        let Decision::Limited { retry_after } = buckets.peek(&key) else {
            panic!("spent");
        };
        assert_eq!(retry_after, Duration::from_secs(10));
        clock.advance(Duration::from_secs(10));
        assert!(matches!(
            buckets.peek(&key),
            Decision::Allowed { remaining: 1 }
        ));
        clock.advance(Duration::from_secs(20));
        assert!(matches!(
            buckets.peek(&key),
            Decision::Allowed { remaining: 3 }
        ));
    }

    #[test]
    fn the_count_is_reported_when_it_changes_and_only_then() {
        let clock = Arc::new(ManualClock::starting_now());
        let rate = Rate::parse("3/30").expect("rate");
        let buckets = MemoryBuckets::new(rate, 16, clock);
        let reports = std::cell::RefCell::new(Vec::new());
        let report = || buckets.report_len(|len| reports.borrow_mut().push(len));
        // The first check reports even an empty map, so the gauge exists from the start.
        report();
        report();
        let _ = buckets.check(&Fingerprint::of("a"));
        report();
        let _ = buckets.check(&Fingerprint::of("a"));
        report();
        for n in 0..16 {
            let _ = buckets.check(&Fingerprint::of(&n.to_string()));
        }
        // Full at 16, the seventeenth key made room by evicting two: the count fell to 15,
        // and that is reported.
        report();
        let counts = reports.borrow().clone();
        assert_eq!(counts[..2], [0, 1]);
        assert_eq!(counts.len(), 3, "{counts:?}");
        assert_eq!(counts[2], 15, "{counts:?}");
        assert_eq!(buckets.len(), 15);
    }
}
