//! `/metrics`, one file per subject:
//!
//! - `exposition`: the text format, family names, types and labels;
//! - `traffic`: connections, bytes and durations, exactly;
//! - `rejects`: clients turned away and connect errors, by reason;
//! - `churn`: series that follow the Snapshot across reloads, and each
//!   publish counted and timestamped.
//!
//! Counters are checked for equality with what the clients did, with the
//! waits of `support::metrics`.

mod churn;
mod exposition;
mod rejects;
mod traffic;
