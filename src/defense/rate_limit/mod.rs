//! Rate limiting: named policies, each a GCRA bucket per key (client IP, account, user).
//!
//! Guards against brute force and credential stuffing on login (attacks.md §3 A1–A3), signup
//! floods, and one client or one account taking more than its share (§8). Every request is
//! counted against the `global` per-IP policy; a route adds a tighter one where it is declared,
//! in one line: `post(login).layer(rate_limit::route(Policy::LoginIp))`. Because that layer sits
//! on the matched route, path variants (`/api/users/login/`, `/API/users/login`) never reach
//! the handler (404) and cannot open a fresh bucket.
//!
//! Keys: the client IP comes from [`super::client_ip`] (trusted proxies only), so forged
//! `X-Forwarded-For` headers land in the caller's own bucket; IPv6 clients are bucketed by
//! their /64, which one subscriber usually owns whole.
//!
//! Login is limited per IP at the route (`login-ip`, every attempt), and by its failures inside
//! the handler: per (account, address), per address, per IPv6 /48 and per account, through
//! [`crate::defense::login_guard`], which looks at those buckets before the password
//! ([`RateLimiter::peek`]) and charges them only after a failure ([`RateLimiter::charge`]),
//! so the owner's correct login is never what an attacker's guesses lock out.
//!
//! Authenticated writes are limited per user (`writes`) by the HTTP layer's `AuthUser`
//! extractor. Callers in `AERIE_RATE_LIMIT_ALLOWLIST` skip every policy.
//!
//! Every store holds a key's 32-byte fingerprint, never the key, and the memory store keeps at
//! most `AERIE_RATE_LIMIT_MAX_KEYS` buckets per policy, evicting the ones with the most budget
//! left (see [`memory`]).
//!
//! Stores: the buckets live in memory ([`memory`]) unless `AERIE_REDIS_URL` names a Redis that
//! several instances share ([`redis`]). Either way the policy logic, the headers and the
//! metrics are this module's, once; a store only answers "allowed, with this much left" or
//! "limited, for this long". When Redis fails, `AERIE_REDIS_FAILURE` decides: `open` falls
//! back to the memory buckets (limits still hold, per instance), `closed` answers 503, and
//! `auth-closed` answers 503 for the credential policies only.

mod layer;
mod limiter;
mod memory;
mod policy;
mod redis;
mod settings;
mod trips;

pub use layer::{Enforcement, Global, RefusalResponse, RoutePolicy, add_headers, route};
pub use limiter::{
    Allowed, Limited, RateLimiter, Refused, account_key, ceil_secs, ip_key, prefix_key,
};
pub use policy::{Policy, Rate};
pub use redis::Probe;
pub use settings::{DEFAULT_MAX_TRACKED_KEYS, RateLimits, RedisSettings, StoreFailure};
