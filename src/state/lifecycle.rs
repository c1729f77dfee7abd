//! The watchdog's lifecycle in this process: stopped, starting, running,
//! stopping. One atomic word, read in signal context.

use std::sync::atomic::{AtomicU32, Ordering::*};

/// Where the watchdog is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Lifecycle {
    /// No watchdog (the start).
    Stopped = 0,
    /// `start` is making it.
    Starting = 1,
    /// It watches.
    Running = 2,
    /// `stop` is taking it down.
    Stopping = 3,
}

/// A [`Lifecycle`] in an atomic word.
pub(crate) struct LifecycleCell(AtomicU32);

impl LifecycleCell {
    /// A cell in the [`Lifecycle::Stopped`] state.
    pub(crate) const fn new() -> Self {
        LifecycleCell(AtomicU32::new(Lifecycle::Stopped as u32))
    }

    /// The state now (Acquire). Async-signal-safe.
    #[inline]
    pub(crate) fn get(&self) -> Lifecycle {
        match self.0.load(Acquire) {
            1 => Lifecycle::Starting,
            2 => Lifecycle::Running,
            3 => Lifecycle::Stopping,
            _ => Lifecycle::Stopped,
        }
    }

    /// Moves to `to` (Release).
    pub(crate) fn set(&self, to: Lifecycle) {
        self.0.store(to as u32, Release);
    }

    /// Moves from `from` to `to` if the state is `from`; whether it did.
    pub(crate) fn change(&self, from: Lifecycle, to: Lifecycle) -> bool {
        self.0.compare_exchange(from as u32, to as u32, AcqRel, Relaxed).is_ok()
    }
}
