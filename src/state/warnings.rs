//! The warnings' capture pool: a few [`Frames`] entries that a spinning
//! thread's handler fills with its own backtrace and the reporter prints,
//! shared by all threads (warnings are rare and rate-limited, so a slot
//! does not carry an entry of its own), and the flag that tells the
//! reporter a late verdict waits in some slot.
//!
//! # Signal-safety contract
//!
//! Static atomics only. A handler takes an entry by moving its frames'
//! state `CapState::Empty → CapState::Writing` ([`take`]), fills it, and publishes it
//! as `CapState::Ready`; the reporter reads it and gives it back as `CapState::Empty`.

use super::frames::{CapState, Frames};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::*};

/// Warnings that can wait for the reporter at once. A thread whose warning
/// finds none free raises it again at its next tick (delayed, not lost).
pub(crate) const WARNING_ENTRIES: usize = 16;

/// One warning: whose it is and its frames (the figure in `frames.figure`).
pub(crate) struct Warning {
    /// The slot of the thread that warned, and its registration generation.
    pub slot: AtomicUsize,
    pub generation: AtomicU32,
    pub frames: Frames,
}

/// The pool.
pub(crate) static WARNINGS: [Warning; WARNING_ENTRIES] =
    [const { Warning { slot: AtomicUsize::new(0), generation: AtomicU32::new(0), frames: Frames::new() } };
        WARNING_ENTRIES];

/// Takes a free entry for slot `idx` (registration `generation`), in state
/// `CapState::Writing`; `None` when all are taken. Async-signal-safe.
pub(crate) fn take(idx: usize, generation: u32) -> Option<&'static Warning> {
    let w = WARNINGS.iter().find(|w| w.frames.state.change(CapState::Empty, CapState::Writing))?;
    w.slot.store(idx, Relaxed);
    w.generation.store(generation, Relaxed);
    Some(w)
}

/// Set when a slot got a late verdict for the reporter
/// (`Slot::late_verdict`): it then walks the slots once.
pub(crate) static LATE_PENDING: AtomicBool = AtomicBool::new(false);
