//! The text fields of request bodies as the document states them: the length bounds and the
//! refused characters of `domain` (`domain::refused_ranges`), as JSON Schema `minLength`,
//! `maxLength` and `pattern`. A client or a generator that reads the document then knows
//! what the server accepts: an empty title or a tag with a control character is invalid in
//! the document as it is at the server.
//!
//! Each type here is only a schema (`value_type = …` on the request field); requests carry
//! plain strings that the domain types parse.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::domain::{self, Lines};

/// Text that is not only blanks, with none of the refused characters: one character that is
/// neither whitespace nor refused, anywhere among characters that are not refused.
fn text(max_chars: usize, lines: Lines) -> ObjectBuilder {
    let refused: String = domain::refused_ranges(lines)
        .into_iter()
        .map(|(low, high)| format!("{}-{}", escape(low), escape(high)))
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(format!("^[^{refused}]*[^\\s{refused}][^{refused}]*$")))
}

/// `\uXXXX`, which ECMA-262 and Python regular expressions both read inside a class.
fn escape(c: char) -> String {
    format!("\\u{:04x}", u32::from(c))
}

macro_rules! text_schema {
    ($(#[$doc:meta])* $name:ident, $max:expr, $lines:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                text($max, $lines).into()
            }
        }

        impl ToSchema for $name {}
    };
}

text_schema!(
    /// `domain::Title`.
    TitleText, domain::TITLE_MAX_CHARS, Lines::Single
);
text_schema!(
    /// `domain::Description`.
    DescriptionText, domain::DESCRIPTION_MAX_CHARS, Lines::Multi
);
text_schema!(
    /// `domain::ArticleBody`: Markdown source.
    ArticleBodyText, domain::ARTICLE_BODY_MAX_CHARS, Lines::Multi
);
text_schema!(
    /// `domain::CommentBody`: Markdown source.
    CommentBodyText, domain::COMMENT_BODY_MAX_CHARS, Lines::Multi
);

/// `domain::tag_list`: at most `MAX_TAGS` tags, each one line of text.
pub(crate) struct TagList;

impl PartialSchema for TagList {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(text(domain::TAG_MAX_CHARS, Lines::Single))
            .max_items(Some(domain::MAX_TAGS))
            .into()
    }
}

impl ToSchema for TagList {}
