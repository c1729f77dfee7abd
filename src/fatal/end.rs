//! The end of the process: the verdict latch (its state is in
//! `state::latch`), the fuse, and the actions: abort on the culprit,
//! `_exit`, unhealthy, warn.
//!
//! # Order on a fatal verdict
//!
//! 1. The verdict is latched by one compare-and-swap: exactly one dump per
//!    process; a concurrent second verdict does not start another.
//! 2. The heartbeat gate closes (one store), before anything that takes time.
//! 3. The fuse (see below) is armed for `dump_timeout + HOOK_GRACE`:
//!    whatever any thread does from here on (a hook that hangs, a lock that
//!    never comes, a `SIGABRT` handler that never returns), the process ends.
//! 4. The monitor decides whether a debugger spares the process
//!    ([`spare_if_traced`]; the fuse is then disarmed), and writes the dump;
//!    the acting thread waits for it at most `dump_timeout`.
//! 5. [`act`]: the pre-abort hook runs, then the action: `_exit(N)`, or
//!    `SIGABRT` raised on the culprit (a core file shows it as the crashing
//!    thread). With `SIGABRT`'s default action the fuse is disarmed first
//!    (the core dump must not be cut short). With an application handler
//!    (a crash reporter) the fuse stays armed and the handler is given
//!    [`ABORT_GRACE`]; if it returns, or when that time is up, the default
//!    action is restored and `SIGABRT` raised again, as abort(3) does.
//! 6. [`follow_through`], on the monitor: a spared process is watched until
//!    no thread of it is traced any more (every [`TRACER_POLL`]), then the
//!    action goes ahead from the monitor with the fuse armed again for
//!    [`HOOK_GRACE`]; and the monitor stands by while the culprit acts, to
//!    end the process itself if the culprit's `SIGABRT` handler never returns.
//!
//! # The fuse
//!
//! The last deadline, in `fatal::fuse`: a `SIGKILL` timer, or as PID 1 a
//! thread of its own that calls `_exit`.
//!
//! # PID 1
//!
//! A PID 1 cannot die by `SIGABRT` (its default action is ignored there;
//! a handler of the application still runs): where the default action would
//! end the process, a PID 1 says so in one line on stderr and calls
//! `_exit(134)`, the status a container runtime reports for an abort. There
//! is no core file.
//!
//! Every function here that runs on the fatal path is async-signal-safe;
//! those that run on the monitor or the fuse thread are allocation-free.

use super::fuse;
use crate::config::Action;
use crate::os::fmt::FixedBuf;
use crate::os::procfs::{self, SCRATCH_LEN};
use crate::os::signals;
use crate::os::sys::{self};
use crate::state::bells;
use crate::state::gate;
use crate::state::latch::{
    CULPRIT_FIGURE, CULPRIT_SLOT, CULPRIT_TID, DUMP_DONE, LATCH, SPARED_FOR_DEBUGGER, VERDICT_AT,
};
use crate::state::settings::LIVE;
use crate::state::slots::Slot;
use crate::verdict::VerdictKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::time::Duration;

/// Time allowed for the pre-abort hook and the abort itself before the
/// fuse ends the process.
pub(crate) const HOOK_GRACE: Duration = Duration::from_secs(3);
/// Time an application's `SIGABRT` handler is given before the default
/// action is restored and the signal raised again; and the time a swallowed
/// `SIGABRT` is given before the process is killed.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(1);
/// How often a process spared for a debugger looks whether it is still
/// traced.
pub(crate) const TRACER_POLL: Duration = Duration::from_millis(100);
/// Taken by the one thread that goes through with the action.
static ACTING: AtomicBool = AtomicBool::new(false);
/// Monotonic ns when `SIGABRT` was raised towards an application handler
/// on the culprit by the culprit itself (0: not), for the monitor's
/// [`stand_by`].
static HANDLER_SINCE: AtomicU64 = AtomicU64::new(0);

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
        fuse::set(LIVE.dump_timeout() + HOOK_GRACE);
    }
    true
}

/// A verdict after the dump was written, in a non-fatal mode: the reporter
/// reports it in one line. Async-signal-safe.
pub(crate) fn note_late_verdict(s: &Slot, kind: VerdictKind, figure: u64) {
    s.late_kind.store(kind.code(), Relaxed);
    s.late_verdict.store(figure.max(1), Relaxed);
    crate::state::warnings::LATE_PENDING.store(true, Release);
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

/// Called where the application would end the process or stop the watchdog
/// on its own (its `exit()` or return from `main`, through failstop's exit
/// handler; `stop`, or dropping the `Watchdog`) while a verdict is latched
/// in this process. In every mode the dump is waited for first
/// ([`wait_for_dump`]), so that it is written whole. Then, for a fatal
/// verdict, the calling thread never returns: it sleeps until the verdict's
/// action ends the process (the fuse bounds that, unless the process is
/// spared for a debugger), so that the process ends by the verdict's action
/// and not with the application's own status in the middle of the dump. The
/// thread keeps its signal mask: it still answers the dump's capture
/// request (its frames show where it was ending), and `SIGABRT` sent to it
/// as the culprit ends the process. Returns at once without a verdict, or
/// in a forked child of the process that latched it. Async-signal-safe.
pub(crate) fn hold_if_ending() {
    if LATCH.load(Acquire) == 0 || LIVE.pid.load(Relaxed) != sys::getpid() {
        return;
    }
    wait_for_dump();
    if !LIVE.fatal() {
        return;
    }
    loop {
        sys::sleep(Duration::from_secs(1));
    }
}

/// On a fatal verdict, before the dump: a debugger is attached (`TracerPid`
/// of the main thread) and `FAILSTOP_ABORT_UNDER_DEBUGGER` is not set, so
/// the process is spared: [`act`] will not end it, and the fuse is
/// disarmed, until [`follow_through`] sees the tracer gone. Returns the
/// tracer's pid when spared. Monitor thread, allocation-free.
pub(crate) fn spare_if_traced(io: &mut [u8]) -> Option<libc::pid_t> {
    if !LIVE.fatal() || LIVE.abort_under_debugger.load(Relaxed) {
        return None;
    }
    let tracer = procfs::read_self_status(io).map(|s| s.tracer_pid).unwrap_or(0);
    if tracer == 0 {
        return None;
    }
    SPARED_FOR_DEBUGGER.store(true, Release);
    fuse::set(Duration::ZERO);
    Some(tracer)
}

/// Runs the hook and ends the process with `culprit` as the crashing thread:
/// `SIGABRT` raised on it (a core file shows it), or `_exit` (exit:N).
///
/// Called on the culprit itself (stuck: from its handler) or by the monitor
/// (blocked: the culprit sleeps in a system call; deaf: it cannot run a
/// handler; any verdict once a tracer that spared the process is gone).
/// Only one thread goes through with it; a second caller returns at once.
/// A culprit in uninterruptible sleep (D), or one that blocks `SIGABRT`,
/// can never take the signal, so then the calling thread aborts at once.
/// With `SIGABRT`'s default action the fuse is disarmed before the raise,
/// so that a core dump is not cut short. With an application handler the
/// fuse stays armed and the handler gets [`ABORT_GRACE`]: if it returns (or,
/// on another thread, when the time is up) the default action is restored
/// and the signal raised again, as abort(3) does; a handler that never
/// returns on the culprit itself is dealt with by the monitor
/// ([`follow_through`]). As PID 1, where the default action is ignored,
/// `_exit(134)` instead. Returns only when the process is spared for a
/// debugger or another thread acts. Async-signal-safe.
pub(crate) fn act(culprit: libc::pid_t) {
    if SPARED_FOR_DEBUGGER.load(Acquire) || ACTING.swap(true, AcqRel) {
        return;
    }
    if let Some(hook) = LIVE.pre_abort_hook() {
        // The hook's contract (async-signal-safe, bounded) is the caller's:
        // `Config::pre_abort_hook` is an `unsafe fn` that states it.
        hook();
    }
    if let Action::Exit(status) = LIVE.action() {
        // SAFETY: _exit is async-signal-safe and ends the process.
        unsafe { libc::_exit(status) };
    }
    let handled = abort_is_handled();
    if !handled {
        if fuse::is_pid1() {
            end_as_pid1();
        }
        // The default action ends the process, with a core dump that the
        // fuse must not cut short: from here on the deadlines below are ours.
        fuse::set(Duration::ZERO);
    }
    let me = sys::gettid();
    if culprit == me {
        if handled {
            HANDLER_SINCE.store(sys::monotonic_ns().max(1), Release);
        }
        // The handler runs here (and returns), or the default action ends
        // the process.
        raise_abort(me);
    } else {
        let mut io = [0u8; SCRATCH_LEN];
        let deaf_to_abort =
            procfs::read_status(culprit, &mut io).is_ok_and(|s| s.state == b'D' || s.blocks(libc::SIGABRT));
        if !deaf_to_abort && sys::tgkill(culprit, libc::SIGABRT).is_ok() {
            sys::sleep(ABORT_GRACE);
        }
    }
    // Still alive: a SIGABRT handler returned or did not return in time,
    // or the culprit cannot take the signal.
    finish_abort();
}

/// Whether `SIGABRT` has an application handler. An ignored `SIGABRT` is
/// given its default action back first (abort(3) does the same).
/// Async-signal-safe.
fn abort_is_handled() -> bool {
    // SAFETY: sigaction is plain data; a query only, into a valid out-pointer.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaction(libc::SIGABRT, std::ptr::null(), &mut old) } != 0 {
        return false;
    }
    if old.sa_sigaction == libc::SIG_IGN {
        signals::set_default(libc::SIGABRT);
        return false;
    }
    old.sa_sigaction != libc::SIG_DFL
}

/// Raises `SIGABRT` on the calling thread `tid` (unblocked first), leaving
/// its disposition as it is: the application's crash reporter runs.
fn raise_abort(tid: libc::pid_t) {
    signals::unblock(libc::SIGABRT);
    let _ = sys::tgkill(tid, libc::SIGABRT);
}

/// The end when `SIGABRT` towards the culprit did not end the process: the
/// default action restored and the signal raised on the calling thread
/// (with the fuse disarmed, so that the core dump is whole), then `SIGKILL`.
/// As PID 1, `_exit(134)`. Async-signal-safe.
fn finish_abort() -> ! {
    if fuse::is_pid1() {
        end_as_pid1();
    }
    fuse::set(Duration::ZERO);
    signals::reraise_with_default_action(libc::SIGABRT);
    sys::sleep(ABORT_GRACE);
    // SAFETY: kill and _exit are async-signal-safe.
    unsafe {
        libc::kill(sys::getpid(), libc::SIGKILL);
        libc::_exit(fuse::ABORT_STATUS)
    }
}

/// As PID 1 the process cannot die by `SIGABRT`: one line says so, then
/// `_exit(134)`. Async-signal-safe.
fn end_as_pid1() -> ! {
    let mut b = FixedBuf::<256>::new();
    b.push_str("failstop: PID 1 of its PID namespace, where the kernel ignores SIGABRT's default action: ");
    b.push_str("ending with _exit(134) (128+SIGABRT), no core file");
    say(&mut b);
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { libc::_exit(fuse::ABORT_STATUS) }
}

/// Writes `b` and a newline to stderr (a broken or closed stderr is ignored).
/// Async-signal-safe.
fn say(b: &mut FixedBuf<256>) {
    b.push_str("\n");
    if sys::stderr_usable() {
        let _ = sys::write_all(2, b.as_bytes());
    }
}

/// The monitor's part of a fatal verdict, after the dump.
///
/// - A process spared for a debugger is looked at every [`TRACER_POLL`]
///   until no thread of it is traced any more; then the fuse is armed again
///   for [`HOOK_GRACE`] and the action goes ahead from the monitor (the
///   culprit of a stuck verdict, which returned to its work, takes `SIGABRT`
///   like a blocked one).
/// - A blocked or deaf verdict is acted on from here (its culprit cannot).
/// - Otherwise the culprit acts, and the monitor stands by: if the
///   culprit's own `SIGABRT` handler has not returned after
///   [`ABORT_GRACE`], the monitor restores the default action and raises
///   `SIGABRT` again itself (a core file then shows the monitor as the
///   crashing thread, and the culprit inside its handler).
///
/// Returns only when the watchdog stops (the fuse still holds), or when a
/// spared process is stopped. Monitor thread, allocation-free.
pub(crate) fn follow_through(kind: VerdictKind) {
    // A vanished culprit cannot take a signal: the monitor aborts itself.
    let culprit = if kind == VerdictKind::Vanished { sys::gettid() } else { CULPRIT_TID.load(Relaxed) };
    if SPARED_FOR_DEBUGGER.load(Acquire) {
        if !wait_while_traced() {
            return;
        }
        let mut b = FixedBuf::<256>::new();
        b.push_str("failstop: no tracer is attached any more: the process is ended now (action: ");
        let _ = std::fmt::Write::write_fmt(&mut b, format_args!("{}", LIVE.action()));
        b.push_str(")");
        say(&mut b);
        fuse::set(HOOK_GRACE);
        SPARED_FOR_DEBUGGER.store(false, Release);
        act(culprit);
    } else if kind != VerdictKind::Stuck {
        act(culprit);
    }
    stand_by();
}

/// Waits while any thread of the process is traced. Returns false when the
/// watchdog stops meanwhile. A `/proc` that cannot be read is no evidence
/// of a tracer. Monitor thread, allocation-free.
fn wait_while_traced() -> bool {
    let bell = &bells::MONITOR;
    let mut dir = [0u8; 1024];
    let mut io = [0u8; SCRATCH_LEN];
    loop {
        let seen = bell.seen();
        if bell.stopping() {
            return false;
        }
        if !any_thread_traced(&mut dir, &mut io) {
            return true;
        }
        bell.wait(seen, TRACER_POLL);
    }
}

/// Whether any thread of the process has a tracer (`TracerPid` in its
/// `/proc/self/task/TID/status`). Allocation-free.
fn any_thread_traced(dir: &mut [u8], io: &mut [u8]) -> bool {
    let mut traced = false;
    let listed = procfs::for_each_task(dir, |tid| {
        traced = traced || procfs::read_status(tid, io).is_ok_and(|s| s.tracer_pid != 0);
    });
    if listed.is_err() {
        return procfs::read_self_status(io).is_ok_and(|s| s.tracer_pid != 0);
    }
    traced
}

/// The monitor's watch over a culprit that raised `SIGABRT` towards an
/// application handler on itself: when the handler has not returned after
/// [`ABORT_GRACE`], the process is ended from here. Returns when the
/// watchdog stops. Monitor thread, allocation-free.
fn stand_by() {
    let bell = &bells::MONITOR;
    loop {
        let seen = bell.seen();
        if bell.stopping() {
            return;
        }
        let since = HANDLER_SINCE.load(Acquire);
        let now = sys::monotonic_ns();
        let mut wait = TRACER_POLL;
        if since != 0 {
            let due = since.saturating_add(ABORT_GRACE.as_nanos() as u64);
            if now >= due {
                let mut b = FixedBuf::<256>::new();
                b.push_str("failstop: the SIGABRT handler did not return within ");
                b.push_u64(ABORT_GRACE.as_millis() as u64);
                b.push_str(" ms: SIGABRT is raised again with its default action");
                say(&mut b);
                finish_abort();
            }
            wait = wait.min(Duration::from_nanos(due - now));
        }
        bell.wait(seen, wait);
    }
}
