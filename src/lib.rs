//! svcproxy: a per-node userspace service proxy for Kubernetes Services.
//!
//! # Layout
//!
//! The tree follows the data flow, one stage per module:
//!
//! - [`source`]: where objects come from (manifest files, the API server),
//!   and when they changed, paced by `--min-sync-period`.
//! - [`manifest`]: a file's text → Kubernetes objects, each with its origin.
//! - [`model`]: objects → validated, defaulted Services and their endpoints.
//! - [`table`]: the model → an immutable [`table::Snapshot`] of Frontend → Route.
//! - [`control`]: sources → model → Snapshot as one transaction, committed
//!   whole: published through one `ArcSwap`, listeners reconciled.
//! - [`listener`]: one bound socket per Frontend, reconciled with each Snapshot by diff.
//! - [`proxy`]: an accepted connection → [`proxy::serve`], by the Route's mode;
//!   TCP: connect, then both directions with half-close kept; HTTP: each
//!   request to an endpoint of its own; UDP: datagrams by flow (a client
//!   address on a frontend), one connected socket per flow.
//! - [`upstream`]: connections to endpoints kept for the next HTTP request.
//! - [`balance`]: a Route and a client → the endpoints to try (round robin, affinity, ejection).
//! - [`metrics`]: every metric family; a connection's counters are atomics
//!   resolved when its Snapshot is built.
//! - [`access`]: the HTTP access log's writer, off the data path.
//! - [`admin`]: `/healthz`, `/livez`, `/metrics`, `/debug/routes`.
//! - [`context`]: what every connection shares; [`health`]: whether this node serves.
//! - [`shutdown`]: live-connection tracking for the SIGTERM drain;
//!   [`admission`]: the `--max-connections` bound, at which accepting pauses.
//! - [`daemon`]: `svcproxy run`, the wiring and the signals; [`demo`] the demo.
//! - [`render`]: a Snapshot as the `svcproxy check` table and as `/debug/routes` JSON.

pub mod access;
pub mod admin;
pub mod admission;
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
pub mod upstream;
