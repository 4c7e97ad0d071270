//! Poison-tolerant locking: the one way graphvcr takes a `std::sync::Mutex`.
//!
//! Every mutex guards plain data whose invariants hold between statements, so a
//! panic elsewhere never leaves it half-updated; a poisoned lock is used as is.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard if another thread panicked while holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
