//! Access tokens: short-lived EdDSA (Ed25519) JWTs, signed with the keyring of
//! [`super::keys`].
//!
//! Guards against forged and replayed tokens. The algorithm is pinned per key and never read
//! from the token (no `alg: none`, no HS256-with-the-public-key confusion); the key is chosen
//! by `kid` from a fixed in-memory map only (no `jku`, `x5u`, `jwk` or `x5c` is honoured, and a
//! token carrying them is refused, as is one naming a `crit` extension); `iss`, `aud`, `exp`
//! and `iat` are required and checked against the injected clock. A token names its session
//! (`sid`) so revoking the session can kill the token before it expires. A token that claims
//! to live longer (`exp − iat`) than the configured lifetime is refused: revocations and key
//! pruning only remember tokens that long, so lowering the lifetime must not revive older,
//! longer tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::CLOCK_LEEWAY_SECS;
use super::keys::{Keyring, PublicKey, SigningKey, jwk_set};
use super::verified_tokens::{Remembered, TimeClaims, VerifiedTokens};
use crate::clock::{Clock, UnixMillis};
use crate::domain::Role;

/// Longer tokens are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;

/// What an access token says. Nothing else: no email, no profile data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The session this token belongs to.
    pub sid: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    /// When the user last proved who they are with a password (login, registration, step-up),
    /// in Unix seconds (OIDC's `auth_time`). A refresh keeps it, so sensitive changes can ask
    /// for a recent one. Absent in tokens from before step-up: read as long ago.
    #[serde(default)]
    pub auth_time: i64,
}

/// A verified token, reduced to what handlers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub session_id: String,
    pub role: Role,
    /// The token's `auth_time`, in Unix milliseconds like every other time here.
    pub authenticated_at: UnixMillis,
    /// The token's `iat`, in Unix milliseconds: issuing it was a use of its session.
    pub issued_at: UnixMillis,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

struct Inner {
    signing: SigningKey,
    /// Every key id that may verify a token, with its key. Only EdDSA keys live here.
    verifying: HashMap<String, DecodingKey>,
    /// Every verifying key's public half, active first: the JWKS.
    public_keys: Vec<PublicKey>,
    issuer: String,
    audience: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    /// Tokens already verified under this keyring (see [`VerifiedTokens`]).
    verified: VerifiedTokens<Verified>,
}

impl TokenService {
    pub fn new(
        signing: SigningKey,
        issuer: String,
        audience: String,
        ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let keyring = Keyring {
            active: signing,
            previous: Vec::new(),
        };
        Self::with_keyring(keyring, issuer, audience, ttl, clock)
    }

    pub fn with_keyring(
        keyring: Keyring,
        issuer: String,
        audience: String,
        ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let public_keys = keyring.public_keys();
        let signing = keyring.active;
        let verifying = public_keys
            .iter()
            .map(|PublicKey { kid, x }| {
                #[expect(
                    clippy::expect_used,
                    reason = "the public half of our own key always decodes"
                )]
                let key = DecodingKey::from_ed_components(x).expect("our own public key decodes");
                (kid.clone(), key)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                signing,
                verifying,
                public_keys,
                issuer,
                audience,
                ttl,
                clock,
                verified: VerifiedTokens::default(),
            }),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The public keys that verify access tokens, as a JWK Set (RFC 7517, RFC 8037).
    pub fn jwks(&self) -> serde_json::Value {
        jwk_set(&self.inner.public_keys)
    }

    /// Signs a token for a user's session, whose last password authentication was at
    /// `authenticated_at`.
    pub fn issue(
        &self,
        user_id: i64,
        session_id: &str,
        role: Role,
        authenticated_at: UnixMillis,
    ) -> String {
        self.issue_within(user_id, session_id, role, authenticated_at, UnixMillis::MAX)
    }

    /// [`Self::issue`], for a session that ends at `session_ends_at`: the token expires then
    /// at the latest, so a token as long as the session (the `realworld` client profile)
    /// never outlives it.
    #[expect(
        clippy::expect_used,
        reason = "EdDSA signing with a valid key has no failure mode"
    )]
    pub fn issue_within(
        &self,
        user_id: i64,
        session_id: &str,
        role: Role,
        authenticated_at: UnixMillis,
        session_ends_at: UnixMillis,
    ) -> String {
        let now_secs = self.inner.clock.now() / 1000;
        let ttl_secs = i64::try_from(self.inner.ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now_secs
            .saturating_add(ttl_secs)
            .min(session_ends_at / 1000)
            .max(now_secs);
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id.to_owned(),
            role,
            iat: now_secs,
            exp,
            nbf: None,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            auth_time: authenticated_at / 1000,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.inner.signing.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, self.inner.signing.encoding())
            .expect("signing with a valid Ed25519 key cannot fail")
    }

    /// Verifies signature, key, issuer, audience and time. Any failure is `None`: callers
    /// answer one generic 401 and never say which check failed.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        self.check(token).ok()
    }

    /// [`Self::verify`], saying which check failed: for the audit trail, never the client.
    pub fn check(&self, token: &str) -> Result<Verified, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::Malformed);
        }
        if let Some(remembered) = self.inner.verified.get(token) {
            self.check_times(remembered.times)?;
            return Ok(remembered.verified);
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            // `alg: none` (and every algorithm the library does not know) fails here.
            return Err(
                if claimed_algorithm(token).is_some_and(|alg| alg != "EdDSA") {
                    Rejection::Algorithm
                } else {
                    Rejection::Malformed
                },
            );
        };
        let untrusted_key_source = header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some();
        // No JWS extension is implemented, so one marked critical must be refused
        // (RFC 7515 §4.1.11); jsonwebtoken parses `crit` but leaves that to the caller.
        let critical_extension = header.crit.is_some();
        if header.alg != Algorithm::EdDSA {
            return Err(Rejection::Algorithm);
        }
        if untrusted_key_source || critical_extension {
            return Err(Rejection::Header);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.inner.verifying.get(kid))
            .ok_or(Rejection::KeyId)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation())
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejection::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer
                | jsonwebtoken::errors::ErrorKind::InvalidAudience
                | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => Rejection::Claims,
                _ => Rejection::Malformed,
            })?
            .claims;
        let times = TimeClaims {
            iat: claims.iat,
            exp: claims.exp,
            nbf: claims.nbf,
        };
        self.check_times(times)?;
        let user_id = claims.sub.parse().map_err(|_| Rejection::Claims)?;
        let verified = Verified {
            user_id,
            session_id: claims.sid,
            role: claims.role,
            authenticated_at: claims.auth_time.saturating_mul(1000),
            issued_at: claims.iat.saturating_mul(1000),
        };
        self.inner.verified.remember(
            token,
            Remembered {
                verified: verified.clone(),
                times,
            },
        );
        Ok(verified)
    }

    fn validation(&self) -> Validation {
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time is checked against the injected clock in `check_times`, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation
    }

    fn check_times(&self, claims: TimeClaims) -> Result<(), Rejection> {
        let now: UnixMillis = self.inner.clock.now();
        let now_secs = now / 1000;
        let expired = claims.exp + CLOCK_LEEWAY_SECS <= now_secs;
        let not_yet_valid = claims
            .nbf
            .is_some_and(|nbf| nbf > now_secs + CLOCK_LEEWAY_SECS);
        let issued_in_future = claims.iat > now_secs + CLOCK_LEEWAY_SECS;
        let ttl_secs = i64::try_from(self.inner.ttl.as_secs()).unwrap_or(i64::MAX);
        let lives_too_long = claims.exp.saturating_sub(claims.iat) > ttl_secs;
        if expired {
            Err(Rejection::Expired)
        } else if not_yet_valid || issued_in_future {
            Err(Rejection::NotYetValid)
        } else if lives_too_long {
            Err(Rejection::Lifetime)
        } else {
            Ok(())
        }
    }
}

/// Why an access token was refused, as the audit trail's `token_rejected` names it. The
/// client is never told: every one is the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWT we can read, or longer than any token we issue.
    Malformed,
    /// Another algorithm than EdDSA (`none`, `HS256` keyed with the public key...).
    Algorithm,
    /// A key source in the header (`jku`, `jwk`, `x5u`, `x5c`) or a critical extension.
    Header,
    /// No key id, or one that is not ours.
    KeyId,
    /// Our key id, but the signature does not verify.
    Signature,
    /// Issuer, audience or a required claim wrong or missing.
    Claims,
    Expired,
    NotYetValid,
    /// Valid for longer than this server issues tokens for.
    Lifetime,
    /// Verified, but its session was revoked (checked by the caller, not here).
    Revoked,
    /// Verified, but its session went unused longer than the idle timeout (checked by the
    /// caller under the `realworld` client profile, see [`super::activity`]).
    Idle,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::Header => "header",
            Self::KeyId => "key_id",
            Self::Signature => "signature",
            Self::Claims => "claims",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Lifetime => "lifetime",
            Self::Revoked => "revoked",
            Self::Idle => "idle",
        }
    }

    /// A forged or tampered token rather than an old one: the signs of someone trying to
    /// make up credentials (an expired or revoked token is an ordinary client's).
    pub fn looks_forged(self) -> bool {
        matches!(
            self,
            Self::Algorithm | Self::Header | Self::KeyId | Self::Signature | Self::Claims
        )
    }
}

/// The `alg` a token's header claims, read without trusting anything else in it.
fn claimed_algorithm(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// The role a token's payload claims, read without verifying it: only to record what a
/// refused token was after (a known role name, never free text).
pub fn claimed_role(token: &str) -> Option<Role> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Role::parse(value.get("role")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use ed25519_dalek::pkcs8::EncodePrivateKey;

    use super::*;
    use crate::auth::keys::previous_keys_dir;
    use crate::clock::ManualClock;

    fn service(clock: Arc<ManualClock>) -> TokenService {
        TokenService::new(
            SigningKey::generate(),
            "aerie".into(),
            "aerie-api".into(),
            Duration::from_secs(900),
            clock,
        )
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let clock = Arc::new(ManualClock::starting_now());
        let tokens = service(clock.clone());
        let token = tokens.issue(7, "s1", Role::Editor, 0);
        assert_eq!(
            tokens.verify(&token),
            Some(Verified {
                user_id: 7,
                session_id: "s1".into(),
                role: Role::Editor,
                authenticated_at: 0,
                issued_at: clock.now() / 1000 * 1000,
            })
        );
        clock.advance(Duration::from_secs(900 + CLOCK_LEEWAY_SECS as u64 + 1));
        assert_eq!(tokens.verify(&token), None);
    }

    #[test]
    fn only_verified_tokens_are_remembered_and_each_use_checks_the_time_again() {
        let clock = Arc::new(ManualClock::starting_now());
        let tokens = service(clock.clone());
        let token = tokens.issue(7, "s1", Role::User, 0);
        assert!(tokens.verify(&token).is_some());
        assert_eq!(tokens.inner.verified.len(), 1);
        // Another signature over the same claims is checked in full, and refused.
        let mut forged = token.clone();
        let last = if forged.ends_with('A') { "B" } else { "A" };
        forged.replace_range(forged.len() - 1.., last);
        assert_eq!(tokens.verify(&forged), None);
        let other_service = service(clock.clone());
        let foreign = other_service.issue(7, "s1", Role::Admin, 0);
        assert_eq!(tokens.verify(&foreign), None);
        assert_eq!(
            tokens.inner.verified.len(),
            1,
            "refused tokens are not remembered"
        );
        assert!(tokens.verify(&token).is_some());
        clock.advance(Duration::from_secs(900 + CLOCK_LEEWAY_SECS as u64 + 1));
        assert_eq!(tokens.check(&token), Err(Rejection::Expired));
    }

    #[test]
    fn tokens_longer_than_the_configured_lifetime_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing-key.pem");
        let clock = Arc::new(ManualClock::starting_now());
        let with_ttl = |secs| {
            TokenService::new(
                SigningKey::load_or_generate(&path, true).expect("key"),
                "aerie".into(),
                "aerie-api".into(),
                Duration::from_secs(secs),
                clock.clone(),
            )
        };
        let long = with_ttl(3600).issue(7, "s1", Role::User, 0);
        assert!(with_ttl(3600).verify(&long).is_some());
        assert_eq!(
            with_ttl(900).verify(&long),
            None,
            "lifetime lowered to 900 s"
        );
        let short = with_ttl(900).issue(7, "s1", Role::User, 0);
        assert!(
            with_ttl(3600).verify(&short).is_some(),
            "a shorter token is fine"
        );
    }

    #[test]
    fn a_token_never_outlives_its_session() {
        let clock = Arc::new(ManualClock::starting_now());
        let tokens = service(clock.clone());
        let session_ends_at = clock.now() + 60_000;
        let token = tokens.issue_within(7, "s1", Role::User, 0, session_ends_at);
        clock.advance(Duration::from_secs(60 + CLOCK_LEEWAY_SECS as u64 + 1));
        assert_eq!(
            tokens.check(&token).err(),
            Some(Rejection::Expired),
            "the session ended a minute after issue, long before the lifetime of 900 s"
        );
    }

    #[test]
    fn tokens_from_another_key_are_refused() {
        let clock = Arc::new(ManualClock::starting_now());
        let token = service(clock.clone()).issue(7, "s1", Role::User, 0);
        assert_eq!(service(clock).verify(&token), None);
    }

    #[test]
    fn rotation_keeps_the_previous_key_verifying() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing-key.pem");
        let clock = Arc::new(ManualClock::starting_now());
        let service = |keyring: Keyring| {
            TokenService::with_keyring(
                keyring,
                "aerie".into(),
                "aerie-api".into(),
                Duration::from_secs(900),
                clock.clone(),
            )
        };
        let before = service(Keyring::load(&path, true).expect("generate"));
        let old_token = before.issue(7, "s1", Role::User, 0);
        let new_kid = Keyring::rotate(&path).expect("rotate");
        let after = service(Keyring::load(&path, false).expect("reload"));
        assert!(after.verify(&old_token).is_some(), "no one is logged out");
        let new_token = after.issue(7, "s2", Role::User, 0);
        let header = jsonwebtoken::decode_header(&new_token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        assert!(after.verify(&new_token).is_some());
        assert_eq!(after.jwks()["keys"][0]["kid"], new_kid.as_str());
        assert_eq!(after.jwks()["keys"].as_array().map(Vec::len), Some(2));
        assert!(before.verify(&new_token).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for entry in fs::read_dir(previous_keys_dir(&path)).expect("folder") {
                let mode = entry
                    .expect("entry")
                    .metadata()
                    .expect("meta")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600);
            }
        }
    }

    #[test]
    fn pruning_removes_only_keys_whose_tokens_have_all_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing-key.pem");
        let clock = Arc::new(ManualClock::starting_now());
        let ttl = Duration::from_secs(900);
        let service = |keyring: Keyring| {
            TokenService::with_keyring(
                keyring,
                "aerie".into(),
                "aerie-api".into(),
                ttl,
                clock.clone(),
            )
        };
        let first = service(Keyring::load(&path, true).expect("generate"));
        let oldest_token = first.issue(7, "s1", Role::User, 0);
        Keyring::rotate_at(&path, clock.now()).expect("first rotation");
        clock.advance(Duration::from_secs(600));
        let second = service(Keyring::load(&path, false).expect("reload"));
        let recent_token = second.issue(7, "s2", Role::User, 0);
        Keyring::rotate_at(&path, clock.now()).expect("second rotation");
        // A key named without a retirement time (kept by an older release) is never pruned.
        let legacy_pem = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("pem");
        let legacy = previous_keys_dir(&path).join("kept-before-retirement-times.pem");
        crate::keyfile::create(&legacy, legacy_pem.as_bytes()).expect("legacy key");

        let retention = Keyring::retention(ttl);
        // One second short of the first key's retention: nothing goes.
        clock.advance(retention - Duration::from_secs(600) - Duration::from_secs(1));
        assert!(
            Keyring::prune(&path, clock.now(), retention)
                .expect("prune")
                .is_empty()
        );
        assert_eq!(Keyring::load(&path, false).expect("load").previous.len(), 3);
        clock.advance(Duration::from_secs(1));
        let pruned = Keyring::prune(&path, clock.now(), retention).expect("prune");
        assert_eq!(pruned.len(), 1, "only the first retired key: {pruned:?}");
        let after = service(Keyring::load(&path, false).expect("load"));
        assert_eq!(after.jwks()["keys"].as_array().map(Vec::len), Some(3));
        assert!(
            after.verify(&recent_token).is_some(),
            "the second key's tokens still live"
        );
        assert!(
            after.verify(&oldest_token).is_none(),
            "expired anyway, and its key is gone"
        );
    }
}
