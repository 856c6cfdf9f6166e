//! Aerie: a secure-by-default backend server.
//!
//! The map of the house, in the order a request meets it:
//!
//! - [`config`]: typed settings, validated once at start; production refuses unsafe ones.
//! - [`server`]: binds the listener, runs until SIGINT/SIGTERM, shuts down gracefully.
//! - [`app`]: the router (every route and its access policy) and the layer stack.
//! - [`http`]: one module per API resource, the extractors that guard handlers, and the one
//!   error type that maps every failure to a status and a RealWorld error body.
//! - [`services`]: the use cases (accounts, sessions, audit-trail reads) that the HTTP
//!   handlers and the CLI both call.
//! - [`auth`]: password hashing (argon2id on a bounded pool) and access tokens (EdDSA JWTs).
//! - [`domain`]: pure types with their validation rules ("parse, don't validate").
//! - [`audit`]: the security event catalogue and the tamper-evident (HMAC-chained) audit trail.
//! - [`store`]: every SQL query, written once and run on SQLite or PostgreSQL.
//! - [`metrics`]: Prometheus metrics, one registry per server, served at `/metrics`.
//! - [`acme`]: automatic TLS certificates (RFC 8555), renewed in the running listener.
//! - [`clock`]: the one source of time, injectable so tests move time instead of sleeping.
//!
//! Imports point down only, from the CLI to the domain; `docs/architecture.md` draws the
//! floors and `.ci/layers` checks them.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod acme;
pub mod app;
pub mod archiving;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod bounded_map;
pub mod cli;
pub mod clock;
pub mod config;
pub mod defense;
pub mod doctor;
pub mod domain;
pub mod field_keys;
pub mod fingerprint;
pub mod http;
pub mod keyfile;
pub mod mail;
pub mod metrics;
pub mod request_context;
pub mod server;
pub mod services;
pub mod stack;
pub mod store;
pub mod telemetry;
pub mod tls;
