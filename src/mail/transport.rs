//! Where a rendered mail goes: an SMTP relay over TLS (lettre, rustls), or in development
//! without one an `.eml` file under `<data dir>/outbox/`.
//!
//! Guards against a downgraded relay connection: `smtp://` requires STARTTLS (a relay that
//! does not offer it, or a certificate that does not verify, fails the attempt rather than
//! sending credentials and links in clear).

use std::path::PathBuf;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::{Delivery, Rendered, SmtpSecurity, SmtpSettings};

/// Why a mail could not be built or delivered. Carries no address or token.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail settings: {0}")]
    Settings(String),
    #[error("the recipient or sender address is not a valid mailbox")]
    Address,
    #[error("building the message: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("writing the .eml file: {0}")]
    File(std::io::Error),
    #[error("mail is not configured (no AERIE_SMTP_URL)")]
    Off,
}

/// Delivers rendered mails.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
    Off,
}

impl Transport {
    pub fn from_settings(delivery: &Delivery) -> Result<Self, MailError> {
        Ok(match delivery {
            Delivery::Smtp(smtp) => Transport::Smtp(smtp_transport(smtp)?),
            Delivery::Files(dir) => Transport::Files(dir.clone()),
            Delivery::Off => Transport::Off,
        })
    }

    /// Sends one mail. Answers what to log about where it went (a file path, or the relay's
    /// reply code), never the body.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        mail: &Rendered,
        name: &str,
    ) -> Result<String, MailError> {
        let message = build(from, to, mail)?;
        match self {
            Transport::Smtp(smtp) => {
                let reply = smtp
                    .send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                Ok(format!("relay answered {}", reply.code()))
            }
            Transport::Files(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(MailError::File)?;
                let path = dir.join(format!("{name}.eml"));
                let partial = dir.join(format!(".{name}.eml.partial"));
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(MailError::File)?;
                tokio::fs::rename(&partial, &path)
                    .await
                    .map_err(MailError::File)?;
                Ok(path.display().to_string())
            }
            Transport::Off => Err(MailError::Off),
        }
    }

    /// Opens a connection to the relay and says whether it greets and accepts us (for
    /// `aerie mail test`).
    pub async fn check(&self) -> Result<(), MailError> {
        match self {
            Transport::Smtp(smtp) => match smtp.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(MailError::Smtp("the relay did not answer NOOP".into())),
                Err(e) => Err(MailError::Smtp(e.to_string())),
            },
            Transport::Files(_) => Ok(()),
            Transport::Off => Err(MailError::Off),
        }
    }
}

fn build(from: &str, to: &str, mail: &Rendered) -> Result<Message, MailError> {
    let from: Mailbox = from.parse().map_err(|_| MailError::Address)?;
    let to: Mailbox = to.parse().map_err(|_| MailError::Address)?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, &mail.text))
                .singlepart(part(ContentType::TEXT_HTML, &mail.html)),
        )
        .map_err(|e| MailError::Build(e.to_string()))
}

/// One body part, sent as plain 7-bit text when it is ASCII with lines of at most 998
/// characters (the templates and every value they take are ASCII), so a link reads in the
/// `.eml` file as it will in the mail client; anything else gets the encoding lettre picks.
/// (lettre itself would choose quoted-printable for any line over 76 characters.)
fn part(content_type: ContentType, text: &str) -> SinglePart {
    let crlf = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n");
    let seven_bit =
        crlf.is_ascii() && !crlf.contains('\0') && crlf.split("\r\n").all(|line| line.len() <= 998);
    let body = if seven_bit {
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    };
    SinglePart::builder().header(content_type).body(body)
}

fn smtp_transport(smtp: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let mut tls = TlsParameters::builder(smtp.host.clone());
    if let Some(file) = &smtp.ca_file {
        let pem = std::fs::read(file).map_err(|e| {
            MailError::Settings(format!("AERIE_SMTP_CA_FILE {}: {e}", file.display()))
        })?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| MailError::Settings(format!("AERIE_SMTP_CA_FILE: {e}")))?;
        tls = tls.add_root_certificate(certificate);
    }
    let tls = tls
        .build_rustls()
        .map_err(|e| MailError::Settings(format!("AERIE_SMTP_URL: {e}")))?;
    let tls = match smtp.security {
        SmtpSecurity::StartTls => Tls::Required(tls),
        SmtpSecurity::Wrapper => Tls::Wrapper(tls),
        SmtpSecurity::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}
