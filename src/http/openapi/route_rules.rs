//! What every operation of the document shares, derived from the access table
//! ([`crate::http::access::ROUTES`]) and the layer stack rather than written per handler:
//! the security requirement, 401 and 403, and the statuses that the layers and extractors
//! give any route (400/413/415/422 for a JSON body, 422 for a query, 404 for a path
//! parameter, 429 from the per-IP limit), each with the error body's schema.

// Indexing here walks our own document, built once from the annotations: no request input
// reaches it, and tests/openapi.rs builds and checks it whole.
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing of a document built from constants"
)]

use serde_json::{Value, json};

use crate::http::access::{Access, ROUTES};
use crate::http::error::{CHALLENGE, INVALID_TOKEN_CHALLENGE};

/// Adds the shared components, then each route's rules to its operation.
pub(super) fn apply(document: &mut Value) {
    add_components(document);
    for rule in ROUTES {
        let pointer = format!(
            "/paths/{}/{}",
            rule.path.replace('~', "~0").replace('/', "~1"),
            rule.method.as_str().to_ascii_lowercase()
        );
        if let Some(operation) = document.pointer_mut(&pointer) {
            apply_route_rules(operation, rule.access, !rule.method.is_safe());
        }
    }
}

fn add_components(document: &mut Value) {
    let components = &mut document["components"];
    components["securitySchemes"] = json!({
        "token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "The RealWorld scheme: `Authorization: Token <access token>`"
        },
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "`Authorization: Bearer <access token>`, accepted as well"
        },
        "metricsToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <AERIE_METRICS_TOKEN>`: for `/metrics` only;                             users' access tokens never open it"
        }
    });
    components["schemas"]["ErrorBody"] = json!({
        "type": "object",
        "description": "Every error. 4xx: one or more messages per field, written so that \
                        \"field message\" reads as a sentence, as RealWorld clients print them \
                        (`{\"email or password\": [\"is invalid\"]}`, `{\"token\": [\"is missing, \
                        invalid or expired; please log in\"]}` for every refused access token, \
                        `{\"article\": [\"not found\"]}`; `body` when the body as a whole is at \
                        fault). 5xx: only `{\"body\": [\"internal error\"]}` and the request id, \
                        to quote to support.",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}}
            },
            "requestId": {"type": "string"}
        },
        "additionalProperties": false
    });
}

/// Adds a response unless the handler documented that status itself (its description is
/// more specific).
fn add_response(operation: &mut Value, status: &str, description: &str) {
    let responses = &mut operation["responses"];
    if responses.get(status).is_none() {
        responses[status] = json!({ "description": description });
    }
}

fn has_parameter_in(operation: &Value, location: &str) -> bool {
    operation["parameters"]
        .as_array()
        .is_some_and(|params| params.iter().any(|p| p["in"] == location))
}

fn apply_route_rules(operation: &mut Value, access: Access, unsafe_method: bool) {
    match access {
        Access::Public => {
            // Optional-token routes say so in their 401; schemathesis and most generators
            // read any declared scheme as required, which these routes are not.
            if operation.get("security").is_none() {
                operation["security"] = json!([]);
            }
        }
        Access::MetricsToken => {
            operation["security"] = json!([{ "metricsToken": [] }]);
            add_response(
                operation,
                "404",
                "No metrics token is configured, or the request's is missing or wrong",
            );
        }
        Access::Authenticated | Access::Permission(_) => {
            operation["security"] = json!([{ "token": [] }, { "bearer": [] }]);
            add_response(
                operation,
                "401",
                "No token, or an invalid, expired or revoked one (or, under \
                 AERIE_CLIENT_PROFILE=realworld, one whose session was idle too long): one \
                 answer for all, `{\"errors\":{\"token\":[\"is missing, invalid or expired; \
                 please log in\"]}}`",
            );
        }
    }
    if let Access::Permission(permission) = access {
        let note = format!("Needs the `{permission:?}` permission (see docs/access-control.md).");
        let description = match operation["description"].as_str() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
            _ => note,
        };
        operation["description"] = json!(description);
        add_response(operation, "403", "The caller's role lacks the permission");
    }
    if unsafe_method {
        add_response(
            operation,
            "403",
            "Cookie mode (docs/browser-clients.md): a write without the `X-CSRF-Token` header \
             matching the CSRF cookie, or from an origin that is not allowed",
        );
    }
    if operation.get("requestBody").is_some() {
        operation["requestBody"]["required"] = json!(true);
        add_response(operation, "400", "The body is not well-formed JSON");
        add_response(
            operation,
            "413",
            "The body is larger than AERIE_BODY_LIMIT_BYTES",
        );
        add_response(
            operation,
            "415",
            "The body is not `Content-Type: application/json`",
        );
        add_response(
            operation,
            "422",
            "A field is missing, invalid or unknown (unknown fields are refused)",
        );
    }
    if has_parameter_in(operation, "query") {
        add_response(
            operation,
            "422",
            "A query parameter is unknown, repeated or out of range",
        );
    }
    if has_parameter_in(operation, "path") {
        add_response(operation, "404", "No such resource");
    }
    add_response(
        operation,
        "429",
        "Rate limited; retry after `Retry-After` seconds",
    );
    if let Some(rate_limited) = operation["responses"].get_mut("429") {
        rate_limited["headers"] = json!({
            "Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait"},
            "RateLimit-Policy": {"schema": {"type": "string"}},
            "RateLimit": {"schema": {"type": "string"}}
        });
    }
    if let Some(unauthorized) = operation["responses"].get_mut("401") {
        unauthorized["headers"] = json!({
            "WWW-Authenticate": {
                "schema": {"type": "string", "enum": [CHALLENGE, INVALID_TOKEN_CHALLENGE]},
                "description": "`Token, Bearer` when no credential was sent or a login, refresh token or login challenge was refused; `Token, Bearer error=\"invalid_token\"` (RFC 6750) when an access token was sent and refused, whatever the reason"
            }
        });
    }
    give_errors_their_body(operation);
}

/// Every 4xx and 5xx answers the error shape.
fn give_errors_their_body(operation: &mut Value) {
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && response.get("content").is_none() {
            response["content"] = json!({
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
            });
        }
    }
}
