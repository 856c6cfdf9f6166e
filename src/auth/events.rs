//! Security events. Guards against attacks going unnoticed: each event is one `warn!` line
//! on the `aerie::security` target with a fixed event name, so alerting can match it. The
//! durable, chained audit log (another issue) will reroute these functions; callers stay
//! as they are.

/// A rotated refresh token was presented again after the grace window: someone holds a
/// copy of a token the rightful client has already used. The whole family was revoked.
pub fn security_event_refresh_reuse(session_family: &str, user_id: i64, client_ip: Option<&str>) {
    tracing::warn!(
        target: "aerie::security",
        event = "refresh_reuse_detected",
        session_family,
        user_id,
        client_ip = client_ip.unwrap_or("unknown"),
        "refresh token reused after rotation: session family revoked"
    );
}
