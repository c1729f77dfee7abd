//! The raw lock elsewhere than on Linux with glibc: std's `Mutex<()>`,
//! without owner recording (failstop's dump does not run there). Its own
//! poisoning is ignored: [`Mutex`](super::Mutex) keeps its own flag.

use std::sync::{PoisonError, TryLockError};

/// A lock that records no owner.
pub(crate) struct RawMutex(std::sync::Mutex<()>);

/// Holds a [`RawMutex`]; unlocks it when dropped.
pub(crate) struct Guard<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);

impl RawMutex {
    pub(crate) const fn new() -> Self {
        RawMutex(std::sync::Mutex::new(()))
    }

    /// Takes the lock, waiting as long as it takes.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_> {
        Guard(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes the lock if it is free.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Guard<'_>> {
        match self.0.try_lock() {
            Ok(g) => Some(Guard(g)),
            Err(TryLockError::Poisoned(p)) => Some(Guard(p.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}
