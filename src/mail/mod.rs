//! Mail: the outbox sender, its transports and the templates mails are rendered from.
//!
//! Guards against three things. A request waiting on a mail server: requests only write to
//! the outbox (`store::mail`), and [`sender::Sender`] delivers in the background with
//! retries and exponential backoff, so a slow or absent relay delays no one and loses
//! nothing. Reset-link poisoning: links are built from `AERIE_APP_URL` alone, never from a
//! request's `Host`. Mail as an injection channel: subjects are fixed per template, user
//! text reaches only bodies, and the HTML body is rendered with auto-escaping.

pub mod sender;
pub mod templates;
pub mod transport;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use sender::{MailStats, Sender};
pub use templates::{Kind, Rendered};
pub use transport::{MailError, Transport};

/// How mail leaves the server.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Over SMTP (`AERIE_SMTP_URL`).
    Smtp(SmtpSettings),
    /// Development without SMTP: each mail becomes an `.eml` file in this folder.
    Files(PathBuf),
    /// Production without SMTP: mail features are off.
    Off,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS, required (a relay that does not offer it is refused).
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
    /// `smtp://…?tls=none`: clear text, development only (a local mail catcher).
    None,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Extra trusted root certificates (PEM), for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// The mail section of the configuration.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub delivery: Delivery,
    /// `AERIE_MAIL_FROM`: the sender mailbox (`Aerie <no-reply@example.com>`).
    pub from: String,
    /// `AERIE_APP_URL`: the front end whose pages the links open, without a trailing slash.
    pub app_url: String,
    /// The longest wait between two attempts at one mail.
    pub retry_max: Duration,
    /// The first retry's wait; each later one doubles it.
    pub retry_base: Duration,
    /// Mail failing for longer than this raises the `mail_delivery_failing` alert.
    pub alert_after: Duration,
    /// `AERIE_REQUIRE_VERIFIED_EMAIL`: unverified accounts cannot write.
    pub require_verified_email: bool,
}

impl MailSettings {
    /// Whether mails can be delivered at all.
    pub fn enabled(&self) -> bool {
        !matches!(self.delivery, Delivery::Off)
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            delivery: Delivery::Off,
            from: "Aerie <no-reply@localhost>".into(),
            app_url: "http://localhost:3000".into(),
            retry_max: Duration::from_secs(600),
            retry_base: Duration::from_secs(1),
            alert_after: Duration::from_secs(900),
            require_verified_email: false,
        }
    }
}

/// `aerie mail test --to ADDRESS`: connects to the relay, sends one test mail now (not
/// through the outbox) and answers what the relay said (or where the `.eml` file went).
pub async fn send_test(settings: &MailSettings, to: &str) -> Result<String, MailError> {
    let transport = Transport::from_settings(&settings.delivery)?;
    transport.check().await?;
    let templates = templates::Templates::new(&settings.app_url)
        .map_err(|e| MailError::Settings(e.to_string()))?;
    let rendered = templates
        .render(Kind::Test, &serde_json::json!({}))
        .map_err(|e| MailError::Build(e.to_string()))?;
    let name = format!(
        "test-{}",
        crate::clock::Clock::now(&crate::clock::SystemClock)
    );
    transport.send(&settings.from, to, &rendered, &name).await
}
