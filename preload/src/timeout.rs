//! What is left of a wait's timeout after failstop's signal interrupted it.
//!
//! The wait goes on to the deadline the caller asked for, as the kernel
//! itself does when it restarts an interrupted `poll` for a stop signal:
//! an interruption neither shortens nor lengthens it. An infinite timeout
//! stays infinite; a deadline already passed becomes a wait of zero, so
//! that the retry still reports whatever became ready (and, for `select`,
//! clears the sets as a timeout does).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A timeout in milliseconds (`poll`, `epoll_wait`): negative = infinite.
pub(crate) fn ms_left(timeout_ms: libc::c_int, elapsed: Duration) -> libc::c_int {
    if timeout_ms <= 0 {
        return timeout_ms;
    }
    let left = Duration::from_millis(timeout_ms as u64).saturating_sub(elapsed);
    // Rounded up, like the kernel rounds a timeout: never shorter than asked.
    left.as_nanos().div_ceil(1_000_000) as libc::c_int
}

/// A `timespec` timeout (`ppoll`, `pselect`, `epoll_pwait2`), already
/// accepted by the kernel (so valid).
pub(crate) fn timespec_left(timeout: &libc::timespec, elapsed: Duration) -> libc::timespec {
    let total = Duration::new(timeout.tv_sec.max(0) as u64, timeout.tv_nsec.clamp(0, 999_999_999) as u32);
    let left = total.saturating_sub(elapsed);
    libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long }
}

/// The resolution of `CLOCK_MONOTONIC_COARSE` in ns (read by [`init`]; one
/// tick of the kernel's clock, 1 to 10 ms).
static COARSE_RES_NS: AtomicU64 = AtomicU64::new(10_000_000);

/// Reads the coarse clock's resolution (the constructor calls it).
pub(crate) fn init() {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
        COARSE_RES_NS.store(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64, Relaxed);
    }
}

fn coarse_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// When the wait started, read only if a finite, non-zero timeout will need
/// it, from `CLOCK_MONOTONIC_COARSE`: the kernel's last tick, which the vDSO
/// returns without reading the hardware clock. Every finite wait pays this
/// read, and only a retry after failstop's own `EINTR` (rare) uses it.
#[inline(always)]
pub(crate) fn start_if(finite: bool) -> Option<u64> {
    finite.then(coarse_ns)
}

/// Time since `start` (zero without a start), never more than the time that
/// really passed: both readings of the coarse clock lag the true time by
/// less than its resolution, so their difference minus the resolution is
/// below the true elapsed time. A retry therefore waits at least what the
/// caller had left, and at most two ticks more.
pub(crate) fn elapsed(start: Option<u64>) -> Duration {
    start.map_or(Duration::ZERO, |s| {
        Duration::from_nanos(coarse_ns().saturating_sub(s).saturating_sub(COARSE_RES_NS.load(Relaxed)))
    })
}
