//! The age encryption around a backup: to an X25519 recipient (`age1…`, the operator keeps
//! the identity elsewhere) or to a passphrase (scrypt). Passphrase files must be private to
//! their owner, like every key file.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr as _;

use age::secrecy::SecretString;
use anyhow::Context as _;

/// How a new backup is encrypted.
pub enum Sealing {
    Recipient(Box<age::x25519::Recipient>),
    Passphrase(SecretString),
}

/// How an existing backup is opened.
pub enum Opening {
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
    Passphrase(SecretString),
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the identity or passphrase does not open this backup (a wrong key, or a damaged header)"
    )]
    WrongKey,
    #[error("this backup was encrypted to a passphrase: give --passphrase-file")]
    NeedsPassphrase,
    #[error(
        "this backup was encrypted to a recipient: give --identity with the matching age identity file"
    )]
    NeedsIdentity,
    #[error("not a readable age file (damaged or not a backup): {0}")]
    Damaged(age::DecryptError),
}

impl Sealing {
    /// Exactly one of the two: a recipient, or a passphrase file.
    pub fn from_options(
        recipient: Option<&str>,
        passphrase_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        match (recipient, passphrase_file) {
            (Some(recipient), None) => {
                let recipient = age::x25519::Recipient::from_str(recipient.trim())
                    .map_err(|why| anyhow::anyhow!("--recipient / AERIE_BACKUP_RECIPIENT: not an age X25519 recipient (age1…): {why}"))?;
                Ok(Self::Recipient(Box::new(recipient)))
            }
            (None, Some(file)) => Ok(Self::Passphrase(read_passphrase(file)?)),
            (Some(_), Some(_)) => anyhow::bail!(
                "give either --recipient (AERIE_BACKUP_RECIPIENT) or --passphrase-file (AERIE_BACKUP_PASSPHRASE_FILE), not both"
            ),
            (None, None) => anyhow::bail!(
                "a backup must be encrypted: give --recipient (AERIE_BACKUP_RECIPIENT) or --passphrase-file (AERIE_BACKUP_PASSPHRASE_FILE)"
            ),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Recipient(_) => "recipient",
            Self::Passphrase(_) => "passphrase",
        }
    }

    /// Wraps `out` in the encrypting stream; `finish()` it to write the final chunk.
    pub fn encrypt<W: Write>(&self, out: W) -> anyhow::Result<age::stream::StreamWriter<W>> {
        let encryptor = match self {
            Self::Recipient(recipient) => {
                age::Encryptor::with_recipients(std::iter::once(&**recipient as _))?
            }
            Self::Passphrase(passphrase) => {
                age::Encryptor::with_user_passphrase(passphrase.clone())
            }
        };
        Ok(encryptor.wrap_output(out)?)
    }
}

impl Opening {
    /// Exactly one of the two: an identity file, or a passphrase file.
    pub fn from_options(
        identity: Option<&Path>,
        passphrase_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        match (identity, passphrase_file) {
            (Some(file), None) => {
                crate::keyfile::check_private(file)
                    .with_context(|| format!("--identity {}", file.display()))?;
                let identities = age::IdentityFile::from_file(file.display().to_string())
                    .and_then(|f| {
                        f.into_identities()
                            .map_err(|e| std::io::Error::other(e.to_string()))
                    })
                    .with_context(|| {
                        format!("--identity {}: not an age identity file", file.display())
                    })?;
                Ok(Self::Identities(identities))
            }
            (None, Some(file)) => Ok(Self::Passphrase(read_passphrase(file)?)),
            (Some(_), Some(_)) => {
                anyhow::bail!("give either --identity or --passphrase-file, not both")
            }
            (None, None) => anyhow::bail!(
                "give --identity (an age identity file) or --passphrase-file (AERIE_BACKUP_PASSPHRASE_FILE) to open the backup"
            ),
        }
    }

    /// Opens the age stream: authenticates the header, then decrypts chunk by chunk (each
    /// chunk is authenticated as it is read, and a missing last chunk is an error).
    pub fn decrypt<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>, OpenError> {
        let decryptor = age::Decryptor::new(input).map_err(OpenError::Damaged)?;
        let opened = match self {
            Self::Passphrase(_) if !decryptor.is_scrypt() => return Err(OpenError::NeedsIdentity),
            Self::Identities(_) if decryptor.is_scrypt() => return Err(OpenError::NeedsPassphrase),
            Self::Passphrase(passphrase) => {
                let identity = age::scrypt::Identity::new(passphrase.clone());
                decryptor.decrypt(std::iter::once(&identity as _))
            }
            Self::Identities(identities) => {
                decryptor.decrypt(identities.iter().map(|i| &**i as &dyn age::Identity))
            }
        };
        opened.map_err(|error| match error {
            age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                OpenError::WrongKey
            }
            other => OpenError::Damaged(other),
        })
    }
}

/// The passphrase: the file's first line (the file private to its owner).
fn read_passphrase(file: &Path) -> anyhow::Result<SecretString> {
    crate::keyfile::read_secret_line(file).map_err(|e| anyhow::anyhow!("--passphrase-file {e}"))
}
