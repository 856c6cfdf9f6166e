//! Several instances on one PostgreSQL database: the account, the certificate and the
//! challenge answers of the order in progress live in the database (sealed, see
//! `store::acme`), so any instance can serve them and only the lock holder orders.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::IssueError;
use crate::clock::Clock;
use crate::store::{AcmeItem, Store};

/// One challenge answer every instance serves while the order is in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PendingChallenge {
    Http01 {
        token: String,
        key_authorization: String,
    },
    TlsAlpn01 {
        domain: String,
        /// SHA-256 of the key authorization (what the challenge certificate carries).
        digest: Vec<u8>,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredCertificate {
    cert_pem: String,
    key_pem: String,
}

pub struct Shared<'a> {
    pub store: &'a Store,
    pub clock: &'a dyn Clock,
    /// How long the other instances take to pick up a published answer (one check
    /// interval, and a second for the read).
    pub propagation: Duration,
}

fn database(error: sqlx::Error) -> IssueError {
    IssueError::Database(format!("shared ACME state: {error}"))
}

impl Shared<'_> {
    async fn read(&self, item: AcmeItem) -> Result<Option<String>, IssueError> {
        let bytes = self.store.acme_state(item).await.map_err(database)?;
        Ok(bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn write(&self, item: AcmeItem, text: &str) -> Result<(), IssueError> {
        self.store
            .set_acme_state(item, text.as_bytes(), self.clock.now())
            .await
            .map_err(database)
    }

    pub async fn account(&self) -> Result<Option<String>, IssueError> {
        self.read(AcmeItem::Account).await
    }

    pub async fn set_account(&self, json: &str) -> Result<(), IssueError> {
        self.write(AcmeItem::Account, json).await
    }

    /// The certificate chain and key (PEM) the last order stored.
    pub async fn certificate(&self) -> Result<Option<(String, String)>, IssueError> {
        let Some(json) = self.read(AcmeItem::Certificate).await? else {
            return Ok(None);
        };
        let stored: StoredCertificate = serde_json::from_str(&json)
            .map_err(|e| IssueError::Database(format!("shared ACME certificate: {e}")))?;
        Ok(Some((stored.cert_pem, stored.key_pem)))
    }

    pub async fn set_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<(), IssueError> {
        let json = serde_json::to_string(&StoredCertificate {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
        .map_err(|e| IssueError::Database(format!("shared ACME certificate: {e}")))?;
        self.write(AcmeItem::Certificate, &json).await
    }

    /// Publishes the answers in progress (an empty list withdraws them); with answers, waits
    /// until the other instances have picked them up.
    pub async fn publish_challenges(&self, pending: &[PendingChallenge]) -> Result<(), IssueError> {
        let json = serde_json::to_string(pending)
            .map_err(|e| IssueError::Database(format!("shared ACME challenges: {e}")))?;
        self.write(AcmeItem::Challenges, &json).await?;
        if !pending.is_empty() {
            tokio::time::sleep(self.propagation).await;
        }
        Ok(())
    }

    pub async fn challenges(&self) -> Result<Vec<PendingChallenge>, IssueError> {
        match self.read(AcmeItem::Challenges).await? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| IssueError::Database(format!("shared ACME challenges: {e}"))),
            None => Ok(Vec::new()),
        }
    }
}
