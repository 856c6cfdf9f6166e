//! The attacks, one module per defence: who may do what, forged and stolen credentials,
//! forked refresh families, browser cookies and CSRF, headers and CORS, rate limits, request
//! size and speed, and TLS.

mod access;
mod access_control;
mod auth;
mod breached_passwords;
mod cookie_mode;
mod data_minimisation;
mod field_encryption;
mod headers;
mod kill_switches;
mod least_privilege;
mod lingering_close;
mod lockout;
mod login_keys;
mod markdown_bounds;
pub(crate) mod mfa;
mod new_devices;
mod production_defaults;
mod quotas;
mod rate_limit;
mod rate_limit_redis;
mod realworld_profile;
mod redis_tls;
mod refresh_forks;
mod request_bounds;
mod request_limits;
mod session_limit;
mod signing_key_agreement;
mod tls;
