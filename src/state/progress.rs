//! What the monitor keeps per slot about each watched thread's progress in
//! wall-clock time (the blocked and deaf rules' windows). Monitor-written;
//! the dump and the reporter read it.

use super::slots::{MAX_THREADS, slot};
use crate::os::sys::monotonic_ns;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, Ordering::*};

/// What the monitor keeps per slot (monitor-written; the dump reads it).
pub(crate) struct Progress {
    /// The registration generation this state belongs to.
    pub generation: AtomicU32,
    /// touch + tick counters last seen.
    pub progress: AtomicU64,
    /// When the progress counters last moved (or the thread was in a scope).
    pub progress_at: AtomicU64,
    /// Start of the quiet window: no progress, no CPU, no context switch
    /// (monotonic ns).
    pub quiet_since: AtomicU64,
    /// [`FORGIVEN_NS`] when the quiet window started: what the process was
    /// held back since is not counted in the window.
    pub quiet_forgiven: AtomicU64,
    /// Evidence at the last sample.
    pub cpu: AtomicU64,
    pub ctxsw: AtomicU64,
    pub sampled_at: AtomicU64,
    /// A blocked verdict was reached for this quiet window.
    pub convicted: AtomicBool,
    /// Start of the deaf window: the thread's CPU clock when the monitor
    /// first saw it without progress and without handled signals
    /// ([`NO_WINDOW`]: no window open).
    pub deaf_cpu: AtomicU64,
    /// The thread's count of handled failstop signals at that moment.
    pub deaf_signals: AtomicU32,
    /// The polling rule's evidence: bytes read plus written (`rchar +
    /// wchar` of `/proc/self/task/TID/io`) at the last sample, and when
    /// they (or the progress counters) last moved; `io_known` once the file
    /// could be read in this window (never convict on evidence not had).
    pub io_bytes: AtomicU64,
    pub io_since: AtomicU64,
    pub io_known: AtomicBool,
    /// The window is a scoped one (the thread is in an idle or harmless
    /// scope): only a deadlock convicts it, and its evidence is its CPU
    /// clock alone.
    pub scoped: AtomicBool,
    /// The wait chain as seen halfway through this quiet window (see
    /// `fatal::chain`): one of the `CHAIN_*` kinds, the end it led to (a
    /// tid, `wait4`'s pid argument, a file lock holder's pid), and that
    /// end's evidence of life then.
    pub chain_kind: AtomicU8,
    pub chain_end: AtomicI32,
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
pub(crate) static PROGRESS: [Progress; MAX_THREADS] = [const {
    Progress {
        generation: AtomicU32::new(u32::MAX),
        progress: AtomicU64::new(0),
        progress_at: AtomicU64::new(0),
        quiet_since: AtomicU64::new(0),
        quiet_forgiven: AtomicU64::new(0),
        cpu: AtomicU64::new(0),
        ctxsw: AtomicU64::new(u64::MAX),
        sampled_at: AtomicU64::new(0),
        convicted: AtomicBool::new(false),
        deaf_cpu: AtomicU64::new(NO_WINDOW),
        deaf_signals: AtomicU32::new(0),
        io_bytes: AtomicU64::new(0),
        io_since: AtomicU64::new(0),
        io_known: AtomicBool::new(false),
        scoped: AtomicBool::new(false),
        chain_kind: AtomicU8::new(CHAIN_UNSEEN),
        chain_end: AtomicI32::new(0),
        chain_cpu: AtomicU64::new(0),
        chain_moves: AtomicU64::new(0),
    }
}; MAX_THREADS];

/// Wall-clock ns since slot `idx` last made progress, as the monitor saw it.
pub(crate) fn wall_since_progress(idx: usize) -> Option<u64> {
    let s = slot(idx)?;
    let w = PROGRESS.get(idx)?;
    if w.generation.load(Relaxed) != s.generation.load(Relaxed) {
        return None;
    }
    Some(monotonic_ns().saturating_sub(w.progress_at.load(Relaxed)))
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
