//! The named rate-limit policies, their rates (`N/SECS`), and what a store answers to one
//! check: the vocabulary every part of the limiter shares.

use std::num::NonZeroU32;
use std::time::Duration;

/// The named policies. A route takes one with [`route`]; the handler-level ones are checked
/// with [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Every request, per client IP.
    Global,
    /// `POST /api/users/login`, per client IP.
    LoginIp,
    /// Failed logins per target account (normalized email), from any IP: slows a distributed
    /// guesser, never the owner (see `defense::login_guard`).
    LoginAccount,
    /// Failed logins per (account, client address): the first, quick tier of a pair's delay.
    LoginPair,
    /// Failed logins per (account, client address): the second, slow tier, so the delay grows.
    LoginPairSlow,
    /// Failed logins per client address (IPv6 by /64), whatever the account: stops credential
    /// stuffing from one address.
    LoginFailIp,
    /// Failed logins per IPv6 /48: many /64s of one site failing block the whole prefix.
    LoginFailPrefix,
    /// `POST /api/users`, per client IP.
    Register,
    /// Token refresh, per client IP (for the sessions issue's `POST /api/auth/refresh`).
    Refresh,
    /// The MFA step, per client IP.
    Mfa,
    /// Authenticated writes (non-GET), per user.
    Writes,
    /// The mail routes (password reset, verification, email confirmation), per client IP.
    Mail,
}

impl Policy {
    pub(super) const ALL: [Policy; 12] = [
        Policy::Global,
        Policy::LoginIp,
        Policy::LoginAccount,
        Policy::LoginPair,
        Policy::LoginPairSlow,
        Policy::LoginFailIp,
        Policy::LoginFailPrefix,
        Policy::Register,
        Policy::Refresh,
        Policy::Mfa,
        Policy::Writes,
        Policy::Mail,
    ];

    /// The name in `RateLimit-Policy` headers and logs.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Global => "global",
            Policy::LoginIp => "login-ip",
            Policy::LoginAccount => "login-account",
            Policy::LoginPair => "login-pair",
            Policy::LoginPairSlow => "login-pair-slow",
            Policy::LoginFailIp => "login-fail-ip",
            Policy::LoginFailPrefix => "login-fail-prefix",
            Policy::Register => "register",
            Policy::Refresh => "refresh",
            Policy::Mfa => "mfa",
            Policy::Writes => "writes",
            Policy::Mail => "mail",
        }
    }

    /// Policies that slow down guessing of passwords, tokens and codes.
    pub fn guards_credentials(self) -> bool {
        matches!(
            self,
            Policy::LoginIp
                | Policy::LoginAccount
                | Policy::LoginPair
                | Policy::LoginPairSlow
                | Policy::LoginFailIp
                | Policy::LoginFailPrefix
                | Policy::Register
                | Policy::Refresh
                | Policy::Mfa
                | Policy::Mail
        )
    }

    /// The setting that configures this policy.
    pub fn setting(self) -> &'static str {
        match self {
            Policy::Global => "AERIE_RATE_LIMIT_GLOBAL",
            Policy::LoginIp => "AERIE_RATE_LIMIT_LOGIN_IP",
            Policy::LoginAccount => "AERIE_RATE_LIMIT_LOGIN_ACCOUNT",
            Policy::LoginPair => "AERIE_RATE_LIMIT_LOGIN_PAIR",
            Policy::LoginPairSlow => "AERIE_RATE_LIMIT_LOGIN_PAIR_SLOW",
            Policy::LoginFailIp => "AERIE_RATE_LIMIT_LOGIN_FAIL_IP",
            Policy::LoginFailPrefix => "AERIE_RATE_LIMIT_LOGIN_FAIL_PREFIX",
            Policy::Register => "AERIE_RATE_LIMIT_REGISTER",
            Policy::Refresh => "AERIE_RATE_LIMIT_REFRESH",
            Policy::Mfa => "AERIE_RATE_LIMIT_MFA",
            Policy::Writes => "AERIE_RATE_LIMIT_WRITES",
            Policy::Mail => "AERIE_RATE_LIMIT_MAIL",
        }
    }

    /// Defaults: generous for people, tight for guessing. The login failure tiers make the
    /// delay grow: a pair's first 5 failures are free, then one guess per 3 minutes, and past
    /// 10 one per 2.4 hours; an address failing 20 times an hour across accounts is a stuffer.
    pub fn default_rate(self) -> Rate {
        let (burst, secs) = match self {
            Policy::Global => (300, 60),
            Policy::LoginIp => (10, 300),
            Policy::LoginAccount => (20, 900),
            Policy::LoginPair => (5, 900),
            Policy::LoginPairSlow => (10, 86_400),
            Policy::LoginFailIp => (20, 3600),
            Policy::LoginFailPrefix => (100, 3600),
            Policy::Register => (10, 3600),
            Policy::Refresh => (30, 60),
            Policy::Mfa => (10, 300),
            Policy::Writes => (60, 60),
            Policy::Mail => (10, 600),
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

/// A store's answer to one check.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    Allowed { remaining: u32 },
    Limited { retry_after: Duration },
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
