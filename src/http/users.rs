//! Registration, login and the caller's own account (`/api/users`, `/api/user`).
//!
//! Guards against account enumeration (login answers one generic 401 whether the email is
//! unknown or the password wrong, after the same argon2 work), weak passwords (length and
//! zxcvbn strength, judged against the account's own name and email), and password takeover
//! through a stolen access token (changing the password needs the current one, and ends
//! every other session, so whoever else held the account is locked out at once).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Router, response::IntoResponse};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::cookies::SessionCookies;
use super::error::{Error, FieldErrors, Result};
use super::extract::{AuthUser, Json};
use crate::audit::{AuditEvent, EventType};
use crate::auth::password::PasswordHasher;
use crate::clock::UnixMillis;
use crate::defense::csrf;
use crate::defense::rate_limit::{Policy, route};
use crate::domain::{Bio, Email, ImageUrl, NewPassword, Role, Username, password_within_limits};
use crate::request_context::{ClientInfo, RequestContext};
use crate::store::{NewSession, NewUser, Store, UserChanges, UserRow, is_unique_violation};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(register).layer(route(Policy::Register)))
        .route(
            "/api/users/login",
            post(login).layer(route(Policy::LoginIp)),
        )
        .route("/api/user", get(current_user).put(update_user))
        .route("/api/user/password", put(change_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
struct UserBody<T> {
    #[serde(deserialize_with = "super::extract::object")]
    user: T,
}

// Fields are `Option` so that a missing one is a 422 naming it, not a bare parse error;
// the OpenAPI document marks them required, which is what the 422 enforces.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    #[schema(value_type = String, required = true, example = "jacob")]
    pub username: Option<String>,
    #[schema(value_type = String, format = Email, required = true, example = "jacob@example.com")]
    pub email: Option<String>,
    /// At least 12 characters, and not easy to guess (zxcvbn).
    #[schema(value_type = String, format = Password, required = true, example = "correct horse battery staple 42")]
    pub password: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    #[schema(value_type = String, format = Email, required = true)]
    email: Option<String>,
    #[schema(value_type = String, format = Password, required = true)]
    password: Option<SecretString>,
}

/// `bio` and `image` distinguish "absent" (unchanged) from `null` or `""` (cleared).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserUpdate {
    email: Option<String>,
    username: Option<String>,
    /// A new password; empty means unchanged. Needs `currentPassword`.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    current_password: Option<SecretString>,
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    bio: Option<Option<String>>,
    /// An `https://` URL (`http://` too in development); `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    image: Option<Option<String>>,
}

/// Marks a field as present, even when its value is `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PasswordChange {
    #[schema(value_type = String, format = Password, required = true)]
    current_password: Option<SecretString>,
    #[schema(value_type = String, format = Password, required = true)]
    new_password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct UserResponse {
    user: UserView,
}

/// The caller's own account. `token` is the access token; `refreshToken` only comes with
/// a new session or a refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
struct UserView {
    email: String,
    /// Absent in cookie mode: the browser's `HttpOnly` cookie holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    token: Option<String>,
    /// Only when a session starts or is refreshed: it is never stored in readable form.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    refresh_token: Option<String>,
    username: String,
    /// `null` when unset (always present, as RealWorld clients expect).
    #[schema(required = true)]
    bio: Option<String>,
    #[schema(required = true)]
    image: Option<String>,
    #[schema(value_type = crate::domain::Role)]
    role: String,
}

impl UserResponse {
    /// The caller's account, echoing the access token unless it came in a cookie.
    fn for_caller(row: UserRow, auth: AuthUser) -> Self {
        let token = (!auth.via_cookie).then_some(auth.token);
        Self::build(row, token, None)
    }

    pub(super) fn with_tokens(row: UserRow, tokens: Tokens) -> Self {
        Self::build(row, Some(tokens.access), Some(tokens.refresh))
    }

    fn build(row: UserRow, token: Option<String>, refresh_token: Option<String>) -> Self {
        Self {
            user: UserView {
                email: row.email,
                token,
                refresh_token,
                username: row.username,
                bio: row.bio,
                image: row.image,
                role: row.role,
            },
        }
    }
}

#[utoipa::path(post, path = "/api/users", tag = "users",
    request_body = UserBody<Registration>,
    responses(
        (status = 201, description = "Account created; a session starts", body = UserResponse),
        (status = 422, description = "Invalid field, weak password, or username or email taken"),
    ))]
async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(UserBody { user }): Json<UserBody<Registration>>,
) -> Result<impl IntoResponse> {
    let delivery = Delivery::for_new_session(&state, &headers)?;
    let row = create_account(
        &state.store,
        &state.hasher,
        state.passwords.min_score,
        state.clock.now(),
        user,
    )
    .await?;
    let (session, tokens) = start_session(&state, &row, &context.client).await?;
    let event = AuditEvent::new(EventType::UserRegistered)
        .actor(row.id)
        .subject(row.id)
        .session(session)
        .from_request(&context);
    state.audit.record(event).await?;
    let (cookies, body) = delivery.answer(&state, row, tokens, state.clock.now(), None);
    Ok((StatusCode::CREATED, cookies, body))
}

/// Validates and stores a new account (role `user`): the one path for the API's
/// registration and the `aerie user create` command.
pub async fn create_account(
    store: &Store,
    hasher: &PasswordHasher,
    min_score: u8,
    now: UnixMillis,
    user: Registration,
) -> Result<UserRow> {
    let (username, email, password) = validate_registration(user, min_score)?;
    let password_hash = hasher.hash(password.secret()).await?;
    store
        .insert_user(NewUser {
            username: username.as_str(),
            username_key: &username.key(),
            email: email.as_str(),
            email_key: &email.key(),
            password_hash: &password_hash,
            now,
        })
        .await
        .map_err(taken_or_internal)
}

/// The field rules of a registration, before any store or hashing work.
fn validate_registration(
    user: Registration,
    min_score: u8,
) -> Result<(Username, Email, NewPassword)> {
    let mut errors = FieldErrors::default();
    let username = errors.required("username", user.username, Username::parse);
    let email = errors.required("email", user.email, Email::parse);
    let related: Vec<&str> = username
        .iter()
        .map(Username::as_str)
        .chain(email.iter().map(Email::as_str))
        .collect();
    let password = errors.required("password", user.password, |p| {
        NewPassword::parse(p, min_score, &related)
    });
    errors.finish()?;
    match (username, email, password) {
        (Some(username), Some(email), Some(password)) => Ok((username, email, password)),
        _ => Err(Error::Internal("validated fields missing".into())),
    }
}

/// A unique-index violation on username or email is a 422 on that field.
fn taken_or_internal(error: sqlx::Error) -> Error {
    for field in ["username", "email"] {
        if is_unique_violation(&error, "users", &format!("{field}_key")) {
            return Error::invalid(field, "has already been taken");
        }
    }
    error.into()
}

#[utoipa::path(post, path = "/api/users/login", tag = "users",
    request_body = UserBody<Login>,
    responses(
        (status = 200, description = "Logged in; a new session starts", body = UserResponse),
        (status = 401, description = "Wrong email or password, or a disabled account (one answer for all)"),
    ))]
async fn login(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(UserBody { user }): Json<UserBody<Login>>,
) -> Result<impl IntoResponse> {
    let delivery = Delivery::for_new_session(&state, &headers)?;
    let mut errors = FieldErrors::default();
    if user.email.as_deref().is_none_or(str::is_empty) {
        errors.missing("email");
    }
    if user.password.is_none() {
        errors.missing("password");
    }
    errors.finish()?;
    let (Some(email), Some(password)) = (user.email, user.password) else {
        return Err(Error::Internal("validated fields missing".into()));
    };
    // Per target account, before any work: see `defense::rate_limit` for the lockout rule.
    state
        .rate_limiter
        .check_account(Policy::LoginAccount, &email)
        .await?;
    if !password_within_limits(&password) {
        return Err(login_failed(&state, &context, None, "password_out_of_limits").await);
    }
    let row = state
        .store
        .user_by_email_key(&crate::domain::email_key(&email))
        .await?;
    let matches = state
        .hasher
        .verify(&password, row.as_ref().map(|r| r.password_hash.as_str()))
        .await?;
    let row = match row {
        Some(row) if matches && row.disabled_at.is_none() => row,
        Some(row) => {
            let reason = if matches {
                "disabled"
            } else {
                "wrong_password"
            };
            return Err(login_failed(&state, &context, Some(row.id), reason).await);
        }
        None => return Err(login_failed(&state, &context, None, "unknown_account").await),
    };
    let (session, tokens) = start_session(&state, &row, &context.client).await?;
    let event = AuditEvent::new(EventType::LoginSucceeded)
        .actor(row.id)
        .subject(row.id)
        .session(session)
        .from_request(&context);
    state.audit.record(event).await?;
    Ok(delivery.answer(&state, row, tokens, state.clock.now(), None))
}

/// Records a failed login and returns the one answer every failure gets. The reason stays
/// in the audit trail: telling the caller would confirm which accounts exist.
async fn login_failed(
    state: &AppState,
    context: &RequestContext,
    account: Option<i64>,
    reason: &'static str,
) -> Error {
    let mut event = AuditEvent::new(EventType::LoginFailed)
        .from_request(context)
        .detail(serde_json::json!({ "reason": reason }));
    event.subject = account;
    match state.audit.record(event).await {
        Ok(_) => Error::Unauthorized,
        Err(error) => error.into(),
    }
}

/// A session's access token and its freshly minted refresh token.
pub(super) struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// How a new or refreshed session's tokens reach the client: in the body, or (cookie mode)
/// in cookies, with a body that carries neither token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    Body,
    Cookies,
}

impl Delivery {
    /// For login and register: cookies when asked for or configured, and then only for a
    /// request that names no foreign origin (another site must not sign the browser into an
    /// account of its choosing).
    fn for_new_session(state: &AppState, headers: &HeaderMap) -> Result<Self> {
        if !super::cookies::requested(&state.cookies, headers) {
            return Ok(Self::Body);
        }
        csrf::check_origin(headers, &state.origins, csrf::OriginRule::IfPresent)?;
        Ok(Self::Cookies)
    }

    /// The answer for a session created at `session_created_at`. A refreshed session keeps
    /// the CSRF token the browser holds (`csrf_token`); a new one gets a fresh one.
    pub(super) fn answer(
        self,
        state: &AppState,
        row: UserRow,
        tokens: Tokens,
        session_created_at: UnixMillis,
        csrf_token: Option<String>,
    ) -> (Option<SessionCookies>, axum::Json<UserResponse>) {
        if self == Self::Body {
            return (None, axum::Json(UserResponse::with_tokens(row, tokens)));
        }
        let cookies = SessionCookies {
            access: tokens.access,
            access_lifetime: state.tokens.ttl(),
            refresh: tokens.refresh,
            refresh_lifetime: SessionCookies::refresh_lifetime(
                &state.session_times,
                session_created_at,
                state.clock.now(),
            ),
            csrf: csrf_token.unwrap_or_else(csrf::mint_token),
        };
        (
            Some(cookies),
            axum::Json(UserResponse::build(row, None, None)),
        )
    }
}

/// Opens a new session (never adopts one the client offers) and issues its first tokens.
/// Returns the session id with them.
async fn start_session(
    state: &AppState,
    user: &UserRow,
    client: &ClientInfo,
) -> Result<(String, Tokens)> {
    let session_id = uuid::Uuid::new_v4().simple().to_string();
    state
        .store
        .insert_session(NewSession {
            id: &session_id,
            user_id: user.id,
            now: state.clock.now(),
            client_ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        })
        .await?;
    let tokens = issue_tokens(state, user, &session_id).await?;
    Ok((session_id, tokens))
}

/// Mints a refresh token in the session's family (only its hash is stored) and signs an
/// access token carrying the user's current role.
pub(super) async fn issue_tokens(
    state: &AppState,
    user: &UserRow,
    session_id: &str,
) -> Result<Tokens> {
    let refresh = crate::auth::refresh::mint();
    state
        .store
        .insert_refresh_token(&refresh.hash, session_id, state.clock.now())
        .await?;
    let role = Role::parse(&user.role).unwrap_or(Role::User);
    Ok(Tokens {
        access: state.tokens.issue(user.id, session_id, role),
        refresh: refresh.value,
    })
}

/// Ends every session of the user but `keep`, at once and on every instance.
pub(super) async fn revoke_sessions(
    state: &AppState,
    user_id: i64,
    keep: Option<&str>,
) -> Result<()> {
    revoke_listed_sessions(state, user_id, keep).await.map(drop)
}

/// [`revoke_sessions`], answering the ids it revoked.
async fn revoke_listed_sessions(
    state: &AppState,
    user_id: i64,
    keep: Option<&str>,
) -> Result<Vec<String>> {
    let revoked = state
        .store
        .revoke_user_sessions(user_id, keep, state.clock.now())
        .await?;
    state.revocations.announce(&state.store, &revoked).await?;
    Ok(revoked)
}

/// Why the caller's own action revoked sessions, as the `session_revoked` event names it.
#[derive(Debug, Clone, Copy)]
pub(super) enum RevokedBecause {
    /// `POST /api/auth/logout-all`.
    LogoutAll,
    /// `DELETE /api/auth/sessions/:id`.
    SessionDeleted,
    /// A password change ended the caller's other sessions.
    PasswordChanged,
}

impl RevokedBecause {
    fn as_str(self) -> &'static str {
        match self {
            Self::LogoutAll => "logout_all",
            Self::SessionDeleted => "session_deleted",
            Self::PasswordChanged => "password_changed",
        }
    }
}

/// Ends the caller's sessions (all, or all but the current one) and records it.
pub(super) async fn revoke_own_sessions(
    state: &AppState,
    auth: &AuthUser,
    context: &RequestContext,
    because: RevokedBecause,
) -> Result<()> {
    let keep = match because {
        RevokedBecause::PasswordChanged => Some(auth.session_id.as_str()),
        RevokedBecause::LogoutAll | RevokedBecause::SessionDeleted => None,
    };
    let revoked = revoke_listed_sessions(state, auth.user_id, keep).await?;
    record_revoked(state, auth, context, because, &auth.session_id, &revoked).await
}

/// Records one `session_revoked` event for the caller's own action: `session` is the one the
/// event is about (the revoked one, or the caller's own when several were), `revoked` every
/// session id that ended. Nothing revoked, nothing recorded.
pub(super) async fn record_revoked(
    state: &AppState,
    auth: &AuthUser,
    context: &RequestContext,
    because: RevokedBecause,
    session: &str,
    revoked: &[String],
) -> Result<()> {
    if revoked.is_empty() {
        return Ok(());
    }
    let event = AuditEvent::new(EventType::SessionRevoked)
        .actor(auth.user_id)
        .subject(auth.user_id)
        .session(session)
        .from_request(context)
        .detail(serde_json::json!({
            "by": "user",
            "reason": because.as_str(),
            "callerSession": auth.session_id,
            "revoked": revoked.len(),
        }));
    state.audit.record(event).await?;
    Ok(())
}

/// The caller's account, re-read so a disabled or deleted account stops at once.
pub(super) async fn active_user(state: &AppState, auth: &AuthUser) -> Result<UserRow> {
    match state.store.user_by_id(auth.user_id).await? {
        Some(row) if row.disabled_at.is_none() => Ok(row),
        _ => Err(Error::Unauthorized),
    }
}

#[utoipa::path(get, path = "/api/user", tag = "users",
    responses((status = 200, description = "The caller's account", body = UserResponse)))]
async fn current_user(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<UserResponse>> {
    let row = active_user(&state, &auth).await?;
    Ok(axum::Json(UserResponse::for_caller(row, auth)))
}

#[utoipa::path(put, path = "/api/user", tag = "users",
    request_body = UserBody<UserUpdate>,
    responses((status = 200, description = "The updated account", body = UserResponse)))]
async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(UserBody { user }): Json<UserBody<UserUpdate>>,
) -> Result<axum::Json<UserResponse>> {
    let current = active_user(&state, &auth).await?;
    let mut errors = FieldErrors::default();
    let mut changes = UserChanges::default();
    let username = user
        .username
        .and_then(|v| errors.check("username", Username::parse(v)));
    let email = user
        .email
        .and_then(|v| errors.check("email", Email::parse(v)));
    if let Some(bio) = user.bio {
        let bio = bio.filter(|b| !b.is_empty());
        changes.bio =
            Some(bio.and_then(|b| errors.check("bio", Bio::parse(b)).map(Bio::into_inner)));
    }
    if let Some(image) = user.image {
        let allow_http = state.http.allow_http_image_urls;
        let image = image.filter(|i| !i.is_empty());
        changes.image = Some(image.and_then(|i| {
            errors
                .check("image", ImageUrl::parse(i, allow_http))
                .map(ImageUrl::into_inner)
        }));
    }
    // RealWorld front ends send an empty password field when it is not being changed.
    let new_password = user
        .password
        .filter(|p| !secrecy::ExposeSecret::expose_secret(p).is_empty());
    let new_password = match new_password {
        Some(value) => {
            let name = username
                .as_ref()
                .map_or(current.username.as_str(), Username::as_str);
            let mail = email.as_ref().map_or(current.email.as_str(), Email::as_str);
            errors.check(
                "password",
                NewPassword::parse(value, state.passwords.min_score, &[name, mail]),
            )
        }
        None => None,
    };
    errors.finish()?;
    if let Some(password) = &new_password {
        check_current_password(&state, &current, user.current_password).await?;
        changes.password_hash = Some(state.hasher.hash(password.secret()).await?);
    }
    changes.username = username.map(|u| (u.as_str().to_owned(), u.key()));
    changes.email = email.map(|e| (e.as_str().to_owned(), e.key()));
    let password_changed = changes.password_hash.is_some();
    let email_changed = changes
        .email
        .as_ref()
        .is_some_and(|(_, key)| *key != crate::domain::email_key(&current.email));
    let row = state
        .store
        .update_user(current.id, changes, state.clock.now())
        .await
        .map_err(taken_or_internal)?
        .ok_or(Error::Unauthorized)?;
    if password_changed {
        revoke_own_sessions(&state, &auth, &context, RevokedBecause::PasswordChanged).await?;
    }
    let changed = [
        (password_changed, EventType::PasswordChanged),
        (email_changed, EventType::EmailChanged),
    ];
    for (_, kind) in changed.into_iter().filter(|(happened, _)| *happened) {
        let event = AuditEvent::new(kind)
            .actor(auth.user_id)
            .subject(row.id)
            .session(auth.session_id.clone())
            .from_request(&context);
        state.audit.record(event).await?;
    }
    Ok(axum::Json(UserResponse::for_caller(row, auth)))
}

/// A 422 on `currentPassword` unless it is given and right.
async fn check_current_password(
    state: &AppState,
    account: &UserRow,
    current_password: Option<SecretString>,
) -> Result<()> {
    let current_password = current_password
        .ok_or_else(|| Error::invalid("currentPassword", "is required to change the password"))?;
    if !password_within_limits(&current_password)
        || !state
            .hasher
            .verify(&current_password, Some(&account.password_hash))
            .await?
    {
        return Err(Error::invalid("currentPassword", "is incorrect"));
    }
    Ok(())
}

/// `PUT /api/user/password`: needs the current password; every other session ends (the
/// caller's own keeps working, so the device that changed it stays signed in).
#[utoipa::path(put, path = "/api/user/password", tag = "users",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed; every other session of the caller ended")))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode> {
    let current = active_user(&state, &auth).await?;
    let mut errors = FieldErrors::default();
    let min_score = state.passwords.min_score;
    let related = [current.username.as_str(), current.email.as_str()];
    let new_password = errors.required("newPassword", body.new_password, |p| {
        NewPassword::parse(p, min_score, &related)
    });
    errors.finish()?;
    let Some(new_password) = new_password else {
        return Err(Error::Internal("validated fields missing".into()));
    };
    check_current_password(&state, &current, body.current_password).await?;
    let changes = UserChanges {
        password_hash: Some(state.hasher.hash(new_password.secret()).await?),
        ..UserChanges::default()
    };
    state
        .store
        .update_user(current.id, changes, state.clock.now())
        .await?
        .ok_or(Error::Unauthorized)?;
    revoke_own_sessions(&state, &auth, &context, RevokedBecause::PasswordChanged).await?;
    let event = AuditEvent::new(EventType::PasswordChanged)
        .actor(auth.user_id)
        .subject(current.id)
        .session(auth.session_id.clone())
        .from_request(&context);
    state.audit.record(event).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets the fuzz targets (fuzz/) reach this module's private request body types.
#[doc(hidden)]
pub mod fuzz_entry;
