//! The end of the process: the verdict latch (its state is in
//! `state::latch`), the kernel fuse, and the actions: abort on the culprit,
//! `_exit`, unhealthy, warn.
//!
//! # Order on a fatal verdict
//!
//! 1. The verdict is latched by one compare-and-swap: exactly one dump per
//!    process; a concurrent second verdict does not start another.
//! 2. The heartbeat gate closes (one store), before anything that takes time.
//! 3. A kernel timer armed with `SIGKILL` (created at start) is set to
//!    `dump_timeout + HOOK_GRACE`: whatever any thread does from here on
//!    (a hook that hangs, a lock that never comes), the process ends.
//! 4. The monitor writes the dump; the acting thread waits for it at most
//!    `dump_timeout`.
//! 5. The pre-abort hook runs, then the action: `SIGABRT` raised on the
//!    culprit (a core file shows it as the crashing thread), or `_exit`.
//!    If a `SIGABRT` handler swallows the signal, the default action is
//!    restored and the signal raised again; if the process still lives after
//!    [`ABORT_GRACE`], it is killed.
//!
//! Every function here that runs on the fatal path is async-signal-safe.

use crate::error::Error;
use crate::os::procfs::{self, SCRATCH_LEN};
use crate::os::signals;
use crate::os::sys::{self, syscall};
use crate::state::bells;
use crate::state::gate;
use crate::state::latch::{CULPRIT_FIGURE, CULPRIT_SLOT, CULPRIT_TID, DUMP_DONE, LATCH, SPARED_FOR_DEBUGGER, VERDICT_AT};
use crate::state::settings::LIVE;
use crate::state::slots::Slot;
use crate::verdict::VerdictKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::time::Duration;

/// Time allowed for the pre-abort hook and the abort itself before the
/// kernel fuse kills the process.
pub(crate) const HOOK_GRACE: Duration = Duration::from_secs(3);
/// Time a swallowed SIGABRT is given before the process is killed.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(1);

static FUSE: AtomicUsize = AtomicUsize::new(0);
static HAS_FUSE: AtomicBool = AtomicBool::new(false);

/// Creates the kernel fuse timer (disarmed). Normal context, at start.
pub(crate) fn prepare() -> Result<(), Error> {
    if HAS_FUSE.load(Acquire) {
        return Ok(());
    }
    // SAFETY: sigevent is plain data.
    let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
    sev.sigev_notify = libc::SIGEV_SIGNAL;
    sev.sigev_signo = libc::SIGKILL;
    let mut t: libc::timer_t = std::ptr::null_mut();
    syscall!(timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut t)).map_err(|e| Error::os("timer_create (fuse)", e))?;
    FUSE.store(t as usize, Relaxed);
    HAS_FUSE.store(true, Release);
    Ok(())
}

/// Deletes the fuse unless a fatal verdict armed it. Normal context, at stop.
pub(crate) fn release() {
    if LATCH.load(Acquire) == 0 && HAS_FUSE.swap(false, AcqRel) {
        // SAFETY: created by `prepare`, deleted once thanks to the swap.
        unsafe { libc::timer_delete(FUSE.load(Relaxed) as libc::timer_t) };
    }
}

/// Arms (or with zero, disarms) the fuse. Async-signal-safe.
fn set_fuse(after: Duration) {
    if HAS_FUSE.load(Acquire) {
        let spec = libc::itimerspec { it_interval: sys::timespec(Duration::ZERO), it_value: sys::timespec(after) };
        // SAFETY: a live timer and a valid spec.
        unsafe { libc::timer_settime(FUSE.load(Relaxed) as libc::timer_t, 0, &spec, std::ptr::null_mut()) };
    }
}

/// Tries to latch a verdict. On success the gate is closed (unless in `warn`
/// mode), the culprit recorded and, for a fatal action, the fuse armed.
/// Async-signal-safe.
pub(crate) fn latch(kind: VerdictKind, slot: usize, tid: libc::pid_t, figure: u64) -> bool {
    gate::VERDICTS.fetch_add(1, Relaxed);
    if LIVE.closes_gate() {
        gate::close();
    }
    if LATCH.compare_exchange(0, kind.code(), AcqRel, Acquire).is_err() {
        return false;
    }
    CULPRIT_SLOT.store(slot, Relaxed);
    CULPRIT_TID.store(tid, Relaxed);
    CULPRIT_FIGURE.store(figure, Relaxed);
    VERDICT_AT.store(sys::monotonic_ns(), Release);
    if LIVE.fatal() {
        set_fuse(LIVE.dump_timeout() + HOOK_GRACE);
    }
    true
}

/// A verdict after the dump was written, in a non-fatal mode: the reporter
/// reports it in one line. Async-signal-safe.
pub(crate) fn note_late_verdict(s: &Slot, kind: VerdictKind, figure: u64) {
    s.late_kind.store(kind.code(), Relaxed);
    s.late_verdict.store(figure.max(1), Relaxed);
    bells::REPORTER.ring();
}

/// Waits until the dump is done or `dump_timeout` after the verdict.
/// Async-signal-safe.
pub(crate) fn wait_for_dump() {
    let deadline = VERDICT_AT.load(Acquire) + LIVE.dump_timeout_ns.load(Relaxed);
    while DUMP_DONE.load(Acquire) == 0 {
        let now = sys::monotonic_ns();
        if now >= deadline {
            break;
        }
        sys::futex_wait(&DUMP_DONE, 0, Some(Duration::from_nanos(deadline - now)));
    }
}

/// Runs the hook and ends the process with `culprit` as the crashing thread:
/// `SIGABRT` raised on it (a core file shows it), or `_exit` (exit:N).
///
/// Called on the culprit itself (stuck: from its handler) or by the monitor
/// (blocked: the culprit sleeps in a system call; deaf: it cannot run a
/// handler). A culprit in uninterruptible sleep (D), or one that blocks
/// `SIGABRT`, can never take the signal, so then the calling thread aborts
/// at once. If a `SIGABRT` handler swallows the signal, the
/// default action is restored and the signal raised again, as abort(3)
/// does; if the process still lives after [`ABORT_GRACE`], it is killed.
/// Returns only when a debugger is attached and aborting under it is not
/// allowed. Async-signal-safe.
pub(crate) fn act(culprit: libc::pid_t) {
    if SPARED_FOR_DEBUGGER.load(Acquire) {
        set_fuse(Duration::ZERO);
        return;
    }
    if let Some(hook) = LIVE.pre_abort_hook() {
        // The hook's contract (async-signal-safe, bounded) is the caller's:
        // `Config::pre_abort_hook` is an `unsafe fn` that states it.
        hook();
    }
    if let crate::config::Action::Exit(status) = LIVE.action() {
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(status) };
    }
    // A core dump must not be cut short by the fuse: from here on the
    // deadlines below are ours.
    set_fuse(Duration::ZERO);
    let me = sys::gettid();
    if culprit == me {
        raise_abort(me);
    } else {
        let mut io = [0u8; SCRATCH_LEN];
        let deaf_to_abort =
            procfs::read_status(culprit, &mut io).is_ok_and(|s| s.state == b'D' || s.blocks(libc::SIGABRT));
        if !deaf_to_abort {
            let _ = sys::tgkill(culprit, libc::SIGABRT);
            sys::sleep(ABORT_GRACE);
        }
    }
    // Still alive: a SIGABRT handler returned, or the culprit cannot take it.
    signals::reraise_with_default_action(libc::SIGABRT);
    sys::sleep(ABORT_GRACE);
    // SAFETY: kill is async-signal-safe.
    unsafe { libc::kill(sys::getpid(), libc::SIGKILL) };
}

/// Raises `SIGABRT` on the calling thread `tid` (unblocked first), leaving
/// its disposition as it is: the application's crash reporter runs.
fn raise_abort(tid: libc::pid_t) {
    signals::unblock(libc::SIGABRT);
    let _ = sys::tgkill(tid, libc::SIGABRT);
}
