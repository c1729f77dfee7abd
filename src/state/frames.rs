//! [`Frames`]: a backtrace captured in a thread's own context, with the
//! small state machine that keeps its writer (a signal handler) and its
//! reader (another thread) apart.

use super::enum_cell::state_enum;
use crate::os::stackwalk::{StackBounds, walk_ucontext};
use crate::os::unwind::{Unwound, unwind_ucontext};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

/// Frames kept per captured backtrace.
pub(crate) const MAX_FRAMES: usize = 64;

state_enum! {
    /// Where a capture entry is in its life: free, being written, ready;
    /// and, for a dump's entries, asked for or why not.
    pub(crate) enum CapState in CapCell {
        /// Nothing captured; the entry is free.
        Empty = 0,
        /// A handler is writing the frames.
        Writing = 1,
        /// The frames are ready to read.
        Ready = 2,
        /// A dump's capture entry waiting for its thread's handler.
        Requested = 3,
        /// A dump's capture entry not asked for: its thread blocks the
        /// watchdog signal.
        Masked = 4,
        /// A dump's capture entry not asked for: its thread waits in
        /// `sigtimedwait`/`sigwait`, which would take the request as its own.
        Sigwait = 5,
        /// A dump's capture entry not asked for: the watchdog signal's
        /// handler is not failstop's (the application replaced it).
        NotOurs = 6,
        /// A dump's capture request the kernel refused (`EAGAIN`: the queue
        /// of pending signals, `RLIMIT_SIGPENDING`, is used up).
        Refused = 7,
    }
}

/// Frames captured in a thread's own context, with a small state machine so
/// that the writer (a handler) and the reader (another thread) never overlap.
pub(crate) struct Frames {
    pub state: CapCell,
    pub len: AtomicUsize,
    pub addrs: [AtomicUsize; MAX_FRAMES],
    /// The figure that goes with the capture (CPU ns since touch or progress).
    pub figure: AtomicU64,
}

impl Frames {
    pub(crate) const fn new() -> Self {
        Frames {
            state: CapCell::new(CapState::Empty),
            len: AtomicUsize::new(0),
            addrs: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            figure: AtomicU64::new(0),
        }
    }

    /// Captures the stack of the interrupted context `ctx` into these frames
    /// and publishes them ([`CapState::Ready`], release). The caller owns the entry
    /// (it moved the state to [`CapState::Writing`], or no reader looks yet).
    /// Async-signal-safe: the DWARF unwind and the frame-pointer walk only
    /// make validated reads, and neither allocates nor locks.
    ///
    /// The DWARF unwind ([`unwind_ucontext`]) comes first: it goes through
    /// code built without frame pointers. The frame-pointer walk
    /// ([`walk_ucontext`]) is the fallback, see [`merge`].
    ///
    /// # Safety
    /// `ctx` is the `ucontext_t` the kernel passed to the signal handler
    /// that calls this, on the thread whose stack `bounds` describes.
    pub(crate) unsafe fn capture(&self, ctx: *mut libc::c_void, bounds: StackBounds) {
        let mut frames = [0usize; MAX_FRAMES];
        // SAFETY: per this function's contract.
        let n = unsafe { capture_frames(ctx, bounds, &mut frames) };
        self.store(&frames[..n]);
        self.state.set(CapState::Ready);
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

/// The stack of the interrupted context `ctx`: the DWARF unwind, the
/// frame-pointer walk where it is unavailable or stopped early (see
/// [`merge`]). Returns the number of frames written to `out`.
/// Async-signal-safe.
///
/// # Safety
/// As [`Frames::capture`].
pub(crate) unsafe fn capture_frames(
    ctx: *mut libc::c_void,
    bounds: StackBounds,
    out: &mut [usize; MAX_FRAMES],
) -> usize {
    // SAFETY: per the contract.
    match unsafe { unwind_ucontext(ctx, bounds, out) } {
        Unwound::Complete(n) => n,
        // SAFETY: per the contract.
        Unwound::Unavailable => unsafe { walk_ucontext(ctx, bounds, out) },
        Unwound::Truncated(n) => {
            let mut fp = [0usize; MAX_FRAMES];
            // SAFETY: per the contract.
            let m = unsafe { walk_ucontext(ctx, bounds, &mut fp) };
            merge(out, n, &fp[..m])
        }
    }
}

/// The stack of a thread stopped elsewhere (by the ptrace helper, see
/// `os::ptrace`) from its registers, as [`capture_frames`] walks an
/// interrupted one: a `ucontext_t` is made of them, the stack's bounds are
/// unknown (every read validated). The `os::ptrace::Walk` of the dump.
/// Async-signal-safe.
pub(crate) fn capture_registers(pc: usize, fp: usize, sp: usize, lr: usize, out: &mut [usize; MAX_FRAMES]) -> usize {
    // SAFETY: ucontext_t is plain data; zero is a valid (empty) context.
    let mut uc: libc::ucontext_t = unsafe { std::mem::zeroed() };
    #[cfg(target_arch = "x86_64")]
    {
        let _ = lr;
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] = pc as i64;
        uc.uc_mcontext.gregs[libc::REG_RBP as usize] = fp as i64;
        uc.uc_mcontext.gregs[libc::REG_RSP as usize] = sp as i64;
    }
    #[cfg(target_arch = "aarch64")]
    {
        uc.uc_mcontext.pc = pc as u64;
        uc.uc_mcontext.sp = sp as u64;
        uc.uc_mcontext.regs[29] = fp as u64;
        uc.uc_mcontext.regs[30] = lr as u64;
    }
    // SAFETY: a readable ucontext_t of a thread stopped for the length of
    // the call; unknown bounds, so every stack read is validated.
    unsafe { capture_frames((&mut uc as *mut libc::ucontext_t).cast(), StackBounds::UNKNOWN, out) }
}

/// Joins a DWARF unwind that stopped early (`dwarf[..n]`) with the
/// frame-pointer walk of the same context (`fp`); returns the frames kept.
///
/// * When the DWARF unwind has at least as many frames, it is kept as is:
///   the frame-pointer walk skips every caller of code without frame
///   pointers, so it has nothing the DWARF frames lack.
/// * When the DWARF unwind's last frame also appears in the frame-pointer
///   walk, the walk's frames after it are appended: both followed the same
///   chain up to there, and the frame-pointer walk went on (past a frame
///   whose unwind rule failed, say).
/// * Otherwise the longer walk is kept: the DWARF unwind stopped near the
///   top of the stack (an unreadable word, a rule it could not follow), so
///   the frame-pointer chain shows more of where the thread is.
///
/// Async-signal-safe.
pub(crate) fn merge(dwarf: &mut [usize; MAX_FRAMES], n: usize, fp: &[usize]) -> usize {
    if n >= fp.len() {
        return n;
    }
    if n > 0
        && let Some(j) = fp.iter().position(|&a| a == dwarf[n - 1])
    {
        let tail = &fp[j + 1..];
        let k = tail.len().min(MAX_FRAMES - n);
        dwarf[n..n + k].copy_from_slice(&tail[..k]);
        return n + k;
    }
    let m = fp.len().min(MAX_FRAMES);
    dwarf[..m].copy_from_slice(&fp[..m]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dwarf(v: &[usize]) -> [usize; MAX_FRAMES] {
        let mut a = [0usize; MAX_FRAMES];
        a[..v.len()].copy_from_slice(v);
        a
    }

    #[test]
    fn merge_keeps_joins_or_takes_the_longer_walk() {
        // As long as the frame-pointer walk: kept.
        let mut d = dwarf(&[1, 2, 3]);
        assert_eq!(merge(&mut d, 3, &[1, 3, 9]), 3);
        assert_eq!(&d[..3], [1, 2, 3]);
        // Its last frame in the walk: the walk's frames after it appended.
        let mut d = dwarf(&[1, 2, 3]);
        let n = merge(&mut d, 3, &[1, 3, 4, 5, 6]);
        assert_eq!(&d[..n], [1, 2, 3, 4, 5, 6]);
        // No common frame: the longer walk.
        let mut d = dwarf(&[1, 2]);
        let n = merge(&mut d, 2, &[1, 7, 8, 9]);
        assert_eq!(&d[..n], [1, 7, 8, 9]);
        // Nothing from DWARF: the walk.
        let mut d = dwarf(&[]);
        let n = merge(&mut d, 0, &[5, 6]);
        assert_eq!(&d[..n], [5, 6]);
        // The join never overflows the buffer.
        let mut d = [7usize; MAX_FRAMES];
        d[MAX_FRAMES - 2] = 1;
        let fp: Vec<usize> = std::iter::once(1).chain(100..100 + MAX_FRAMES - 1).collect();
        assert_eq!(merge(&mut d, MAX_FRAMES - 1, &fp), MAX_FRAMES);
        assert_eq!(&d[MAX_FRAMES - 2..], [1, 100]);
    }
}
