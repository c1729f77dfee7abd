//! What the monitor keeps per slot about each watched thread's progress in
//! wall-clock time (the blocked, deaf and polling rules' windows), when it
//! looks at each thread next, and when each progress epoch began.
//! Monitor-written; the dump and the reporter read it.
//!
//! # Signal-safety contract
//!
//! Atomics in tables that are never freed (see `segmented`): any thread may
//! read them at any time. [`prepare`] allocates (normal context, when a
//! thread registers); nothing else does.

use super::segmented::{Segmented, Zeroed};
use super::slots::{EPOCH, MAX_THREADS, SEGMENT_SLOTS, slot};
use crate::os::sys::monotonic_ns;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::*};

/// What the monitor keeps per slot (monitor-written; the dump reads it).
#[repr(C, align(64))]
pub(crate) struct Progress {
    // --- what every look reads or writes, in the first cache line ---
    /// touch + tick counters last seen.
    pub progress: AtomicU64,
    /// When the progress counters last moved (or the thread was in a scope).
    pub progress_at: AtomicU64,
    /// Start of the still window: the first look since `progress_at` that
    /// read the thread's CPU clock, or the last look that found it moved
    /// (monotonic ns).
    pub quiet_since: AtomicU64,
    /// [`FORGIVEN_NS`] when the thread last made progress: what the
    /// process was held back since is not counted in its windows.
    pub quiet_forgiven: AtomicU64,
    /// The thread's CPU clock at `quiet_since` ([`NO_READING`]: not read
    /// since the last progress).
    pub cpu: AtomicU64,
    /// The registration generation this state belongs to.
    pub generation: AtomicU32,
    /// The slot's progress stamp last seen (see `slots::EPOCH`).
    pub stamp: AtomicU32,
    /// The window is a scoped one (the thread is in an idle or harmless
    /// scope): only a deadlock convicts it, and its evidence is its CPU
    /// clock alone.
    pub scoped: AtomicBool,
    /// A verdict was reached for this window.
    pub convicted: AtomicBool,
    pub io_known: AtomicBool,
    /// The wait chain as seen halfway through this quiet window (see
    /// `fatal::chain`): one of the `CHAIN_*` kinds, the end it led to (a
    /// tid, `wait4`'s pid argument, a file lock holder's pid), and that
    /// end's evidence of life then.
    pub chain_kind: AtomicU8,
    /// The thread's count of handled failstop signals when the deaf window
    /// opened.
    pub deaf_signals: AtomicU32,
    pub chain_end: AtomicI32,
    // --- read when the thread stopped making progress ---
    /// Start of the deaf window: the thread's CPU clock when the monitor
    /// first saw it without progress and without handled signals
    /// ([`NO_WINDOW`]: no window open).
    pub deaf_cpu: AtomicU64,
    /// The polling rule's evidence: bytes read plus written (`rchar +
    /// wchar` of `/proc/self/task/TID/io`) when last read, and when they
    /// last moved (`io_known` once the file could be read in this window:
    /// never convict on evidence not had).
    pub io_bytes: AtomicU64,
    pub io_since: AtomicU64,
    pub chain_cpu: AtomicU64,
    pub chain_moves: AtomicU64,
}

/// [`Progress::chain_kind`]: not looked at yet in this window.
pub(crate) const CHAIN_UNSEEN: u8 = 0;
/// Nothing followable, or an end whose evidence could not be read.
pub(crate) const CHAIN_NONE: u8 = 1;
/// The chain ends at a thread (`chain_end` its tid).
pub(crate) const CHAIN_THREAD: u8 = 2;
/// The chain ends in a wait for children (`chain_end` the pid argument).
pub(crate) const CHAIN_CHILDREN: u8 = 3;
/// The chain is a deadlock cycle (`chain_end` a member).
pub(crate) const CHAIN_CYCLE: u8 = 4;
/// The chain ends at a process that holds a file lock (`chain_end` its pid).
pub(crate) const CHAIN_HOLDER: u8 = 5;

/// Time the process could not run because its cgroup was throttled, summed
/// since the start (ns; the monitor's). A quiet window does not count it
/// ([`Progress::quiet_forgiven`]); the polling window (`io_since`) is kept
/// on a clock that stands meanwhile: `monotonic - FORGIVEN_NS`.
pub(crate) static FORGIVEN_NS: AtomicU64 = AtomicU64::new(0);

/// [`Progress::deaf_cpu`] when no deaf window is open.
pub(crate) const NO_WINDOW: u64 = u64::MAX;
/// [`Progress::cpu`] when the CPU clock was not read in this window.
pub(crate) const NO_READING: u64 = u64::MAX;

// SAFETY: atomics only, valid as zero bytes. A zeroed record has generation
// 0, which no registration has (a slot's first is 1), so the monitor
// starts it afresh before using any other field.
unsafe impl Zeroed for Progress {}

/// The records, one per slot, allocated with the slots' segments.
static PROGRESS: Segmented<Progress, SEGMENT_SLOTS, { MAX_THREADS / SEGMENT_SLOTS }> = Segmented::new();
/// When the monitor looks at each slot next (monotonic ns; 0: at its next
/// loop; `u64::MAX`: never, the slot is not watched). One dense array, so
/// that the monitor's pass over it touches 8 bytes per slot.
static NEXT_LOOK: Segmented<AtomicU64, SEGMENT_SLOTS, { MAX_THREADS / SEGMENT_SLOTS }> = Segmented::new();

/// Makes the monitor's records of slot `idx` exist (normal context: a
/// thread registers).
pub(crate) fn prepare(idx: usize) -> Result<(), &'static str> {
    PROGRESS.ensure(idx)?;
    NEXT_LOOK.ensure(idx)
}

/// The monitor's record of slot `idx`. Async-signal-safe.
#[inline]
pub(crate) fn progress(idx: usize) -> Option<&'static Progress> {
    PROGRESS.get(idx)
}

/// When the monitor looks at slot `idx` next. Async-signal-safe.
#[inline]
pub(crate) fn next_look(idx: usize) -> Option<&'static AtomicU64> {
    NEXT_LOOK.get(idx)
}

/// The due times of the slots below `end`, a segment at a time: `f(first
/// index, due times)`. Async-signal-safe.
pub(crate) fn for_each_due(end: usize, f: impl FnMut(usize, &'static [AtomicU64])) {
    NEXT_LOOK.for_each_segment(end, f);
}

/// Asks the monitor to look at slot `idx` at its next loop (a thread
/// registered, or departed). Async-signal-safe.
pub(crate) fn look_soon(idx: usize) {
    if let Some(n) = next_look(idx) {
        n.store(0, Release);
    }
}

/// Epochs whose start the monitor remembers: a stamp older than this is
/// taken as the oldest start remembered (later than the truth: a window
/// measured from it is shorter, never longer).
const EPOCH_RING: usize = 1024;
/// When each of the last [`EPOCH_RING`] epochs began (monotonic ns), and
/// [`FORGIVEN_NS`] then.
static EPOCH_AT: [AtomicU64; EPOCH_RING] = [const { AtomicU64::new(0) }; EPOCH_RING];
static EPOCH_FORGIVEN: [AtomicU64; EPOCH_RING] = [const { AtomicU64::new(0) }; EPOCH_RING];

/// Starts a new progress epoch at `now` (the monitor, at each loop).
pub(crate) fn next_epoch(now: u64) {
    let e = EPOCH.load(Relaxed).wrapping_add(1);
    EPOCH_AT[e as usize % EPOCH_RING].store(now, Relaxed);
    EPOCH_FORGIVEN[e as usize % EPOCH_RING].store(FORGIVEN_NS.load(Relaxed), Relaxed);
    EPOCH.store(e, Release);
}

/// The latest instant a progress mark stamped `stamp` can have been made,
/// at most `now`: when the next epoch began, or `now` if it has not. And
/// [`FORGIVEN_NS`] at the start of `stamp`'s epoch (at most its value at
/// the mark: a window measured with it forgives more, never less).
pub(crate) fn stamp_bounds(stamp: u32, now: u64) -> (u64, u64) {
    let current = EPOCH.load(Acquire);
    let age = current.wrapping_sub(stamp) as usize;
    if age == 0 {
        let forgiven = EPOCH_FORGIVEN[stamp as usize % EPOCH_RING].load(Relaxed);
        return (now, forgiven);
    }
    if age >= EPOCH_RING {
        // Older than the ring: the oldest start kept is later than the
        // mark's epoch's end; the forgiven time before the mark is unknown,
        // so none is forgiven.
        let oldest = current.wrapping_sub(EPOCH_RING as u32 - 1) as usize % EPOCH_RING;
        return (EPOCH_AT[oldest].load(Relaxed).min(now), FORGIVEN_NS.load(Relaxed));
    }
    let end = EPOCH_AT[stamp.wrapping_add(1) as usize % EPOCH_RING].load(Relaxed);
    (end.min(now), EPOCH_FORGIVEN[stamp as usize % EPOCH_RING].load(Relaxed))
}

/// Wall-clock ns since slot `idx` last made progress, as the monitor saw it.
/// The thread may have made progress since the monitor last looked: its
/// stamp then tells when, to within an epoch.
pub(crate) fn wall_since_progress(idx: usize) -> Option<u64> {
    let s = slot(idx)?;
    let w = PROGRESS.get(idx)?;
    if w.generation.load(Relaxed) != s.generation.load(Relaxed) {
        return None;
    }
    let now = monotonic_ns();
    let mut at = w.progress_at.load(Relaxed);
    let stamp = s.stamp.load(Relaxed);
    if stamp != w.stamp.load(Relaxed) {
        at = at.max(stamp_bounds(stamp, now).0);
    }
    Some(now.saturating_sub(at))
}

/// When the monitor last started a loop (monotonic ns; 0 before its
/// first): the reporter's watch over it (`fatal::overseer`).
pub(crate) static MONITOR_LOOP_AT: AtomicU64 = AtomicU64::new(0);
/// The monitor thread's tid, while it runs.
pub(crate) static MONITOR_TID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// How long the monitor may go without starting a loop before it is
/// `stalled` (see `fatal::overseer`): twice the stall budget, and at least
/// 5 s (its loop comes around every [`MONITOR_PERIOD`]; a long `/proc` read
/// or a slow system must not count).
pub(crate) fn monitor_stall_limit_ns() -> u64 {
    super::settings::LIVE.stall_budget_ns.load(Relaxed).saturating_mul(2).max(5_000_000_000)
}

/// How often the monitor looks at the threads (its rules' resolution).
pub(crate) const MONITOR_PERIOD: std::time::Duration = std::time::Duration::from_millis(100);
