//! A real SMTP server on loopback for the mail tests: `tests/smtp/server.py` (Python's
//! aiosmtpd, installed by `.ci/run`), speaking STARTTLS with a certificate from a CA the
//! server under test is told to trust (`AERIE_SMTP_CA_FILE`). Each received message lands
//! as an `.eml` file the tests read and follow the links of.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running SMTP server; dropped, it is killed.
pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    maildir: tempfile::TempDir,
    certs: tempfile::TempDir,
}

/// The front end the links point at in these tests.
pub const APP_URL: &str = "https://app.example.test";

/// Whether Python can run the test SMTP server (aiosmtpd installed).
fn aiosmtpd_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl SmtpServer {
    /// Starts the test relay; `None` (the test is skipped, said loudly, as the PostgreSQL and
    /// Redis tests are) when aiosmtpd is not installed, so `cargo test` passes on a bare
    /// machine. CI installs it, and there every mail test runs.
    pub async fn start() -> Option<Self> {
        if !aiosmtpd_available() {
            eprintln!("SKIPPED: the mail tests need Python's aiosmtpd (`pip install aiosmtpd`)");
            return None;
        }
        Some(Self::start_relay().await)
    }

    async fn start_relay() -> Self {
        let certs = tempfile::tempdir().expect("temporary folder");
        aerie::tls::write_dev_certificate(certs.path()).expect("certificate");
        let maildir = tempfile::tempdir().expect("temporary folder");
        let (child, port) = spawn(certs.path(), maildir.path(), 0).await;
        Self {
            child: Some(child),
            port,
            maildir,
            certs,
        }
    }

    /// The settings that send a server's mail here.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AERIE_SMTP_URL", format!("smtp://127.0.0.1:{}", self.port)),
            (
                "AERIE_SMTP_CA_FILE",
                self.certs.path().join("ca.pem").display().to_string(),
            ),
            ("AERIE_APP_URL", APP_URL.to_owned()),
            (
                "AERIE_MAIL_FROM",
                "Aerie <no-reply@example.test>".to_owned(),
            ),
        ]
    }

    /// Kills the server (SIGKILL to the child this harness started): the relay is down.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let (child, _) = spawn(self.certs.path(), self.maildir.path(), self.port).await;
        self.child = Some(child);
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.path())
            .expect("maildir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files.iter().map(|f| Mail::read(f)).collect()
    }

    /// Waits (up to `secs`) until a message to `to` whose subject contains `subject` has
    /// arrived, and answers it.
    pub async fn wait_for(&self, to: &str, subject: &str, secs: u64) -> Mail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(mail) = self
                .mails()
                .into_iter()
                .find(|m| m.to.contains(to) && m.subject.contains(subject))
            {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail to {to} about {subject:?} within {secs} s; received: {:?}",
                self.mails()
                    .iter()
                    .map(|m| (&m.to, &m.subject))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The messages to `to`.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.contains(to))
            .collect()
    }
}

async fn spawn(certs: &Path, maildir: &Path, port: u16) -> (Child, u16) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg("--cert")
        .arg(certs.join("cert.pem"))
        .arg("--key")
        .arg(certs.join("key.pem"))
        .arg("--dir")
        .arg(maildir)
        .arg("--port")
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (the mail tests need `pip install aiosmtpd`; .ci/run installs it)");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the SMTP server starts within 20 s")
        .expect("read its output")
        .expect(
            "the SMTP server says where it listens (is aiosmtpd installed? `pip install aiosmtpd`)",
        );
    let port = line
        .strip_prefix("LISTENING ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected SMTP server output: {line}"));
    (child, port)
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// The message as received, soft line breaks of quoted-printable undone.
    pub raw: String,
}

impl Mail {
    pub fn read(path: &Path) -> Self {
        let raw = std::fs::read_to_string(path).expect("a received message");
        Self::parse(&raw)
    }

    pub fn parse(raw: &str) -> Self {
        let header = |name: &str| {
            raw.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            to: header("To:"),
            subject: header("Subject:"),
            raw: raw.replace("=\r\n", "").replace("=\n", ""),
        }
    }

    /// The token of the link in the mail (`…#token=<43 characters>`), if it has one.
    pub fn token(&self) -> Option<String> {
        let start = self.raw.find("#token=")? + "#token=".len();
        let rest = &self.raw[start..];
        // Quoted-printable writes `=` as `=3D`.
        let rest = rest.strip_prefix("3D").unwrap_or(rest);
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (token.len() == 43).then_some(token)
    }

    /// The link's page (`https://app.example.test/password-reset`).
    pub fn link_page(&self) -> Option<String> {
        let end = self.raw.find("#token=")?;
        let start = self.raw[..end].rfind("https://")?;
        Some(self.raw[start..end].to_owned())
    }
}

impl super::TestApp {
    /// Waits (up to 20 s) for the `.eml` file development writes under `<data dir>/outbox/`
    /// for a mail to `to` whose subject contains `subject`.
    pub async fn outbox_mail(&self, to: &str, subject: &str) -> Mail {
        let outbox = self.data_dir.path().join("outbox");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .map(|p| Mail::read(&p))
                    .find(|m| m.to.contains(to) && m.subject.contains(subject))
            });
            if let Some(mail) = found {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no .eml to {to} about {subject:?} in {outbox:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
