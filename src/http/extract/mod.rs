//! Extractors are the guards: a handler that takes [`AuthUser`] cannot run for an anonymous
//! caller, and one that takes [`Json`] only ever sees a well-formed body of the right type.

mod context;

use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, DeserializeOwned, Deserializer, MapAccess, Visitor};

use super::AppState;
use super::error::Error;
use super::json_bounds::{Exceeded, MAX_DEPTH, MAX_STRING_CHARS};
use crate::auth::tokens::{Rejection, Verified, claimed_role};
use crate::clock::UnixMillis;
use crate::defense::client_ip::ClientIp;
use crate::defense::csrf;
use crate::defense::rate_limit::Policy;
use crate::domain::{Permission, Role};
use crate::request_context::RequestContext;
use crate::services::Caller;
use crate::services::denials::Denial;

/// A caller with a valid access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: i64,
    pub session_id: String,
    pub role: Role,
    /// The last password authentication the token vouches for (`auth_time`).
    pub authenticated_at: UnixMillis,
    /// The token as presented, echoed back in the User response (unless it came in a cookie).
    pub token: String,
    /// The access token came in the session cookie (cookie mode), not the `Authorization`
    /// header: responses must not hand it to the page's scripts.
    pub via_cookie: bool,
    /// The role needs MFA (`AERIE_MFA_REQUIRED_ROLES`) and the account has none: the role's
    /// permissions do not count until it enrols.
    pub permissions_withheld: bool,
}

impl AuthUser {
    pub fn can(&self, permission: Permission) -> bool {
        !self.permissions_withheld && self.role.can(permission)
    }

    /// Why the caller may not use `permission`: a plain 403, or, when their role holds it
    /// and only a missing MFA enrolment withholds it, the answer that says how to get it.
    pub fn refusal(&self, permission: Permission) -> Error {
        if self.permissions_withheld && self.role.can(permission) {
            Error::MfaEnrolmentRequired
        } else {
            Error::Forbidden
        }
    }

    /// The caller as the services know them: account, session, and the request.
    pub fn caller<'a>(&'a self, request: &'a RequestContext) -> Caller<'a> {
        Caller {
            user_id: self.user_id,
            session_id: &self.session_id,
            authenticated_at: self.authenticated_at,
            request,
        }
    }
}

/// A permission a route requires, as a type, so a handler's signature states its rule:
/// `Require<UserRoleSet>` can only be extracted for a caller whose role holds it.
pub trait RequiredPermission {
    const PERMISSION: Permission;
}

macro_rules! permission_markers {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("Marker for [`Permission::", stringify!($name), "`].")]
        pub struct $name;
        impl RequiredPermission for $name {
            const PERMISSION: Permission = Permission::$name;
        }
    )*};
}
permission_markers!(
    UserReadAny,
    UserRoleSet,
    UserDisable,
    UserDeleteAny,
    SessionRevokeAny,
    AuditRead
);

/// A signed-in caller holding permission `P` (403 otherwise).
pub struct Require<P>(pub AuthUser, pub std::marker::PhantomData<P>);

impl<P: RequiredPermission> FromRequestParts<AppState> for Require<P> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.can(P::PERMISSION) {
            return Err(user.refusal(P::PERMISSION));
        }
        Ok(Self(user, std::marker::PhantomData))
    }
}

/// A caller who may be anonymous. A token that is present but invalid is still a 401, not
/// an anonymous request: silently downgrading would hide a broken client or an attack.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl MaybeAuthUser {
    pub fn user_id(&self) -> Option<i64> {
        self.0.as_ref().map(|user| user.user_id)
    }
}

/// The token from `Authorization: Token <jwt>` or `Bearer <jwt>`; exactly one header, one
/// space, no trailing words. Tokens in the URL or other headers are never read.
fn presented_token(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::InvalidToken);
    }
    let value = value.to_str().map_err(|_| Error::InvalidToken)?;
    let token = value
        .strip_prefix("Token ")
        .or_else(|| value.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty() && !t.contains(char::is_whitespace))
        .ok_or(Error::InvalidToken)?;
    Ok(Some(token))
}

/// Why a presented token did not authenticate: the token's fault (one generic 401, the
/// reason kept for the audit trail), or a dependency's (the database behind the idle check).
enum Refusal {
    Token(Rejection),
    Failed(Error),
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Self::Token(rejection)
    }
}

async fn authenticate(
    state: &AppState,
    token: &str,
    via_cookie: bool,
) -> Result<AuthUser, Refusal> {
    let Verified {
        user_id,
        session_id,
        role,
        authenticated_at,
        issued_at,
    } = state.tokens.check(token)?;
    // In memory, no database read: a revoked session's tokens stop here at once, on every
    // instance (see `auth::revocations`).
    if state.revocations.is_revoked(&session_id) {
        return Err(Rejection::Revoked.into());
    }
    // The `realworld` profile's tokens live as long as their session: its idle timeout is
    // checked here instead of at refresh (see `auth::activity`).
    if let Some(activity) = &state.activity {
        let active = activity
            .admit(&state.store, &session_id, issued_at)
            .await
            .map_err(|error| Refusal::Failed(error.into()))?;
        if !active {
            return Err(Rejection::Idle.into());
        }
    }
    // The request's log line names who made it.
    tracing::Span::current().record("user_id", user_id);
    Ok(AuthUser {
        user_id,
        session_id,
        role,
        authenticated_at,
        token: token.to_owned(),
        via_cookie,
        permissions_withheld: false,
    })
}

/// [`authenticate`], with a refused token recorded on the audit trail (sampled, see
/// [`crate::services::denials`]) before the one generic 401.
async fn authenticate_or_record(
    parts: &mut Parts,
    state: &AppState,
    token: &str,
    via_cookie: bool,
) -> Result<AuthUser, Error> {
    match authenticate(state, token, via_cookie).await {
        Ok(user) => Ok(user),
        Err(Refusal::Token(rejection)) => {
            record_rejection(parts, state, rejection, claimed_role(token)).await;
            Err(Error::InvalidToken)
        }
        Err(Refusal::Failed(error)) => Err(error),
    }
}

async fn record_rejection(
    parts: &mut Parts,
    state: &AppState,
    rejection: Rejection,
    claimed_role: Option<Role>,
) {
    let Ok(context) = RequestContext::from_request_parts(parts, state).await;
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    let denial = Denial::Token {
        rejection,
        claimed_role: claimed_role.map(Role::as_str),
        method: parts.method.as_str(),
        route,
    };
    state.denials.record(denial, &context).await;
}

/// [`presented_token`], with a malformed `Authorization` header recorded like a refused token.
async fn presented_token_or_record(
    parts: &mut Parts,
    state: &AppState,
) -> Result<Option<String>, Error> {
    match presented_token(&parts.headers) {
        Ok(token) => Ok(token.map(str::to_owned)),
        Err(error) => {
            record_rejection(parts, state, Rejection::Malformed, None).await;
            Err(error)
        }
    }
}

/// The access token of the session cookie, when cookie mode is on and no `Authorization`
/// header was sent (the header always wins, and then no cookie is looked at).
fn cookie_token<'a>(parts: &'a Parts, state: &AppState) -> Option<&'a str> {
    super::cookies::read(
        &state.cookies,
        &parts.headers,
        super::cookies::ACCESS_COOKIE,
    )
}

/// A request the browser authenticated with our cookie must come from our own front end: a
/// state change needs the CSRF token and a trusted origin, and any request that names a
/// foreign origin is refused (see [`crate::defense::csrf`]).
fn check_cookie_request(parts: &Parts, state: &AppState) -> Result<(), Error> {
    if parts.method.is_safe() {
        csrf::check_origin(&parts.headers, &state.origins, csrf::OriginRule::IfPresent)?;
        return Ok(());
    }
    let csrf_cookie =
        super::cookies::read(&state.cookies, &parts.headers, super::cookies::CSRF_COOKIE);
    Ok(csrf::check_state_change(
        &parts.headers,
        csrf_cookie,
        &state.origins,
    )?)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // Already verified by the access table's middleware for this request.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        // Boxed, so the handlers whose caller the access table has verified (most) do not
        // carry this large future in theirs (BENCHMARKS.md, "Futures sized for the public
        // path").
        Box::pin(verify_caller(parts, state)).await
    }
}

/// [`AuthUser`] for a request whose caller no layer has verified yet.
async fn verify_caller(parts: &mut Parts, state: &AppState) -> Result<AuthUser, Error> {
    let mut user = match presented_token_or_record(parts, state).await? {
        Some(token) => authenticate_or_record(parts, state, &token, false).await?,
        None => {
            let token = cookie_token(parts, state)
                .ok_or(Error::Unauthorized)?
                .to_owned();
            let user = authenticate_or_record(parts, state, &token, true).await?;
            check_cookie_request(parts, state)?;
            user
        }
    };
    // Only roles that require MFA cost a read here (none by default).
    user.permissions_withheld = state.mfa.enrolment_missing(user.user_id, user.role).await?;
    // Writes cost storage and fan out to other users' feeds: each account gets a budget.
    if !parts.method.is_safe() {
        let ip = parts.extensions.get::<ClientIp>().map(|ClientIp(ip)| *ip);
        state
            .rate_limiter
            .check_user(Policy::Writes, user.user_id, ip)
            .await?;
    }
    Ok(user)
}

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // Most public reads carry no credential at all; only those that do pay for the
        // (boxed, large) verification future.
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && cookie_token(parts, state).is_none()
        {
            return Ok(Self(None));
        }
        Box::pin(verify_optional_caller(parts, state)).await
    }
}

/// [`MaybeAuthUser`] for a request that sent an `Authorization` header or the session cookie.
async fn verify_optional_caller(
    parts: &mut Parts,
    state: &AppState,
) -> Result<MaybeAuthUser, Error> {
    if let Some(token) = presented_token_or_record(parts, state).await? {
        let user = authenticate_or_record(parts, state, &token, false).await?;
        return Ok(MaybeAuthUser(Some(user)));
    }
    let Some(token) = cookie_token(parts, state) else {
        return Ok(MaybeAuthUser(None));
    };
    // A stale cookie (its session revoked elsewhere) is one the page cannot delete, being
    // `HttpOnly`: answering 401 would lock its owner out of public pages until it
    // expires, so it counts as no credential here (and is not a refusal to record).
    // Routes that need a user still say 401.
    let user = match authenticate(state, token, true).await {
        Ok(user) => user,
        Err(Refusal::Token(_)) => return Ok(MaybeAuthUser(None)),
        Err(Refusal::Failed(error)) => return Err(error),
    };
    check_cookie_request(parts, state)?;
    Ok(MaybeAuthUser(Some(user)))
}

/// A JSON body: `Content-Type: application/json` required (415 otherwise, which also forces a
/// CORS preflight for cross-site callers), size bounded by the body limit (413), nesting
/// deeper than 32 levels or malformed JSON a 400, a string over 65 536 characters a 422, and
/// a body of the wrong shape (unknown or duplicate fields, wrong types, an
/// array where an object belongs) a 422.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        if !is_json(request.headers()) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection {
                    BytesRejection::FailedToBufferBody(_) => Error::PayloadTooLarge,
                    _ => Error::malformed_body("could not be read"),
                })?;
        decode_json(&bytes).map(Json)
    }
}

/// The body half of [`Json`]: bytes to a request type, or the 400/422 the client gets.
/// Public and free of the request so the fuzz targets (fuzz/) run arbitrary bytes through
/// exactly the decoding the server uses.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // Before parsing: a body's shape must not cost more than its size.
    match super::json_bounds::check(bytes) {
        Ok(()) => {}
        Err(Exceeded::Depth) => {
            return Err(Error::malformed_body(format!(
                "is JSON nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Err(Exceeded::StringLength) => {
            return Err(Error::invalid(
                "body",
                format!("has a string longer than {MAX_STRING_CHARS} characters"),
            ));
        }
    }
    let mut json = serde_json::Deserializer::from_slice(bytes);
    object(&mut json)
        .and_then(|value| json.end().map(|()| value))
        .map_err(|e| {
            if e.is_data() {
                Error::invalid("body", format!("is invalid: {e}"))
            } else {
                Error::malformed_body(format!("is not valid JSON: {e}"))
            }
        })
}

/// Reads a struct from a JSON object only. serde also fills a struct from an array, by
/// position (`[["bob", "bob@example.com", "…"]]` would register bob): a shape no client of
/// this API sends, so it is refused like any other wrong shape. Request wrappers put this on
/// their field too (`{"user": [...]}`), one level being all a wrapped body has.
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOnly<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectOnly(PhantomData))
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence_ok = parts
        .next()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    let params_ok = parts.all(|p| {
        p.eq_ignore_ascii_case("charset=utf-8") || p.eq_ignore_ascii_case("charset=\"utf-8\"")
    });
    essence_ok && params_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_the_documented_schemes_carry_a_token() {
        assert_eq!(
            presented_token(&headers(&[("authorization", "Token abc")]))
                .ok()
                .flatten(),
            Some("abc")
        );
        assert_eq!(
            presented_token(&headers(&[("authorization", "Bearer abc")]))
                .ok()
                .flatten(),
            Some("abc")
        );
        assert_eq!(presented_token(&headers(&[])).ok().flatten(), None);
        for bad in [
            "token abc",
            "Token  abc",
            "Token abc extra",
            "Basic abc",
            "Token ",
        ] {
            assert!(
                presented_token(&headers(&[("authorization", bad)])).is_err(),
                "{bad}"
            );
        }
        let two = headers(&[("authorization", "Token a"), ("authorization", "Token b")]);
        assert!(presented_token(&two).is_err());
    }

    #[test]
    fn json_content_type_is_required() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
            "application/jsonx",
        ] {
            assert!(!is_json(&headers(&[("content-type", bad)])), "{bad}");
        }
    }
}
