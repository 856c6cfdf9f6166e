//! Cross-cutting request defences, applied as layers in [`crate::app`].

pub mod cors;
pub mod headers;
