//! Pure types and rules, no I/O. A value of one of these types has passed its rules, so code
//! past the HTTP edge never re-checks it ("parse, don't validate").

mod article;
mod breached;
mod fields;
mod markdown;
#[cfg(test)]
mod properties;
mod role;
#[doc(hidden)]
pub mod script_check;
#[cfg(test)]
pub(crate) mod strategies;
mod text;
mod user;

pub use article::{
    ARTICLE_BODY_MAX_CHARS, ArticleBody, COMMENT_BODY_MAX_CHARS, CommentBody,
    DESCRIPTION_MAX_CHARS, Description, MAX_TAGS, Slug, TAG_MAX_CHARS, TITLE_MAX_CHARS, Tag, Title,
    tag_list,
};
pub use breached::{is_common_password, warm as warm_common_passwords};
pub use fields::{FieldErrors, InvalidFields};
pub use markdown::{
    EXPANSION_FLOOR_BYTES, MarkdownLimits, MarkdownRefusal, check_markdown, render_markdown,
    render_verbatim,
};
pub use role::{Permission, Role};
pub use text::{Lines, refused_ranges};
pub use user::{
    Bio, Email, ImageUrl, NewPassword, Username, email_key, password_within_limits, username_key,
};

/// Why a value was refused: a short message for the client, never containing the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str);
