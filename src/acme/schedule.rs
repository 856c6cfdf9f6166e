//! When to renew, and how long to wait after a failure: pure arithmetic, tested here.

use std::time::Duration;

/// The first retry after a failure; each further failure doubles the wait.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between attempts (a CA's rate-limit window is an hour or more).
pub const LONGEST_RETRY: Duration = Duration::from_secs(3600);

/// Two thirds into the certificate's lifetime (Unix seconds).
pub fn renewal_due(not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    not_before + lifetime * 2 / 3
}

/// The wait after the `failures`-th failure in a row (1 for the first): doubling from
/// [`FIRST_RETRY`] up to [`LONGEST_RETRY`], then spread by `jitter` (0.0..1.0, mapped to
/// ±20 %) so several instances or a fleet restarted together do not retry in step.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    let base = FIRST_RETRY.saturating_mul(1 << exponent).min(LONGEST_RETRY);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_two_thirds_into_the_lifetime() {
        assert_eq!(renewal_due(0, 90), 60);
        assert_eq!(renewal_due(1000, 1000 + 90 * 86_400), 1000 + 60 * 86_400);
        assert_eq!(
            renewal_due(10, 5),
            10,
            "a backwards validity is due at once"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour_with_bounded_jitter() {
        assert_eq!(backoff(1, 0.5), FIRST_RETRY);
        assert_eq!(backoff(2, 0.5), FIRST_RETRY * 2);
        assert_eq!(backoff(100, 0.5), LONGEST_RETRY);
        assert!(backoff(1, 0.0) >= FIRST_RETRY.mul_f64(0.79));
        assert!(backoff(1, 1.0) <= FIRST_RETRY.mul_f64(1.21));
    }
}
