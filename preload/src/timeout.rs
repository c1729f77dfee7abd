//! What is left of a wait's timeout after failstop's signal interrupted it.
//!
//! The wait goes on to the deadline the caller asked for, as the kernel
//! itself does when it restarts an interrupted `poll` for a stop signal:
//! an interruption neither shortens nor lengthens it. An infinite timeout
//! stays infinite; a deadline already passed becomes a wait of zero, so
//! that the retry still reports whatever became ready (and, for `select`,
//! clears the sets as a timeout does).

use std::time::{Duration, Instant};

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

/// When the wait started, read only if a finite, non-zero timeout will need it.
pub(crate) fn start_if(finite: bool) -> Option<Instant> {
    finite.then(Instant::now)
}

/// Time since `start` (zero without a start).
pub(crate) fn elapsed(start: Option<Instant>) -> Duration {
    start.map_or(Duration::ZERO, |s| s.elapsed())
}
