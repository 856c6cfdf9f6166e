//! The counting behind the threshold rules: events per key within a sliding window, and
//! server errors within a window.
//!
//! Guards against the counters themselves being attacked. Keys are fingerprints, so a long
//! identifier costs 32 bytes; the map is a [`BoundedMap`], so a spray of fresh keys cannot
//! grow memory, and when it is full the least significant counters (fewest events within the
//! window, then the oldest) are evicted, never the whole map: nine failures against one
//! account outlive any number of one-try addresses. Evicting live counters is itself a sign
//! of a spray, which [`KeyedWindows::count`] reports so the rules can raise it.

use std::collections::VecDeque;
use std::time::Duration;

use crate::bounded_map::BoundedMap;
use crate::clock::UnixMillis;
use crate::fingerprint::Fingerprint;

/// What one counted event did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The key reached the threshold within the window (its count then starts afresh).
    pub reached: bool,
    /// Live counters were evicted to make room, for the first time this window: how many.
    pub spray: Option<usize>,
}

/// Events per key within a sliding window, for at most `capacity` keys.
pub struct KeyedWindows {
    threshold: usize,
    window: i64,
    times: BoundedMap<Fingerprint, VecDeque<UnixMillis>>,
    /// Until when a spray is not reported again (one report per window).
    spray_quiet_until: UnixMillis,
}

impl KeyedWindows {
    pub fn new(threshold: u32, window: Duration, capacity: usize) -> Self {
        Self {
            threshold: usize::try_from(threshold).unwrap_or(usize::MAX).max(1),
            window: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            times: BoundedMap::new(capacity),
            spray_quiet_until: UnixMillis::MIN,
        }
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// How many keys are counted now (at most the capacity).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Counts one event for `key` at `at`. A key that reaches the threshold starts afresh, so
    /// a sustained attack alerts once per N events rather than on every one.
    pub fn count(&mut self, key: Fingerprint, at: UnixMillis) -> Counted {
        let since = at.saturating_sub(self.window);
        if self.times.len() >= self.times.capacity() && self.times.get(&key).is_none() {
            // Expired counters go first: forgetting them loses nothing.
            self.times
                .retain(|_, times| times.back().is_some_and(|t| *t > since));
        }
        let (times, evicted) = self.times.entry(key, VecDeque::new, |times| {
            let live = times.iter().filter(|t| **t > since).count();
            (live, times.back().copied().unwrap_or(UnixMillis::MIN))
        });
        times.retain(|t| *t > since);
        times.push_back(at);
        let reached = times.len() >= self.threshold;
        if reached {
            times.clear();
        }
        let spray = (evicted > 0 && at >= self.spray_quiet_until).then(|| {
            self.spray_quiet_until = at.saturating_add(self.window);
            evicted
        });
        if evicted > 0 {
            metrics::counter!("aerie_alert_counters_evicted_total")
                .increment(u64::try_from(evicted).unwrap_or(u64::MAX));
        }
        Counted { reached, spray }
    }
}

/// The repeated-5xx rule's state: the times of the latest server errors (at most
/// `threshold` of them), and until when the rule stays quiet after it fired.
pub struct ServerErrorWindow {
    pub threshold: usize,
    pub window: i64,
    recent: VecDeque<UnixMillis>,
    quiet_until: UnixMillis,
}

impl ServerErrorWindow {
    pub fn new(threshold: u32, window: Duration) -> Self {
        Self {
            threshold: usize::try_from(threshold).unwrap_or(usize::MAX).max(1),
            window: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            recent: VecDeque::new(),
            quiet_until: UnixMillis::MIN,
        }
    }

    /// Counts one server error at `at`; true when it is the threshold-th within the window.
    /// The rule then stays quiet for one window, so an outage raises one alert per window
    /// instead of one per failed request.
    pub fn count(&mut self, at: UnixMillis) -> bool {
        if at < self.quiet_until {
            return false;
        }
        let since = at.saturating_sub(self.window);
        self.recent.retain(|t| *t > since);
        self.recent.push_back(at);
        if self.recent.len() < self.threshold {
            return false;
        }
        self.recent.clear();
        self.quiet_until = at.saturating_add(self.window);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Fingerprint {
        Fingerprint::of(&format!("ip:10.0.{}.{}", n / 256, n % 256))
    }

    #[test]
    fn a_spray_larger_than_the_map_neither_erases_a_victim_nor_grows_memory() {
        let mut windows = KeyedWindows::new(10, Duration::from_secs(300), 64);
        let t = 1_000_000;
        let victim = Fingerprint::of("account:7");
        for i in 0..9 {
            assert!(!windows.count(victim, t + i).reached);
        }
        let mut sprays = Vec::new();
        for n in 0..1_000 {
            let counted = windows.count(key(n), t + 100 + i64::from(n));
            assert!(windows.len() <= 64, "{} keys", windows.len());
            sprays.extend(counted.spray);
        }
        assert_eq!(sprays.len(), 1, "the spray is reported once per window");
        assert!(
            windows.count(victim, t + 2_000).reached,
            "tenth failure alerts"
        );
    }
}
