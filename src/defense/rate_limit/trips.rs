//! Refusals on the audit trail, sampled.
//!
//! Guards against a brute-force or flooding campaign going unseen by whoever reviews the trail
//! (the metrics count refusals, but say nothing of who was locked out). Recording every refused
//! request would let an attacker flood the audit table instead, so a bucket that starts
//! refusing yields one event, and then no other for the same policy and key within
//! [`SAMPLE_WINDOW`]. Login's per-account policy is a temporary lockout (`account_locked`), the
//! per-IP one a temporary block (`ip_blocked`); the others are `rate_limit_tripped`. No event
//! names the email a login-account bucket is keyed by: the detail keeps the policy only.
//!
//! The sampling memory is a [`BoundedMap`] keyed by the bucket key's fingerprint: when full,
//! the oldest samples go first, which costs at most a duplicate event for a key that tripped
//! long ago, never unbounded memory.
//!
//! The event is written in the background: the request being refused has nothing to commit,
//! and a slow audit append must not slow down shedding load.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::policy::Policy;
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::bounded_map::BoundedMap;
use crate::clock::{Clock, UnixMillis};
use crate::fingerprint::Fingerprint;

/// At most one event per policy and key within this time.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(60);

pub struct Trips {
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    last: Mutex<BoundedMap<(Policy, Fingerprint), UnixMillis>>,
}

impl Trips {
    /// Remembers at most `capacity` keys' last events.
    pub fn new(audit: AuditLog, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Self {
            audit,
            clock,
            last: Mutex::new(BoundedMap::new(capacity)),
        }
    }

    /// Called on every refusal of `policy` for `key` (whose fingerprint is `fingerprint`);
    /// records the sampled ones.
    pub fn refused(
        &self,
        policy: Policy,
        key: &str,
        fingerprint: &Fingerprint,
        retry_after: Duration,
    ) {
        let now = self.clock.now();
        if !self.first_in_window(policy, *fingerprint, now) {
            return;
        }
        let kind = match policy {
            Policy::LoginAccount | Policy::LoginPair | Policy::LoginPairSlow => {
                EventType::AccountLocked
            }
            Policy::LoginIp | Policy::LoginFailIp | Policy::LoginFailPrefix => EventType::IpBlocked,
            _ => EventType::RateLimitTripped,
        };
        let mut event = AuditEvent::new(kind).detail(json!({
            "policy": policy.name(),
            "retryAfterSecs": retry_after.as_secs().max(1),
        }));
        if let Some(ip) = key
            .strip_prefix("ip:")
            .or_else(|| key.strip_prefix("prefix:"))
        {
            event.client_ip = Some(ip.to_owned());
        }
        if let Some(user) = key.strip_prefix("user:").and_then(|id| id.parse().ok()) {
            event = event.actor(user);
        }
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if let Err(error) = audit.record(event).await {
                tracing::warn!(%error, "could not record a rate-limit refusal");
            }
        });
    }

    fn first_in_window(&self, policy: Policy, key: Fingerprint, now: UnixMillis) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let window = i64::try_from(SAMPLE_WINDOW.as_millis()).unwrap_or(i64::MAX);
        // A steady flood yields one event per window: the window restarts at each event.
        let slot = (policy, key);
        let fresh = last.get(&slot).is_none_or(|at| now - at >= window);
        if fresh {
            last.insert(slot, now, |at| *at);
        }
        fresh
    }
}
