//! Registration, login and the caller's own account (`/api/users`, `/api/user`).
//!
//! Guards against account enumeration (login answers one generic 401 whether the email is
//! unknown or the password wrong, after the same argon2 work), weak passwords (length and
//! zxcvbn strength, judged against the account's own name and email), and password takeover
//! through a stolen access token (changing the password needs the current one, and ends
//! every other session, so whoever else held the account is locked out at once). The rules
//! live in [`crate::services`]; these handlers read the request and present the answer.
//!
//! - [`bodies`]: the request bodies and their conversion into the services' inputs.
//! - [`presenters`]: the User response, and token delivery in the body or in cookies.
//! - [`sign_in`]: registration and login.
//! - [`current`]: the caller's own account.

mod bodies;
pub(super) mod current;
pub(super) mod presenters;
pub(super) mod sign_in;

use axum::Router;
use axum::routing::{get, post, put};

use super::AppState;
use crate::defense::rate_limit::{Policy, route};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/users",
            post(sign_in::register).layer(route(Policy::Register)),
        )
        .route(
            "/api/users/login",
            post(sign_in::login).layer(route(Policy::LoginIp)),
        )
        .route(
            "/api/user",
            get(current::current_user)
                .put(current::update_user)
                .delete(current::delete_user),
        )
        .route("/api/user/password", put(current::change_password))
        .route("/api/user/export", get(current::export_user))
}

/// Lets the fuzz targets (fuzz/) reach this module's private request body types.
#[doc(hidden)]
pub mod fuzz_entry;
