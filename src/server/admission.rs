//! Who may hold a connection on a listener, decided at accept, before a byte is read.
//!
//! Guards against two things. Plain HTTP reaching the API from anywhere but the
//! TLS-terminating proxy: when `AERIE_TLS_TERMINATED_BY_PROXY` lifts production's refusal of
//! plain HTTP, a client that reaches the port directly would send passwords and tokens
//! unencrypted (and be told `Strict-Transport-Security` over plain HTTP); its connection is
//! closed unread, logged and counted. And one address occupying every connection: the
//! per-address and global caps of [`super::slots`].

use std::net::SocketAddr;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::OwnedSemaphorePermit;

use super::slots::{Claim, Slots};
use crate::config::ConnectionLimits;
use crate::defense::client_ip::is_trusted;
use crate::metrics::Metrics;

/// A listener's admission rules and its connection slots.
pub(super) struct Admission {
    /// Plain HTTP behind a TLS proxy: only these peers are served.
    only_from: Option<Arc<[IpNet]>>,
    slots: Slots,
    metrics: Metrics,
}

impl Admission {
    /// `limits`' caps, trusted proxies exempt from the per-address one; every peer admitted.
    pub(super) fn new(
        limits: &ConnectionLimits,
        trusted_proxies: Arc<[IpNet]>,
        metrics: Metrics,
    ) -> Self {
        Self {
            only_from: None,
            slots: Slots::new(
                limits.max_connections,
                limits.max_connections_per_address,
                trusted_proxies,
            ),
            metrics,
        }
    }

    /// Only peers inside `networks` are admitted, when some are given.
    pub(super) fn only_from(mut self, networks: Option<&[IpNet]>) -> Self {
        self.only_from = networks.map(Arc::from);
        self
    }

    /// Admits `peer`, counted against its address; a refusal is logged and counted, and the
    /// caller closes the connection unread.
    pub(super) fn admit(&self, peer: SocketAddr) -> Option<Claim> {
        if let Some(networks) = &self.only_from
            && !is_trusted(peer.ip(), networks)
        {
            tracing::warn!(
                %peer,
                "plain HTTP from outside AERIE_TLS_TERMINATED_BY_PROXY: connection closed unread"
            );
            self.count(
                crate::metrics::names::CONNECTIONS_REFUSED,
                "plain_http_peer",
            );
            return None;
        }
        let claim = self.slots.claim(peer);
        if claim.is_none() {
            // Debug only: a flood from one address must not become a flood of log lines;
            // the counter shows it.
            tracing::debug!(%peer, "AERIE_MAX_CONNECTIONS_PER_ADDRESS reached: connection closed unread");
            self.count(
                crate::metrics::names::CONNECTIONS_REFUSED,
                "per_address_limit",
            );
        }
        claim
    }

    /// A global slot for `claim`'s connection, closing the connection idle longest when
    /// all are taken.
    pub(super) async fn room(&self, claim: &Claim) -> OwnedSemaphorePermit {
        let (permit, evicted) = self.slots.room(claim).await;
        if evicted {
            self.count(crate::metrics::names::CONNECTIONS_EVICTED, "oldest_idle");
        }
        permit
    }

    /// A global slot as one frees, without closing an idle connection for it (see
    /// [`Slots::freed`]).
    pub(super) async fn freed_room(&self, claim: &Claim) -> OwnedSemaphorePermit {
        self.slots.freed(claim).await
    }

    fn count(&self, name: &'static str, reason: &'static str) {
        self.metrics
            .scope(|| metrics::counter!(name, "reason" => reason).increment(1));
    }
}
