//! Account fields: usernames, emails, passwords, bios and avatar URLs.

use secrecy::{ExposeSecret, SecretString};

use super::Invalid;
use super::text::{Lines, check};

/// 1–32 ASCII letters, digits, `_`, `-` or `.`, not dots alone. ASCII only, so look-alike
/// Unicode names (Cyrillic "ЬоЬ", fullwidth "ｂｏｂ") cannot impersonate someone; not dots
/// alone, so a name is never a path segment (`/api/profiles/..` would climb the URL, and a
/// proxy or log reader that normalises paths would see another route). Unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(value: String) -> Result<Self, Invalid> {
        check(
            &value,
            1,
            32,
            Lines::Single,
            "can't be blank",
            "is too long (maximum is 32 characters)",
        )?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if !value.chars().all(allowed) {
            return Err(Invalid(
                "may only contain letters, digits, '_', '-' and '.'",
            ));
        }
        if value.chars().all(|c| c == '.') {
            return Err(Invalid("must contain a letter, digit, '_' or '-'"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and lookups use.
    pub fn key(&self) -> String {
        username_key(&self.0)
    }
}

/// The lookup key for a username taken from a path, whether or not it is valid.
pub fn username_key(value: &str) -> String {
    value.to_ascii_lowercase()
}

/// An email address: one `@`, a non-empty local part, a dotted domain, at most 254
/// characters, no whitespace. Unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(value: String) -> Result<Self, Invalid> {
        check(
            &value,
            1,
            254,
            Lines::Single,
            "can't be blank",
            "is too long (maximum is 254 characters)",
        )?;
        let Some((local, domain)) = value.split_once('@') else {
            return Err(Invalid("is invalid"));
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-'));
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '@' | '<' | '>' | '"' | ','));
        if !(domain_ok && local_ok) {
            return Err(Invalid("is invalid"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and login use.
    pub fn key(&self) -> String {
        email_key(&self.0)
    }
}

/// The lookup key for an email given at login, whether or not it is valid.
pub fn email_key(value: &str) -> String {
    value.to_lowercase()
}

/// Password length bounds, in characters. 12 is above ASVS's minimum of 8; 128 accepts every
/// passphrase a manager generates while keeping a 1 MB "password" from reaching argon2.
const PASSWORD_MIN: usize = 12;
const PASSWORD_MAX: usize = 128;

/// A password that passed the policy for a *new* password: length and strength, judged with
/// the account's own username and email as known words. No composition rules, no trimming,
/// no case folding: it is hashed exactly as sent.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(value: SecretString, min_score: u8, related: &[&str]) -> Result<Self, Invalid> {
        let text = value.expose_secret();
        check(
            text,
            PASSWORD_MIN,
            PASSWORD_MAX,
            Lines::Single,
            "is too short (minimum is 12 characters)",
            "is too long (maximum is 128 characters)",
        )?;
        // Before zxcvbn: the list is the cheaper check, and its answer is the clearer one.
        if super::is_common_password(text) {
            return Err(Invalid(
                "is on a list of passwords leaked in data breaches, which attackers try first: \
                 choose a longer passphrase of unrelated words, or let a password manager \
                 generate one",
            ));
        }
        let score = zxcvbn::zxcvbn(text, related).score() as u8;
        if score < min_score {
            return Err(Invalid(
                "is too easy to guess: use a longer passphrase or a password manager",
            ));
        }
        Ok(Self(value))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// Whether a password offered at login could ever have been accepted. A longer one is
/// rejected before hashing, so nobody can make the server hash megabytes.
pub fn password_within_limits(value: &SecretString) -> bool {
    value.expose_secret().chars().take(PASSWORD_MAX + 1).count() <= PASSWORD_MAX
}

/// Free text about a user; plain text, escaped by whoever renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bio(String);

impl Bio {
    pub fn parse(value: String) -> Result<Self, Invalid> {
        check(
            &value,
            0,
            1000,
            Lines::Multi,
            "can't be blank",
            "is too long (maximum is 1000 characters)",
        )?;
        Ok(Self(value))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An avatar URL: `https://` (also `http://` in development), with a host, at most 2048
/// characters. Stored as text and never fetched by the server (no SSRF surface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl(String);

impl ImageUrl {
    pub fn parse(value: String, allow_http: bool) -> Result<Self, Invalid> {
        check(
            &value,
            1,
            2048,
            Lines::Single,
            "can't be blank",
            "is too long (maximum is 2048 characters)",
        )?;
        let url = url::Url::parse(&value).map_err(|_| Invalid("must be an https:// URL"))?;
        let scheme_ok = url.scheme() == "https" || (allow_http && url.scheme() == "http");
        if !scheme_ok
            || url.host_str().is_none_or(str::is_empty)
            || value.contains(char::is_whitespace)
        {
            return Err(Invalid("must be an https:// URL"));
        }
        Ok(Self(value))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usernames_reject_lookalikes_and_markup() {
        for bad in [
            "",
            "ЬоЬ",
            "ｂｏｂ",
            "a b",
            "<script>",
            "x\n",
            &"a".repeat(33),
        ] {
            assert!(Username::parse(bad.into()).is_err(), "{bad:?}");
        }
        assert_eq!(
            Username::parse("Bob_1.x-y".into()).map(|u| u.key()),
            Ok("bob_1.x-y".into())
        );
    }

    #[test]
    fn path_traversal_usernames_of_dots_alone_are_refused() {
        for path_like in [".", "..", "...", &".".repeat(32)] {
            assert!(Username::parse(path_like.into()).is_err(), "{path_like:?}");
        }
        for dotted in [".bob", "bob.", "..a", "a..b", "_.", "-.."] {
            assert!(Username::parse(dotted.into()).is_ok(), "{dotted:?}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        for bad in [
            "",
            "bob",
            "bob@",
            "@x.io",
            "bob@x",
            "bob@x..io",
            "bob @x.io",
            "bob@example.com ",
        ] {
            assert!(Email::parse(bad.into()).is_err(), "{bad:?}");
        }
        assert_eq!(
            Email::parse("Bob@Example.com".into()).map(|e| e.key()),
            Ok("bob@example.com".into())
        );
    }

    #[test]
    fn breached_passwords_are_refused_even_when_zxcvbn_rates_them_strong() {
        let breached = "Yfdbufnjh10305070";
        assert!(
            zxcvbn::zxcvbn(breached, &[]).score() as u8 >= 3,
            "zxcvbn alone would accept it"
        );
        let refused = NewPassword::parse(breached.into(), 3, &[]).err();
        assert!(refused.is_some_and(|Invalid(message)| message.contains("data breaches")));
    }

    #[test]
    fn common_and_short_passwords_are_refused() {
        for weak in [
            "password123",
            "qwertyuiop12",
            "Password1!",
            "12345678",
            "passwordpassword",
        ] {
            assert!(NewPassword::parse(weak.into(), 3, &[]).is_err(), "{weak}");
        }
        let with_name = NewPassword::parse(
            "jacob.smith.1990".into(),
            3,
            &["jacob.smith", "jacob.smith@example.com"],
        );
        assert!(with_name.is_err());
        assert!(NewPassword::parse("correct horse battery staple 42".into(), 3, &[]).is_ok());
    }

    #[test]
    fn passwords_up_to_128_characters_are_accepted_and_longer_refused() {
        let long = "Tr0ub4dor&3-horse-".repeat(8);
        let exact: String = long.chars().take(128).collect();
        assert!(NewPassword::parse(exact.into(), 3, &[]).is_ok());
        let over: String = long.chars().take(129).collect();
        assert!(NewPassword::parse(over.clone().into(), 3, &[]).is_err());
        assert!(!password_within_limits(&over.into()));
    }

    #[test]
    fn image_urls_must_be_https() {
        assert!(ImageUrl::parse("https://cdn.example.com/a.png".into(), false).is_ok());
        assert!(ImageUrl::parse("http://cdn.example.com/a.png".into(), false).is_err());
        assert!(ImageUrl::parse("http://cdn.example.com/a.png".into(), true).is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "https://",
            "file:///etc/passwd",
        ] {
            assert!(ImageUrl::parse(bad.into(), true).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn usernames_with_other_characters_are_refused(name in ".{0,40}") {
            let valid = !name.is_empty() && name.chars().count() <= 32
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && !name.chars().all(|c| c == '.');
            prop_assert_eq!(Username::parse(name).is_ok(), valid);
        }

        #[test]
        fn path_like_usernames_of_dots_alone_are_refused(name in "\\.{1,32}") {
            prop_assert!(Username::parse(name).is_err());
        }
    }
}
