//! The verdict latch's state: which verdict was reached first, on which
//! thread, with what figure, and how far the dump has got. Written once per
//! process by `fatal::end::latch`; read by the dump, the reporter and the
//! action.

use super::frames::Frames;
use crate::verdict::VerdictKind;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// The latched verdict: 0 = none, else a [`VerdictKind::code`].
pub(crate) static LATCH: AtomicU32 = AtomicU32::new(0);
/// The culprit's slot index (`usize::MAX`: none).
pub(crate) static CULPRIT_SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);
pub(crate) static CULPRIT_TID: AtomicI32 = AtomicI32::new(0);
/// The figure behind the verdict: CPU ns without progress (stuck) or wall
/// ns without progress (blocked).
pub(crate) static CULPRIT_FIGURE: AtomicU64 = AtomicU64::new(0);
/// For a `blocked` verdict: how long before the verdict the culprit was
/// last seen to run (its CPU clock unchanged since), in ns; 0 when not
/// known (an unwatched culprit, found at the end of a wait chain). Set by
/// the monitor just before it latches.
pub(crate) static CULPRIT_STILL: AtomicU64 = AtomicU64::new(0);
/// Monotonic ns when the verdict was latched.
pub(crate) static VERDICT_AT: AtomicU64 = AtomicU64::new(0);
/// Frames of the culprit, captured in its own context.
pub(crate) static CULPRIT_FRAMES: Frames = Frames::new();
/// Set to 1 by the monitor when the dump is written (or abandoned); a futex
/// word the acting thread waits on.
pub(crate) static DUMP_DONE: AtomicU32 = AtomicU32::new(0);
/// Set by the dump when a debugger is attached and aborting is not allowed.
pub(crate) static SPARED_FOR_DEBUGGER: AtomicBool = AtomicBool::new(false);

/// The verdict latched so far, if any. Async-signal-safe.
pub(crate) fn latched() -> Option<VerdictKind> {
    VerdictKind::from_code(LATCH.load(Acquire))
}

/// Whether a verdict was latched and its dump is still being written.
pub(crate) fn dumping() -> bool {
    LATCH.load(Acquire) != 0 && DUMP_DONE.load(Acquire) == 0
}
