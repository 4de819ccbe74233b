//! `svcproxy check`, black-box: the real binary on fixtures, on the shipped
//! examples and on generated inputs; its exit code, its table on stdout,
//! its error and note lines on stderr. One file per subject:
//!
//! - `valid`, `invalid`: tests/fixtures/valid and tests/fixtures/invalid;
//! - `partial`: one bad input rejected alone, the rest still listed;
//! - `config`: every manifest under config/;
//! - `limits`: hostile sizes and counts, within time and memory budgets;
//! - `long_cells`: table cells of thousands of externalIPs or ports;
//! - `api_limits`: the API server's bounds on lists and object size;
//! - `allocation`: ClusterIPs and nodePorts allocated whatever the order;
//! - `strict`: unknown fields, warned of or (`--strict`) rejected;
//! - `cli`: usage errors;
//! - `notes`: why a Service takes no traffic;
//! - `mutation`: thousands of mutated fixtures through `check` and `run`.
//!
//! One test binary (`cargo test --test check`): each `tests/*.rs` or
//! `tests/*/main.rs` links on its own, so fewer of them build faster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod allocation;
mod api_limits;
mod cli;
mod config;
mod invalid;
mod limits;
mod long_cells;
mod mutation;
mod notes;
mod partial;
mod strict;
mod valid;
