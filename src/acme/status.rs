//! What `aerie doctor` says about ACME: the cached certificate's names, expiry and renewal
//! date, read from the cache folder (no database, no network, no key contents), and whether
//! the folder is private.

use super::AcmeSettings;
use super::cache::CERT_FILE;
use super::certificate::Leaf;
use super::schedule::renewal_due;

/// One line for the operator.
pub fn status_line(settings: &AcmeSettings, now_secs: i64) -> String {
    let cert = settings.cache.join(CERT_FILE);
    let head = format!(
        "ACME: {} from {}",
        settings.domains.join(", "),
        settings.directory
    );
    let Ok(pem) = std::fs::read_to_string(&cert) else {
        return format!(
            "{head}: no certificate cached yet in {} (the server orders one when it starts)",
            settings.cache.display()
        );
    };
    match Leaf::from_pem_chain(&pem) {
        Ok(leaf) => {
            let date = |secs: i64| crate::clock::rfc3339(secs * 1000);
            let days_left = (leaf.not_after - now_secs) / 86_400;
            format!(
                "{head}: certificate for {} expires {} ({days_left} days), renewal due {}",
                leaf.names.join(", "),
                date(leaf.not_after),
                date(renewal_due(leaf.not_before, leaf.not_after)),
            )
        }
        Err(error) => format!("{head}: {}: {error}", cert.display()),
    }
}

/// Why the cache folder is refused, if it is: open to group or others (it is created 0700
/// when missing, so a missing one is fine).
pub fn cache_problem(settings: &AcmeSettings) -> Option<String> {
    let metadata = std::fs::metadata(&settings.cache).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Some(format!(
                "{}: group or others may enter it; run `chmod 700` on it (the server refuses to order into it)",
                settings.cache.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    None
}
