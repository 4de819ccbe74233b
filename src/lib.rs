//! svcproxy: a per-node userspace service proxy for Kubernetes Services.
//!
//! # Layout
//!
//! The tree follows the data flow, one stage per module:
//!
//! - [`manifest`]: files on disk → Kubernetes objects, each with its file and field lines.
//! - [`model`]: objects → validated, defaulted Services and their endpoints.
//! - [`table`]: the model → an immutable [`table::Snapshot`] of Frontend → Route.
//! - [`control`]: sources → model → Snapshot, published through one `ArcSwap`.
//! - [`listener`]: one bound socket per Frontend, reconciled with each Snapshot by diff.
//! - [`balance`]: a Route and a client → the endpoints to try (round robin, affinity, ejection).
//! - [`proxy`]: an accepted connection → its endpoint, both directions, half-close kept.
//! - [`admin`]: `/healthz`, `/livez`, `/metrics`.
//! - [`shutdown`]: live-connection tracking for the SIGTERM drain.
//! - [`daemon`]: `svcproxy run`, the wiring and the signals; [`demo`] the demo.
//! - [`render`]: a Snapshot as the `svcproxy check` table and as `/debug/routes` JSON.

pub mod admin;
pub mod balance;
pub mod context;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod health;
pub mod listener;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod render;
pub mod shutdown;
pub mod source;
pub mod table;
