//! Automatic certificates over ACME (RFC 8555): with `AERIE_ACME_DOMAINS` and
//! `AERIE_ACME_CONTACT`, the TLS listener's certificate is obtained from the CA and renewed
//! two thirds into its lifetime, in the running listener, without a restart.
//!
//! Parts: [`resolver`] (what the TLS listener serves: the certificate, or a TLS-ALPN-01
//! answer), [`issue`] (one order with instant-acme), [`cache`] (the account and certificate
//! on disk, 0700/0600), [`manager`] (the loop: load, renew when due, retry with jittered
//! backoff, record events), [`schedule`] (the arithmetic), [`client`] (HTTP for instant-acme).
//!
//! Guards against: plain HTTP or a made-up certificate before the first issuance (handshakes
//! are refused and `/readyz` is not ready); a failure going unnoticed (a log line, an audit
//! event `certificate_renewal_failed` that raises an alert, and the expiry as a metric);
//! a crash loop or hammering the CA (the server keeps running; attempts back off to an hour).

pub mod cache;
pub mod certificate;
mod client;
pub mod error;
pub mod issue;
pub mod manager;
pub mod resolver;
pub mod schedule;
pub mod shared;
pub mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

pub use self::resolver::{ACME_TLS_ALPN, CertResolver};

/// Let's Encrypt's production directory: the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`AERIE_ACME_DIRECTORY=letsencrypt-staging`).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// What the operator configured.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names the certificate covers, lower case, no wildcards.
    pub domains: Vec<String>,
    /// A `mailto:` contact for the account.
    pub contact: String,
    /// The directory URL (https).
    pub directory: String,
    /// Where the account and certificates are kept.
    pub cache: PathBuf,
    /// A PEM root certificate trusted for the directory's HTTPS besides the public roots
    /// (a private CA, or a test CA).
    pub directory_root: Option<PathBuf>,
    /// How often the loop wakes to check the certificate (and, with several instances, to
    /// pick up one another instance renewed).
    pub check_interval: Duration,
}

/// HTTP-01 answers (token → key authorization) served by the redirect listener.
#[derive(Debug, Clone, Default)]
pub struct Http01Answers(Arc<RwLock<HashMap<String, String>>>);

impl Http01Answers {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        if let Ok(mut answers) = self.0.write() {
            answers.insert(token.to_owned(), key_authorization.to_owned());
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut answers) = self.0.write() {
            answers.remove(token);
        }
    }

    pub fn answer(&self, token: &str) -> Option<String> {
        self.0.read().ok()?.get(token).cloned()
    }
}

/// The ACME state shared by the TLS listener, the redirect listener, `/readyz` and the
/// manager. Cheap to clone.
#[derive(Clone)]
pub struct Acme {
    pub settings: Arc<AcmeSettings>,
    pub resolver: Arc<CertResolver>,
    pub http01: Http01Answers,
    /// Whether the redirect listener runs (and can answer HTTP-01).
    pub http01_available: bool,
    /// The served certificate's notAfter (Unix seconds), 0 before the first.
    expiry: Arc<AtomicI64>,
}

impl Acme {
    pub fn new(settings: AcmeSettings, http01_available: bool) -> Self {
        Self {
            settings: Arc::new(settings),
            resolver: Arc::new(CertResolver::default()),
            http01: Http01Answers::default(),
            http01_available,
            expiry: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Whether a certificate is being served (readiness).
    pub fn has_certificate(&self) -> bool {
        self.resolver.has_certificate()
    }

    /// The served certificate's notAfter (Unix seconds).
    pub fn expiry(&self) -> Option<i64> {
        Some(self.expiry.load(Ordering::SeqCst)).filter(|expiry| *expiry > 0)
    }

    fn set_expiry(&self, not_after: i64) {
        self.expiry.store(not_after, Ordering::SeqCst);
    }

    /// The TLS listener's configuration: the resolver's certificate, and ALPN offering
    /// `acme-tls/1` besides HTTP/2 and HTTP/1.1 (a hello asking for it gets the challenge
    /// answer and nothing else).
    pub fn rustls_config(&self) -> RustlsConfig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
        RustlsConfig::from_config(Arc::new(config))
    }
}
