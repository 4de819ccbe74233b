//! svcproxy: a per-node userspace service proxy for Kubernetes Services.
//!
//! # Layout
//!
//! The tree follows the data flow, one stage per module:
//!
//! - [`manifest`]: files on disk → Kubernetes objects, each with its file and field lines.
//! - [`model`]: objects → validated, defaulted Services and their endpoints.
//! - [`table`]: the model → an immutable [`table::Snapshot`] of Frontend → Route.
//! - [`check`]: a Snapshot → the `svcproxy check` table.

pub mod check;
pub mod manifest;
pub mod model;
pub mod table;
