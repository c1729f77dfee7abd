//! The heartbeat gate and the counters behind [`stats`].
//!
//! The gate is one atomic flag: open (healthy) until the first verdict, then
//! closed for the life of the process. Closing it is a single store, so the
//! signal handler closes it before it does anything that can take time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static HEALTHY: AtomicBool = AtomicBool::new(true);
pub(crate) static WARNINGS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
pub(crate) static VERDICTS: AtomicU64 = AtomicU64::new(0);

/// Whether this process may still tell its peers it is alive.
///
/// `true` until the first verdict (`stuck` or `blocked`) with the `abort`,
/// `exit` or `unhealthy` action, then `false` for the rest of the process's
/// life. A thread that is merely slow never closes the gate, and `warn` mode
/// (a dry run) never closes it. A heartbeat sender checks it before every beat:
///
/// ```
/// fn send_heartbeat() { /* a UDP packet to the peers */ }
/// if failstop::healthy() {
///     send_heartbeat();
/// }
/// ```
pub fn healthy() -> bool {
    HEALTHY.load(Ordering::Acquire)
}

/// Closes the gate for good. Async-signal-safe (one atomic store).
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
pub(crate) fn close() {
    HEALTHY.store(false, Ordering::Release);
}

/// Counters about what failstop saw, from [`stats`].
///
/// ```
/// let s = failstop::stats();
/// assert_eq!(s.verdicts, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Threads registered and watched right now.
    pub registered: usize,
    /// Warnings reported (stderr block and `tracing` event).
    pub warnings: u64,
    /// Warnings raised but not reported because of the rate limit.
    pub suppressed_warnings: u64,
    /// Verdicts reached (`stuck` or `blocked`), in any mode.
    pub verdicts: u64,
}

/// A snapshot of failstop's counters since the process started.
///
/// ```
/// let before = failstop::stats();
/// assert!(failstop::stats().warnings >= before.warnings);
/// ```
pub fn stats() -> Stats {
    Stats {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        registered: super::slots::watched_count(),
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        registered: 0,
        warnings: WARNINGS.load(Ordering::Relaxed),
        suppressed_warnings: SUPPRESSED.load(Ordering::Relaxed),
        verdicts: VERDICTS.load(Ordering::Relaxed),
    }
}
