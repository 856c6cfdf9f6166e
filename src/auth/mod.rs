//! Proving who a caller is: password hashing, access tokens, refresh tokens and the
//! in-memory set of revoked sessions.

pub mod password;
pub mod refresh;
pub mod revocations;
pub mod tokens;
