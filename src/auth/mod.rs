//! Proving who a caller is: password hashing, signing keys, access tokens, refresh tokens and
//! the in-memory set of revoked sessions.

pub mod activity;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod revocations;
pub mod tokens;
mod verified_tokens;

use std::path::PathBuf;
use std::time::Duration;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (ASVS 9.2.1: at most 60). A
/// retired signing key also keeps verifying this much longer than its tokens live.
pub const CLOCK_LEEWAY_SECS: i64 = 30;

/// What signs and checks access tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// PKCS#8 PEM file holding the Ed25519 key that signs access tokens.
    pub key_file: PathBuf,
    /// Generate the signing key when the file is missing (development only).
    pub generate_key: bool,
    pub issuer: String,
    pub audience: String,
    /// How long an access token lives: `AERIE_ACCESS_TOKEN_TTL_SECS`, or under the
    /// [`ClientProfile::RealWorld`] profile the session's absolute lifetime.
    pub access_token_ttl: Duration,
    pub profile: ClientProfile,
}

/// `AERIE_CLIENT_PROFILE`: what kind of client the access tokens are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProfile {
    /// Clients that refresh: short access tokens, renewed at `POST /api/auth/refresh`.
    Standard,
    /// Clients that keep the one token from login and never refresh (stock RealWorld front
    /// ends): the access token lives as long as its session may, the session's idle timeout
    /// is checked on every use ([`activity`]), and revocation stays as instant as ever (the
    /// in-memory check of [`revocations`] does not depend on the token's lifetime).
    RealWorld,
}

/// How long a session lives, and how many a user may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimes {
    /// How long after a refresh token was rotated it may still be presented (a concurrent
    /// refresh from the same client) before that counts as reuse and kills the session.
    pub refresh_grace: Duration,
    /// A session not refreshed for this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after login, however active.
    pub max_lifetime: Duration,
    /// Live sessions per user; a login beyond it ends the user's oldest session.
    pub max_live_per_user: usize,
}
