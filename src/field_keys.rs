//! The field-encryption keyring: personal data and secrets the server must read back (emails,
//! TOTP secrets) are sealed before they reach the database, and emails are found by a keyed
//! blind index instead of their text.
//!
//! Guards against a copy of the database (a dump, a backup, the SQLite file and its WAL, a
//! replica) revealing who the users are or letting its holder mint their second factor. Each
//! value is sealed with XChaCha20-Poly1305 (RustCrypto) under a key kept outside the database
//! in `AERIE_DATA_KEYS_FILE` (mode 0600); the stored form names its key id (`f1.<kid>.<…>`) so
//! keys can be rotated while old ones still open what they sealed; the associated data names
//! the column and the row, so a value copied to another row or column (by someone who can
//! write the database) fails to open instead of, say, moving an email or a TOTP secret onto
//! another account. Lookups by email use an HMAC-SHA256 of the normalised address under a
//! separate index key (`i1.<hex>`): equal addresses give equal indexes, so login is one
//! indexed equality and uniqueness is the index's unique constraint, while the database alone
//! cannot tell which address an index stands for.
//!
//! The keys are read once at start and kept in memory. `aerie keys rotate-data` appends a new
//! key to the file; a running server picks it up the first time it meets a value sealed under
//! a key it does not know, and checks the file for a newer active key every few seconds
//! before sealing, so the rows it writes during a rotation move to the new key too.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::{Clock, UnixMillis};
use crate::keyfile;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
/// The stored form of a sealed value: `f1.<key id>.` then base64url of nonce ‖ ciphertext ‖ tag.
const SEALED_PREFIX: &str = "f1.";
/// The stored form of a blind index: `i1.` then the hex HMAC.
const INDEX_PREFIX: &str = "i1.";
/// The stored form of a keyed recovery-code digest.
const CODE_DIGEST_PREFIX: &str = "h1.";
/// TOTP secrets sealed by the retired `AERIE_MFA_KEY_FILE` sealer: `v1.` then base64 (standard,
/// no padding) of nonce ‖ ciphertext ‖ tag, opened by the legacy key only.
const LEGACY_PREFIX: &str = "v1.";
/// The key id the legacy MFA key is counted under in rotation reports.
pub const LEGACY_KEY_ID: u32 = 0;
/// How often (milliseconds, by the server's clock) a sealing server looks for a newer active
/// key in the file.
const RECHECK_EVERY_MS: UnixMillis = 5_000;
const FILE_HEADER: &str = "# Aerie field-encryption keys (AERIE_DATA_KEYS_FILE): one `index` key for blind indexes,\n\
# then `key <id> <base64>` lines; the highest id seals, every listed id opens.\n\
# Managed by `aerie keys rotate-data`; keep a copy with the database backups' keys.\n";

/// Where the keys live and whether development may create them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldKeySettings {
    /// `AERIE_DATA_KEYS_FILE` (default `<data dir>/data-keys` in development).
    pub file: PathBuf,
    /// Generate the file when missing (development only).
    pub generate: bool,
    /// The retired `AERIE_MFA_KEY_FILE`, set only while upgrading: it opens TOTP secrets
    /// sealed before the keyring, which start-up re-seals under the active key.
    pub legacy_mfa_key: Option<PathBuf>,
}

/// A column whose values are sealed: part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    UserEmail,
    TotpSecret,
    /// The ACME account and certificate several instances share (`acme_state.sealed`).
    AcmeState,
    /// An outbox mail's recipient (row: the outbox id).
    MailRecipient,
    /// An outbox mail's template values, a link's token among them (row: the outbox id).
    MailPayload,
    /// The address an email change waits to confirm (row: the account id).
    PendingEmail,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Self::UserEmail => "users.email_sealed",
            Self::TotpSecret => "mfa_totp.secret_sealed",
            Self::AcmeState => "acme_state.sealed",
            Self::MailRecipient => "mail_outbox.recipient_sealed",
            Self::MailPayload => "mail_outbox.payload_sealed",
            Self::PendingEmail => "mail_tokens.new_email_sealed",
        }
    }
}

/// Why the key file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {path}: {problem}")]
pub struct KeyFileError {
    setting: &'static str,
    path: String,
    problem: String,
}

/// Why a value could not be sealed or opened. Never carries the value or a key.
#[derive(Debug, thiserror::Error)]
pub enum FieldKeyError {
    /// The cipher refused (only for lengths far beyond any field).
    #[error("{field} of row {row}: could not be sealed")]
    Seal { field: &'static str, row: i64 },
    /// No such key id in the keyring (retired too early, or the wrong key file).
    #[error("{field} of row {row}: sealed under key {kid}, which the keyring does not hold")]
    UnknownKey {
        field: &'static str,
        row: i64,
        kid: u32,
    },
    /// Wrong key, another row's or column's value, or altered.
    #[error("{field} of row {row}: failed to open (wrong key, moved between rows, or altered)")]
    Open { field: &'static str, row: i64 },
    /// Sealed by the retired MFA sealer, whose key is not configured.
    #[error(
        "{field} of row {row}: sealed by the retired MFA key; set AERIE_MFA_KEY_FILE to that key until start-up has re-sealed every TOTP secret under AERIE_DATA_KEYS_FILE"
    )]
    LegacyKeyMissing { field: &'static str, row: i64 },
    /// Not a sealed value at all.
    #[error("{field} of row {row}: is not a sealed value")]
    Malformed { field: &'static str, row: i64 },
}

/// The keys, as read from the file.
struct KeySet {
    keys: BTreeMap<u32, XChaCha20Poly1305>,
    active: u32,
    /// Per-purpose subkeys derived from the file's index key.
    email_index: Hmac<Sha256>,
    code_digest: Hmac<Sha256>,
    /// What the file looked like when read: a change of any part means it was rewritten.
    stamp: Option<FileStamp>,
}

/// A key file's modification time, length and inode: the modification time alone can stay
/// the same across a quick rewrite on file systems with coarse timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The keyring. Cheap to clone: every clone shares the keys.
#[derive(Clone)]
pub struct FieldKeys {
    file: Arc<PathBuf>,
    current: Arc<RwLock<Arc<KeySet>>>,
    /// When the file was last checked for a newer active key.
    checked: Arc<Mutex<UnixMillis>>,
    clock: Arc<dyn Clock>,
    legacy: Option<Arc<XChaCha20Poly1305>>,
}

impl fmt::Debug for FieldKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FieldKeys(..)")
    }
}

/// One parsed key file: the index key and the data keys by id.
pub struct KeyFile {
    index: [u8; KEY_BYTES],
    keys: BTreeMap<u32, [u8; KEY_BYTES]>,
}

impl KeyFile {
    /// A new file's contents: a fresh index key and data key 1.
    pub fn fresh() -> Self {
        Self {
            index: rand::random(),
            keys: BTreeMap::from([(1, rand::random())]),
        }
    }

    /// Reads and checks a key file (mode 0600, well formed, at least one data key).
    pub fn read(path: &Path) -> Result<Self, String> {
        keyfile::check_private(path).map_err(|e| e.to_string())?;
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        Self::parse(&text)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut index = None;
        let mut keys = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                format!(
                    "line {} is not `index <base64>` or `key <id> <base64>`",
                    number + 1
                )
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["index", encoded] => index = Some(decode_key(encoded).ok_or_else(bad)?),
                ["key", id, encoded] => {
                    let id: u32 = id.parse().ok().filter(|id| *id > 0).ok_or_else(bad)?;
                    if keys
                        .insert(id, decode_key(encoded).ok_or_else(bad)?)
                        .is_some()
                    {
                        return Err(format!("key {id} is listed twice"));
                    }
                }
                _ => return Err(bad()),
            }
        }
        let index = index.ok_or("has no `index` line")?;
        if keys.is_empty() {
            return Err("has no `key` line".into());
        }
        Ok(Self { index, keys })
    }

    /// The sealing key's id: the highest.
    pub fn active(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or(1)
    }

    /// Every key id, oldest first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Adds a new random key that becomes the active one; answers its id.
    pub fn add_key(&mut self) -> u32 {
        let id = self.active().saturating_add(1);
        self.keys.insert(id, rand::random());
        id
    }

    /// Drops every key but the active one; answers the dropped ids.
    pub fn retire_old_keys(&mut self) -> Vec<u32> {
        let active = self.active();
        let old: Vec<u32> = self
            .keys
            .keys()
            .copied()
            .filter(|id| *id != active)
            .collect();
        self.keys.retain(|id, _| *id == active);
        old
    }

    fn render(&self) -> String {
        let mut text = FILE_HEADER.to_owned();
        text.push_str(&format!("index {}\n", STANDARD_NO_PAD.encode(self.index)));
        for (id, key) in &self.keys {
            text.push_str(&format!("key {id} {}\n", STANDARD_NO_PAD.encode(key)));
        }
        text
    }

    /// Writes a new file (never over an existing one).
    pub fn create(&self, path: &Path) -> std::io::Result<()> {
        keyfile::create(path, self.render().as_bytes())
    }

    /// Replaces the file whole (a private temporary file renamed over it), so a reader sees
    /// the old keys or the new ones, never half a file.
    pub fn replace(&self, path: &Path) -> std::io::Result<()> {
        keyfile::replace(path, self.render().as_bytes())
    }

    fn into_set(self, stamp: Option<FileStamp>) -> KeySet {
        let active = self.active();
        KeySet {
            keys: self
                .keys
                .into_iter()
                .map(|(id, key)| (id, XChaCha20Poly1305::new(&Key::from(key))))
                .collect(),
            active,
            email_index: subkey(&self.index, b"aerie email index v1"),
            code_digest: subkey(&self.index, b"aerie recovery code digest v1"),
            stamp,
        }
    }
}

fn decode_key(encoded: &str) -> Option<[u8; KEY_BYTES]> {
    STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?
        .try_into()
        .ok()
}

/// A purpose's own HMAC key, derived from the index key, so an index of one kind can never be
/// confused with another.
#[expect(
    clippy::expect_used,
    reason = "HMAC accepts keys of any length; 32 bytes can never be refused"
)]
fn subkey(index: &[u8; KEY_BYTES], purpose: &[u8]) -> Hmac<Sha256> {
    let mut derive =
        <Hmac<Sha256> as Mac>::new_from_slice(index).expect("HMAC takes a key of any length");
    derive.update(purpose);
    let derived = derive.finalize().into_bytes();
    <Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("HMAC takes a key of any length")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode,
    })
}

/// The associated data: the format, the column, the row and the key id.
fn associated_data(field: Field, row: i64, kid: u32) -> String {
    format!("aerie:f1:{}:{row}:{kid}", field.name())
}

impl FieldKeys {
    /// Reads the key file; in development a missing one is created (mode 0600). With the
    /// retired MFA key set, values sealed under it still open. `clock` times the rechecks
    /// for a newer active key.
    pub fn load(settings: &FieldKeySettings, clock: Arc<dyn Clock>) -> Result<Self, KeyFileError> {
        let error = |setting: &'static str, path: &Path, problem: String| KeyFileError {
            setting,
            path: path.display().to_string(),
            problem,
        };
        let file = &settings.file;
        if settings.generate && !file.exists() {
            KeyFile::fresh()
                .create(file)
                .map_err(|e| error("AERIE_DATA_KEYS_FILE", file, e.to_string()))?;
        }
        if !file.exists() {
            let problem =
                "does not exist; create it with `aerie keys generate-data --out FILE`".to_owned();
            return Err(error("AERIE_DATA_KEYS_FILE", file, problem));
        }
        let set = KeyFile::read(file)
            .map_err(|problem| error("AERIE_DATA_KEYS_FILE", file, problem))?
            .into_set(stamp(file));
        let legacy = match &settings.legacy_mfa_key {
            Some(path) => {
                let key = keyfile::load_or_generate_random_key::<KEY_BYTES>(path, false)
                    .map_err(|problem| error("AERIE_MFA_KEY_FILE", path, problem))?;
                Some(Arc::new(XChaCha20Poly1305::new(&Key::from(key))))
            }
            None => None,
        };
        Ok(Self {
            file: Arc::new(file.clone()),
            current: Arc::new(RwLock::new(Arc::new(set))),
            checked: Arc::new(Mutex::new(clock.now())),
            clock,
            legacy,
        })
    }

    fn keys(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the file again if it changed since it was loaded (or always, when `force`: a
    /// value names a key this keyring does not hold). A file that has become unreadable or
    /// malformed is ignored (the keys in memory keep working) and logged.
    fn reload(&self, force: bool) -> Arc<KeySet> {
        let current = self.keys();
        let now_stamp = stamp(&self.file);
        if !force && now_stamp.is_some() && now_stamp == current.stamp {
            return current;
        }
        match KeyFile::read(&self.file) {
            Ok(file) => {
                // Keys only ever join the running set: a key retired from the file while this
                // process still holds rows it sealed keeps opening them until restart.
                let mut set = file.into_set(now_stamp);
                for (id, key) in &current.keys {
                    set.keys.entry(*id).or_insert_with(|| key.clone());
                }
                let set = Arc::new(set);
                match self.current.write() {
                    Ok(mut slot) => *slot = Arc::clone(&set),
                    Err(poisoned) => *poisoned.into_inner() = Arc::clone(&set),
                }
                tracing::info!(active = set.active, "field-encryption keys reloaded");
                set
            }
            Err(problem) => {
                tracing::error!(%problem, "AERIE_DATA_KEYS_FILE could not be reloaded; keeping the keys in memory");
                current
            }
        }
    }

    /// The keys to seal with: every few seconds, the file is checked for a newer active key.
    /// A clock set back counts its distance too, so a wall clock stepped backwards delays
    /// the next check by at most the interval.
    fn sealing_keys(&self) -> Arc<KeySet> {
        let now = self.clock.now();
        let due = match self.checked.lock() {
            Ok(mut checked) if now.abs_diff(*checked) >= RECHECK_EVERY_MS.unsigned_abs() => {
                *checked = now;
                true
            }
            _ => false,
        };
        if due { self.reload(false) } else { self.keys() }
    }

    /// Every key id the keyring holds, oldest first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys().keys.keys().copied().collect()
    }

    /// The id of the key that seals now.
    pub fn active_key_id(&self) -> u32 {
        self.keys().active
    }

    /// Seals `plain` for `field` of row `row` under the active key, with a fresh random nonce.
    pub fn seal(&self, field: Field, row: i64, plain: &[u8]) -> Result<String, FieldKeyError> {
        let keys = self.sealing_keys();
        let kid = keys.active;
        let cipher = keys.keys.get(&kid).ok_or(FieldKeyError::UnknownKey {
            field: field.name(),
            row,
            kid,
        })?;
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let aad = associated_data(field, row, kid);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| FieldKeyError::Seal {
                field: field.name(),
                row,
            })?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED_PREFIX}{kid}.{}",
            URL_SAFE_NO_PAD.encode(stored)
        ))
    }

    /// Opens what [`Self::seal`] made for the same field and row, under whichever key it
    /// names (a key the file gained since start is loaded on first sight).
    pub fn open(&self, field: Field, row: i64, sealed: &str) -> Result<Vec<u8>, FieldKeyError> {
        let malformed = || FieldKeyError::Malformed {
            field: field.name(),
            row,
        };
        let failed = || FieldKeyError::Open {
            field: field.name(),
            row,
        };
        if let Some(encoded) = sealed.strip_prefix(LEGACY_PREFIX) {
            return self.open_legacy(field, row, encoded);
        }
        let rest = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(malformed)?;
        let (kid, encoded) = rest.split_once('.').ok_or_else(malformed)?;
        let kid: u32 = kid.parse().map_err(|_| malformed())?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_BYTES).ok_or_else(malformed)?;
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| malformed())?;
        let mut keys = self.keys();
        if !keys.keys.contains_key(&kid) {
            keys = self.reload(true);
        }
        let cipher = keys.keys.get(&kid).ok_or(FieldKeyError::UnknownKey {
            field: field.name(),
            row,
            kid,
        })?;
        let aad = associated_data(field, row, kid);
        decrypt(cipher, &nonce, ciphertext, &aad).ok_or_else(failed)
    }

    /// The retired MFA sealer's format: TOTP secrets only, under the legacy key.
    fn open_legacy(&self, field: Field, row: i64, encoded: &str) -> Result<Vec<u8>, FieldKeyError> {
        let failed = || FieldKeyError::Open {
            field: field.name(),
            row,
        };
        let Some(cipher) = self
            .legacy
            .as_deref()
            .filter(|_| field == Field::TotpSecret)
        else {
            return Err(FieldKeyError::LegacyKeyMissing {
                field: field.name(),
                row,
            });
        };
        let bytes = STANDARD_NO_PAD.decode(encoded).map_err(|_| failed())?;
        let (nonce, ciphertext) = bytes.split_at_checked(NONCE_BYTES).ok_or_else(failed)?;
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| failed())?;
        let aad = format!("aerie:mfa_totp.secret_sealed:{row}");
        decrypt(cipher, &nonce, ciphertext, &aad).ok_or_else(failed)
    }

    /// The key id a stored value was sealed under (the legacy format counts as
    /// [`LEGACY_KEY_ID`]); `None` when it is not a sealed value.
    pub fn key_id_of(sealed: &str) -> Option<u32> {
        if sealed.starts_with(LEGACY_PREFIX) {
            return Some(LEGACY_KEY_ID);
        }
        let rest = sealed.strip_prefix(SEALED_PREFIX)?;
        rest.split_once('.')?.0.parse().ok()
    }

    /// The blind index of a normalised email (`domain::email_key`): what the database looks
    /// accounts up by and keeps unique.
    pub fn email_index(&self, email_key: &str) -> String {
        let mut mac = self.keys().email_index.clone();
        mac.update(email_key.as_bytes());
        format!("{INDEX_PREFIX}{}", hex(&mac.finalize().into_bytes()))
    }

    /// The keyed digest a recovery code is stored by: without the index key, a database
    /// writer cannot plant a code of their own on someone's account.
    pub fn recovery_code_digest(&self, normalized_code: &str) -> String {
        let mut mac = self.keys().code_digest.clone();
        mac.update(normalized_code.as_bytes());
        format!("{CODE_DIGEST_PREFIX}{}", hex(&mac.finalize().into_bytes()))
    }

    /// A keyring over fixed keys, for unit tests elsewhere in the crate.
    #[cfg(test)]
    pub fn for_tests(seed: u8) -> Self {
        let file = KeyFile {
            index: [seed; KEY_BYTES],
            keys: BTreeMap::from([(1, [seed.wrapping_add(1); KEY_BYTES])]),
        };
        let clock = Arc::new(crate::clock::SystemClock);
        Self {
            file: Arc::new(PathBuf::from("/nonexistent/aerie-test-data-keys")),
            current: Arc::new(RwLock::new(Arc::new(file.into_set(None)))),
            checked: Arc::new(Mutex::new(clock.now())),
            clock,
            legacy: None,
        }
    }
}

/// Opens `ciphertext` (with its tag) under `cipher`; `None` when the key, nonce, associated
/// data or bytes do not match (the AEAD does not say which, and neither do we).
fn decrypt(
    cipher: &XChaCha20Poly1305,
    nonce: &[u8; NONCE_BYTES],
    ciphertext: &[u8],
    aad: &str,
) -> Option<Vec<u8>> {
    cipher
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(settings: &FieldKeySettings) -> Result<FieldKeys, KeyFileError> {
        FieldKeys::load(settings, Arc::new(crate::clock::SystemClock))
    }

    fn settings(dir: &Path) -> FieldKeySettings {
        FieldKeySettings {
            file: dir.join("data-keys"),
            generate: true,
            legacy_mfa_key: None,
        }
    }

    #[test]
    fn sealed_values_open_only_in_their_own_row_and_column() {
        let keys = FieldKeys::for_tests(7);
        let sealed = keys
            .seal(Field::UserEmail, 42, b"alice@example.com")
            .expect("seals");
        assert!(sealed.starts_with("f1.1."), "names its key: {sealed}");
        assert!(!sealed.contains("alice"));
        assert_eq!(
            keys.open(Field::UserEmail, 42, &sealed).expect("opens"),
            b"alice@example.com"
        );
        assert!(matches!(
            keys.open(Field::UserEmail, 43, &sealed),
            Err(FieldKeyError::Open { .. })
        ));
        assert!(matches!(
            keys.open(Field::TotpSecret, 42, &sealed),
            Err(FieldKeyError::Open { .. })
        ));
        assert!(
            FieldKeys::for_tests(8)
                .open(Field::UserEmail, 42, &sealed)
                .is_err(),
            "another keyring's key 1 does not open it"
        );
        let relabelled = sealed.replacen("f1.1.", "f1.9.", 1);
        assert!(matches!(
            keys.open(Field::UserEmail, 42, &relabelled),
            Err(FieldKeyError::UnknownKey { kid: 9, .. })
        ));
        let mut tampered = sealed.clone();
        let last = tampered.pop().expect("not empty");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.open(Field::UserEmail, 42, &tampered).is_err());
        assert!(matches!(
            keys.open(Field::UserEmail, 42, "alice@example.com"),
            Err(FieldKeyError::Malformed { .. })
        ));
        assert_ne!(
            keys.seal(Field::UserEmail, 42, b"same").expect("seals"),
            keys.seal(Field::UserEmail, 42, b"same").expect("seals"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn indexes_are_keyed_and_stable() {
        let keys = FieldKeys::for_tests(7);
        let index = keys.email_index("alice@example.com");
        assert_eq!(index, keys.email_index("alice@example.com"));
        assert!(index.starts_with(INDEX_PREFIX), "{index}");
        assert_ne!(
            index,
            FieldKeys::for_tests(8).email_index("alice@example.com")
        );
        assert_ne!(
            keys.email_index("x"),
            keys.recovery_code_digest("x").replacen("h1.", "i1.", 1),
            "each purpose has its own subkey"
        );
    }

    #[test]
    fn rotation_keeps_old_values_open_and_seals_under_the_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = settings(dir.path());
        let keys = load(&settings).expect("generated");
        let old = keys.seal(Field::UserEmail, 1, b"a@b.c").expect("seals");
        let index = keys.email_index("a@b.c");
        let mut file = KeyFile::read(&settings.file).expect("reads");
        assert_eq!(file.add_key(), 2);
        file.replace(&settings.file).expect("replaced");
        let restarted = load(&settings).expect("loads");
        assert_eq!(restarted.active_key_id(), 2);
        assert_eq!(
            restarted.open(Field::UserEmail, 1, &old).expect("opens"),
            b"a@b.c"
        );
        assert_eq!(
            restarted.email_index("a@b.c"),
            index,
            "the index key does not rotate"
        );
        let new = restarted
            .seal(Field::UserEmail, 1, b"a@b.c")
            .expect("seals");
        assert_eq!(FieldKeys::key_id_of(&new), Some(2));
        // The running keyring meets a key-2 value and loads the file again.
        assert_eq!(
            keys.open(Field::UserEmail, 1, &new).expect("opens"),
            b"a@b.c"
        );
        assert_eq!(keys.active_key_id(), 2);
        let mut file = KeyFile::read(&settings.file).expect("reads");
        assert_eq!(file.retire_old_keys(), vec![1]);
        file.replace(&settings.file).expect("replaced");
        let retired = load(&settings).expect("loads");
        assert!(matches!(
            retired.open(Field::UserEmail, 1, &old),
            Err(FieldKeyError::UnknownKey { kid: 1, .. })
        ));
    }

    #[test]
    fn key_files_are_private_and_well_formed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = settings(dir.path());
        settings.generate = false;
        assert!(load(&settings).is_err(), "missing in production");
        for bad in ["", "index AAAA\n", "key 1 AAAA\n", "index x y z\n"] {
            assert!(KeyFile::parse(bad).is_err(), "{bad:?}");
        }
        // Key id 0 is the retired MFA key's in rotation reports: a data key may not take it.
        let key = STANDARD_NO_PAD.encode([7u8; KEY_BYTES]);
        assert!(KeyFile::parse(&format!("index {key}\nkey 1 {key}\n")).is_ok());
        assert!(KeyFile::parse(&format!("index {key}\nkey 0 {key}\n")).is_err());
        keyfile::create(&settings.file, b"garbage").expect("written");
        let error = load(&settings).expect_err("refused").to_string();
        assert!(error.contains("AERIE_DATA_KEYS_FILE"), "{error}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let exposed = dir.path().join("exposed");
            KeyFile::fresh().create(&exposed).expect("written");
            fs::set_permissions(&exposed, fs::Permissions::from_mode(0o644)).expect("chmod");
            settings.file = exposed;
            assert!(load(&settings).is_err(), "group-readable refused");
        }
    }
}
