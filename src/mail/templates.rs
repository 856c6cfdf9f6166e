//! The mails Aerie sends, as templates: a fixed subject, a plain-text body and an HTML body.
//!
//! Guards against markup and header injection: the subject is fixed text per kind (no user
//! value reaches a header but the recipient, which the domain has already parsed), and the
//! HTML bodies are rendered by minijinja with auto-escaping on (`.html` names), so a
//! username such as `<img src=x onerror=…>` arrives as text.

use minijinja::{Environment, Value, context};

/// Every kind of mail: its template and, for the ones that carry a token, the front-end
/// page its link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PasswordReset,
    VerifyEmail,
    EmailChangeConfirm,
    EmailChangeNotice,
    PasswordChanged,
    MfaEnabled,
    MfaDisabled,
    NewDeviceLogin,
    SessionsRevoked,
    Test,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::PasswordReset,
        Kind::VerifyEmail,
        Kind::EmailChangeConfirm,
        Kind::EmailChangeNotice,
        Kind::PasswordChanged,
        Kind::MfaEnabled,
        Kind::MfaDisabled,
        Kind::NewDeviceLogin,
        Kind::SessionsRevoked,
        Kind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PasswordReset => "password_reset",
            Kind::VerifyEmail => "verify_email",
            Kind::EmailChangeConfirm => "email_change_confirm",
            Kind::EmailChangeNotice => "email_change_notice",
            Kind::PasswordChanged => "password_changed",
            Kind::MfaEnabled => "mfa_enabled",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::NewDeviceLogin => "new_device_login",
            Kind::SessionsRevoked => "sessions_revoked",
            Kind::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The front-end page a link of this kind opens (the token goes in the fragment, which
    /// browsers send to no server and leave out of `Referer`).
    fn page(self) -> Option<&'static str> {
        match self {
            Kind::PasswordReset => Some("/password-reset"),
            Kind::VerifyEmail => Some("/verify-email"),
            Kind::EmailChangeConfirm => Some("/confirm-email"),
            _ => None,
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Kind::PasswordReset => "Reset your password",
            Kind::VerifyEmail => "Verify your email address",
            Kind::EmailChangeConfirm => "Confirm your new email address",
            Kind::EmailChangeNotice => "A change of your email address was requested",
            Kind::PasswordChanged => "Your password was changed",
            Kind::MfaEnabled => "Two-factor authentication was turned on",
            Kind::MfaDisabled => "Two-factor authentication was turned off",
            Kind::NewDeviceLogin => "New sign-in to your account",
            Kind::SessionsRevoked => "You were signed out by an administrator",
            Kind::Test => "Aerie test mail",
        }
    }

    /// The sentence that says what happened or what the link does.
    fn text(self) -> &'static str {
        match self {
            Kind::PasswordReset => {
                "Someone asked to reset the password of your account. If it was you, open the link below within 30 minutes; it works once. If it was not you, ignore this mail: your password stays as it is."
            }
            Kind::VerifyEmail => {
                "Please confirm that this address belongs to your account by opening the link below."
            }
            Kind::EmailChangeConfirm => {
                "Someone asked to move your account to this address. Open the link below within 30 minutes to confirm; until then your account keeps its old address."
            }
            Kind::EmailChangeNotice => {
                "Someone asked to move your account to another email address. The change happens only when the new address confirms it. If it was not you, change your password now."
            }
            Kind::PasswordChanged => {
                "The password of your account was changed. If it was not you, reset your password now."
            }
            Kind::MfaEnabled => "Two-factor authentication was turned on for your account.",
            Kind::MfaDisabled => {
                "Two-factor authentication was turned off for your account. If it was not you, reset your password now."
            }
            Kind::NewDeviceLogin => {
                "Your account was signed in to from a device it had not used before. If it was not you, reset your password now."
            }
            Kind::SessionsRevoked => {
                "An administrator ended your sessions; sign in again to continue."
            }
            Kind::Test => "This is a test mail from Aerie: the mail settings work.",
        }
    }
}

const TEXT: &str =
    "Hello {{ username }},\n\n{{ text }}\n{% if link %}\n{{ link }}\n{% endif %}\n-- \nAerie\n";
const HTML: &str = "<!doctype html><html><body><p>Hello {{ username }},</p><p>{{ text }}</p>{% if link %}<p><a href=\"{{ link }}\">{{ link }}</a></p>{% endif %}<p>Aerie</p></body></html>";

/// A mail ready for the transport.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: &'static str,
    pub text: String,
    pub html: String,
}

/// Renders mails. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: std::sync::Arc<Environment<'static>>,
    app_url: String,
}

impl Templates {
    pub fn new(app_url: &str) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.add_template("mail.txt", TEXT)?;
        env.add_template("mail.html", HTML)?;
        Ok(Self {
            env: std::sync::Arc::new(env),
            app_url: app_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The link a mail of `kind` carrying `token` opens, from `AERIE_APP_URL` alone.
    pub fn link(&self, kind: Kind, token: &str) -> Option<String> {
        kind.page()
            .map(|page| format!("{}{page}#token={token}", self.app_url))
    }

    /// Renders `kind` with the values it was queued with (`username`, and `token` for the
    /// kinds that carry a link). The link is built here, from `AERIE_APP_URL`.
    pub fn render(
        &self,
        kind: Kind,
        payload: &serde_json::Value,
    ) -> Result<Rendered, minijinja::Error> {
        let username = payload["username"].as_str().unwrap_or("there");
        let link = payload["token"]
            .as_str()
            .and_then(|token| self.link(kind, token));
        let values = context! {
            username => username,
            text => kind.text(),
            link => Value::from(link),
        };
        Ok(Rendered {
            subject: kind.subject(),
            text: self.env.get_template("mail.txt")?.render(&values)?,
            html: self.env.get_template("mail.html")?.render(&values)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_inject_markup_into_the_html_body() {
        let templates = Templates::new("https://app.example/").expect("templates");
        let payload =
            serde_json::json!({"username": "<img src=x onerror=alert(1)>", "token": "abc"});
        let mail = templates
            .render(Kind::PasswordReset, &payload)
            .expect("renders");
        assert!(!mail.html.contains("<img"), "{}", mail.html);
        assert!(mail.html.contains("&lt;img"), "{}", mail.html);
        assert!(
            mail.text
                .contains("https://app.example/password-reset#token=abc")
        );
    }

    #[test]
    fn every_kind_has_a_name_that_parses_back() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
    }
}
