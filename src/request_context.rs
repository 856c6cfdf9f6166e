//! Where a request came from, as plain data: the client's address and user agent, and the
//! request id. The HTTP layer builds these from a request (its extractors live in
//! [`crate::http::extract`]); the audit trail and the session records only read them, so
//! neither depends on the web framework.

use std::net::IpAddr;

/// The resolved client address, put in the request's extensions by
/// [`crate::defense::client_ip::attach`] (defined here, below the web layer, so the request
/// log line can name it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The client of a request, for session records and audit events.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Resolved from trusted proxies only (see [`crate::defense::client_ip`]).
    pub ip: Option<String>,
    /// Control characters removed and length bounded, so it cannot forge log lines.
    pub user_agent: Option<String>,
    /// The client proved it logged in to this account before (a valid device token, see
    /// [`crate::defense::login_guard::device`]): whatever its network, not a new device.
    /// Set by the login routes only.
    pub known_device: bool,
}

/// Where a request came from, as an audit event records it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub client: ClientInfo,
    /// The `X-Request-Id` (the client's when well formed, otherwise generated).
    pub request_id: Option<String>,
}
