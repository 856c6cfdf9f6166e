//! Why an ACME order failed, in a sentence for the log and the audit trail, with a fixed word
//! for its kind.

/// Why an issuance failed, in a sentence for the log and the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The cache folder or a file in it (permissions, a broken file).
    #[error("{0}")]
    Cache(String),
    /// The CA refused, rate-limited, or could not validate.
    #[error("{0}")]
    Ca(String),
    /// The directory did not answer.
    #[error("{0}")]
    Unreachable(String),
    /// The shared state in the database could not be read or written.
    #[error("{0}")]
    Database(String),
}

impl IssueError {
    /// A short fixed word for the audit detail and logs: `cache`, `rate_limited`,
    /// `refused`, `unreachable`, `database`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cache(_) => "cache",
            Self::Ca(text) if text.contains("rateLimited") => "rate_limited",
            Self::Ca(_) => "refused",
            Self::Unreachable(_) => "unreachable",
            Self::Database(_) => "database",
        }
    }
}

pub(super) fn ca(error: instant_acme::Error) -> IssueError {
    match error {
        instant_acme::Error::Api(problem) => IssueError::Ca(format!(
            "the CA refused: {} ({})",
            problem.detail.as_deref().unwrap_or("no detail"),
            problem.r#type.as_deref().unwrap_or("no type"),
        )),
        instant_acme::Error::Other(other) => {
            IssueError::Unreachable(format!("the ACME directory did not answer: {other}"))
        }
        other => IssueError::Ca(format!("ACME: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_a_fixed_kind_for_the_audit_trail() {
        let kind = |e: IssueError| e.kind();
        assert_eq!(kind(IssueError::Cache("x".into())), "cache");
        assert_eq!(
            kind(IssueError::Ca(
                "the CA refused: too many (urn:ietf:params:acme:error:rateLimited)".into()
            )),
            "rate_limited"
        );
        assert_eq!(kind(IssueError::Ca("the CA refused".into())), "refused");
        assert_eq!(kind(IssueError::Unreachable("down".into())), "unreachable");
        assert_eq!(kind(IssueError::Database("gone".into())), "database");
    }
}
