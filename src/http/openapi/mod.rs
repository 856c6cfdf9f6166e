//! The API's contract: the OpenAPI 3.1 document (`GET /openapi.json`) and a human-readable
//! page rendered from it on the server (`GET /docs`).
//!
//! Guards against the contract drifting from the code. Schemas come from the request and
//! response types themselves (`ToSchema`, which also reads their serde attributes, so a type
//! that refuses unknown fields is documented closed), operations from each handler's
//! `#[utoipa::path]`, and what every route shares is derived ([`route_rules`]) from the access
//! table ([`crate::http::access::ROUTES`]): its security requirement, 401 and 403, and the
//! statuses that the layers and extractors give any route (400/413/415/422 for a JSON body,
//! 422 for a query, 404 for a path parameter, 429 from the per-IP limit). A test checks that
//! the document and the table list the same routes.
//!
//! Adding a route: annotate its handler with `#[utoipa::path(...)]` (path, body, success and
//! handler-specific statuses) and name it in [`ApiDoc`]'s `paths(...)`; the rest follows from
//! its row in the access table.
//!
//! `/docs` ([`html`]) loads nothing: no script, stylesheet, font or image, so it works offline and under
//! the API's `default-src 'none'` content security policy. Both routes answer 404 when
//! `AERIE_EXPOSE_API_DOCS` is off (the production default: the document maps the attack
//! surface, and an operator decides whether to publish it).

mod html;
mod route_rules;
pub(crate) mod text;

use std::sync::OnceLock;

use axum::body::Bytes;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::error::{Error, Result};
use super::{
    AppState, admin, articles, auth, comments, health, keys, lifecycle, metrics, mfa, profiles,
    tags, users,
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
        users::sign_in::register,
        users::sign_in::login,
        users::current::current_user,
        users::current::update_user,
        users::current::delete_user,
        users::current::export_user,
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
        auth::step_up,
        auth::list_sessions,
        auth::revoke_session,
        users::current::change_password,
        mfa::begin_mfa_enrolment,
        mfa::confirm_mfa_enrolment,
        mfa::disable_mfa,
        mfa::login_mfa,
        lifecycle::request_reset,
        lifecycle::confirm_reset,
        lifecycle::verify_email,
        lifecycle::resend_verification,
        lifecycle::confirm_email,
        keys::jwks,
        admin::accounts::list_users,
        admin::accounts::delete_account,
        admin::accounts::set_role,
        admin::accounts::disable,
        admin::accounts::enable,
        admin::accounts::revoke_sessions,
        admin::audit::query_audit,
        health::live,
        health::ready,
        metrics::scrape,
        openapi_json,
        docs,
    )
)]
struct ApiDoc;

/// The document and its HTML page as one server publishes them, rendered on the first request
/// for either and kept. Not at start: building the document makes a tree of some 7,000 small
/// allocations that outlives its use as freed heap the allocator keeps, about 3.5 MB of an
/// idle server's 23 MB (BENCHMARKS.md, idle RSS), for a page few clients ever ask for.
pub struct Published {
    settings: PublishedSettings,
    pages: OnceLock<Pages>,
}

struct Pages {
    json: Bytes,
    html: Bytes,
}

/// What of a server's settings its published document states.
pub struct PublishedSettings {
    /// `/metrics` exists on the main listener only when a metrics token is configured;
    /// without one the document leaves it out (a client reading the document would
    /// otherwise expect a route that is always 404).
    pub metrics_route: bool,
    /// The tags-per-article quota: a tag list's `maxItems`.
    pub tags_per_article: usize,
    /// `AERIE_MAX_LIST_OFFSET`: the article lists' `offset` maximum.
    pub max_list_offset: i64,
}

impl Published {
    pub fn new(settings: PublishedSettings) -> Self {
        Self {
            settings,
            pages: OnceLock::new(),
        }
    }

    /// The rendered pages; the first caller renders them (a few milliseconds, once).
    fn pages(&self) -> &Pages {
        self.pages.get_or_init(|| {
            let document = self.document();
            Pages {
                json: Bytes::from(document.to_string()),
                html: Bytes::from(html::render(&document)),
            }
        })
    }

    /// The whole document with this server's settings stated in it.
    fn document(&self) -> Value {
        let settings = &self.settings;
        let mut document = build();
        if !settings.metrics_route
            && let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut)
        {
            paths.remove(metrics::METRICS_ROUTE);
        }
        if let Some(tags) = document.pointer_mut("/components/schemas/TagList") {
            tags["maxItems"] = json!(settings.tags_per_article);
        }
        for list in ["/api/articles", "/api/articles/feed"] {
            let parameters = document
                .pointer_mut(&format!(
                    "/paths/{}/get/parameters",
                    list.replace('/', "~1")
                ))
                .and_then(Value::as_array_mut);
            for parameter in parameters.into_iter().flatten() {
                if parameter.get("name").and_then(Value::as_str) == Some("offset")
                    && let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut)
                {
                    schema.insert("maximum".to_owned(), json!(settings.max_list_offset));
                }
            }
        }
        document
    }
}

#[utoipa::path(get, path = "/openapi.json", tag = "docs",
    responses(
        (status = 200, description = "This document", body = serde_json::Value),
        (status = 404, description = "API documentation is turned off (`AERIE_EXPOSE_API_DOCS`)"),
    ))]
async fn openapi_json(State(state): State<AppState>) -> Result<Response> {
    published(&state, "application/json", |pages| pages.json.clone())
}

#[utoipa::path(get, path = "/docs", tag = "docs",
    responses(
        (status = 200, description = "This document as a self-contained HTML page", body = String, content_type = "text/html"),
        (status = 404, description = "API documentation is turned off (`AERIE_EXPOSE_API_DOCS`)"),
    ))]
async fn docs(State(state): State<AppState>) -> Result<Response> {
    published(&state, "text/html; charset=utf-8", |pages| {
        pages.html.clone()
    })
}

/// The page, or the same 404 as an unknown route when documentation is turned off.
fn published(
    state: &AppState,
    content_type: &'static str,
    body: impl FnOnce(&Pages) -> Bytes,
) -> Result<Response> {
    match &state.api_docs {
        Some(published) if state.http.expose_api_docs => Ok((
            [(header::CONTENT_TYPE, content_type)],
            body(published.pages()),
        )
            .into_response()),
        _ => Err(Error::NotFound("route")),
    }
}

/// The annotations, plus what the access table and the layer stack say about every route.
fn build() -> Value {
    // Serializing utoipa's own types cannot fail; an empty document would fail the tests.
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(fields) = document.as_object_mut() {
        fields.insert("openapi".to_owned(), json!("3.1.0"));
    }
    route_rules::apply(&mut document);
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rendering at start held about 3.5 MB of an idle server's memory: a server renders on
    /// the first request, once, with its own settings in the document.
    #[test]
    fn renders_on_the_first_request_only() {
        let published = Published::new(PublishedSettings {
            metrics_route: false,
            tags_per_article: 7,
            max_list_offset: 1_000,
        });
        assert!(
            published.pages.get().is_none(),
            "rendered before any request"
        );
        let first = published.pages().json.clone();
        assert_eq!(
            published.pages().json.as_ptr(),
            first.as_ptr(),
            "rendered twice"
        );
        let document: Value = serde_json::from_slice(&first).expect("the document is JSON");
        assert_eq!(document["components"]["schemas"]["TagList"]["maxItems"], 7);
        assert!(document["paths"].get(metrics::METRICS_ROUTE).is_none());
    }
}
