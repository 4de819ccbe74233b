//! Kubernetes' own e2e Service tests (`test/e2e/network/service.go`) and
//! the contracts of DESIGN.md §3, translated to file mode: a manifest
//! rewritten on disk stands for an API update, the proxy is the node's
//! kube-proxy, and a client connection through a frontend stands for the
//! e2e exec pod's `nc`/`curl`. One file per subject:
//!
//! - `endpoints`: from Pods, multiport, named ports, scaled to zero,
//!   hairpin;
//! - `frontends`: added, removed and changed by edits; labels that take a
//!   Service away; a restarted proxy;
//! - `node_ports`: bound, released, allocated, out of range, colliding;
//! - `affinity`: ClientIP session affinity and its timeout;
//! - `readiness`: not-ready, terminating and evicted endpoints;
//! - `traffic_policy`: internal and external traffic policy `Local`;
//! - `health_check`: the healthCheckNodePort's probes.
//!
//! `jig` holds what they share; their manifests come from
//! `support::manifests`.
//!
//! Black-box: the real binary, real sockets, loopback addresses of each
//! test's own (`support::net::fresh_ip`); NodePorts are served on
//! `127.0.0.1` (`--nodeport-addresses 127.0.0.0/8`) on a port no one holds.
//! Every wait has a deadline. Each endpoint is a name server: it writes
//! its name and closes, so a client learns where it landed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod jig;

mod affinity;
mod endpoints;
mod frontends;
mod health_check;
mod node_ports;
mod readiness;
mod traffic_policy;
