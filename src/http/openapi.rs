//! The API's contract: the OpenAPI 3.1 document (`GET /openapi.json`) and a human-readable
//! page rendered from it on the server (`GET /docs`).
//!
//! Guards against the contract drifting from the code. Schemas come from the request and
//! response types themselves (`ToSchema`, which also reads their serde attributes, so a type
//! that refuses unknown fields is documented closed), operations from each handler's
//! `#[utoipa::path]`, and what every route shares is derived here from the access table
//! ([`crate::http::access::ROUTES`]): its security requirement, 401 and 403, and the
//! statuses that the layers and extractors give any route (400/413/415/422 for a JSON body,
//! 422 for a query, 404 for a path parameter, 429 from the per-IP limit). A test checks that
//! the document and the table list the same routes.
//!
//! Adding a route: annotate its handler with `#[utoipa::path(...)]` (path, body, success and
//! handler-specific statuses) and name it in [`ApiDoc`]'s `paths(...)`; the rest follows from
//! its row in the access table.
//!
//! `/docs` loads nothing: no script, stylesheet, font or image, so it works offline and under
//! the API's `default-src 'none'` content security policy. Both routes answer 404 when
//! `AERIE_EXPOSE_API_DOCS` is off (the production default: the document maps the attack
//! surface, and an operator decides whether to publish it).

// Indexing here walks our own document, built once from the annotations: no request input
// reaches it, and tests/openapi.rs builds and checks it whole.
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing of a document built from constants"
)]

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::access::{Access, ROUTES};
use super::error::{Error, Result};
use super::{
    AppState, admin, admin_audit, articles, auth, comments, health, keys, metrics, profiles, tags,
    users,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
}

/// The handlers whose annotations make up the document, in the order of API.md.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Aerie",
        description = "A secure-by-default backend: the RealWorld (Conduit) API and Aerie's own \
                       session and administration API. Send the access token as \
                       `Authorization: Token <jwt>` (RealWorld) or `Authorization: Bearer <jwt>`; \
                       browsers may instead log in with `X-Aerie-Client: browser` and get \
                       `__Host-` cookies, then send `X-CSRF-Token` on every write \
                       (docs/browser-clients.md). \
                       Every 4xx body is `{\"errors\": {\"<field or body>\": [\"<message>\"]}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        users::register,
        users::login,
        users::current_user,
        users::update_user,
        profiles::get_profile,
        profiles::follow,
        profiles::unfollow,
        articles::list_articles,
        articles::feed,
        articles::get_article,
        articles::create_article,
        articles::update_article,
        articles::delete_article,
        comments::list_comments,
        comments::add_comment,
        comments::delete_comment,
        articles::favorite,
        articles::unfavorite,
        tags::list_tags,
        auth::refresh,
        auth::logout,
        auth::logout_all,
        auth::list_sessions,
        auth::revoke_session,
        users::change_password,
        keys::jwks,
        admin::list_users,
        admin::set_role,
        admin::disable,
        admin::enable,
        admin::revoke_sessions,
        admin_audit::query_audit,
        health::live,
        health::ready,
        metrics::scrape,
        openapi_json,
        docs,
    )
)]
struct ApiDoc;

/// The document as served, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(build);
    &DOCUMENT
}

static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| document().to_string());
static DOCS_HTML: LazyLock<String> = LazyLock::new(|| render_html(document()));

#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses(
        (status = 200, description = "This document", body = serde_json::Value),
        (status = 404, description = "API documentation is turned off (`AERIE_EXPOSE_API_DOCS`)"),
    ))]
async fn openapi_json(State(state): State<AppState>) -> Result<Response> {
    published(&state, "application/json", &DOCUMENT_JSON)
}

#[utoipa::path(get, path = "/docs", tag = "docs",
    responses(
        (status = 200, description = "This document as a self-contained HTML page", body = String, content_type = "text/html"),
        (status = 404, description = "API documentation is turned off (`AERIE_EXPOSE_API_DOCS`)"),
    ))]
async fn docs(State(state): State<AppState>) -> Result<Response> {
    published(&state, "text/html; charset=utf-8", &DOCS_HTML)
}

/// The page, or the same 404 as an unknown route when documentation is turned off.
fn published(state: &AppState, content_type: &'static str, body: &'static str) -> Result<Response> {
    if !state.http.expose_api_docs {
        return Err(Error::NotFound("route"));
    }
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The annotations, plus what the access table and the layer stack say about every route.
fn build() -> Value {
    // Serializing utoipa's own types cannot fail; an empty document would fail the tests.
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    document["openapi"] = json!("3.1.0");
    add_components(&mut document);
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
    document
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
        "description": "Every error. 4xx: one or more messages per field (`body` when no field \
                        is at fault). 5xx: only `{\"body\": [\"internal error\"]}` and the \
                        request id, to quote to support.",
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
                "No token, or an invalid, expired or revoked one",
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
            "WWW-Authenticate": {"schema": {"type": "string", "const": "Token"}}
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

// ---------------------------------------------------------------------------------------
// The /docs page: the same document as plain HTML, every text escaped.

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A schema in one line: `string`, `array of Article`, a link to a named schema.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!(
            "<a href=\"#schema-{0}\">{0}</a>",
            escape(name).replace(' ', "_")
        );
    }
    if let Some(options) = schema["oneOf"]
        .as_array()
        .or_else(|| schema["anyOf"].as_array())
    {
        return options.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("<code>{}</code>", escape(&v.to_string())))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    let base = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    let mut text = escape(&base);
    if base.starts_with("array") {
        text = format!("array of {}", type_of(&schema["items"]));
    } else if let Some(values) = schema["additionalProperties"].as_object() {
        text = format!("object of {}", type_of(&Value::Object(values.clone())));
    }
    if let Some(format) = schema["format"].as_str() {
        let _ = write!(text, " ({})", escape(format));
    }
    text
}

fn render_operation(html: &mut String, path: &str, method: &str, operation: &Value) {
    let id = format!("{method}-{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>();
    let _ = write!(
        html,
        "<section id=\"op-{id}\">\n<h3><code>{} {}</code></h3>\n",
        escape(&method.to_ascii_uppercase()),
        escape(path)
    );
    for text in ["summary", "description"] {
        if let Some(text) = operation[text].as_str() {
            let _ = writeln!(html, "<p>{}</p>", escape(text));
        }
    }
    let auth = match operation["security"].as_array() {
        Some(schemes) if !schemes.is_empty() => {
            "Requires <code>Authorization: Token &lt;jwt&gt;</code> (or <code>Bearer</code>)."
        }
        _ => "No token required.",
    };
    let _ = writeln!(html, "<p>{auth}</p>");
    if let Some(parameters) = operation["parameters"].as_array() {
        html.push_str("<table>\n<caption>Parameters</caption>\n<tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>\n");
        for parameter in parameters {
            let _ = writeln!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(parameter["name"].as_str().unwrap_or_default()),
                escape(parameter["in"].as_str().unwrap_or_default()),
                type_of(&parameter["schema"]),
                if parameter["required"] == true {
                    "yes"
                } else {
                    "no"
                },
                escape(parameter["description"].as_str().unwrap_or_default()),
            );
        }
        html.push_str("</table>\n");
    }
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        for (media, body) in content {
            let _ = writeln!(
                html,
                "<p>Request body (<code>{}</code>): {}</p>",
                escape(media),
                type_of(&body["schema"])
            );
        }
    }
    html.push_str("<table>\n<caption>Responses</caption>\n<tr><th>status</th><th>description</th><th>body</th></tr>\n");
    if let Some(responses) = operation["responses"].as_object() {
        for (status, response) in responses {
            let body = response["content"]
                .as_object()
                .map(|content| {
                    content
                        .values()
                        .map(|media| type_of(&media["schema"]))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{body}</td></tr>",
                escape(status),
                escape(response["description"].as_str().unwrap_or_default()),
            );
        }
    }
    html.push_str("</table>\n</section>\n");
}

fn render_schema(html: &mut String, name: &str, schema: &Value) {
    let _ = write!(
        html,
        "<section id=\"schema-{}\">\n<h3>{}</h3>\n",
        escape(name).replace(' ', "_"),
        escape(name)
    );
    if let Some(description) = schema["description"].as_str() {
        let _ = writeln!(html, "<p>{}</p>", escape(description));
    }
    let Some(properties) = schema["properties"].as_object() else {
        let _ = writeln!(html, "<p>{}</p>\n</section>", type_of(schema));
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html.push_str(
        "<table>\n<tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>\n",
    );
    for (field, property) in properties {
        let _ = writeln!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(field),
            type_of(property),
            if required.contains(&field.as_str()) {
                "yes"
            } else {
                "no"
            },
            escape(property["description"].as_str().unwrap_or_default()),
        );
    }
    html.push_str("</table>\n");
    if schema["additionalProperties"] == false {
        html.push_str("<p>Other fields are refused (422).</p>\n");
    }
    html.push_str("</section>\n");
}

/// The page: operations grouped by tag, then every schema.
fn render_html(document: &Value) -> String {
    let title = escape(document["info"]["title"].as_str().unwrap_or("API"));
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} API</title>\n</head>\n<body>\n<h1>{title} API</h1>\n"
    );
    if let Some(description) = document["info"]["description"].as_str() {
        let _ = writeln!(html, "<p>{}</p>", escape(description));
    }
    html.push_str("<p>The machine-readable document: <a href=\"openapi.json\">openapi.json</a> (OpenAPI 3.1).</p>\n");
    let empty = Map::new();
    let paths = document["paths"].as_object().unwrap_or(&empty);
    let mut tags: Vec<&str> = Vec::new();
    for item in paths.values().filter_map(Value::as_object) {
        for operation in item.values() {
            for tag in operation["tags"].as_array().into_iter().flatten() {
                if let Some(tag) = tag.as_str().filter(|t| !tags.contains(t)) {
                    tags.push(tag);
                }
            }
        }
    }
    for tag in tags {
        let _ = writeln!(html, "<h2>{}</h2>", escape(tag));
        for (path, item) in paths {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let tagged = operation["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == tag));
                if tagged {
                    render_operation(&mut html, path, method, operation);
                }
            }
        }
    }
    html.push_str("<h2>Schemas</h2>\n");
    if let Some(schemas) = document["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            render_schema(&mut html, name, schema);
        }
    }
    html.push_str("</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_every_text() {
        assert_eq!(
            escape("<script>alert('x')&\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&amp;&quot;&lt;/script&gt;"
        );
        let page = render_html(&json!({
            "info": {"title": "<b>", "description": "<img src=x onerror=alert(1)>"},
            "paths": {}
        }));
        assert!(!page.contains("<img") && !page.contains("<b>"), "{page}");
    }
}
