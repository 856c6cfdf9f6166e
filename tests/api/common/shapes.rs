//! The shapes API.md promises: the fields of each object, and the timestamp format.

use serde_json::Value;

/// The fields of a Profile object, in articles, comments and `/api/profiles`.
pub const PROFILE_KEYS: &[&str] = &["username", "bio", "image", "following"];

/// The fields of a full Article (create, get, update, favorite): the contract's, plus the
/// rendered `bodyHtml`.
pub const ARTICLE_KEYS: &[&str] = &[
    "slug",
    "title",
    "description",
    "body",
    "bodyHtml",
    "tagList",
    "createdAt",
    "updatedAt",
    "favorited",
    "favoritesCount",
    "author",
];

/// The fields of an Article in a list (`/api/articles`, the feed): everything but the body.
pub const LISTED_ARTICLE_KEYS: &[&str] = &[
    "slug",
    "title",
    "description",
    "tagList",
    "createdAt",
    "updatedAt",
    "favorited",
    "favoritesCount",
    "author",
];

/// Asserts that `value` is a JSON object with exactly the keys `expected`.
#[track_caller]
pub fn assert_keys(value: &Value, expected: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    let mut actual: Vec<&str> = object.keys().map(String::as_str).collect();
    actual.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(actual, expected, "keys of {value}");
}

/// Asserts an RFC 3339 UTC timestamp with milliseconds, like `2026-11-28T10:00:00.000Z`.
#[track_caller]
pub fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text);
    let fraction = text.get(19..20) == Some(".")
        && text
            .get(20..23)
            .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()));
    assert!(
        parsed.is_ok() && text.len() == 24 && fraction && text.ends_with('Z'),
        "not RFC 3339 UTC with milliseconds: {text}"
    );
}

/// The slugs of an article list response (`{articles: [...], articlesCount}`), in order.
#[track_caller]
pub fn slugs(list: &Value) -> Vec<String> {
    list["articles"]
        .as_array()
        .unwrap_or_else(|| panic!("not an article list: {list}"))
        .iter()
        .map(|article| article["slug"].as_str().expect("slug").to_owned())
        .collect()
}
