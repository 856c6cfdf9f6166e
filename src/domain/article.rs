//! Article and comment fields. Titles, descriptions and tags are plain text; bodies are
//! Markdown source, stored unchanged and rendered through the sanitizer on the way out.

use super::Invalid;
use super::text::{Lines, check};

macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $lines:expr, $too_long:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: String) -> Result<Self, Invalid> {
                let blank = $min > 0 && value.trim().is_empty();
                if blank {
                    return Err(Invalid("can't be blank"));
                }
                check(&value, $min, $max, $lines, "can't be blank", $too_long)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }
    };
}

text_field!(
    /// An article title, 1–200 characters on one line; the slug derives from it.
    Title, 1, TITLE_MAX_CHARS, Lines::Single, "is too long (maximum is 200 characters)"
);
text_field!(
    /// A one-paragraph summary shown in article lists.
    Description, 1, DESCRIPTION_MAX_CHARS, Lines::Multi, "is too long (maximum is 1000 characters)"
);
text_field!(
    /// Markdown source of an article.
    ArticleBody, 1, ARTICLE_BODY_MAX_CHARS, Lines::Multi, "is too long (maximum is 60000 characters)"
);
text_field!(
    /// Markdown source of a comment.
    CommentBody, 1, COMMENT_BODY_MAX_CHARS, Lines::Multi, "is too long (maximum is 10000 characters)"
);
text_field!(
    /// One tag: 1–40 characters on one line.
    Tag, 1, TAG_MAX_CHARS, Lines::Single, "is too long (maximum is 40 characters)"
);

// The longest value of each field, in characters (the API document states them too).
pub const TITLE_MAX_CHARS: usize = 200;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
pub const ARTICLE_BODY_MAX_CHARS: usize = 60_000;
pub const COMMENT_BODY_MAX_CHARS: usize = 10_000;
pub const TAG_MAX_CHARS: usize = 40;
/// The most tags one article may carry (the API document states it too).
pub const MAX_TAGS: usize = 20;

/// Parses a tag list: at most 20 tags, duplicates dropped, sorted alphabetically (the order
/// the API promises).
pub fn tag_list(values: Vec<String>) -> Result<Vec<Tag>, Invalid> {
    if values.len() > MAX_TAGS {
        return Err(Invalid("has too many tags (maximum is 20)"));
    }
    let mut tags = values
        .into_iter()
        .map(Tag::parse)
        .collect::<Result<Vec<_>, _>>()?;
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    tags.dedup();
    Ok(tags)
}

/// A URL-safe identifier derived from a title: lowercase ASCII letters and digits joined by
/// single hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn from_title(title: &Title) -> Self {
        let mut slug = String::with_capacity(title.0.len());
        for c in title.0.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        while slug.ends_with('-') {
            slug.pop();
        }
        slug.truncate(80);
        while slug.ends_with('-') {
            slug.pop();
        }
        if slug.is_empty() {
            slug.push_str("article");
        }
        Self(slug)
    }

    /// The same slug with a suffix, for when another article already holds the plain one.
    pub fn with_suffix(&self, suffix: &str) -> Self {
        Self(format!("{}-{suffix}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn title(s: &str) -> Title {
        Title::parse(s.into()).expect("valid title")
    }

    #[test]
    fn slugs_are_lowercase_words_joined_by_hyphens() {
        assert_eq!(
            Slug::from_title(&title("How to train your dragon")).as_str(),
            "how-to-train-your-dragon"
        );
        assert_eq!(
            Slug::from_title(&title("  Ça va? C'est l'été!  ")).as_str(),
            "a-va-c-est-l-t"
        );
        assert_eq!(Slug::from_title(&title("日本語")).as_str(), "article");
    }

    #[test]
    fn tag_lists_are_sorted_and_deduplicated() {
        let tags = tag_list(vec!["zeta".into(), "alpha".into(), "zeta".into()]).expect("valid");
        let names: Vec<_> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert!(tag_list(vec!["".into()]).is_err());
        assert!(tag_list((0..21).map(|i| i.to_string()).collect()).is_err());
    }

    #[test]
    fn blank_titles_are_refused() {
        assert!(Title::parse("   ".into()).is_err());
        assert!(Title::parse("a\nb".into()).is_err());
    }

    proptest! {
        #[test]
        fn slugs_are_always_url_safe(t in "\\PC{1,200}") {
            if let Ok(t) = Title::parse(t) {
                let slug = Slug::from_title(&t);
                prop_assert!(!slug.as_str().is_empty() && slug.as_str().len() <= 80);
                prop_assert!(slug.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                prop_assert!(!slug.as_str().starts_with('-') && !slug.as_str().ends_with('-') && !slug.as_str().contains("--"));
            }
        }
    }
}
