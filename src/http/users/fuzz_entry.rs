//! The fuzz targets' way in (fuzz/fuzz_targets/request_bodies.rs). This module's request
//! body types are private, so the fuzzer cannot name them: this decodes bytes into each of
//! them with the `Json` extractor's own decoder, then applies the field rules the handlers
//! apply before they touch the store or the password hasher.

use super::bodies::{Login, PasswordChange, Registration, UserBody, UserUpdate};
use crate::domain::{
    Bio, Email, FieldErrors, ImageUrl, NewPassword, Username, password_within_limits,
};
use crate::http::error::Result;
use crate::http::extract::decode_json;
use crate::services::accounts::validate_registration;

/// The default `AERIE_PASSWORD_MIN_SCORE`.
const MIN_SCORE: u8 = 3;

/// One outcome per body type: `Ok` for a body a handler would accept.
pub fn check_bodies(bytes: &[u8]) -> [Result<()>; 4] {
    [
        registration(bytes),
        login(bytes),
        update(bytes),
        password_change(bytes),
    ]
}

fn registration(bytes: &[u8]) -> Result<()> {
    let UserBody { user } = decode_json::<UserBody<Registration>>(bytes)?;
    validate_registration(user.into(), MIN_SCORE)?;
    Ok(())
}

fn login(bytes: &[u8]) -> Result<()> {
    let UserBody { user } = decode_json::<UserBody<Login>>(bytes)?;
    let mut errors = FieldErrors::default();
    if user.email.as_deref().is_none_or(str::is_empty) {
        errors.missing("email");
    }
    match &user.password {
        // Out of limits is a 401 after the same work as a wrong password, not a 422.
        Some(password) => _ = password_within_limits(password),
        None => errors.missing("password"),
    }
    Ok(errors.finish()?)
}

fn update(bytes: &[u8]) -> Result<()> {
    let UserBody { user } = decode_json::<UserBody<UserUpdate>>(bytes)?;
    let mut errors = FieldErrors::default();
    user.username
        .and_then(|v| errors.check("username", Username::parse(v)));
    user.email
        .and_then(|v| errors.check("email", Email::parse(v)));
    if let Some(Some(bio)) = user.bio.map(|b| b.filter(|b| !b.is_empty())) {
        errors.check("bio", Bio::parse(bio));
    }
    if let Some(Some(image)) = user.image.map(|i| i.filter(|i| !i.is_empty())) {
        errors.check("image", ImageUrl::parse(image, false));
    }
    if let Some(password) = user.password {
        errors.check("password", NewPassword::parse(password, MIN_SCORE, &[]));
    }
    Ok(errors.finish()?)
}

fn password_change(bytes: &[u8]) -> Result<()> {
    let body = decode_json::<PasswordChange>(bytes)?;
    let mut errors = FieldErrors::default();
    errors.required("newPassword", body.new_password, |p| {
        NewPassword::parse(p, MIN_SCORE, &[])
    });
    Ok(errors.finish()?)
}
