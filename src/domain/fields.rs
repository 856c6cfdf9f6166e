//! Field errors, collected: a request (or a command) with several bad fields learns about
//! every one of them at once, instead of fixing them one round trip at a time. Plain data, so
//! the services that apply the rules and the HTTP layer that answers with them share it.

use std::collections::BTreeMap;
use std::fmt;

use super::Invalid;

/// Collects field errors while a request's fields are parsed; [`FieldErrors::finish`] turns
/// them into one [`InvalidFields`].
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<&'static str, Vec<String>>);

impl FieldErrors {
    /// Records the error, if any, and passes the value through.
    pub fn check<T>(&mut self, field: &'static str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Invalid(message)) => {
                self.0.entry(field).or_default().push(message.to_owned());
                None
            }
        }
    }

    pub fn missing(&mut self, field: &'static str) {
        self.0
            .entry(field)
            .or_default()
            .push("can't be blank".to_owned());
    }

    /// Parses a field that must be present.
    pub fn required<V, T>(
        &mut self,
        field: &'static str,
        value: Option<V>,
        parse: impl FnOnce(V) -> Result<T, Invalid>,
    ) -> Option<T> {
        match value {
            Some(value) => self.check(field, parse(value)),
            None => {
                self.missing(field);
                None
            }
        }
    }

    /// `Ok` when nothing was recorded.
    pub fn finish(self) -> Result<(), InvalidFields> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidFields(self.0))
        }
    }
}

/// Fields that were refused, each with its messages (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidFields(pub BTreeMap<&'static str, Vec<String>>);

impl InvalidFields {
    /// One field, one message.
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        Self(BTreeMap::from([(field, vec![message.into()])]))
    }
}

/// `password: is too short; username: can't be blank`: how the CLI reports them.
impl fmt::Display for InvalidFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for (field, messages) in &self.0 {
            write!(f, "{separator}{field}: {}", messages.join(", "))?;
            separator = "; ";
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_reported_at_once() {
        let mut errors = FieldErrors::default();
        errors.missing("username");
        let _ = errors.check::<()>("password", Err(Invalid("is too short")));
        let _ = errors.check("email", Ok(()));
        let Err(invalid) = errors.finish() else {
            panic!("two fields were refused");
        };
        assert_eq!(
            invalid.to_string(),
            "password: is too short; username: can't be blank"
        );
        assert!(FieldErrors::default().finish().is_ok());
    }
}
