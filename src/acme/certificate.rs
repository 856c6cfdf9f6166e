//! An issued certificate: the chain and key as rustls serves them, and what the schedule and
//! the status need from the leaf (its names, validity and ARI identifier).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

pub struct Issued {
    pub key: Arc<CertifiedKey>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The DNS names the leaf covers, lower case.
    pub names: Vec<String>,
    /// The leaf, for its ACME Renewal Information identifier (RFC 9773).
    pub leaf: CertificateDer<'static>,
}

impl Issued {
    /// Parses a PEM chain (leaf first) and its PEM private key; the sentence on failure names
    /// what is wrong, never the key.
    pub fn parse(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate chain: {e}"))?;
        let leaf = chain.first().cloned().ok_or("certificate chain: empty")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| "certificate key: not a PEM private key".to_owned())?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|_| "certificate key: unsupported key type".to_owned())?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| format!("certificate and key do not match: {e}"))?;
        let leaf_facts = Leaf::parse(leaf.as_ref())?;
        Ok(Self {
            key: Arc::new(certified),
            not_before: leaf_facts.not_before,
            not_after: leaf_facts.not_after,
            names: leaf_facts.names,
            leaf,
        })
    }

    /// Whether the leaf covers every one of `domains`.
    pub fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|domain| self.names.contains(domain))
    }
}

/// What a leaf certificate says about itself: its DNS names and validity (Unix seconds).
pub struct Leaf {
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
}

impl Leaf {
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        let (_, parsed) =
            x509_parser::parse_x509_certificate(der).map_err(|e| format!("certificate: {e}"))?;
        let validity = parsed.validity();
        let names = match parsed.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            names,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The first certificate of a PEM chain.
    pub fn from_pem_chain(pem: &str) -> Result<Self, String> {
        let leaf = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .ok_or("certificate chain: empty")?
            .map_err(|e| format!("certificate chain: {e}"))?;
        Self::parse(leaf.as_ref())
    }
}
