//! Per-thread spares of reusable items (copy buffers, pipes): a direction
//! takes one while its bytes are in flight and gives it back after, so an
//! idle connection holds none and a busy thread reuses a few. (Not a
//! connection pool: those are the HTTP mode's.)

use std::cell::RefCell;
use std::thread::LocalKey;

/// Up to `N` spare items of one kind, on one thread.
#[derive(Debug)]
pub struct Spares<T, const N: usize>(RefCell<Vec<T>>);

impl<T, const N: usize> Spares<T, N> {
    pub const fn new() -> Self {
        Self(RefCell::new(Vec::new()))
    }
}

/// A spare item of this thread's `spares`, if it has one.
pub fn take<T: 'static, const N: usize>(spares: &'static LocalKey<Spares<T, N>>) -> Option<T> {
    // `try_with`: a task dropped while its thread exits finds no spares.
    spares.try_with(|p| p.0.borrow_mut().pop()).ok().flatten()
}

/// Keeps `item` in this thread's `spares`; dropped when they are full.
pub fn give<T: 'static, const N: usize>(spares: &'static LocalKey<Spares<T, N>>, item: T) {
    let _ = spares.try_with(|p| {
        let mut spare = p.0.borrow_mut();
        if spare.len() < N {
            spare.push(item);
        }
    });
}
