//! What an operator watches: readiness for the load balancer, Prometheus metrics, and logs.

mod acme;
mod backup;
mod faults;
mod graceful;
mod logging;
mod metrics;
mod readiness;
mod retention;
mod runbook;
mod two_instances;
