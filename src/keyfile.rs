//! Private files: the signing keys, the audit key, the TLS key (checked at start and on each
//! reload) and the SQLite database (it holds password hashes).
//!
//! Guards against secrets readable by other local users: such a file is created with mode
//! 0600 from its first byte (never written first and narrowed afterwards, which leaves a
//! window), is never overwritten, and a key file that group or others can read is refused
//! when loaded, since it may already have leaked.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Why a private file was refused when loaded.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("readable by group or others; run `chmod 600` on it")]
    Exposed,
}

/// Options that create a new file readable and writable by its owner only, and fail when
/// the file already exists.
fn new_private() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Writes a new private file (mode 0600), creating its folder; never overwrites.
pub fn create(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    new_private().open(path)?.write_all(contents)
}

/// Replaces a private file whole: the new contents go to a private temporary file beside
/// it, which is then renamed over it, so a reader sees the old file or the new one.
pub fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = std::path::PathBuf::from(temporary);
    // A leftover from an interrupted replace is ours to discard.
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = new_private().open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

/// Creates an empty private file unless one already exists (the create-new open says so,
/// which also covers a file another process created a moment ago). The caller creates the
/// folder.
pub fn create_empty(path: &Path) -> std::io::Result<()> {
    match new_private().open(path) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => Err(error),
        _ => Ok(()),
    }
}

/// Reads a key file of exactly `N` random bytes; when `generate` (development) and the file
/// is missing, writes a new random one first. A key readable by group or others is refused:
/// it may already have leaked. The error is a sentence for the operator, without the key.
pub fn load_or_generate_random_key<const N: usize>(
    path: &Path,
    generate: bool,
) -> Result<[u8; N], String> {
    match load_or_generate_random_keys::<N>(path, generate)?.as_slice() {
        [key] => Ok(*key),
        _ => Err(format!(
            "must hold exactly {N} random bytes (create it with `head -c {N} /dev/urandom`)"
        )),
    }
}

/// Reads a file of one or more keys of `N` random bytes each, end to end, oldest first (a key
/// ring that only grows: the audit key's); generated with one key like
/// [`load_or_generate_random_key`].
pub fn load_or_generate_random_keys<const N: usize>(
    path: &Path,
    generate: bool,
) -> Result<Vec<[u8; N]>, String> {
    if generate && !path.exists() {
        create(path, &random_key::<N>()).map_err(|e| e.to_string())?;
    }
    check_private(path).map_err(|e| e.to_string())?;
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(N) {
        return Err(format!(
            "must hold {N} random bytes per key (create it with `head -c {N} /dev/urandom`)"
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .filter_map(|chunk| chunk.try_into().ok())
        .collect())
}

/// `N` bytes from the operating system's generator.
pub fn random_key<const N: usize>() -> [u8; N] {
    let mut key = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    key
}

/// Refuses a file that group or others may read (on Unix; elsewhere only that it exists).
pub fn check_private(path: &Path) -> Result<(), PrivateFileError> {
    let metadata = fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(PrivateFileError::Exposed);
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    Ok(())
}

/// The first line of a private file holding a passphrase or password (a trailing newline is
/// not part of it); refused when group or others can read the file, or when it is empty.
pub fn read_secret_line(path: &Path) -> Result<secrecy::SecretString, String> {
    let name = path.display();
    check_private(path).map_err(|e| format!("{name}: {e}"))?;
    let text = fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() || line.contains('\0') {
        return Err(format!("{name}: empty, or holds a NUL byte"));
    }
    Ok(secrecy::SecretString::from(line.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/key");
        create(&path, b"secret").expect("created");
        assert!(check_private(&path).is_ok());
        assert!(create(&path, b"other").is_err(), "never overwrites");
        assert_eq!(fs::read(&path).expect("read"), b"secret");
        create_empty(&path).expect("an existing file is left alone");
        assert_eq!(fs::read(&path).expect("read"), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
            assert!(matches!(
                check_private(&path),
                Err(PrivateFileError::Exposed)
            ));
        }
        assert!(matches!(
            check_private(&dir.path().join("absent")),
            Err(PrivateFileError::Io(_))
        ));
    }

    /// A passphrase or password file gives its first line; one that is empty (or starts
    /// with an empty line) or holds a NUL byte is refused rather than read as an empty or
    /// cut-short secret.
    #[test]
    fn a_secret_file_gives_its_first_line_and_an_empty_one_is_refused() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passphrase");
        create(&path, b"correct horse\nsecond line\n").expect("created");
        let secret = read_secret_line(&path).expect("read");
        assert_eq!(secret.expose_secret(), "correct horse");
        for (name, contents) in [
            ("empty", &b""[..]),
            ("blank first line", b"\nafter"),
            ("nul", b"correct\0horse"),
        ] {
            let path = dir.path().join(name);
            create(&path, contents).expect("created");
            let error = read_secret_line(&path).expect_err(name);
            assert!(
                error.contains("empty, or holds a NUL byte"),
                "{name}: {error}"
            );
        }
    }

    /// A key file cut short or padded (a bad copy, a wrong file) is refused rather than read
    /// as fewer or other keys.
    #[test]
    fn a_key_file_that_is_not_whole_keys_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, length) in [("empty", 0), ("one byte over", 33), ("one short", 31)] {
            let path = dir.path().join(name);
            create(&path, &vec![7; length]).expect("created");
            assert!(
                load_or_generate_random_keys::<32>(&path, false).is_err(),
                "{name}"
            );
        }
        let path = dir.path().join("two keys");
        create(&path, &[7; 64]).expect("created");
        let keys = load_or_generate_random_keys::<32>(&path, false).expect("two whole keys");
        assert_eq!(keys, vec![[7; 32], [7; 32]]);
    }
}
