//! Stage 1, source: where the objects come from, and when they changed.
//!
//! Input: the manifest paths, and the API server. Output: every
//! object each source holds now, each with its
//! [`Origin`](crate::manifest::Origin), plus one error per file or object
//! it could not read; and a signal when a source changed, paced by
//! `--min-sync-period` ([`Pace`]). A source never decides what is served:
//! the control loop builds the model from what the sources yield, and falls
//! back on the [`LastGood`] version of an object the model rejects.

pub mod api;
pub mod files;
mod last_good;
mod pace;

pub use api::Api;
pub use files::Files;
pub use last_good::LastGood;
pub use pace::Pace;
