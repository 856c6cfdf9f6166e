//! Who may call which route: one table, enforced before any handler runs.
//!
//! Guards against a route shipping open by accident (broken function-level authorization,
//! OWASP API5). Every route the router serves must have a row here naming its access rule:
//! public, any signed-in user, or a permission from the role matrix in
//! [`crate::domain::Role::can`]. The middleware looks the request's *route template* up in
//! this table, so path tricks (`//`, `..`, case, encoded slashes) cannot reach a handler by
//! another name: either they match the same template, and so the same rule, or no route at
//! all. A matched route without a row is refused (404), and a method without a row is 405,
//! so forgetting the row denies instead of allowing. Handlers still take `AuthUser` or a
//! permission guard, so their signatures show the rule too; the verified caller is handed
//! to them here, so the token is checked once per request.

use std::convert::Infallible;

use axum::body::{Body, HttpBody};
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::Error;
use super::extract::AuthUser;
use crate::domain::Permission;
use crate::request_context::RequestContext;
use crate::services::denials::Denial;
use crate::stack::{Answer, Stack, Step, answered, take_ready};

/// The access rule of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone. A token, when sent, must still be valid (handlers see it as optional).
    Public,
    /// Any signed-in user; ownership of the object is the handler's check.
    Authenticated,
    /// A signed-in user whose role holds the permission.
    Permission(Permission),
    /// The metrics bearer token (`AERIE_METRICS_TOKEN`), not a user: a missing or wrong
    /// token is answered 404, as if the route did not exist.
    MetricsToken,
}

/// One row of the table: method, route template (as written in the routers), rule.
#[derive(Debug, Clone)]
pub struct RouteRule {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

const fn rule(method: Method, path: &'static str, access: Access) -> RouteRule {
    RouteRule {
        method,
        path,
        access,
    }
}

use Access::{Authenticated, Public};

/// Every route, in the order of API.md.
pub const ROUTES: &[RouteRule] = &[
    rule(Method::POST, "/api/users", Public),
    rule(Method::POST, "/api/users/login", Public),
    rule(Method::GET, "/api/user", Authenticated),
    rule(Method::PUT, "/api/user", Authenticated),
    rule(Method::DELETE, "/api/user", Authenticated),
    rule(Method::GET, "/api/user/export", Authenticated),
    rule(Method::GET, "/api/profiles/{username}", Public),
    rule(
        Method::POST,
        "/api/profiles/{username}/follow",
        Authenticated,
    ),
    rule(
        Method::DELETE,
        "/api/profiles/{username}/follow",
        Authenticated,
    ),
    rule(Method::GET, "/api/articles", Public),
    rule(Method::POST, "/api/articles", Authenticated),
    rule(Method::GET, "/api/articles/feed", Authenticated),
    rule(Method::GET, "/api/articles/{slug}", Public),
    rule(Method::PUT, "/api/articles/{slug}", Authenticated),
    rule(Method::DELETE, "/api/articles/{slug}", Authenticated),
    rule(Method::GET, "/api/articles/{slug}/comments", Public),
    rule(Method::POST, "/api/articles/{slug}/comments", Authenticated),
    rule(
        Method::DELETE,
        "/api/articles/{slug}/comments/{id}",
        Authenticated,
    ),
    rule(Method::POST, "/api/articles/{slug}/favorite", Authenticated),
    rule(
        Method::DELETE,
        "/api/articles/{slug}/favorite",
        Authenticated,
    ),
    rule(Method::GET, "/api/tags", Public),
    rule(
        Method::GET,
        "/api/admin/users",
        Access::Permission(Permission::UserReadAny),
    ),
    rule(
        Method::PUT,
        "/api/admin/users/{username}/role",
        Access::Permission(Permission::UserRoleSet),
    ),
    rule(
        Method::POST,
        "/api/admin/users/{username}/disable",
        Access::Permission(Permission::UserDisable),
    ),
    rule(
        Method::POST,
        "/api/admin/users/{username}/enable",
        Access::Permission(Permission::UserDisable),
    ),
    rule(
        Method::DELETE,
        "/api/admin/users/{username}",
        Access::Permission(Permission::UserDeleteAny),
    ),
    rule(
        Method::DELETE,
        "/api/admin/users/{username}/sessions",
        Access::Permission(Permission::SessionRevokeAny),
    ),
    rule(
        Method::GET,
        "/api/admin/audit",
        Access::Permission(Permission::AuditRead),
    ),
    rule(Method::PUT, "/api/user/password", Authenticated),
    rule(Method::POST, "/api/auth/mfa/totp", Authenticated),
    rule(Method::POST, "/api/auth/mfa/totp/confirm", Authenticated),
    rule(Method::DELETE, "/api/auth/mfa/totp", Authenticated),
    // The challenge from the password step is the credential; the handler checks it.
    rule(Method::POST, "/api/users/login/mfa", Public),
    // The refresh token (in the body, or its cookie) is the credential; the handler verifies it.
    rule(Method::POST, "/api/auth/refresh", Public),
    rule(Method::POST, "/api/auth/logout", Authenticated),
    rule(Method::POST, "/api/auth/logout-all", Authenticated),
    rule(Method::POST, "/api/auth/step-up", Authenticated),
    rule(Method::GET, "/api/auth/sessions", Authenticated),
    rule(Method::DELETE, "/api/auth/sessions/{id}", Authenticated),
    // The mailed token (or, for a reset request, nothing: one answer for every address).
    rule(Method::POST, "/api/auth/email/verify", Public),
    rule(Method::POST, "/api/auth/email/verify/resend", Authenticated),
    rule(Method::POST, "/api/auth/email/confirm", Public),
    rule(Method::POST, "/api/auth/password-reset", Public),
    rule(Method::POST, "/api/auth/password-reset/confirm", Public),
    rule(Method::GET, "/.well-known/jwks.json", Public),
    rule(Method::GET, "/healthz", Public),
    rule(Method::GET, "/readyz", Public),
    rule(Method::GET, "/metrics", Access::MetricsToken),
    // The API's contract; 404 when AERIE_EXPOSE_API_DOCS is off.
    rule(Method::GET, "/openapi.json", Public),
    rule(Method::GET, "/docs", Public),
];

/// What the table says about a request.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Rule(Access),
    /// The route has no row at all: refused as if it did not exist.
    NoRule,
    /// The route has rows, but not for this method; the methods it has.
    WrongMethod(String),
}

fn lookup(method: &Method, path: &str) -> Lookup {
    // HEAD is answered by the GET handler, so it follows the GET rule.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let mut allowed = Vec::new();
    for row in ROUTES.iter().filter(|row| row.path == path) {
        if row.method == method {
            return Lookup::Rule(row.access);
        }
        allowed.push(row.method.as_str());
    }
    if allowed.is_empty() {
        Lookup::NoRule
    } else {
        Lookup::WrongMethod(allowed.join(","))
    }
}

/// The step that guards a route group (`route_layer`; [`crate::stack::InPlace`] makes it a
/// layer): the table's rule, then a body announced larger than the group's limit is a 413
/// before any of it is read (after the rule, so a hidden route stays a 404 and an anonymous
/// caller learns nothing from the size of what it sends). It calls a public route in place,
/// so an anonymous read pays no clone of the routes beneath it (an `axum::middleware::from_fn`
/// layer clones them and boxes the clone for every request; BENCHMARKS.md, "The access table
/// as a service"). Unmatched requests pass on to the router's 404 fallback.
///
/// Why the announced length is checked here and not by tower-http's `RequestBodyLimit`: that
/// layer also wraps every request body and every response, two allocations on every read,
/// while a body sent without a length (chunked) is cut off at the same limit anyway by the
/// group's `DefaultBodyLimit`, which every extractor that buffers a body obeys.
#[derive(Clone)]
pub struct Enforce {
    pub state: AppState,
    /// The group's body limit in bytes.
    pub body_limit: u64,
}

impl<S: Stack + Clone + Send + 'static> Step<S> for Enforce {
    type Future = Answer;

    fn call(&self, inner: &mut S, request: Request) -> Answer {
        // A clone of the router's shared template: no copy of the text per request.
        let Some(matched) = request.extensions().get::<MatchedPath>().cloned() else {
            return inner.call_boxed(request);
        };
        let path = matched.as_str();
        let access = match lookup(request.method(), path) {
            Lookup::Rule(access) => access,
            Lookup::NoRule => {
                tracing::error!(route = %path, "route has no access rule; refused");
                return answered(Error::NotFound("route").into_response());
            }
            Lookup::WrongMethod(allowed) => {
                let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
                if let Ok(allow) = HeaderValue::from_str(&allowed) {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
                return answered(response);
            }
        };
        let required = match access {
            Access::Public => return self.call_within_limit(inner, request),
            Access::MetricsToken => {
                let token = self.state.metrics_token.as_deref();
                if super::metrics::bearer_token_matches(token, request.headers()) {
                    return self.call_within_limit(inner, request);
                }
                if request.headers().contains_key(header::AUTHORIZATION) {
                    tracing::warn!(route = %path, "metrics scrape refused: wrong bearer token");
                }
                return answered(Error::NotFound("route").into_response());
            }
            Access::Authenticated => None,
            Access::Permission(permission) => Some(permission),
        };
        Box::pin(enforce_signed_in(
            self.clone(),
            request,
            take_ready(inner),
            matched,
            required,
        ))
    }
}

impl Enforce {
    /// Calls the route, unless its body is announced larger than the group's limit.
    fn call_within_limit<S: Stack>(&self, inner: &mut S, request: Request) -> Answer {
        if self.announced_too_large(request.body()) {
            return answered(Error::PayloadTooLarge.into_response());
        }
        inner.call_boxed(request)
    }

    /// Whether the body's declared `Content-Length` (its size hint; hyper refuses a malformed
    /// one) passes the group's limit.
    fn announced_too_large(&self, body: &Body) -> bool {
        body.size_hint().lower() > self.body_limit
    }
}

/// The rest of [`Enforce`]'s step for a route that needs a signed-in caller, holding
/// `required` when it also needs a permission.
async fn enforce_signed_in<S: Stack>(
    guard: Enforce,
    request: Request,
    mut inner: S,
    matched: MatchedPath,
    required: Option<Permission>,
) -> Result<Response, Infallible> {
    let state = &guard.state;
    let path = matched.as_str();
    let (mut parts, body) = request.into_parts();
    let user = match AuthUser::from_request_parts(&mut parts, state).await {
        Ok(user) => user,
        Err(error) => return Ok(error.into_response()),
    };
    if let Some(permission) = required.filter(|permission| !user.can(*permission)) {
        // An attempt to use a privilege the caller lacks leaves a trace (sampled per user).
        let Ok(context) = RequestContext::from_request_parts(&mut parts, state).await;
        let denial = Denial::Access {
            user_id: user.user_id,
            session_id: &user.session_id,
            method: parts.method.as_str(),
            route: path,
            permission: permission.as_str(),
        };
        state.denials.record(denial, &context).await;
        return Ok(user.refusal(permission).into_response());
    }
    if let Err(refusal) = verified_to_write(state, &parts.method, path, user.user_id).await {
        return Ok(refusal.into_response());
    }
    if guard.announced_too_large(&body) {
        return Ok(Error::PayloadTooLarge.into_response());
    }
    parts.extensions.insert(user);
    inner.answer(Request::from_parts(parts, body)).await
}

/// Under `AERIE_REQUIRE_VERIFIED_EMAIL`, an account whose address is not verified cannot
/// write content (articles, comments, favourites, follows); its own account and session
/// routes stay open, so it can verify or fix its address.
async fn verified_to_write(
    state: &AppState,
    method: &Method,
    path: &str,
    user_id: i64,
) -> Result<(), Error> {
    let content = path.starts_with("/api/articles") || path.starts_with("/api/profiles");
    if !state.lifecycle.require_verified_email()
        || !content
        || matches!(*method, Method::GET | Method::HEAD)
    {
        return Ok(());
    }
    if state.store.email_verified(user_id).await? {
        Ok(())
    } else {
        Err(Error::EmailUnverified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn admin_routes_require_a_permission() {
        for row in ROUTES.iter().filter(|r| r.path.starts_with("/api/admin")) {
            assert!(
                matches!(row.access, Access::Permission(_)),
                "{} {}",
                row.method,
                row.path
            );
        }
    }

    #[test]
    fn metrics_need_the_metrics_token_not_a_user() {
        assert_eq!(
            lookup(&Method::GET, "/metrics"),
            Lookup::Rule(Access::MetricsToken)
        );
    }

    #[test]
    fn unknown_routes_and_methods_are_refused() {
        assert_eq!(lookup(&Method::GET, "/api/secret"), Lookup::NoRule);
        assert_eq!(
            lookup(&Method::PATCH, "/api/user"),
            Lookup::WrongMethod("GET,PUT,DELETE".into())
        );
        assert_eq!(
            lookup(&Method::HEAD, "/api/tags"),
            Lookup::Rule(Access::Public)
        );
    }
}
