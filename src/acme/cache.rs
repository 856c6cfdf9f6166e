//! The ACME cache folder (`AERIE_ACME_CACHE`): the account credentials (`account.json`, with
//! the account's private key), the certificate chain (`cert.pem`) and its key (`key.pem`).
//!
//! Guards against keys other local users can read: the folder is created 0700 and its files
//! 0600 (through `crate::keyfile`); a folder or key file that group or others can reach is
//! refused with a sentence saying which and how to fix it, and nothing is issued meanwhile
//! (issuing into an exposed folder would hand the new key out too).

use std::path::{Path, PathBuf};

pub const ACCOUNT_FILE: &str = "account.json";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// What the cache holds (any part may be missing).
#[derive(Default)]
pub struct Cached {
    pub account: Option<String>,
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder (0700) when missing; refuses one that group or others can enter.
    pub fn prepare(&self) -> Result<(), String> {
        let name = self.dir.display();
        if !self.dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(&self.dir)
                .map_err(|e| format!("AERIE_ACME_CACHE {name}: cannot create: {e}"))?;
        }
        let metadata =
            std::fs::metadata(&self.dir).map_err(|e| format!("AERIE_ACME_CACHE {name}: {e}"))?;
        if !metadata.is_dir() {
            return Err(format!("AERIE_ACME_CACHE {name}: not a folder"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if metadata.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "AERIE_ACME_CACHE {name}: group or others may enter it; run `chmod 700` on it"
                ));
            }
        }
        Ok(())
    }

    /// Reads what is there; a private file that group or others can read is refused.
    pub fn load(&self) -> Result<Cached, String> {
        self.prepare()?;
        Ok(Cached {
            account: self.read(ACCOUNT_FILE, true)?,
            cert_pem: self.read(CERT_FILE, false)?,
            key_pem: self.read(KEY_FILE, true)?,
        })
    }

    fn read(&self, file: &str, private: bool) -> Result<Option<String>, String> {
        let path = self.dir.join(file);
        if !path.exists() {
            return Ok(None);
        }
        if private {
            crate::keyfile::check_private(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn store_account(&self, json: &str) -> Result<(), String> {
        self.write(ACCOUNT_FILE, json)
    }

    /// Writes the key first, then the chain: a reader that sees the new chain also finds its key.
    pub fn store_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        self.write(KEY_FILE, key_pem)?;
        self.write(CERT_FILE, cert_pem)
    }

    fn write(&self, file: &str, contents: &str) -> Result<(), String> {
        self.prepare()?;
        let path = self.dir.join(file);
        crate::keyfile::replace(&path, contents.as_bytes())
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_missing_folder_is_created_private_and_an_open_one_is_refused() {
        let temp = tempfile::tempdir().expect("temp");
        let cache = Cache::new(&temp.path().join("acme"));
        cache.prepare().expect("created");
        let mode = std::fs::metadata(cache.dir())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        cache.store_certificate("chain", "key").expect("stored");
        let key_mode = std::fs::metadata(cache.dir().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let refused = cache.load().err().expect("refused");
        assert!(refused.contains("chmod 700"), "{refused}");
    }
}
