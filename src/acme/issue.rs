//! One issuance: the account (from the cache, or registered), an order for every domain, the
//! challenges answered (TLS-ALPN-01 on the TLS listener; HTTP-01 on the redirect listener when
//! the CA offers no TLS-ALPN-01 and that listener is configured), a fresh key and CSR, and
//! the certificate chain.
//!
//! Guards against: a key leaving the process other than into the cache (the CSR carries only
//! the public key; errors carry the CA's problem document, never a key); a challenge answer
//! outliving its order (each is withdrawn when the order ends, however it ends).

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use super::cache::Cache;
use super::client::ReqwestClient;
pub use super::error::IssueError;
use super::error::ca;
use super::shared::{PendingChallenge, Shared};
use super::{Acme, AcmeSettings};

/// How long the CA may take to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

/// The cached account, tied to the directory it was registered with.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// The account for `settings.directory`: from the database (several instances) or the
/// cache, or registered (and kept in both).
async fn account(
    settings: &AcmeSettings,
    cache: &Cache,
    shared: Option<&Shared<'_>>,
) -> Result<Account, IssueError> {
    let client =
        || ReqwestClient::new(settings.directory_root.as_deref()).map_err(IssueError::Cache);
    let cached = match shared {
        Some(shared) => shared.account().await?,
        None => cache.load().map_err(IssueError::Cache)?.account,
    };
    if let Some(json) = cached
        && let Ok(stored) = serde_json::from_str::<StoredAccount>(&json)
        && stored.directory == settings.directory
    {
        return Account::builder_with_http(Box::new(client()?))
            .from_credentials(stored.credentials)
            .await
            .map_err(ca);
    }
    let contact = [settings.contact.as_str()];
    let (account, credentials) = Account::builder_with_http(Box::new(client()?))
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(ca)?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials,
    };
    let json = serde_json::to_string(&stored)
        .map_err(|e| IssueError::Cache(format!("ACME account: {e}")))?;
    cache.store_account(&json).map_err(IssueError::Cache)?;
    if let Some(shared) = shared {
        shared.set_account(&json).await?;
    }
    tracing::info!(directory = %settings.directory, "ACME account registered");
    Ok(account)
}

/// The certificate chain and key (PEM) for every configured domain.
/// With `shared` (several instances), each challenge answer is also published in the
/// database, and the CA is asked to validate only once every instance has had one check
/// interval to pick it up (behind a load balancer, any of them may get the validation).
pub async fn issue(
    acme: &Acme,
    cache: &Cache,
    shared: Option<&Shared<'_>>,
) -> Result<(String, String), IssueError> {
    let settings = &acme.settings;
    let account = account(settings, cache, shared).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|domain| Identifier::Dns(domain.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(ca)?;
    let mut answered = Vec::new();
    let result = async {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(ca)?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(IssueError::Ca(format!(
                        "authorization for {} is {other:?}",
                        authorization.identifier()
                    )));
                }
            }
            let offers = |kind: ChallengeType| {
                authorization
                    .challenges
                    .iter()
                    .any(|challenge| challenge.r#type == kind)
            };
            let kind = if offers(ChallengeType::TlsAlpn01) {
                ChallengeType::TlsAlpn01
            } else if acme.http01_available && offers(ChallengeType::Http01) {
                ChallengeType::Http01
            } else {
                return Err(IssueError::Ca(
                    "the CA offers neither TLS-ALPN-01 nor (with AERIE_HTTP_REDIRECT_LISTEN) HTTP-01"
                        .into(),
                ));
            };
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                continue;
            };
            let domain = challenge.identifier().to_string();
            let key_authorization = challenge.key_authorization();
            let pending = match kind {
                ChallengeType::Http01 => PendingChallenge::Http01 {
                    token: challenge.token.clone(),
                    key_authorization: key_authorization.as_str().to_owned(),
                },
                _ => PendingChallenge::TlsAlpn01 {
                    domain,
                    digest: key_authorization.digest().as_ref().to_vec(),
                },
            };
            answer(acme, &pending)?;
            answered.push(pending.clone());
            if let Some(shared) = shared {
                shared.publish_challenges(&answered).await?;
            }
            challenge.set_ready().await.map_err(ca)?;
        }
        let status = order.poll_ready(&POLL).await.map_err(ca)?;
        if status != OrderStatus::Ready {
            return Err(IssueError::Ca(format!(
                "the order is {status:?}: the CA could not validate control of {}",
                settings.domains.join(", ")
            )));
        }
        let key = rcgen::KeyPair::generate()
            .map_err(|e| IssueError::Cache(format!("certificate key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(settings.domains.clone())
            .map_err(|e| IssueError::Ca(format!("CSR: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| IssueError::Ca(format!("CSR: {e}")))?;
        order.finalize_csr(csr.der()).await.map_err(ca)?;
        let chain = order.poll_certificate(&POLL).await.map_err(ca)?;
        Ok((chain, key.serialize_pem()))
    }
    .await;
    for pending in &answered {
        withdraw(acme, pending);
    }
    if let Some(shared) = shared
        && !answered.is_empty()
    {
        let _ = shared.publish_challenges(&[]).await;
    }
    result
}

/// Serves the answer to `pending` from this instance.
pub fn answer(acme: &Acme, pending: &PendingChallenge) -> Result<(), IssueError> {
    match pending {
        PendingChallenge::Http01 {
            token,
            key_authorization,
        } => acme.http01.insert(token, key_authorization),
        PendingChallenge::TlsAlpn01 { domain, digest } => {
            let certificate = alpn_challenge_certificate(domain, digest)?;
            acme.resolver.set_challenge(domain, certificate);
        }
    }
    Ok(())
}

/// Stops serving the answer to `pending`.
pub fn withdraw(acme: &Acme, pending: &PendingChallenge) {
    match pending {
        PendingChallenge::Http01 { token, .. } => acme.http01.remove(token),
        PendingChallenge::TlsAlpn01 { domain, .. } => acme.resolver.clear_challenge(domain),
    }
}

/// The self-signed certificate a TLS-ALPN-01 validator expects (RFC 8737 §3): the domain as
/// its only name and the critical acmeIdentifier extension holding the SHA-256 digest of the
/// key authorization.
fn alpn_challenge_certificate(
    domain: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, IssueError> {
    let failed = |e: rcgen::Error| IssueError::Cache(format!("TLS-ALPN-01 certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let certificate = params.self_signed(&key).map_err(failed)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| IssueError::Cache(format!("TLS-ALPN-01 certificate: {e}")))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![certificate.der().clone()],
        signing,
    )))
}
