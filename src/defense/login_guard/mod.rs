//! Login's brute-force defence that an attacker cannot turn against the owner.
//!
//! Guards against password guessing (attacks.md §3 A1–A3) without the victim lockout that a
//! per-account budget checked before the password allows: a few addresses guessing slowly
//! used to hold the owner's *correct* login at 429 for as long as they kept going. Here only
//! *failures* are counted, on four keys, each a GCRA bucket of the rate limiter (memory or
//! Redis, keys hashed to fixed-size fingerprints and bounded like every other bucket):
//!
//! - the pair (account, client address; IPv6 by /64), in two tiers (`login-pair`,
//!   `login-pair-slow`) so the delay grows: a few free failures, then one guess per few
//!   minutes, then one per hours;
//! - the address, whatever the account (`login-fail-ip`): credential stuffing, many accounts
//!   failing from one address, blocks that address;
//! - the IPv6 /48 (`login-fail-prefix`): a site rotating through its /64s is blocked whole
//!   once many of them fail (a single /64 is blocked at its own budget long before);
//! - the account, from anywhere (`login-account`): a distributed guesser is slowed.
//!
//! Before the password is checked, [`LoginGuard::admit`] only *looks* at the buckets. A
//! spent pair or address bucket refuses (429). A spent account bucket refuses only callers it
//! cannot tell from the guesser: a correct password from an address with no recent failure
//! on this account (its quick pair tier full), or from a device that logged in to this account
//! before ([`device`]), is still checked and still succeeds. The price: while the account is
//! locked, each fresh address gets one guess before its pair is no longer clean; the address
//! and /48 budgets bound how many fresh addresses one attacker has.
//!
//! The device is a signed token, `HttpOnly` cookie `__Host-aerie-device` (or the same value in
//! `X-Aerie-Device` for clients without a cookie jar), issued on every successful login and
//! bound to the account; a known device's failures count on its own pair, not the address's,
//! and it skips the address blocks (a stuffer sharing the owner's NAT does not lock them out).
//!
//! Every lockout and block is an audit event (`account_locked`, `ip_blocked`, detail naming
//! the policy), when a failure empties a bucket and, sampled, when a refused attempt meets it.

pub mod device;

use std::net::IpAddr;

pub use device::{DEVICE_COOKIE, DEVICE_HEADER, DeviceKey};

use super::rate_limit::{Policy, RateLimiter, Refused, account_key, ip_key, prefix_key};

/// The login attempt as the guard sees it, before the password is checked.
pub struct Attempt<'a> {
    /// As typed (the guard normalizes it: case, `+tag`).
    pub email: &'a str,
    /// Resolved from trusted proxies only.
    pub ip: Option<IpAddr>,
    /// The device token the client presented, if any (cookie or header).
    pub device: Option<&'a str>,
}

/// An attempt let through to the password check: the keys its failure is charged to.
pub struct Admitted {
    account: String,
    pair: String,
    address: Option<String>,
    prefix: Option<String>,
    /// The device id, when the client presented a valid token for this account.
    pub known_device: Option<String>,
}

/// Applies the rules above. Cheap to clone.
#[derive(Clone)]
pub struct LoginGuard {
    limiter: RateLimiter,
    devices: DeviceKey,
}

impl LoginGuard {
    pub fn new(limiter: RateLimiter, devices: DeviceKey) -> Self {
        Self { limiter, devices }
    }

    /// Looks at the buckets (takes nothing) and says whether the password may be checked.
    pub async fn admit(&self, attempt: &Attempt<'_>) -> Result<Admitted, Refused> {
        let account = account_key(attempt.email);
        let known_device = attempt
            .device
            .and_then(|token| self.devices.verify(token, &account));
        // Allowlisted callers skip the address rules, as they skip every address policy.
        let ip = attempt.ip.filter(|ip| !self.limiter.allowlisted(*ip));
        let address = ip.map(ip_key);
        let prefix = ip.and_then(prefix_key);
        let from = match (&known_device, &address) {
            (Some(device), _) => format!("device:{device}"),
            (None, Some(address)) => address.clone(),
            (None, None) => "unknown".to_owned(),
        };
        let pair = format!("pair:{account}\n{from}");
        if known_device.is_none() {
            if let Some(address) = &address {
                self.limiter.peek(Policy::LoginFailIp, address).await?;
            }
            if let Some(prefix) = &prefix {
                self.limiter.peek(Policy::LoginFailPrefix, prefix).await?;
            }
        }
        let quick = self.limiter.peek(Policy::LoginPair, &pair).await?;
        self.limiter.peek(Policy::LoginPairSlow, &pair).await?;
        let clean = quick.remaining >= quick.rate.burst.get();
        if known_device.is_none() && !clean {
            self.limiter.peek(Policy::LoginAccount, &account).await?;
        }
        Ok(Admitted {
            account,
            pair,
            address,
            prefix,
            known_device,
        })
    }

    /// Looks at the buckets before a signed-in caller's password check (step-up, password
    /// change, MFA changes). The session stands in for the address, as a known device does:
    /// its own pair budget slows a stolen session that guesses, and the account-wide budget
    /// (which guessers anywhere spend) never refuses it, so they cannot stop the owner from
    /// stepping up or changing the password they are guessing.
    pub async fn admit_signed_in(
        &self,
        email: &str,
        session_id: &str,
    ) -> Result<Admitted, Refused> {
        let account = account_key(email);
        let pair = format!("pair:{account}\nsession:{session_id}");
        self.limiter.peek(Policy::LoginPair, &pair).await?;
        self.limiter.peek(Policy::LoginPairSlow, &pair).await?;
        Ok(Admitted {
            account,
            pair,
            address: None,
            prefix: None,
            known_device: None,
        })
    }

    /// Charges a failed password (or unknown account, or disabled one: the caller cannot tell
    /// them apart, nor can this) to every key of the attempt. A bucket this empties is a
    /// lockout and is audited by the limiter.
    pub async fn failed(&self, admitted: &Admitted) {
        let mut charges = vec![
            (Policy::LoginPair, admitted.pair.as_str()),
            (Policy::LoginPairSlow, admitted.pair.as_str()),
            (Policy::LoginAccount, admitted.account.as_str()),
        ];
        if let Some(address) = &admitted.address {
            charges.push((Policy::LoginFailIp, address.as_str()));
        }
        if let Some(prefix) = &admitted.prefix {
            charges.push((Policy::LoginFailPrefix, prefix.as_str()));
        }
        for (policy, key) in charges {
            // A refusal here only says the bucket was already spent: the attempt has failed
            // anyway, and the next one will meet the refusal in `admit`.
            let _ = self.limiter.charge(policy, key).await;
        }
    }

    /// Whether `token` proves a device that logged in to the account of `email` before.
    pub fn recognizes(&self, token: Option<&str>, email: &str) -> bool {
        token.is_some_and(|token| self.devices.verify(token, &account_key(email)).is_some())
    }

    /// The device token to hand back after a successful login: the device keeps its id.
    pub fn device_token(&self, admitted: &Admitted) -> String {
        self.devices
            .issue(admitted.known_device.as_deref(), &admitted.account)
    }
}
