//! The admin endpoints of `svcproxy run`, black-box: the real binary's
//! `/metrics` (`metrics`: its format, and counters equal to what test
//! clients did), `/healthz` and `/livez` (`health`) and `/debug/routes`
//! (`routes`). Contract: DESIGN §5.
//!
//! One test binary (`cargo test --test admin`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod health;
mod metrics;
mod routes;
