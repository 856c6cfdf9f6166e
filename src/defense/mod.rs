//! Cross-cutting request defences, applied as layers in [`crate::app`].

pub mod client_ip;
pub mod cors;
pub mod csrf;
pub mod headers;
pub mod rate_limit;
