//! Histograms of times as plain atomics, their bucket bounds a type (no
//! pointer per histogram), written out at scrape time under a Service
//! port's labels.

use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use super::traffic::{PortKey, labels};

/// The upper bounds of a histogram's `N` buckets, in seconds, as a type:
/// a [`Histogram`] carries no pointer to them.
pub trait Buckets<const N: usize> {
    const LE: [f64; N];
}

/// Connection durations: from a millisecond to over an hour.
#[derive(Debug)]
pub struct Connections;

/// Times in seconds, counted into the buckets of `B`.
#[derive(Debug)]
pub struct Histogram<B, const N: usize> {
    /// Not cumulative; summed at render time.
    buckets: [AtomicU64; N],
    sum_micros: AtomicU64,
    count: AtomicU64,
    le: PhantomData<B>,
}

// === impl Connections, Histogram ===

impl Buckets<12> for Connections {
    const LE: [f64; 12] = [
        0.001, 0.004, 0.016, 0.064, 0.256, 1.024, 4.096, 16.384, 65.536, 262.144, 1048.576,
        4194.304,
    ];
}

impl<B: Buckets<N>, const N: usize> Histogram<B, N> {
    pub fn observe(&self, seconds: f64) {
        // Past the last bound: only in `count` (the `+Inf` bucket).
        if let Some(b) = B::LE.iter().position(|b| seconds <= *b) {
            self.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        // Rounded, not truncated: sub-millisecond requests keep an
        // unbiased sum.
        self.sum_micros.fetch_add((seconds * 1e6).round() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Its `_bucket`, `_sum` and `_count` series under `key`.
    pub(super) fn render(&self, out: &mut String, name: &str, key: &PortKey) {
        let mut cumulative = 0;
        for (bound, bucket) in B::LE.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = bound.to_string();
            let _ = writeln!(out, "{name}_bucket{{{}}} {cumulative}", labels(key, &[("le", &le)]));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{}}} {count}", labels(key, &[("le", "+Inf")]));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{}}} {sum}", labels(key, &[]));
        let _ = writeln!(out, "{name}_count{{{}}} {count}", labels(key, &[]));
    }
}

impl<B, const N: usize> Default for Histogram<B, N> {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
            le: PhantomData,
        }
    }
}
