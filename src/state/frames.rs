//! [`Frames`]: a backtrace captured in a thread's own context, with the
//! small state machine that keeps its writer (a signal handler) and its
//! reader (another thread) apart.

use crate::os::stackwalk::{StackBounds, walk_ucontext};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// Frames kept per captured backtrace.
pub(crate) const MAX_FRAMES: usize = 64;

/// Nothing captured; the entry is free.
pub(crate) const CAP_EMPTY: u32 = 0;
/// A handler is writing the frames.
pub(crate) const CAP_WRITING: u32 = 1;
/// The frames are ready to read.
pub(crate) const CAP_READY: u32 = 2;
/// A dump's capture entry waiting for its thread's handler.
pub(crate) const CAP_REQUESTED: u32 = 3;
/// A dump's capture entry not asked for: its thread blocks the watchdog
/// signal.
pub(crate) const CAP_MASKED: u32 = 4;
/// A dump's capture entry not asked for: its thread waits in
/// `sigtimedwait`/`sigwait`, which would take the request as its own.
pub(crate) const CAP_SIGWAIT: u32 = 5;
/// A dump's capture entry not asked for: the watchdog signal's handler is
/// not failstop's (the application replaced it).
pub(crate) const CAP_NOT_OURS: u32 = 6;
/// A dump's capture request the kernel refused (`EAGAIN`: the queue of
/// pending signals, `RLIMIT_SIGPENDING`, is used up).
pub(crate) const CAP_REFUSED: u32 = 7;

/// Frames captured in a thread's own context, with a small state machine so
/// that the writer (a handler) and the reader (another thread) never overlap.
pub(crate) struct Frames {
    pub state: AtomicU32,
    pub len: AtomicUsize,
    pub addrs: [AtomicUsize; MAX_FRAMES],
    /// The figure that goes with the capture (CPU ns since touch or progress).
    pub figure: AtomicU64,
}

impl Frames {
    pub(crate) const fn new() -> Self {
        Frames {
            state: AtomicU32::new(CAP_EMPTY),
            len: AtomicUsize::new(0),
            addrs: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            figure: AtomicU64::new(0),
        }
    }

    /// Walks the stack of the interrupted context `ctx` into these frames
    /// and publishes them (`CAP_READY`, release). The caller owns the entry
    /// (it moved the state to `CAP_WRITING`, or no reader looks yet).
    /// Async-signal-safe: the walk only makes validated reads.
    ///
    /// # Safety
    /// `ctx` is the `ucontext_t` the kernel passed to the signal handler
    /// that calls this, on the thread whose stack `bounds` describes.
    pub(crate) unsafe fn capture(&self, ctx: *mut libc::c_void, bounds: StackBounds) {
        let mut frames = [0usize; MAX_FRAMES];
        // SAFETY: per this function's contract.
        let n = unsafe { walk_ucontext(ctx, bounds, &mut frames) };
        self.store(&frames[..n]);
        self.state.store(CAP_READY, Release);
    }

    /// Stores frames (async-signal-safe).
    pub(crate) fn store(&self, frames: &[usize]) {
        for (dst, &a) in self.addrs.iter().zip(frames) {
            dst.store(a, Relaxed);
        }
        self.len.store(frames.len().min(MAX_FRAMES), Relaxed);
    }

    /// Copies the frames out into `out`, returning how many.
    pub(crate) fn load(&self, out: &mut [usize; MAX_FRAMES]) -> usize {
        let n = self.len.load(Relaxed).min(MAX_FRAMES);
        for (o, a) in out.iter_mut().zip(&self.addrs[..n]) {
            *o = a.load(Relaxed);
        }
        n
    }
}
