//! The keys that sign access tokens: Ed25519 key files, the keyring, its rotation and
//! pruning, and the public JWK Set.
//!
//! Guards against a leaked or lost signing key and against logging everyone out on rotation.
//! Keys live in private files ([`crate::keyfile`]: mode 0600, a group- or world-readable one is
//! refused). One active key signs, previous keys still verify: on disk the active key is
//! `AERIE_SIGNING_KEY_FILE` and the previous ones are `<retired at, Unix ms>.<kid>.pem` files in
//! the folder beside it named `<that file>.previous`. A rotation prunes the previous keys
//! retired longer ago than any token they signed can live. Only public halves are ever served
//! (JWKS) or logged (kid).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::EncodingKey;
use sha2::{Digest, Sha256};

use super::CLOCK_LEEWAY_SECS;
use crate::clock::{Clock, UnixMillis};
use crate::keyfile;

/// Beyond the token lifetime and leeway, how long a retired key is kept for clock skew.
const PRUNE_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("AERIE_SIGNING_KEY_FILE: {path}: {problem}")]
    File { path: String, problem: String },
}

fn file_problem(path: &Path, problem: impl ToString) -> KeyError {
    KeyError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
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
        let problem = |problem: String| file_problem(path, problem);
        if generate && !path.exists() {
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| problem(e.to_string()))?;
            keyfile::create(path, pem.as_bytes()).map_err(|e| problem(e.to_string()))?;
        }
        keyfile::check_private(path).map_err(|e| problem(e.to_string()))?;
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

    /// The private half, for signing.
    pub(super) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// The public half of a key that verifies tokens: its id and JWK `x`.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub kid: String,
    pub x: String,
}

/// The public keys as a JWK Set (RFC 7517, RFC 8037).
pub fn jwk_set(keys: &[PublicKey]) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|PublicKey { kid, x }| {
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

/// The active signing key and the previous keys that still verify.
pub struct Keyring {
    pub active: SigningKey,
    pub previous: Vec<SigningKey>,
}

/// The folder holding the previous keys of the keyring whose active key is `active_path`.
pub fn previous_keys_dir(active_path: &Path) -> PathBuf {
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
                .map_err(|e| file_problem(&dir, e))?
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

    /// The public halves of every key, active first: what verifies, and what JWKS serves.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        std::iter::once(&self.active)
            .chain(self.previous.iter())
            .map(|key| PublicKey {
                kid: key.kid.clone(),
                x: key.public_x(),
            })
            .collect()
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
        let old = SigningKey::load_or_generate(active_path, false)?;
        let old_pem = fs::read(active_path).map_err(|e| file_problem(active_path, e))?;
        let dir = previous_keys_dir(active_path);
        // A retry after an interrupted rotation finds the old key already kept.
        if !previous_key_files(&dir)?
            .iter()
            .any(|(_, kid, _)| kid == old.kid())
        {
            let kept = dir.join(format!("{now}.{}.pem", old.kid()));
            keyfile::create(&kept, &old_pem).map_err(|e| file_problem(&kept, e))?;
        }
        let mut staged = active_path.as_os_str().to_owned();
        staged.push(".new");
        let staged = PathBuf::from(staged);
        if staged.exists() {
            return Err(file_problem(
                &staged,
                "left over from an interrupted rotation; remove it and retry",
            ));
        }
        let fresh = SigningKey::load_or_generate(&staged, true)?;
        fs::rename(&staged, active_path).map_err(|e| file_problem(active_path, e))?;
        Ok(fresh.kid().to_owned())
    }

    /// How long a retired key must keep verifying: the longest an access token it signed can
    /// live, with the verifier's clock leeway and a margin for skew between instances.
    pub fn retention(access_token_ttl: Duration) -> Duration {
        access_token_ttl + Duration::from_secs(CLOCK_LEEWAY_SECS.unsigned_abs()) + PRUNE_MARGIN
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
                fs::remove_file(&path).map_err(|e| file_problem(&path, e))?;
                pruned.push(kid);
            }
        }
        Ok(pruned)
    }
}

/// The previous-key files in `dir` (none when it does not exist): path, kid, and retirement
/// time when the name carries one (`<ms>.<kid>.pem`; a kid never contains a dot, so an older
/// `<kid>.pem` parses as having none).
fn previous_key_files(dir: &Path) -> Result<Vec<(PathBuf, String, Option<UnixMillis>)>, KeyError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = fs::read_dir(dir).map_err(|e| file_problem(dir, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A retired key must outlive every token it signed, as the slowest instance sees it:
    /// pruning early would log out users whose tokens are still valid. A token signed at
    /// the moment of rotation is accepted until its expiry plus the clock leeway; an instance
    /// whose clock runs up to [`PRUNE_MARGIN`] behind the pruner's still accepts it then.
    #[test]
    fn a_retired_key_outlives_its_tokens_on_an_instance_with_a_slower_clock() {
        use std::sync::Arc;

        use crate::auth::tokens::TokenService;
        use crate::clock::ManualClock;
        use crate::domain::Role;

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
        let signer = service(Keyring::load(&path, true).expect("generate"));
        let token = signer.issue(7, "s1", Role::User, 0);
        Keyring::rotate_at(&path, clock.now()).expect("rotate");

        let leeway = Duration::from_secs(CLOCK_LEEWAY_SECS.unsigned_abs());
        clock.advance(ttl + leeway - Duration::from_secs(1));
        let verifier = service(Keyring::load(&path, false).expect("reload"));
        assert!(
            verifier.verify(&token).is_some(),
            "its last accepted second"
        );
        let margin = i64::try_from(PRUNE_MARGIN.as_millis()).expect("fits");
        let pruner_now = clock.now() + margin;
        assert!(
            Keyring::prune(&path, pruner_now, Keyring::retention(ttl))
                .expect("prune")
                .is_empty(),
            "kept while an instance a margin behind still accepts its token"
        );
        assert!(
            service(Keyring::load(&path, false).expect("reload"))
                .verify(&token)
                .is_some()
        );
        let a_second_later = pruner_now + 1000;
        let pruned = Keyring::prune(&path, a_second_later, Keyring::retention(ttl)).expect("prune");
        assert_eq!(pruned.len(), 1, "then no instance needs it: {pruned:?}");
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
