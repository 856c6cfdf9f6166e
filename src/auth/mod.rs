//! Proving who a caller is: password hashing and access tokens.

pub mod password;
pub mod tokens;
