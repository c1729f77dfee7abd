//! The verdict latch and the actions: abort on the culprit, `_exit`,
//! unhealthy, warn.
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
use crate::registry::{Frames, Slot};
use crate::sys;
use crate::watchdog::{ACT_EXIT, RT};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

/// Verdict kinds as latched.
pub(crate) const STUCK: u32 = 1;
pub(crate) const BLOCKED: u32 = 2;
/// `stuck`, reached by the monitor: the thread burned CPU without progress
/// while failstop's handler could not run on it (see `monitor`).
pub(crate) const DEAF: u32 = 3;

/// Time allowed for the pre-abort hook and the abort itself before the
/// kernel fuse kills the process.
pub(crate) const HOOK_GRACE: Duration = Duration::from_secs(3);
/// Time a swallowed SIGABRT is given before the process is killed.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(1);

/// The latched verdict: 0 = none, else [`STUCK`], [`BLOCKED`] or [`DEAF`].
pub(crate) static LATCH: AtomicU32 = AtomicU32::new(0);
pub(crate) static CULPRIT_SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);
pub(crate) static CULPRIT_TID: AtomicI32 = AtomicI32::new(0);
/// The figure behind the verdict: CPU ns without progress (stuck) or wall
/// ns without progress (blocked).
pub(crate) static CULPRIT_FIGURE: AtomicU64 = AtomicU64::new(0);
/// Monotonic ns when the verdict was latched.
pub(crate) static VERDICT_AT: AtomicU64 = AtomicU64::new(0);
/// Frames of the culprit, captured in its own context.
pub(crate) static CULPRIT_FRAMES: Frames = Frames::new();
/// Set to 1 by the monitor when the dump is written (or abandoned).
pub(crate) static DUMP_DONE: AtomicU32 = AtomicU32::new(0);
/// Set by the dump when a debugger is attached and aborting is not allowed.
pub(crate) static SPARED_FOR_DEBUGGER: AtomicBool = AtomicBool::new(false);

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
pub(crate) fn latch(kind: u32, slot: usize, tid: libc::pid_t, figure: u64) -> bool {
    crate::gate::VERDICTS.fetch_add(1, Relaxed);
    if RT.closes_gate() {
        crate::gate::close();
    }
    if LATCH.compare_exchange(0, kind, AcqRel, Acquire).is_err() {
        return false;
    }
    CULPRIT_SLOT.store(slot, Relaxed);
    CULPRIT_TID.store(tid, Relaxed);
    CULPRIT_FIGURE.store(figure, Relaxed);
    VERDICT_AT.store(sys::monotonic_ns(), Release);
    if RT.fatal() {
        set_fuse(dump_timeout() + HOOK_GRACE);
    }
    true
}

fn dump_timeout() -> Duration {
    Duration::from_nanos(RT.dump_timeout_ns.load(Relaxed))
}

/// The stuck verdict, reached in the culprit's own timer handler.
pub(crate) fn on_stuck(s: &Slot, idx: usize, tid: libc::pid_t, ctx: *mut libc::c_void, cpu_ns: u64) {
    if !latch(STUCK, idx, tid, cpu_ns) {
        // The dump is written or being written. In a non-fatal mode, report
        // this later verdict in one line; in a fatal one the process ends.
        if !RT.fatal() {
            s.late_kind.store(STUCK, Relaxed);
            s.late_verdict.store(cpu_ns.max(1), Relaxed);
            crate::reporter::wake();
        }
        return;
    }
    let mut frames = [0usize; crate::registry::MAX_FRAMES];
    let bounds = crate::stackwalk::StackBounds::new(s.stack_lo.load(Relaxed), s.stack_hi.load(Relaxed));
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler.
    let n = unsafe { crate::stackwalk::walk_ucontext(ctx, bounds, &mut frames) };
    CULPRIT_FRAMES.store(&frames[..n]);
    CULPRIT_FRAMES.state.store(crate::registry::CAP_READY, Release);
    crate::monitor::wake();
    if RT.fatal() {
        wait_for_dump();
        act(tid);
    }
}

/// Waits until the dump is done or `dump_timeout` after the verdict.
/// Async-signal-safe.
pub(crate) fn wait_for_dump() {
    let deadline = VERDICT_AT.load(Acquire) + RT.dump_timeout_ns.load(Relaxed);
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
    let hook = RT.hook.load(Relaxed);
    if hook != 0 {
        // SAFETY: stored from a `fn()` by start; documented as signal-safe.
        let f: fn() = unsafe { std::mem::transmute::<usize, fn()>(hook) };
        f();
    }
    if RT.action.load(Relaxed) == ACT_EXIT {
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(RT.exit_code.load(Relaxed)) };
    }
    // A core dump must not be cut short by the fuse: from here on the
    // deadlines below are ours.
    set_fuse(Duration::ZERO);
    let me = sys::gettid();
    if culprit == me {
        raise_abort(me);
    } else {
        let mut io = [0u8; 4096];
        let deaf_to_abort =
            crate::procfs::read_status(culprit, &mut io).is_ok_and(|s| s.state == b'D' || s.blocks(libc::SIGABRT));
        if !deaf_to_abort {
            let _ = sys::tgkill(culprit, libc::SIGABRT);
            sys::sleep(ABORT_GRACE);
        }
    }
    // Still alive: a SIGABRT handler returned, or the culprit cannot take it.
    set_default(libc::SIGABRT);
    raise_abort(me);
    sys::sleep(ABORT_GRACE);
    // SAFETY: kill is async-signal-safe.
    unsafe { libc::kill(sys::getpid(), libc::SIGKILL) };
}

fn raise_abort(tid: libc::pid_t) {
    // SAFETY: unblocking SIGABRT for the calling thread (async-signal-safe).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGABRT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let _ = sys::tgkill(tid, libc::SIGABRT);
}

fn set_default(sig: libc::c_int) {
    // SAFETY: sigaction is plain data; SIG_DFL with no flags.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
    }
}
