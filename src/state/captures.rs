//! The dump's capture table: one entry per thread asked for its frames.
//! The monitor fills an entry and queues a capture request; the thread's
//! own handler answers into it; the reporter symbolizes it.

use super::frames::Frames;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize};

/// Threads one dump lists with their frames; beyond that the dump says how
/// many it left out. The culprit is always listed. Fixed (the entries are
/// static, for the signal handler), and less than `MAX_THREADS`: a dump of
/// more threads would not be written within a dump timeout anyway.
pub(crate) const MAX_DUMP_THREADS: usize = 4096;

/// One thread's capture entry.
pub(crate) struct Capture {
    pub tid: AtomicI32,
    /// The registry slot of `tid` (its index), or `usize::MAX` if none.
    pub slot: AtomicUsize,
    pub lo: AtomicUsize,
    pub hi: AtomicUsize,
    pub frames: Frames,
}

/// The entries, static so that a handler can index them at any time.
pub(crate) static CAPTURES: [Capture; MAX_DUMP_THREADS] = [const {
    Capture {
        tid: AtomicI32::new(0),
        slot: AtomicUsize::new(usize::MAX),
        lo: AtomicUsize::new(0),
        hi: AtomicUsize::new(0),
        frames: Frames::new(),
    }
}; MAX_DUMP_THREADS];
/// Entries handed out in this dump.
pub(crate) static CAPTURE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bumped by each answering handler (a futex word the monitor waits on).
pub(crate) static CAPTURE_ANSWERS: AtomicU32 = AtomicU32::new(0);
