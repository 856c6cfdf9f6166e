//! The black-box tests: the real server, booted on a random port with a fresh database, driven
//! over HTTP. One binary, so the server, sqlx and reqwest are linked once; one module per
//! resource, the attacks under `security`, the audit trail under `audit`, and what an operator
//! watches (readiness, metrics, logs) under `operations`.

#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stderr,
    reason = "a test fails by panicking, loudly"
)]

mod common;

mod article_pages;
mod articles;
mod audit;
mod comments;
mod errors;
mod feed_and_favorites;
mod keys;
mod mail;
mod openapi;
mod operations;
mod profiles;
mod realworld_flow;
mod security;
mod sessions;
mod tags;
mod users;
mod validation_properties;
