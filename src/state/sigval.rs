//! The signal value (`sigval`) of failstop's own signals: a tag in the high
//! 32 bits that tells them from the application's, and an index below it.

/// Tag of the per-thread CPU timers' ticks (`SI_TIMER`); the index is the
/// slot.
pub(crate) const TIMER_TAG: usize = 0xFA11_5700;
/// Tag of the dump's capture requests (`SI_QUEUE` from our own pid); the
/// index is the capture entry.
pub(crate) const CAPTURE_TAG: usize = 0xFA11_57AC;

/// Encodes a tag and an index into a `sigval`.
pub(crate) fn encode(tag: usize, idx: usize) -> usize {
    (tag << 32) | (idx & 0xffff_ffff)
}

/// Splits a `sigval` into (tag, index). Async-signal-safe.
pub(crate) fn decode(v: usize) -> (usize, usize) {
    (v >> 32, v & 0xffff_ffff)
}

/// The address of failstop's signal handler while it is installed, 0
/// otherwise: the monitor compares the signal's disposition with it (see
/// `fatal::monitor`), the handler repairs it (see `engine::handler`).
pub(crate) static OUR_HANDLER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The `sa_flags` failstop's handler is installed with: `SA_SIGINFO`, and
/// `SA_RESTART` unless the signal is shared with an application handler
/// installed without it.
pub(crate) static OUR_FLAGS: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
