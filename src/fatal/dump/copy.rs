//! The dump's in-memory copy: every byte of a dump goes here first, and
//! the destinations read it with cursors of their own ([`Sink`](super::sink::Sink)).

use crate::os::sys;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};

/// The in-memory copy of the dump, allocated once at start (lazily zeroed
/// pages: it costs memory only when a dump fills it). Every byte of the dump
/// goes here first; the file and stderr are two independent cursors over
/// it, so that a destination that blocks or fails never costs the other its
/// dump (see [`Sink`]).
const COPY_LEN: usize = 8 << 20;

/// The end of the copy kept for the dump's closing lines (how it was
/// written, what was lost): the rest of the dump cannot use it, so however
/// large a dump grows (10,000 threads), it still says how it ended.
const CLOSING_ROOM: usize = 16 << 10;

pub(super) struct DumpCopy {
    ptr: AtomicPtr<u8>,
    /// Bytes written so far (published with Release after the bytes).
    pub(super) len: AtomicUsize,
    /// The reporter appends only while this is false (it is false while
    /// the monitor waits for the symbolized part).
    sealed: AtomicBool,
    /// The reporter is appending now.
    busy: AtomicBool,
    /// Bytes that did not fit.
    lost: AtomicUsize,
}

static COPY: DumpCopy = DumpCopy {
    ptr: AtomicPtr::new(std::ptr::null_mut()),
    len: AtomicUsize::new(0),
    sealed: AtomicBool::new(true),
    busy: AtomicBool::new(false),
    lost: AtomicUsize::new(0),
};

/// Allocates the dump's in-memory copy (once per process). Normal context,
/// at start.
pub(crate) fn prepare_copy() {
    if COPY.ptr.load(Acquire).is_null() {
        let mem: &'static mut [u8] = Box::leak(vec![0u8; COPY_LEN].into_boxed_slice());
        if COPY.ptr.compare_exchange(std::ptr::null_mut(), mem.as_mut_ptr(), AcqRel, Acquire).is_err() {
            // Another start won the race: its copy is used; ours stays
            // leaked (zeroed pages, never touched).
        }
    }
}

/// Appends `bytes` to the copy. The caller is the one appender at this
/// moment (the monitor, or the reporter while the copy is unsealed).
/// `closing`: the dump's closing lines, which may use [`CLOSING_ROOM`].
pub(super) fn copy_append(bytes: &[u8], closing: bool) -> bool {
    let base = COPY.ptr.load(Acquire);
    let len = COPY.len.load(Relaxed);
    let limit = if closing { COPY_LEN } else { COPY_LEN - CLOSING_ROOM };
    if base.is_null() || len + bytes.len() > limit {
        COPY.lost.fetch_add(bytes.len(), Relaxed);
        return false;
    }
    // SAFETY: `base` points to COPY_LEN bytes leaked for the process's
    // life; [len, len + bytes.len()) is inside them and is written by the
    // one appender only (readers read below `len`, published afterwards).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(len), bytes.len()) };
    COPY.len.store(len + bytes.len(), Release);
    true
}

/// The copy's bytes `[from, len)`.
pub(super) fn copy_since(from: usize) -> &'static [u8] {
    let base = COPY.ptr.load(Acquire);
    let len = COPY.len.load(Acquire);
    if base.is_null() || from >= len {
        return &[];
    }
    // SAFETY: bytes below the published `len` are written once and never
    // changed while this dump lasts; the memory lives as long as the process.
    unsafe { std::slice::from_raw_parts(base.add(from), len - from) }
}

/// The reporter appends the symbolized part (`text`) to the dump, unless
/// the monitor sealed the copy (the deadline passed). Allocation-free.
pub(crate) fn append_symbolized(text: &[u8]) {
    COPY.busy.store(true, SeqCst);
    if !COPY.sealed.load(SeqCst) {
        copy_append(text, false);
    }
    COPY.busy.store(false, SeqCst);
}

/// Starts the copy of a new dump: empty, sealed, nothing lost.
pub(super) fn copy_reset() {
    COPY.len.store(0, Release);
    COPY.lost.store(0, Relaxed);
    COPY.sealed.store(true, SeqCst);
}

/// Opens the copy to the reporter's symbolized part.
pub(super) fn copy_unseal() {
    COPY.sealed.store(false, SeqCst);
}

/// Closes the copy to the reporter, and waits up to 200 ms (an append is
/// a copy in memory) for one under way.
pub(super) fn copy_seal() {
    COPY.sealed.store(true, SeqCst);
    let until = sys::monotonic_ns() + 200_000_000;
    while COPY.busy.load(SeqCst) && sys::monotonic_ns() < until {
        // SAFETY: sched_yield has no arguments.
        unsafe { libc::sched_yield() };
    }
}

/// Bytes in the copy.
pub(super) fn copy_len() -> usize {
    COPY.len.load(Acquire)
}

/// Bytes that did not fit in the copy.
pub(super) fn copy_lost() -> usize {
    COPY.lost.load(Relaxed)
}
