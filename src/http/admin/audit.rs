//! `GET /api/admin/audit`: administrators query the audit trail.
//!
//! Guards against incidents going uninvestigated, and against the investigation itself
//! leaking: only the `audit:read` permission (admins) may read it, every filter is validated
//! (an unknown event type or severity is a 422, not an empty page that looks like "nothing
//! happened"), and each read is itself recorded ([`crate::services::audit_trail`]), so who
//! looked at what stays on the record.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use chrono::DateTime;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::audit::{EventType, Severity};
use crate::clock::{UnixMillis, rfc3339};
use crate::domain::{FieldErrors, Invalid};
use crate::http::AppState;
use crate::http::error::Result;
use crate::http::extract::{AuditRead, Require};
use crate::http::query::{PAGE, Query};
use crate::request_context::RequestContext;
use crate::services::Actor;
use crate::services::audit_trail::AuditQuery;
use crate::store::AuditListRow;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/audit", get(query_audit))
}

/// One event as the admin API shows it: the stored row, with names for ids.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Event {
    seq: i64,
    time: String,
    #[serde(rename = "type")]
    kind: String,
    severity: String,
    actor: Option<Party>,
    subject: Option<Party>,
    session: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    /// A small, event-specific object (see docs/operations.md).
    #[schema(value_type = Object)]
    detail: Value,
}

/// A user an event names: the id always, the username while the account exists.
#[derive(Serialize, ToSchema)]
struct Party {
    id: i64,
    username: Option<String>,
}

impl From<AuditListRow> for Event {
    fn from(listed: AuditListRow) -> Self {
        let row = listed.row;
        let party = |id: Option<i64>, username| id.map(|id| Party { id, username });
        Self {
            seq: row.seq,
            time: rfc3339(row.at),
            detail: serde_json::from_str(&row.detail).unwrap_or(Value::String(row.detail)),
            kind: row.event_type,
            severity: row.severity,
            actor: party(row.actor_id, listed.actor_username),
            subject: party(row.subject_id, listed.subject_username),
            session: row.session_id,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventList {
    events: Vec<Event>,
    events_count: i64,
}

/// The `type` filter as the document states it: one of the catalogue's names.
struct EventTypeName;

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> RefOr<Schema> {
        name_from(EventType::ALL.iter().map(|kind| kind.as_str()))
    }
}

impl ToSchema for EventTypeName {}

/// The `severity` filter as the document states it.
struct SeverityName;

impl utoipa::PartialSchema for SeverityName {
    fn schema() -> RefOr<Schema> {
        name_from(SEVERITIES.iter().map(|level| level.as_str()))
    }
}

impl ToSchema for SeverityName {}

fn name_from<'a>(names: impl Iterator<Item = &'a str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .into()
}

const SEVERITIES: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

/// Newest first. Filters: `actor` and `subject` (usernames), `type` (an event name from the
/// catalogue), `severity` (`info`, `warning`, `critical`), `since` (inclusive) and `until`
/// (exclusive) as RFC 3339 times; paging with `limit` and `offset`.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin",
    params(
        ("actor" = Option<String>, Query, description = "Username of whoever acted"),
        ("subject" = Option<String>, Query, description = "Username the event concerns"),
        ("type" = inline(Option<EventTypeName>), Query, description = "An event type from the catalogue, e.g. login_failed"),
        ("severity" = inline(Option<SeverityName>), Query, description = "info, warning or critical"),
        ("since" = Option<String>, Query, format = DateTime, description = "Events at or after this time (RFC 3339)"),
        ("until" = Option<String>, Query, format = DateTime, description = "Events before this time (RFC 3339)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 2147483647, description = "Events to skip"),
    ),
    responses((status = 200, description = "Matching events, newest first", body = EventList)))]
async fn query_audit(
    State(state): State<AppState>,
    Require(admin, _): Require<AuditRead>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<EventList>> {
    let query = Query::parse(
        raw.as_deref(),
        &[
            &["actor", "subject", "type", "severity", "since", "until"],
            PAGE,
        ],
    )?;
    let (limit, offset) = query.page()?;
    let mut errors = FieldErrors::default();
    let event_type = query
        .typed("type")
        .and_then(|name| errors.check("type", event_type(name)));
    let severity = query
        .typed("severity")
        .and_then(|name| errors.check("severity", severity(name)));
    let since = query
        .typed("since")
        .and_then(|text| errors.check("since", time(text)));
    let until = query
        .typed("until")
        .and_then(|text| errors.check("until", time(text)));
    errors.finish()?;

    let filter = AuditQuery {
        actor: query.text("actor"),
        subject: query.text("subject"),
        event_type,
        severity,
        since,
        until,
    };
    let actor = Actor::Admin(admin.caller(&context));
    let (rows, count) = state.audit_trail.read(actor, filter, limit, offset).await?;
    Ok(axum::Json(EventList {
        events: rows.into_iter().map(Event::from).collect(),
        events_count: count,
    }))
}

fn event_type(name: &str) -> std::result::Result<EventType, Invalid> {
    EventType::ALL
        .iter()
        .copied()
        .find(|kind| kind.as_str() == name)
        .ok_or(Invalid("is not an event type of the catalogue"))
}

fn severity(name: &str) -> std::result::Result<Severity, Invalid> {
    SEVERITIES
        .into_iter()
        .find(|level| level.as_str() == name)
        .ok_or(Invalid("must be one of info, warning, critical"))
}

fn time(text: &str) -> std::result::Result<UnixMillis, Invalid> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| Invalid("must be an RFC 3339 time, e.g. 2026-11-28T10:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_accept_catalogue_names_only() {
        assert_eq!(
            event_type("login_failed").ok(),
            Some(EventType::LoginFailed)
        );
        assert!(event_type("LOGIN_FAILED").is_err());
        assert!(event_type("login_failed' OR 1=1 --").is_err());
        assert_eq!(severity("critical").ok(), Some(Severity::Critical));
        assert!(severity("fatal").is_err());
    }

    #[test]
    fn times_are_rfc3339_with_any_offset() {
        assert_eq!(time("1970-01-01T00:00:01Z").ok(), Some(1000));
        assert_eq!(time("1970-01-01T01:00:01+01:00").ok(), Some(1000));
        assert!(time("yesterday").is_err());
        assert!(time("1970-01-01").is_err());
    }
}
