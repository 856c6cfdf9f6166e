//! Query strings, parsed strictly: only the route's own parameters, each at most once,
//! numbers in range. An unknown parameter is refused (422) rather than ignored: a client
//! that misspells `limit` or sends a filter this route lacks learns so, instead of silently
//! getting another result than it asked for.

use std::collections::HashMap;

use super::error::{Error, Result};
use crate::domain::FieldErrors;

/// The parameters of a paged list: `limit` and `offset`.
pub const PAGE: &[&str] = &["limit", "offset"];

/// Query parameters, each at most once (`?limit=1&limit=1000` is refused, not guessed at).
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses the query, refusing any parameter not named in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&[&str]]) -> Result<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
            .map_err(|_| Error::invalid("query", "is not a valid query string"))?;
        let mut map = HashMap::new();
        for (key, value) in pairs {
            if !allowed.iter().any(|names| names.contains(&key.as_str())) {
                return Err(Error::invalid(
                    "query",
                    "has a parameter this route does not take",
                ));
            }
            if map.insert(key, value).is_some() {
                return Err(Error::invalid("query", "repeats a parameter"));
            }
        }
        Ok(Self(map))
    }

    /// A free-text filter value; empty counts as absent (RealWorld clients send `tag=`).
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    /// A typed filter value (a time, a name from a list) as sent: empty is a value too, and
    /// the parser refuses it, as the document's format says.
    pub fn typed(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn number(
        &self,
        errors: &mut FieldErrors,
        name: &'static str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        let Some(text) = self.0.get(name) else {
            return default;
        };
        let parsed = text.parse::<i64>().ok().filter(|n| range.contains(n));
        errors
            .check(
                name,
                parsed.ok_or(crate::domain::Invalid("is out of range or not an integer")),
            )
            .unwrap_or(default)
    }

    /// `limit` 1–100 (default 20) and `offset` ≥ 0: the article lists.
    pub fn page(&self) -> Result<(i64, i64)> {
        self.page_of(20, 100)
    }

    /// `limit` 1–`max` (default `default`) and `offset` ≥ 0.
    pub fn page_of(&self, default: i64, max: i64) -> Result<(i64, i64)> {
        let mut errors = FieldErrors::default();
        let limit = self.number(&mut errors, "limit", 1..=max, default);
        let offset = self.number(&mut errors, "offset", 0..=i64::from(i32::MAX), 0);
        errors.finish()?;
        Ok((limit, offset))
    }
}
