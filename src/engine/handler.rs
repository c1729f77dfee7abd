//! The watchdog signal handler: installation, dispatch, chaining, and every
//! function failstop runs in signal context.
//!
//! This file is the one home of signal-context entry points: [`on_signal`]
//! and what it dispatches to, a timer tick ([`on_tick`], which may capture a
//! warning or reach the `stuck` verdict in [`on_stuck`]), a dump's capture
//! request ([`on_capture_request`]), and the application's own signals,
//! chained to its handler ([`chain`]). Everything they call lives in the
//! floors below and is async-signal-safe.
//!
//! # Signal-safety contract
//!
//! [`on_signal`] runs in signal context on whichever thread the signal was
//! delivered to. It saves and restores `errno`, never allocates, never takes
//! a lock and never initialises anything lazily: it reads atomics in
//! `static`s that were set before [`install`] ran, walks the stack with
//! validated reads, and makes only async-signal-safe system calls (gettid,
//! clock_gettime, futex, write, tgkill, timer_settime, sigaction, _exit).
//!
//! The signal number is shared with the application (SIGALRM by default).
//! Ours are recognised by `si_code` and a tag in the signal value: timer
//! ticks (`SI_TIMER`, [`TIMER_TAG`]) and dump capture requests (`SI_QUEUE`
//! from our own pid, [`CAPTURE_TAG`]). Everything
//! else (the application's `alarm()`, `setitimer`, its own timers) goes to
//! the handler that was installed before us, exactly as it would have.

use crate::error::Error;
use crate::fatal::end;
use crate::os::signals;
use crate::os::sys::{self, syscall};
use crate::state::bells;
use crate::state::captures::{CAPTURE_ANSWERS, CAPTURES};
use crate::state::frames::{CAP_EMPTY, CAP_REQUESTED, CAP_WRITING};
use crate::state::latch::CULPRIT_FRAMES;
use crate::state::settings::LIVE;
use crate::state::sigval::{self, CAPTURE_TAG, TIMER_TAG};
use crate::state::slots::{self, Slot};
use crate::verdict::{Decision, Observation, VerdictKind, judge};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::*};

/// The handler that was installed before ours, set before ours is installed.
struct Previous(UnsafeCell<libc::sigaction>);
// SAFETY: written only by `install` before our handler is installed and by
// `restore` after it is removed (both under the watchdog's start/stop
// serialisation); the handler only reads it.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new(
    // SAFETY: sigaction is plain data; all-zero means SIG_DFL, no flags.
    unsafe { std::mem::zeroed() },
));
static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALLED_SIGNO: AtomicI32 = AtomicI32::new(0);

/// Installs [`on_signal`] for `signo`, remembering the previous handler.
pub(crate) fn install(signo: libc::c_int) -> Result<(), Error> {
    // SAFETY: sigaction is plain data.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_signal as *const () as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: query only; the out-pointer is valid.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    syscall!(sigaction(signo, std::ptr::null(), &mut old)).map_err(|e| Error::os("sigaction (query)", e))?;
    if old.sa_sigaction != on_signal as *const () as usize {
        // SAFETY: our handler is not installed (checked just above), so no
        // handler reads PREVIOUS while we write it.
        unsafe { *PREVIOUS.0.get() = old };
    }
    INSTALLED_SIGNO.store(signo, Relaxed);
    syscall!(sigaction(signo, &sa, std::ptr::null_mut())).map_err(|e| Error::os("sigaction (install)", e))?;
    INSTALLED.store(true, Release);
    Ok(())
}

/// Puts back the handler that was there before [`install`].
pub(crate) fn restore() {
    if INSTALLED.swap(false, AcqRel) {
        let signo = INSTALLED_SIGNO.load(Relaxed);
        // SAFETY: PREVIOUS holds the action saved by `install`.
        unsafe { libc::sigaction(signo, PREVIOUS.0.get(), std::ptr::null_mut()) };
    }
}

/// The signal handler. See the module doc for its contract.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let _errno = sys::ErrnoGuard::save();
    if info.is_null() {
        chain(sig, info, ctx);
        return;
    }
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // SAFETY: as above.
    let (tag, idx) = sigval::decode(unsafe { sys::siginfo_value(info) });
    if code == libc::SI_TIMER && tag == TIMER_TAG {
        on_tick(idx, ctx);
    } else if code == libc::SI_QUEUE
        && tag == CAPTURE_TAG
        // SAFETY: as above.
        && unsafe { sys::siginfo_pid(info) } == sys::getpid()
    {
        on_capture_request(idx, ctx);
    } else {
        chain(sig, info, ctx);
    }
}

/// One tick of a watched thread's timer, on that thread.
fn on_tick(idx: usize, ctx: *mut libc::c_void) {
    let Some(s) = slots::slot(idx) else { return };
    let tid = sys::gettid();
    if !LIVE.running() || !s.is_active_for(tid) || s.departed.load(Relaxed) != 0 {
        return; // a late tick of a slot that was just released or stopped
    }
    s.note_own_signal();
    let seen = Observation {
        touch_seq: s.touches(),
        tick_seq: s.tick_seq.load(Relaxed),
        scoped: s.scoped(),
        cpu: sys::thread_cpu_ns(),
    };
    let mut t = s.load_tracker();
    let warn_next = t.warn_next;
    let decision = judge(&mut t, seen, LIVE.budgets());
    if let Decision::Warn { cpu_since_touch } = decision
        && !capture_warning(s, ctx, cpu_since_touch)
    {
        // The reporter has not taken the previous warning yet: keep this
        // one due, so that the next tick raises it again.
        t.warn_next = warn_next;
    }
    s.store_tracker(&t);
    if let Decision::Stuck { cpu_since_progress } = decision {
        on_stuck(s, idx, tid, ctx, cpu_since_progress);
    }
}

/// Keeps the spinning thread's own backtrace for a warning (the reporter
/// prints it). Returns false when the previous warning is not reported
/// yet; the caller then retries at its next tick (the warning is delayed,
/// not lost).
fn capture_warning(s: &Slot, ctx: *mut libc::c_void, cpu_since_touch: u64) -> bool {
    if s.warning.state.compare_exchange(CAP_EMPTY, CAP_WRITING, Acquire, Relaxed).is_err() {
        return false;
    }
    s.warning.figure.store(cpu_since_touch, Relaxed);
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler, on
    // the slot's own thread.
    unsafe { s.warning.capture(ctx, s.stack_bounds()) };
    bells::REPORTER.ring();
    true
}

/// The stuck verdict, reached in the culprit's own timer handler: latch it,
/// capture the culprit's frames, wake the monitor, and in a fatal mode wait
/// for the dump and end the process from here (the culprit is the crashing
/// thread of a core file).
fn on_stuck(s: &Slot, idx: usize, tid: libc::pid_t, ctx: *mut libc::c_void, cpu_ns: u64) {
    if !end::latch(VerdictKind::Stuck, idx, tid, cpu_ns) {
        // The dump is written or being written. In a non-fatal mode, report
        // this later verdict in one line; in a fatal one the process ends.
        if !LIVE.fatal() {
            end::note_late_verdict(s, VerdictKind::Stuck, cpu_ns);
        }
        return;
    }
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler, on
    // the culprit itself; no reader looks at CULPRIT_FRAMES before the
    // monitor is woken below.
    unsafe { CULPRIT_FRAMES.capture(ctx, s.stack_bounds()) };
    bells::MONITOR.ring();
    if LIVE.fatal() {
        end::wait_for_dump();
        end::act(tid);
    }
}

/// Answers a dump's capture request in the receiving thread's own context:
/// walks its stack into capture entry `idx`.
fn on_capture_request(idx: usize, ctx: *mut libc::c_void) {
    let Some(c) = CAPTURES.get(idx) else { return };
    let tid = sys::gettid();
    if let Some(s) = slots::slot(c.slot.load(Acquire))
        && s.tid.load(Relaxed) == tid
    {
        s.note_own_signal(); // even for a stale request: it interrupted this thread
    }
    if c.tid.load(Acquire) != tid
        || c.frames.state.compare_exchange(CAP_REQUESTED, CAP_WRITING, AcqRel, Relaxed).is_err()
    {
        return; // stale: the dump gave up on this request
    }
    let bounds = crate::os::stackwalk::StackBounds::new(c.lo.load(Relaxed), c.hi.load(Relaxed));
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler, on
    // the thread the entry is for (checked above).
    unsafe { c.frames.capture(ctx, bounds) };
    CAPTURE_ANSWERS.fetch_add(1, Release);
    sys::futex_wake_all(&CAPTURE_ANSWERS);
}

/// Hands a signal that is not ours to the handler installed before us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS is stable while our handler is installed.
    let prev = unsafe { &*PREVIOUS.0.get() };
    let h = prev.sa_sigaction;
    if h == libc::SIG_IGN {
        return;
    }
    if h == libc::SIG_DFL {
        default_action(sig);
        return;
    }
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it
        // has this signature; we pass it what the kernel passed us.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = unsafe { std::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
        f(sig);
    }
}

/// What SIG_DFL would have done with a signal that is not ours: ignore the
/// signals whose default is to ignore, otherwise end the process by it.
fn default_action(sig: libc::c_int) {
    if matches!(sig, libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT) {
        return;
    }
    signals::reraise_with_default_action(sig);
}
