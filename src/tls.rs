//! TLS with rustls (ring provider, TLS 1.2 and 1.3 with rustls' safe cipher suites, ALPN h2
//! and http/1.1), certificate hot reload, and development certificates.
//!
//! Guards against: downgrade to old protocols or weak suites (rustls implements neither),
//! an expired certificate forcing a restart (files are re-read when they change or on
//! SIGHUP), a bad new certificate taking the site down (a file that does not load is
//! logged and the old certificate keeps serving), and a private key other local users can
//! read (refused at start and on reload, as the signing and audit keys are: `crate::keyfile`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use ipnet::IpNet;
use tokio::sync::watch;

/// Where the certificate chain and private key live (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How clients reach this server over HTTPS: directly (the certificate files) or through
/// proxies that terminate TLS, and what `Strict-Transport-Security` then says.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// When set, the main listener speaks HTTPS with this certificate and key.
    pub files: Option<TlsFiles>,
    /// When set, the main listener speaks HTTPS with a certificate obtained over ACME.
    pub acme: Option<crate::acme::AcmeSettings>,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    /// TLS ends at a proxy in these networks; plain HTTP is then acceptable in production, and
    /// served to peers in these networks only.
    pub terminated_by_proxy: Vec<IpNet>,
    /// Add `preload` to HSTS (only once the domain is ready for the browsers' preload lists).
    pub hsts_preload: bool,
}

impl TlsSettings {
    /// Whether clients reach this server over HTTPS (directly, or through a TLS proxy), so
    /// responses carry `Strict-Transport-Security`.
    pub fn sends_hsts(&self) -> bool {
        self.files.is_some() || self.acme.is_some() || !self.terminated_by_proxy.is_empty()
    }

    /// The only peers the main listener serves plain HTTP to, when TLS ends at a proxy: the
    /// proxy's networks. `None`: no such restriction (the listener speaks HTTPS itself, or
    /// this is a development server without a proxy).
    pub fn plain_http_peers(&self) -> Option<&[IpNet]> {
        (self.files.is_none() && self.acme.is_none() && !self.terminated_by_proxy.is_empty())
            .then_some(self.terminated_by_proxy.as_slice())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The key file is missing or readable by group or others.
    #[error("AERIE_TLS_KEY: {0}")]
    KeyFile(String),
    /// The certificate or key does not parse, or they do not match.
    #[error("AERIE_TLS_CERT/AERIE_TLS_KEY: {0}")]
    Pem(String),
}

/// Loads the certificate and key once, at start: a broken pair or an exposed key stops the
/// server here.
pub async fn load(files: &TlsFiles) -> Result<RustlsConfig, TlsError> {
    install_ring_provider();
    check_key(files)?;
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| TlsError::Pem(e.to_string()))
}

/// Re-reads the certificate and key into the running configuration, refusing an exposed key.
async fn reload(config: &RustlsConfig, files: &TlsFiles) -> Result<(), TlsError> {
    check_key(files)?;
    config
        .reload_from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| TlsError::Pem(e.to_string()))
}

/// The private key must be readable by its owner only: one that group or others can read
/// may already have leaked, so it is refused rather than served.
fn check_key(files: &TlsFiles) -> Result<(), TlsError> {
    crate::keyfile::check_private(&files.key)
        .map_err(|e| TlsError::KeyFile(format!("{}: {e}", files.key.display())))
}

/// rustls needs one process-wide crypto provider; we use ring (no C toolchain, no OpenSSL).
pub fn install_ring_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn modified(files: &TlsFiles) -> Option<(SystemTime, SystemTime)> {
    let cert = std::fs::metadata(&files.cert)
        .and_then(|m| m.modified())
        .ok()?;
    let key = std::fs::metadata(&files.key)
        .and_then(|m| m.modified())
        .ok()?;
    Some((cert, key))
}

/// Re-reads the files when their modification time changes (checked every `interval`) or
/// when the process receives SIGHUP, until `stop` turns true.
pub async fn watch_and_reload(
    config: RustlsConfig,
    files: TlsFiles,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = modified(&files);
    let mut ticker = tokio::time::interval(interval);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup_signal = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup_signal = std::future::pending::<Option<()>>();
        let forced = tokio::select! {
            _ = ticker.tick() => false,
            _ = hangup_signal => true,
            _ = stop.changed() => return,
        };
        let now = modified(&files);
        if !forced && now == last {
            continue;
        }
        last = now;
        match reload(&config, &files).await {
            Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, cert = %files.cert.display(), "TLS certificate reload failed; still serving the previous certificate")
            }
        }
    }
}

/// A local certificate authority and a `localhost` certificate it signed, for development.
pub struct DevCertificate {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generates a fresh CA (valid 1 year) and a certificate for localhost, 127.0.0.1 and ::1.
pub fn generate_dev_certificate() -> Result<DevCertificate, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SerialNumber,
    };

    // RFC 5280: serial numbers are positive; strict validators (sslyze, browsers) insist.
    let serial = || {
        let mut bytes: [u8; 16] = rand::random();
        bytes[0] = (bytes[0] & 0x7f) | 0x01;
        Some(SerialNumber::from_slice(&bytes))
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Aerie development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let (not_before, not_after) = validity(365);
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    ca_params.serial_number = serial();
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (not_before, not_after) = validity(90);
    leaf_params.not_before = not_before;
    leaf_params.not_after = not_after;
    leaf_params.serial_number = serial();
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;
    Ok(DevCertificate {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// From yesterday (tolerates clock skew) to `days` from now.
fn validity(days: i64) -> (time::OffsetDateTime, time::OffsetDateTime) {
    use chrono::Datelike;
    let ymd = |date: chrono::NaiveDate| {
        let month = u8::try_from(date.month()).unwrap_or(1);
        let day = u8::try_from(date.day()).unwrap_or(1);
        rcgen::date_time_ymd(date.year(), month, day)
    };
    let today = chrono::Utc::now().date_naive();
    (
        ymd(today - chrono::Days::new(1)),
        ymd(today + chrono::Days::new(days.unsigned_abs())),
    )
}

/// Writes a development certificate into `dir`: `ca.pem`, `cert.pem` and `key.pem` (0600).
pub fn write_dev_certificate(dir: &Path) -> std::io::Result<TlsFiles> {
    let generated = generate_dev_certificate().map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ca.pem"), &generated.ca_pem)?;
    std::fs::write(dir.join("cert.pem"), &generated.cert_pem)?;
    crate::keyfile::create(&dir.join("key.pem"), generated.key_pem.as_bytes())?;
    Ok(TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    })
}
