//! What the operator configures: every policy's rate, the allowlist, and the shared store
//! with what to do when it fails.

use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use super::policy::{Policy, Rate};

/// Every policy's rate, the allowlist and the store, as configured.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub rates: Vec<(Policy, Rate)>,
    /// Callers in these networks skip every policy (internal health checks, batch jobs).
    pub allowlist: Vec<IpNet>,
    /// Shared buckets in Redis; `None` keeps them in this process.
    pub redis: Option<RedisSettings>,
    /// The most buckets one policy keeps in memory (and refusals the trail remembers); when
    /// full, the least significant are evicted (see `memory`).
    pub max_tracked_keys: usize,
}

/// `AERIE_RATE_LIMIT_MAX_KEYS` by default: about 10 MB per policy at the cap.
pub const DEFAULT_MAX_TRACKED_KEYS: usize = 100_000;

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            rates: Policy::ALL.iter().map(|p| (*p, p.default_rate())).collect(),
            allowlist: Vec::new(),
            redis: None,
            max_tracked_keys: DEFAULT_MAX_TRACKED_KEYS,
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

/// What to do when Redis does not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// Fall back to this instance's memory buckets: limits still hold, per instance.
    Open,
    /// Refuse the request with 503: no request passes unmetered.
    Closed,
    /// Closed for the policies that guard credentials (login, signup, refresh, MFA), where a
    /// per-instance budget multiplies an attacker's guesses; open for the rest.
    AuthClosed,
}

impl StoreFailure {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            "auth-closed" => Some(Self::AuthClosed),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::AuthClosed => "auth-closed",
        }
    }

    /// Whether a failed check of `policy` refuses the request (503).
    pub fn refuses(self, policy: Policy) -> bool {
        match self {
            Self::Open => false,
            Self::Closed => true,
            Self::AuthClosed => policy.guards_credentials(),
        }
    }
}

/// `AERIE_REDIS_*`, validated by the configuration.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// May carry a password: kept secret so `Debug` and logs cannot show it.
    pub url: SecretString,
    /// From `AERIE_REDIS_PASSWORD_FILE`: replaces the URL's (which then has none).
    pub password: Option<SecretString>,
    /// `AERIE_REDIS_CA_FILE`: PEM certificates that alone are trusted for a `rediss://`
    /// server; `None` trusts the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub prefix: String,
    pub timeout: Duration,
    pub failure: StoreFailure,
}
