//! Access tokens: short-lived EdDSA (Ed25519) JWTs.
//!
//! Guards against forged and replayed tokens. The algorithm is pinned per key and never read
//! from the token (no `alg: none`, no HS256-with-the-public-key confusion); the key is chosen
//! by `kid` from a fixed in-memory map only (no `jku`, `x5u`, `jwk` or `x5c` is honoured, and a
//! token carrying them is refused, as is one naming a `crit` extension); `iss`, `aud`, `exp`
//! and `iat` are required and checked against the injected clock. A token names its session
//! (`sid`) so revoking the session can kill the token before it expires.
//!
//! Keys form a keyring, so rotating the signing key logs nobody out: one active key signs,
//! previous keys still verify. On disk the active key is `AERIE_SIGNING_KEY_FILE` and the
//! previous ones are `<retired at, Unix ms>.<kid>.pem` files in the folder beside it named
//! `<that file>.previous`, all mode 0600. A rotation prunes the previous keys retired longer
//! ago than any token they signed can live. Only public halves are ever served (JWKS) or
//! logged (kid).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::{Clock, UnixMillis};
use crate::domain::Role;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (ASVS 9.2.1: at most 60).
const LEEWAY_SECS: i64 = 30;
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
}

/// A verified token, reduced to what handlers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub session_id: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("AERIE_SIGNING_KEY_FILE: {path}: {problem}")]
    File { path: String, problem: String },
}

/// An Ed25519 signing key with its key id.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    public: [u8; 32],
}

impl SigningKey {
    #[expect(
        clippy::expect_used,
        reason = "a key just generated always encodes as PKCS#8"
    )]
    pub fn generate() -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        Self::from_dalek(&key).expect("a freshly generated key encodes")
    }

    /// Reads a PKCS#8 PEM file. When `generate` is set and the file does not exist, writes a
    /// new key there first (mode 0600).
    pub fn load_or_generate(path: &Path, generate: bool) -> Result<Self, KeyError> {
        let problem = |problem: String| KeyError::File {
            path: path.display().to_string(),
            problem,
        };
        if generate && !path.exists() {
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| problem(e.to_string()))?;
            write_private_file(path, pem.as_bytes()).map_err(|e| problem(e.to_string()))?;
        }
        check_private_permissions(path).map_err(problem)?;
        let pem = fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .map_err(|_| problem("not a PKCS#8 PEM Ed25519 private key".into()))?;
        Self::from_dalek(&key).map_err(problem)
    }

    fn from_dalek(key: &ed25519_dalek::SigningKey) -> Result<Self, String> {
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        let public = key.verifying_key().to_bytes();
        let fingerprint: Vec<u8> = Sha256::digest(public).into_iter().take(12).collect();
        let kid = URL_SAFE_NO_PAD.encode(fingerprint);
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, base64url: the JWK `x` parameter.
    pub fn public_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }
}

/// The active signing key and the previous keys that still verify.
pub struct Keyring {
    pub active: SigningKey,
    pub previous: Vec<SigningKey>,
}

/// The folder holding the previous keys of the keyring whose active key is `active_path`.
pub fn previous_keys_dir(active_path: &Path) -> std::path::PathBuf {
    let mut name = active_path.as_os_str().to_owned();
    name.push(".previous");
    name.into()
}

impl Keyring {
    /// Loads the active key (generating it when `generate` is set and it is missing) and
    /// every previous key. Each file must be private, like the active one.
    pub fn load(active_path: &Path, generate: bool) -> Result<Self, KeyError> {
        let active = SigningKey::load_or_generate(active_path, generate)?;
        let dir = previous_keys_dir(active_path);
        let mut previous = Vec::new();
        if dir.is_dir() {
            let mut paths: Vec<_> = fs::read_dir(&dir)
                .map_err(|e| KeyError::File {
                    path: dir.display().to_string(),
                    problem: e.to_string(),
                })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|ext| ext == "pem"))
                .collect();
            paths.sort();
            for path in paths {
                previous.push(SigningKey::load_or_generate(&path, false)?);
            }
        }
        Ok(Self { active, previous })
    }

    /// Makes a new key active, now. See [`Keyring::rotate_at`].
    pub fn rotate(active_path: &Path) -> Result<String, KeyError> {
        Self::rotate_at(active_path, crate::clock::SystemClock.now())
    }

    /// Makes a new key active at time `now`. The old active key is first copied into the
    /// previous folder, named with `now` as its retirement time (so it keeps verifying the
    /// tokens it signed, and [`Keyring::prune`] knows when it may go), then the new key
    /// replaces the active file in one atomic rename: at no moment is there no active key.
    /// Answers the new kid.
    pub fn rotate_at(active_path: &Path, now: UnixMillis) -> Result<String, KeyError> {
        let problem = |path: &Path, problem: String| KeyError::File {
            path: path.display().to_string(),
            problem,
        };
        let old = SigningKey::load_or_generate(active_path, false)?;
        let old_pem = fs::read(active_path).map_err(|e| problem(active_path, e.to_string()))?;
        let dir = previous_keys_dir(active_path);
        // A retry after an interrupted rotation finds the old key already kept.
        if !previous_key_files(&dir)?
            .iter()
            .any(|(_, kid, _)| kid == old.kid())
        {
            let kept = dir.join(format!("{now}.{}.pem", old.kid()));
            write_private_file(&kept, &old_pem).map_err(|e| problem(&kept, e.to_string()))?;
        }
        let mut staged = active_path.as_os_str().to_owned();
        staged.push(".new");
        let staged = std::path::PathBuf::from(staged);
        if staged.exists() {
            return Err(problem(
                &staged,
                "left over from an interrupted rotation; remove it and retry".into(),
            ));
        }
        let fresh = SigningKey::load_or_generate(&staged, true)?;
        fs::rename(&staged, active_path).map_err(|e| problem(active_path, e.to_string()))?;
        Ok(fresh.kid().to_owned())
    }

    /// How long a retired key must keep verifying: the longest an access token it signed can
    /// live, with the verifier's clock leeway and a margin for skew between instances.
    pub fn retention(access_token_ttl: Duration) -> Duration {
        access_token_ttl + Duration::from_secs(LEEWAY_SECS.unsigned_abs()) + PRUNE_MARGIN
    }

    /// Deletes the previous keys retired at least `retention` before `now`: every token they
    /// signed has expired (provided the instances were restarted on the new key when it was
    /// rotated). Keys without a retirement time in their name are kept. Answers the kids
    /// deleted. Running instances keep the keys they loaded until they restart.
    pub fn prune(
        active_path: &Path,
        now: UnixMillis,
        retention: Duration,
    ) -> Result<Vec<String>, KeyError> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut pruned = Vec::new();
        for (path, kid, retired_at) in previous_key_files(&previous_keys_dir(active_path))? {
            if retired_at.is_some_and(|at| at.saturating_add(retention_ms) <= now) {
                fs::remove_file(&path).map_err(|e| KeyError::File {
                    path: path.display().to_string(),
                    problem: e.to_string(),
                })?;
                pruned.push(kid);
            }
        }
        Ok(pruned)
    }
}

/// Beyond the token lifetime and leeway, how long a retired key is kept for clock skew.
const PRUNE_MARGIN: Duration = Duration::from_secs(60);

/// The previous-key files in `dir` (none when it does not exist): path, kid, and retirement
/// time when the name carries one (`<ms>.<kid>.pem`; a kid never contains a dot, so an older
/// `<kid>.pem` parses as having none).
fn previous_key_files(dir: &Path) -> Result<Vec<(PathBuf, String, Option<UnixMillis>)>, KeyError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = fs::read_dir(dir).map_err(|e| KeyError::File {
        path: dir.display().to_string(),
        problem: e.to_string(),
    })?;
    let mut files = Vec::new();
    for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
        let Some(stem) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".pem"))
        else {
            continue;
        };
        let (retired_at, kid) = match stem.split_once('.') {
            Some((at, kid)) => (at.parse().ok(), kid.to_owned()),
            None => (None, stem.to_owned()),
        };
        files.push((path, kid, retired_at));
    }
    Ok(files)
}

/// Writes a new file readable only by its owner (mode 0600); never overwrites.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

/// A private key readable by others is refused: it may already have leaked.
fn check_private_permissions(path: &Path) -> Result<(), String> {
    let metadata = fs::metadata(path).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err("readable by group or others; run `chmod 600` on it".into());
        }
    }
    let _ = metadata;
    Ok(())
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
    /// `(kid, x)` of every verifying key, active first: the JWKS.
    public_keys: Vec<(String, String)>,
    issuer: String,
    audience: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
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
        let Keyring {
            active: signing,
            previous,
        } = keyring;
        let public_keys: Vec<(String, String)> = std::iter::once(&signing)
            .chain(previous.iter())
            .map(|key| (key.kid.clone(), key.public_x()))
            .collect();
        let verifying = public_keys
            .iter()
            .map(|(kid, x)| {
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
            }),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The public keys that verify access tokens, as a JWK Set (RFC 7517, RFC 8037).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .inner
            .public_keys
            .iter()
            .map(|(kid, x)| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs a token for a user's session.
    #[expect(
        clippy::expect_used,
        reason = "EdDSA signing with a valid key has no failure mode"
    )]
    pub fn issue(&self, user_id: i64, session_id: &str, role: Role) -> String {
        let now_secs = self.inner.clock.now() / 1000;
        let ttl_secs = i64::try_from(self.inner.ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id.to_owned(),
            role,
            iat: now_secs,
            exp: now_secs.saturating_add(ttl_secs),
            nbf: None,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.inner.signing.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.inner.signing.encoding)
            .expect("signing with a valid Ed25519 key cannot fail")
    }

    /// Verifies signature, key, issuer, audience and time. Any failure is `None`: callers
    /// answer one generic 401 and never say which check failed.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        let untrusted_key_source = header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some();
        // No JWS extension is implemented, so one marked critical must be refused
        // (RFC 7515 §4.1.11); jsonwebtoken parses `crit` but leaves that to the caller.
        let critical_extension = header.crit.is_some();
        if header.alg != Algorithm::EdDSA || untrusted_key_source || critical_extension {
            return None;
        }
        let key = self.inner.verifying.get(header.kid.as_deref()?)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation())
            .ok()?
            .claims;
        self.check_times(&claims)?;
        let user_id = claims.sub.parse().ok()?;
        Some(Verified {
            user_id,
            session_id: claims.sid,
            role: claims.role,
        })
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

    fn check_times(&self, claims: &AccessClaims) -> Option<()> {
        let now: UnixMillis = self.inner.clock.now();
        let now_secs = now / 1000;
        let expired = claims.exp + LEEWAY_SECS <= now_secs;
        let not_yet_valid = claims.nbf.is_some_and(|nbf| nbf > now_secs + LEEWAY_SECS);
        let issued_in_future = claims.iat > now_secs + LEEWAY_SECS;
        (!expired && !not_yet_valid && !issued_in_future).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let token = tokens.issue(7, "s1", Role::Editor);
        assert_eq!(
            tokens.verify(&token),
            Some(Verified {
                user_id: 7,
                session_id: "s1".into(),
                role: Role::Editor
            })
        );
        clock.advance(Duration::from_secs(900 + LEEWAY_SECS as u64 + 1));
        assert_eq!(tokens.verify(&token), None);
    }

    #[test]
    fn tokens_from_another_key_are_refused() {
        let clock = Arc::new(ManualClock::starting_now());
        let token = service(clock.clone()).issue(7, "s1", Role::User);
        assert_eq!(service(clock).verify(&token), None);
    }

    #[test]
    fn generated_key_files_are_private_and_reload_to_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/signing.pem");
        let first = SigningKey::load_or_generate(&path, true).expect("generate");
        let second = SigningKey::load_or_generate(&path, false).expect("load");
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
            assert!(SigningKey::load_or_generate(&path, false).is_err());
        }
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
        let old_token = before.issue(7, "s1", Role::User);
        let new_kid = Keyring::rotate(&path).expect("rotate");
        let after = service(Keyring::load(&path, false).expect("reload"));
        assert!(after.verify(&old_token).is_some(), "no one is logged out");
        let new_token = after.issue(7, "s2", Role::User);
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
        let oldest_token = first.issue(7, "s1", Role::User);
        Keyring::rotate_at(&path, clock.now()).expect("first rotation");
        clock.advance(Duration::from_secs(600));
        let second = service(Keyring::load(&path, false).expect("reload"));
        let recent_token = second.issue(7, "s2", Role::User);
        Keyring::rotate_at(&path, clock.now()).expect("second rotation");
        // A key named without a retirement time (kept by an older release) is never pruned.
        let legacy_pem = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("pem");
        let legacy = previous_keys_dir(&path).join("kept-before-retirement-times.pem");
        write_private_file(&legacy, legacy_pem.as_bytes()).expect("legacy key");

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

    #[test]
    fn an_interrupted_rotation_does_not_keep_the_old_key_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing-key.pem");
        Keyring::load(&path, true).expect("generate");
        let mut staged = path.as_os_str().to_owned();
        staged.push(".new");
        fs::write(&staged, b"half-written").expect("leftover");
        assert!(
            Keyring::rotate_at(&path, 1).is_err(),
            "refuses the leftover"
        );
        fs::remove_file(&staged).expect("operator removes it");
        Keyring::rotate_at(&path, 2).expect("retry");
        assert_eq!(Keyring::load(&path, false).expect("load").previous.len(), 1);
    }

    #[test]
    fn a_missing_key_is_not_generated_in_production() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = SigningKey::load_or_generate(&dir.path().join("absent.pem"), false)
            .err()
            .expect("refused");
        assert!(error.to_string().contains("AERIE_SIGNING_KEY_FILE"));
    }
}
