//! TOTP multi-factor authentication over HTTP: enrolment (`/api/auth/mfa/totp`), the login's
//! second step (`POST /api/users/login/mfa`) and the login answer that asks for it. The rules
//! are [`crate::services::mfa`]'s; here bodies are read, attempts charged and answers shaped.
//!
//! Guards against guessing codes: every MFA route is limited per client address
//! (`AERIE_RATE_LIMIT_MFA`), and every code checked is also charged to the account's own MFA
//! budget (same setting, keyed by account), so spreading guesses over many addresses gains
//! nothing. A password given on these routes spends the account's login budget, like login.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{Error, Result};
use super::extract::{AuthUser, Json};
use super::users::current::PasswordAttempt;
use super::users::presenters::{Delivery, UserResponse};
use crate::defense::rate_limit::{Policy, route};
use crate::request_context::RequestContext;
use crate::services::mfa::{LoginStep, MfaError, Proof};

/// The longest code accepted: a recovery code with separators is 19 characters.
const MAX_CODE_CHARS: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/auth/mfa/totp",
            post(begin_mfa_enrolment)
                .delete(disable_mfa)
                .layer(route(Policy::Mfa)),
        )
        .route(
            "/api/auth/mfa/totp/confirm",
            post(confirm_mfa_enrolment).layer(route(Policy::Mfa)),
        )
        .route(
            "/api/users/login/mfa",
            post(login_mfa).layer(route(Policy::Mfa)),
        )
}

/// The login's answer when MFA is on: no token yet, a challenge to answer with a code.
#[derive(Serialize, ToSchema)]
pub(super) struct MfaChallengeResponse {
    mfa: MfaChallenge,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MfaChallenge {
    /// Send it back with a code to `POST /api/users/login/mfa`, from the same client.
    challenge: String,
    /// Seconds the challenge can be answered.
    expires_in: u64,
}

/// What `POST /api/users/login` answers: the User, or (MFA on) a challenge. Documentation
/// only: the handler answers one or the other.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    reason = "documents the two answers; the handler builds each directly"
)]
pub(super) enum LoginResponse {
    User(UserResponse),
    Mfa(MfaChallengeResponse),
}

/// The login's answer: the session's tokens, or the challenge the second step needs.
pub(super) fn login_answer(state: &AppState, delivery: Delivery, step: LoginStep) -> Response {
    match step {
        LoginStep::Session(started) => delivery
            .answer(state, started.user, started.tokens, state.clock.now(), None)
            .into_response(),
        LoginStep::Challenge {
            challenge,
            expires_in,
        } => JsonResponse(MfaChallengeResponse {
            mfa: MfaChallenge {
                challenge,
                expires_in: expires_in.as_secs(),
            },
        })
        .into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SecondStep {
    #[schema(value_type = String, required = true)]
    challenge: Option<String>,
    /// A 6-digit TOTP code, or one of the recovery codes.
    #[schema(value_type = String, required = true)]
    code: Option<String>,
}

/// A code from a body: present, not blank, not absurdly long.
pub(super) fn read_code(code: Option<String>) -> Result<String> {
    let code = code.map(|code| code.trim().to_owned()).unwrap_or_default();
    if code.is_empty() {
        return Err(Error::invalid("code", "can't be blank"));
    }
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(Error::invalid(
            "code",
            format!("is too long (maximum is {MAX_CODE_CHARS} characters)"),
        ));
    }
    Ok(code)
}

/// Charges one code attempt to the account's MFA budget.
pub(super) async fn charge_code_attempt(
    state: &AppState,
    user_id: i64,
    context: &RequestContext,
) -> Result<()> {
    let ip = context.client.ip.as_deref().and_then(|ip| ip.parse().ok());
    state
        .rate_limiter
        .check_user(Policy::Mfa, user_id, ip)
        .await?;
    Ok(())
}

/// `POST /api/users/login/mfa`: the second step of a login with MFA on.
#[utoipa::path(post, path = "/api/users/login/mfa", tag = "users",
    request_body = SecondStep,
    responses(
        (status = 200, description = "Logged in; a new session starts (the User, as login answers without MFA)", body = UserResponse),
        (status = 401, description = "Unknown, expired, already used or spent challenge, or one issued to another client: one answer for all, `{\"errors\":{\"challenge\":[\"is invalid or has expired; please log in again\"]}}`"),
        (status = 422, description = "Challenge or code missing; or a wrong, replayed or spent code (the challenge takes five wrong codes, then the password must be given again)"),
        (status = 429, description = "The address's or the account's MFA budget (AERIE_RATE_LIMIT_MFA) is spent"),
    ))]
async fn login_mfa(
    State(state): State<AppState>,
    mut context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<SecondStep>,
) -> Result<impl IntoResponse> {
    let delivery = Delivery::for_new_session(&state, &headers)?;
    let challenge = body
        .challenge
        .filter(|challenge| !challenge.trim().is_empty())
        .ok_or_else(|| Error::invalid("challenge", "can't be blank"))?;
    let code = read_code(body.code)?;
    let taken = state
        .mfa
        .take_challenge(&challenge, &context)
        .await
        .map_err(challenge_refused)?;
    charge_code_attempt(&state, taken.user_id, &context).await?;
    // The device token came with the password step too; it is checked here against the
    // challenge's account, which the first step could not yet vouch for.
    if let Some(token) = super::cookies::device_token(&headers)
        && let Ok(account) = state.accounts.active(taken.user_id).await
    {
        context.client.known_device = state.login_guard.recognizes(Some(token), &account.email);
    }
    let started = state
        .mfa
        .answer_challenge(taken, &code, &context)
        .await
        .map_err(challenge_refused)?;
    Ok(delivery.answer(
        &state,
        started.user,
        started.tokens,
        state.clock.now(),
        None,
    ))
}

/// A refused login challenge reads as one: unknown, expired, spent or another client's, the
/// same words (the reason stays in the audit trail).
fn challenge_refused(error: MfaError) -> Error {
    match error {
        MfaError::Unauthenticated => Error::CredentialsRefused {
            field: "challenge",
            message: "is invalid or has expired; please log in again",
        },
        other => other.into(),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[schema(value_type = String, format = Password, required = true)]
    password: Option<SecretString>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EnrolmentResponse {
    /// The TOTP secret, base32 (for typing into an authenticator app).
    secret: String,
    /// The same as an `otpauth://totp/...` URI (for a QR code).
    otpauth_uri: String,
}

/// `POST /api/auth/mfa/totp`: starts TOTP enrolment.
#[utoipa::path(post, path = "/api/auth/mfa/totp", tag = "mfa",
    request_body = PasswordBody,
    responses(
        (status = 200, description = "A new secret; MFA stays off until `POST /api/auth/mfa/totp/confirm` accepts a code from it. Starting again replaces an unconfirmed secret", body = EnrolmentResponse),
        (status = 422, description = "Wrong or missing password, or MFA already on"),
        (status = 429, description = "The account's login budget or the address's MFA limit is spent"),
    ))]
async fn begin_mfa_enrolment(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<PasswordBody>,
) -> Result<JsonResponse<EnrolmentResponse>> {
    let password = body
        .password
        .ok_or_else(|| Error::invalid("password", "can't be blank"))?;
    let attempt = PasswordAttempt::admit_if(&state, &auth, true).await?;
    let begun = state
        .mfa
        .begin_enrolment(auth.caller(&context), &password)
        .await;
    let enrolment = attempt.settle(&state, begun).await?;
    Ok(JsonResponse(EnrolmentResponse {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    /// A 6-digit code from the authenticator app.
    #[schema(value_type = String, required = true)]
    code: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RecoveryCodes {
    /// Ten single-use codes, shown this once (only their digests are kept).
    recovery_codes: Vec<String>,
}

/// `POST /api/auth/mfa/totp/confirm`: turns MFA on.
#[utoipa::path(post, path = "/api/auth/mfa/totp/confirm", tag = "mfa",
    request_body = CodeBody,
    responses(
        (status = 200, description = "MFA is on; every other session of the caller ended. The recovery codes are shown this once", body = RecoveryCodes),
        (status = 422, description = "Missing or wrong code, no enrolment started, or MFA already on"),
        (status = 429, description = "The account's or the address's MFA budget is spent"),
    ))]
async fn confirm_mfa_enrolment(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<CodeBody>,
) -> Result<JsonResponse<RecoveryCodes>> {
    let code = read_code(body.code)?;
    charge_code_attempt(&state, auth.user_id, &context).await?;
    let recovery_codes = state
        .mfa
        .confirm_enrolment(auth.caller(&context), &code)
        .await?;
    Ok(JsonResponse(RecoveryCodes { recovery_codes }))
}

/// The password, or a code: exactly one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordOrCode {
    #[schema(value_type = String, format = Password)]
    password: Option<SecretString>,
    /// A TOTP code or a recovery code.
    #[schema(value_type = String)]
    code: Option<String>,
}

impl PasswordOrCode {
    /// The proof given, admitted before any work: a password by the login guard (settle
    /// the attempt with the outcome), a code charged to the MFA budget.
    pub(super) async fn admitted_proof(
        self,
        state: &AppState,
        auth: &AuthUser,
        context: &RequestContext,
    ) -> Result<(Proof, PasswordAttempt)> {
        match (self.password, self.code) {
            (Some(_), Some(_)) => Err(Error::invalid("body", "give either password or code")),
            (Some(password), None) => {
                let attempt = PasswordAttempt::admit_if(state, auth, true).await?;
                Ok((Proof::Password(password), attempt))
            }
            (None, code @ Some(_)) => {
                let code = read_code(code)?;
                charge_code_attempt(state, auth.user_id, context).await?;
                Ok((Proof::Code(code), PasswordAttempt::none()))
            }
            (None, None) => Err(Error::invalid("password", "can't be blank")),
        }
    }
}

/// `DELETE /api/auth/mfa/totp`: turns MFA off.
#[utoipa::path(delete, path = "/api/auth/mfa/totp", tag = "mfa",
    request_body = PasswordOrCode,
    responses(
        (status = 204, description = "MFA is off and the recovery codes are gone; every other session of the caller ended"),
        (status = 422, description = "Missing, wrong or both password and code, or MFA not on"),
        (status = 429, description = "The account's login or MFA budget, or the address's MFA limit, is spent"),
    ))]
async fn disable_mfa(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<PasswordOrCode>,
) -> Result<StatusCode> {
    let (proof, attempt) = body.admitted_proof(&state, &auth, &context).await?;
    let disabled = state.mfa.disable(auth.caller(&context), &proof).await;
    attempt.settle(&state, disabled).await?;
    Ok(StatusCode::NO_CONTENT)
}
