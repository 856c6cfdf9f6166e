//! The one source of time. Everything that expires (tokens, sessions, windows) asks a
//! [`Clock`], so tests move a [`ManualClock`] forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC. Stored as a BIGINT in both database engines.
pub type UnixMillis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixMillis;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to: for tests of expiry and time windows.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// Starts at the current wall-clock time, so issued tokens look ordinary.
    pub fn starting_now() -> Self {
        Self {
            now: AtomicI64::new(SystemClock.now()),
        }
    }

    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        self.now.load(Ordering::SeqCst)
    }
}

/// RFC 3339, UTC, with milliseconds (`2026-11-28T10:00:00.000Z`): the format RealWorld clients
/// and test collections expect.
pub fn rfc3339(millis: UnixMillis) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_zulu() {
        assert_eq!(rfc3339(1_795_860_000_123), "2026-11-28T10:00:00.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_now();
        let start = clock.now();
        clock.advance(Duration::from_secs(61));
        assert_eq!(clock.now() - start, 61_000);
    }
}
