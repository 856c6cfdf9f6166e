//! Who may hold a connection on a listener, decided at accept, before a byte is read.
//!
//! Guards against plain HTTP reaching the API from anywhere but the TLS-terminating proxy:
//! when `AERIE_TLS_TERMINATED_BY_PROXY` lifts production's refusal of plain HTTP, a client
//! that reaches the port directly would send passwords and tokens unencrypted (and be told
//! `Strict-Transport-Security` over plain HTTP). Its connection is closed unread, logged and
//! counted (`aerie_connections_refused_total{reason="plain_http_peer"}`).

use std::net::SocketAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::defense::client_ip::is_trusted;
use crate::metrics::Metrics;

/// A listener's admission rule.
#[derive(Clone)]
pub(super) struct Admission {
    /// Plain HTTP behind a TLS proxy: only these peers are served.
    only_from: Option<Arc<[IpNet]>>,
    metrics: Metrics,
}

impl Admission {
    /// Every peer is admitted.
    pub(super) fn open(metrics: Metrics) -> Self {
        Self {
            only_from: None,
            metrics,
        }
    }

    /// Only peers inside `networks` are admitted, when some are given.
    pub(super) fn only_from(networks: Option<&[IpNet]>, metrics: Metrics) -> Self {
        Self {
            only_from: networks.map(Arc::from),
            metrics,
        }
    }

    /// Whether `peer` may be served; a refusal is logged and counted.
    pub(super) fn admits(&self, peer: SocketAddr) -> bool {
        if let Some(networks) = &self.only_from
            && !is_trusted(peer.ip(), networks)
        {
            tracing::warn!(
                %peer,
                "plain HTTP from outside AERIE_TLS_TERMINATED_BY_PROXY: connection closed unread"
            );
            self.refused("plain_http_peer");
            return false;
        }
        true
    }

    fn refused(&self, reason: &'static str) {
        self.metrics
            .scope(|| crate::metrics::count_refused_connection(reason));
    }
}
