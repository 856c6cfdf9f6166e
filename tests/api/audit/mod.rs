//! The tamper-evident audit trail: what is recorded, what `aerie audit verify` catches, how
//! administrators read it, and the alerts raised from it.

mod admin;
pub(crate) mod alerts;
mod archive;
mod cli;
mod denials;
mod key_rotation;
mod log_lines;
mod session_events;
mod trail;
mod unwritable;
