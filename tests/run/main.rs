//! `svcproxy run`, black-box: the real binary serving real endpoints on
//! loopback addresses of each test's own (`support::net::fresh_ip`), every
//! wait under a deadline. One file per subject:
//!
//! - `cli`: flags, their defaults and usage errors, logging;
//! - `api`: following an API server (a fake one);
//! - `basic`: every kind of Frontend served;
//! - `balance`: round robin and ClientIP affinity;
//! - `faults`: no endpoints, refusing or silent endpoints, ports taken;
//! - `limits`: out of file descriptors, `--max-connections`;
//! - `close_wait`: `--conntrack-tcp-timeout-close-wait`;
//! - `dual_stack`: IPv6 frontends, each family to its own endpoints;
//! - `sockets`: SO_REUSEADDR, never SO_REUSEPORT;
//! - `source_ranges`: `loadBalancerSourceRanges` on ingress IPs;
//! - `stream`, `tcp`, `splice`: volume, and TCP's semantics in every
//!   `--splice` mode;
//! - `reload`: hot swap of changed manifests under live connections;
//! - `topology`: topology hints and the Node's zone; `/healthz` while the
//!   Node leaves;
//! - `udp`: UDP Services, with dnsmasq and dig;
//! - `signals`: SIGTERM's drain, SIGINT, SIGHUP;
//! - `apiserver`: the fake Kubernetes API server of `support::apiserver`
//!   itself, over raw HTTP.
//!
//! One test binary (`cargo test --test run`): its tests run on parallel
//! threads, which the fresh addresses keep apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod api;
mod apiserver;
mod balance;
mod basic;
mod cli;
mod close_wait;
mod dual_stack;
mod faults;
mod http;
mod limits;
mod reload;
mod signals;
mod sockets;
mod source_ranges;
mod splice;
mod stream;
mod tcp;
mod topology;
mod udp;
