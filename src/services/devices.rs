//! New-device and moved-session events: the hooks for "was this you?" notices.
//!
//! Guards against a stolen password or session going unseen by its owner and the operators.
//! A login from a device and network the account has not used before records
//! `login_new_device` (which raises an alert); a refresh from another address family or
//! network than the session's previous request records `session_ip_changed` (a refresh token
//! carried off to another network is what theft looks like; a phone moving from Wi-Fi to
//! mobile data too, so this is a record, not a refusal).
//!
//! "Device" is deliberately coarse: the user agent's browser and system families and the
//! network prefix (IPv4 /24, IPv6 /48), never the raw strings, which change with every
//! browser update and would make every login "new". The account keeps at most
//! [`DEVICES_KEPT`] of them, as SHA-256 fingerprints.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::json;

use super::Recorder;
use crate::audit::{AuditError, AuditEvent, EventType};
use crate::fingerprint::Fingerprint;
use crate::request_context::RequestContext;
use crate::store::DeviceSeen;

/// Devices remembered per account; the least recently used go first.
pub const DEVICES_KEPT: i64 = 50;

/// A client as the device rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoarseClient {
    /// `Firefox on Linux`, `curl`, `unknown`.
    pub device: String,
    /// `203.0.113.0/24`, `2001:db8:1::/48`, or none without an address.
    pub network: Option<String>,
}

impl CoarseClient {
    pub fn of(client_ip: Option<&str>, user_agent: Option<&str>) -> Self {
        Self {
            device: device_family(user_agent),
            network: client_ip.and_then(|ip| ip.parse().ok()).map(network_of),
        }
    }

    fn fingerprint(&self) -> String {
        let network = self.network.as_deref().unwrap_or("-");
        Fingerprint::of(&format!("{}\n{network}", self.device)).hex()
    }
}

/// The network an address belongs to for these rules: IPv4 /24, IPv6 /48.
pub fn network_of(ip: IpAddr) -> String {
    let ip = ip.to_canonical();
    let bits = if ip.is_ipv4() { 24 } else { 48 };
    IpNet::new(ip, bits).map_or_else(|_| ip.to_string(), |net| net.trunc().to_string())
}

/// Browser (or tool) family and system family, from the usual user-agent tokens. Order
/// matters: Edge and Opera also say Chrome, Chrome also says Safari.
pub fn device_family(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent else {
        return "unknown".to_owned();
    };
    const BROWSERS: [(&str, &str); 10] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("CriOS/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("python", "Python"),
        ("okhttp", "okhttp"),
        ("Go-http-client", "Go"),
    ];
    const SYSTEMS: [(&str, &str); 6] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(token, _)| agent.contains(token))
        .map_or("other", |(_, name)| name);
    match SYSTEMS.iter().find(|(token, _)| agent.contains(token)) {
        Some((_, system)) => format!("{browser} on {system}"),
        None => browser.to_owned(),
    }
}

/// The fingerprint under which an account remembers the device of `request` (see
/// [`crate::store::Store::open_session`], which keeps [`DEVICES_KEPT`] of them).
pub fn fingerprint_of(request: &RequestContext) -> String {
    CoarseClient::of(
        request.client.ip.as_deref(),
        request.client.user_agent.as_deref(),
    )
    .fingerprint()
}

/// For a login from a device the account has not used before (no device token of this
/// account, and a device family and network not `seen`), records `login_new_device`.
/// Registration (`announce` false) records nothing.
pub async fn note_session_opened(
    recorder: &Recorder,
    user_id: i64,
    session_id: &str,
    request: &RequestContext,
    seen: DeviceSeen,
    announce: bool,
) -> Result<(), DeviceError> {
    if !announce || request.client.known_device || seen != DeviceSeen::New {
        return Ok(());
    }
    let client = CoarseClient::of(
        request.client.ip.as_deref(),
        request.client.user_agent.as_deref(),
    );
    let event = AuditEvent::new(EventType::LoginNewDevice)
        .actor(user_id)
        .subject(user_id)
        .session(session_id)
        .from_request(request)
        .detail(json!({ "device": client.device, "network": client.network }));
    recorder.record(event).await?;
    Ok(())
}

/// Records `session_ip_changed` when a refresh comes from another address family or network
/// than the session's previous request.
pub async fn note_session_used(
    recorder: &Recorder,
    user_id: i64,
    session_id: &str,
    previous_ip: Option<&str>,
    request: &RequestContext,
) -> Result<(), DeviceError> {
    let before = CoarseClient::of(previous_ip, None).network;
    let now = CoarseClient::of(request.client.ip.as_deref(), None).network;
    if before.is_none() || now.is_none() || before == now {
        return Ok(());
    }
    let event = AuditEvent::new(EventType::SessionIpChanged)
        .actor(user_id)
        .subject(user_id)
        .session(session_id)
        .from_request(request)
        .detail(json!({ "fromNetwork": before, "toNetwork": now }));
    recorder.record(event).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_families_not_versions() {
        let firefox_128 = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let firefox_130 = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
        assert_eq!(device_family(Some(firefox_128)), "Firefox on Linux");
        assert_eq!(
            device_family(Some(firefox_128)),
            device_family(Some(firefox_130))
        );
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";
        assert_eq!(device_family(Some(edge)), "Edge on Windows");
        assert_eq!(device_family(Some("curl/8.5.0")), "curl");
        assert_eq!(device_family(None), "unknown");
    }

    #[test]
    fn networks_are_24s_and_48s() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(network_of(ip("203.0.113.77")), "203.0.113.0/24");
        assert_eq!(network_of(ip("::ffff:203.0.113.77")), "203.0.113.0/24");
        assert_eq!(network_of(ip("2001:db8:1:2:3::9")), "2001:db8:1::/48");
    }
}
