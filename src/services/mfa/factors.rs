//! The second factors themselves, as pure functions: TOTP secrets and codes (RFC 6238 through
//! `totp-rs`), recovery codes, login challenges and the client fingerprint a challenge is
//! bound to. No storage, no clock of their own: callers pass the time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::clock::UnixMillis;
use crate::request_context::RequestContext;

/// RFC 6238's recommended values, which every authenticator app supports.
const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;
/// One step either side: a phone clock a little off, a code typed as it changed.
const SKEW_STEPS: u16 = 1;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Shown in authenticator apps beside the account name.
const ISSUER: &str = "Aerie";

/// How many recovery codes an enrolment hands out.
pub const RECOVERY_CODES: usize = 10;
/// 80 random bits per recovery code: 16 base32 characters, shown in groups of four.
const RECOVERY_CODE_BYTES: usize = 10;

/// A new random TOTP secret.
pub fn new_secret() -> Vec<u8> {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    bytes.to_vec()
}

/// The TOTP of `secret` for `account`, with Aerie's parameters; `None` if the secret is
/// not one (a stored secret that opened but is too short).
fn totp(secret: &[u8], account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .ok()
}

/// What an authenticator app needs to enrol: the base32 secret and the `otpauth://` URI.
pub fn enrolment(secret: &[u8], account: &str) -> Option<(String, String)> {
    let totp = totp(secret, account)?;
    let uri = totp.to_url().ok()?;
    Some((Secret::from(secret.to_vec()).to_base32(), uri))
}

/// The time step a 6-digit `code` is valid for at `now` (the current step, or one either
/// side), or `None`. Whether that step was already used is the caller's check.
pub fn matched_step(secret: &[u8], code: &str, now: UnixMillis) -> Option<i64> {
    if !is_totp_code(code) {
        return None;
    }
    let seconds = u64::try_from(now.div_euclid(1000)).ok()?;
    let step = totp(secret, "")?.check(code, seconds)?;
    i64::try_from(step).ok()
}

/// Six ASCII digits: what a TOTP code looks like. Anything else is tried as a recovery code.
pub fn is_totp_code(code: &str) -> bool {
    code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Ten new recovery codes, as shown to the user (`ABCD-EFGH-IJKL-MNOP`).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes: [u8; RECOVERY_CODE_BYTES] = rand::random();
            let plain = Secret::from(bytes.to_vec()).to_base32();
            plain
                .as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What a recovery code is digested as: case, spaces and dashes do not matter, so a code
/// copied with or without its grouping works. Stored by its keyed digest
/// (`FieldKeys::recovery_code_digest`).
pub fn normalized_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The unkeyed digest recovery codes issued before the keyring were stored by; still
/// accepted so that upgrading does not void codes users printed.
pub fn legacy_recovery_code_hash(normalized: &str) -> String {
    digest(normalized)
}

/// A new login challenge: 256 random bits, URL-safe.
pub fn new_challenge() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What a challenge is stored and looked up by: a database reader cannot answer one.
pub fn challenge_hash(challenge: &str) -> String {
    digest(challenge)
}

/// The client a challenge is bound to: its address and user agent, digested. A challenge
/// stolen from the page (a log, an extension) is refused from another client.
pub fn client_fingerprint(request: &RequestContext) -> String {
    let ip = request.client.ip.as_deref().unwrap_or("");
    let agent = request.client.user_agent.as_deref().unwrap_or("");
    digest(&format!("{ip}\n{agent}"))
}

fn digest(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to six digits.
    #[test]
    fn codes_follow_rfc_6238() {
        let secret = b"12345678901234567890";
        for (seconds, code) in [
            (59_i64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
        ] {
            let step = matched_step(secret, code, seconds * 1000).expect("valid");
            assert_eq!(step, seconds / 30, "{seconds}");
        }
        assert!(
            matched_step(secret, "287082", 59_000 + 60_000).is_none(),
            "two steps late"
        );
        assert_eq!(
            matched_step(secret, "287082", 59_000 + 30_000),
            Some(1),
            "one step late is accepted"
        );
        assert!(matched_step(secret, "28708", 59_000).is_none());
        assert!(matched_step(secret, "2870821", 59_000).is_none());
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalize() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = codes.first().expect("a code");
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(
            normalized_recovery_code(code),
            normalized_recovery_code(&code.replace('-', "").to_lowercase())
        );
        assert!(!is_totp_code(code));
    }

    /// Only six ASCII digits are tried as a TOTP code: six letters, or more or fewer digits,
    /// are tried as a recovery code instead.
    #[test]
    fn only_six_ascii_digits_read_as_a_totp_code() {
        assert!(is_totp_code("012345"));
        for other in ["ABCDEF", "01234", "0123456", "01234a", "０１２３４５"] {
            assert!(!is_totp_code(other), "{other}");
        }
    }

    #[test]
    fn enrolment_gives_a_base32_secret_and_an_otpauth_uri() {
        let secret = new_secret();
        let (base32, uri) = enrolment(&secret, "bob").expect("enrolment");
        assert!(uri.starts_with("otpauth://totp/Aerie:bob?"), "{uri}");
        assert!(uri.contains(&format!("secret={base32}")), "{uri}");
    }
}
