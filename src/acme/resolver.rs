//! The TLS listener's certificate choice under ACME: the issued certificate, swapped in place
//! when a new one arrives (connections already open keep theirs; the next handshake gets the
//! new one), or a TLS-ALPN-01 challenge certificate (RFC 8737) when the CA's validator asks
//! for `acme-tls/1`.
//!
//! Guards against: serving anything before a certificate exists (the handshake is refused
//! with a fatal alert, never answered in plain HTTP or with a made-up certificate), and a
//! challenge certificate reaching an ordinary client (only a hello that offers `acme-tls/1`
//! alone, for a name with a pending challenge, gets one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// How often (at most) a refused handshake is logged: once a minute, not once per client.
const REFUSAL_LOG_INTERVAL_SECS: i64 = 60;

#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    last_refusal_log: AtomicI64,
}

impl CertResolver {
    /// Serves `key` from the next handshake on.
    pub fn install(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(key);
        }
    }

    pub fn has_certificate(&self) -> bool {
        self.current.read().is_ok_and(|current| current.is_some())
    }

    /// Answers TLS-ALPN-01 validation for `domain` with `key` until [`Self::clear_challenge`].
    pub fn set_challenge(&self, domain: &str, key: Arc<CertifiedKey>) {
        if let Ok(mut challenges) = self.challenges.write() {
            challenges.insert(domain.to_ascii_lowercase(), key);
        }
    }

    pub fn clear_challenge(&self, domain: &str) {
        if let Ok(mut challenges) = self.challenges.write() {
            challenges.remove(&domain.to_ascii_lowercase());
        }
    }

    fn log_refusal(&self) {
        let now = chrono::Utc::now().timestamp();
        let last = self.last_refusal_log.load(Ordering::Relaxed);
        if now - last >= REFUSAL_LOG_INTERVAL_SECS
            && self
                .last_refusal_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "TLS handshake refused: no certificate has been issued yet (ACME); see the acme log lines for why"
            );
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .ok()
                .and_then(|challenges| challenges.get(&name).cloned());
        }
        let current = self.current.read().ok().and_then(|current| current.clone());
        if current.is_none() {
            self.log_refusal();
        }
        current
    }
}
