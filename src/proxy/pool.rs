//! Per-thread pools of reusable items (copy buffers, pipes): a direction
//! takes one while its bytes are in flight and gives it back after, so an
//! idle connection holds none and a busy thread reuses a few.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Up to `N` spare items of one kind, on one thread.
#[derive(Debug)]
pub struct Pool<T, const N: usize>(RefCell<Vec<T>>);

impl<T, const N: usize> Pool<T, N> {
    pub const fn new() -> Self {
        Self(RefCell::new(Vec::new()))
    }
}

/// A spare item of this thread's `pool`, if it has one.
pub fn take<T: 'static, const N: usize>(pool: &'static LocalKey<Pool<T, N>>) -> Option<T> {
    // `try_with`: a task dropped while its thread exits finds no pool.
    pool.try_with(|p| p.0.borrow_mut().pop()).ok().flatten()
}

/// Keeps `item` in this thread's `pool`; dropped when the pool is full.
pub fn give<T: 'static, const N: usize>(pool: &'static LocalKey<Pool<T, N>>, item: T) {
    let _ = pool.try_with(|p| {
        let mut spare = p.0.borrow_mut();
        if spare.len() < N {
            spare.push(item);
        }
    });
}
