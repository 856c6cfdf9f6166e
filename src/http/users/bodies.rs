//! The request bodies of the users API, as the contract spells them (API.md), and their
//! conversion into the services' plain inputs. Every body refuses unknown fields, and
//! passwords are `SecretString`s from the moment they are read, so no `Debug` or log line
//! can print one.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::services::accounts::{NewAccount, ProfileChanges};

// RealWorld wraps each body in an object named after the resource: `{"user": {...}}`. (A
// plain comment: a doc comment would become the schema's description.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
pub(super) struct UserBody<T> {
    #[serde(deserialize_with = "crate::http::extract::object")]
    pub(super) user: T,
}

// Fields are `Option` so that a missing one is a 422 naming it, not a bare parse error;
// the OpenAPI document marks them required, which is what the 422 enforces. The username's
// length and pattern restate `domain::Username` for clients and generators.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Registration {
    #[schema(value_type = String, required = true, example = "jacob",
        min_length = 1, max_length = 32, pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$")]
    pub(super) username: Option<String>,
    #[schema(value_type = String, format = Email, required = true, example = "jacob@example.com")]
    pub(super) email: Option<String>,
    /// At least 12 characters, and not easy to guess (zxcvbn).
    #[schema(value_type = String, format = Password, required = true, example = "correct horse battery staple 42")]
    pub(super) password: Option<SecretString>,
}

impl From<Registration> for NewAccount {
    fn from(body: Registration) -> Self {
        Self {
            username: body.username,
            email: body.email,
            password: body.password,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    #[schema(value_type = String, format = Email, required = true)]
    pub(super) email: Option<String>,
    #[schema(value_type = String, format = Password, required = true)]
    pub(super) password: Option<SecretString>,
}

/// `bio` and `image` distinguish "absent" (unchanged) from `null` or `""` (cleared).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct UserUpdate {
    #[schema(format = Email)]
    pub(super) email: Option<String>,
    // The rules of `domain::Username` (1–32 ASCII letters, digits, `_`, `-`, `.`; not dots
    // alone), as the registration documents them.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
    )]
    pub(super) username: Option<String>,
    /// A new password; empty means unchanged. Needs `currentPassword`.
    #[schema(value_type = Option<String>, format = Password)]
    pub(super) password: Option<SecretString>,
    #[schema(value_type = Option<String>, format = Password)]
    pub(super) current_password: Option<SecretString>,
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub(super) bio: Option<Option<String>>,
    /// An `https://` URL (`http://` too in development); `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub(super) image: Option<Option<String>>,
}

impl From<UserUpdate> for ProfileChanges {
    fn from(body: UserUpdate) -> Self {
        Self {
            email: body.email,
            username: body.username,
            password: body.password,
            current_password: body.current_password,
            bio: body.bio,
            image: body.image,
        }
    }
}

/// Marks a field as present, even when its value is `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PasswordChange {
    #[schema(value_type = String, format = Password, required = true)]
    pub(super) current_password: Option<SecretString>,
    #[schema(value_type = String, format = Password, required = true)]
    pub(super) new_password: Option<SecretString>,
}
