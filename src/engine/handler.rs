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
//! The signal is failstop's own by default (`SIGRTMAX-3`); it is shared
//! with the application only when it chose `SIGALRM` or another signal it
//! also uses. Ours are recognised by `si_code` and a tag in the signal
//! value: timer ticks (`SI_TIMER`, [`TIMER_TAG`]) and dump capture requests
//! (`SI_QUEUE` from our own pid, [`CAPTURE_TAG`]). Everything else (the
//! application's `alarm()`, `setitimer`, its own timers) goes to the handler
//! that was installed before us ([`chain`]), as the kernel would have run
//! it: with its `sa_mask`, `SA_NODEFER` and `SA_RESETHAND`, and with our
//! `SA_RESTART` only if it had it.
//!
//! Two deliveries carry no usable siginfo, and neither is ever taken for a
//! stray signal to end the process by: a classic signal queued while the
//! per-user queue of pending signals (`RLIMIT_SIGPENDING`) is used up
//! arrives as `SI_USER` from pid 0 (a capture request, when one is
//! outstanding for this thread, is answered as such), and a handler put
//! back without `SA_SIGINFO` (`old = signal(sig, h); signal(sig, old)`) gets
//! no siginfo at all: the handler puts its own flags back and takes the
//! signal as one of its own.

use crate::error::Error;
use crate::fatal::end;
use crate::os::signals;
use crate::os::sys::{self, syscall};
use crate::state::bells;
use crate::state::captures::{CAPTURE_ANSWERS, CAPTURES};
use crate::state::frames::CapState;
use crate::state::latch::CULPRIT_FRAMES;
use crate::state::settings::LIVE;
use crate::state::sigval::{self, CAPTURE_TAG, TIMER_TAG};
use crate::state::slots::{self, Slot};
use crate::state::warnings;
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
/// The previous handler had `SA_RESETHAND` and was run once through
/// [`chain`]: it is `SIG_DFL` now, as the kernel would have made it.
static PREVIOUS_RESET: AtomicBool = AtomicBool::new(false);

/// The address of [`on_signal`].
fn our_address() -> usize {
    on_signal as *const () as usize
}

/// Installs [`on_signal`] for `signo`, remembering the previous handler.
///
/// The flags are `SA_SIGINFO` and `SA_RESTART`; not `SA_ONSTACK`: the
/// handler runs on the interrupted thread's own stack (a tick only comes
/// while the thread runs, on a stack in use), so that an alternate signal
/// stack the application gives a thread, however small, is never ours to
/// overflow. When the previous disposition is a handler of the
/// application's without `SA_RESTART` (the signal is shared), ours goes
/// without it too, so that its signals still interrupt system calls.
pub(crate) fn install(signo: libc::c_int) -> Result<(), Error> {
    // SAFETY: query only; the out-pointer is valid.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    syscall!(sigaction(signo, std::ptr::null(), &mut old)).map_err(|e| Error::os("sigaction (query)", e))?;
    if old.sa_sigaction != our_address() {
        // SAFETY: our handler is not installed (checked just above), so no
        // handler reads PREVIOUS while we write it.
        unsafe { *PREVIOUS.0.get() = old };
        PREVIOUS_RESET.store(false, Relaxed);
    }
    // SAFETY: PREVIOUS is not written concurrently (see `Previous`).
    let prev = unsafe { &*PREVIOUS.0.get() };
    let app_handler = prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN;
    let restart = if app_handler { prev.sa_flags & libc::SA_RESTART } else { libc::SA_RESTART };
    let flags = libc::SA_SIGINFO | restart;
    sigval::OUR_FLAGS.store(flags, Relaxed);
    INSTALLED_SIGNO.store(signo, Relaxed);
    signals::set_handler(signo, our_address(), flags).map_err(|e| Error::os("sigaction (install)", e))?;
    sigval::OUR_HANDLER.store(our_address(), Release);
    INSTALLED.store(true, Release);
    Ok(())
}

/// Puts back the handler that was there before [`install`] (`SIG_DFL` if it
/// had `SA_RESETHAND` and ran since).
pub(crate) fn restore() {
    if INSTALLED.swap(false, AcqRel) {
        sigval::OUR_HANDLER.store(0, Release);
        let signo = INSTALLED_SIGNO.load(Relaxed);
        if PREVIOUS_RESET.swap(false, Relaxed) {
            signals::set_default(signo);
            return;
        }
        // SAFETY: PREVIOUS holds the action saved by `install`.
        unsafe { libc::sigaction(signo, PREVIOUS.0.get(), std::ptr::null_mut()) };
    }
}

/// The signal handler. See the module doc for its contract.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let _errno = sys::ErrnoGuard::save();
    let (code, tag, idx, pid) = if info.is_null() {
        (0, 0, 0, 0)
    } else {
        // SAFETY: the kernel passes a siginfo to an SA_SIGINFO handler
        // (without SA_SIGINFO it is stale memory, only compared here).
        let (code, value, pid) = unsafe { ((*info).si_code, sys::siginfo_value(info), sys::siginfo_pid(info)) };
        let (tag, idx) = sigval::decode(value);
        (code, tag, idx, pid)
    };
    if code == libc::SI_TIMER && tag == TIMER_TAG {
        on_tick(idx, ctx);
        return;
    }
    if code == libc::SI_QUEUE && tag == CAPTURE_TAG && pid == sys::getpid() {
        on_capture_request(idx, ctx);
        return;
    }
    // Not recognisably ours. Was there a siginfo at all?
    let siginfo = signals::disposition(sig).is_none_or(|cur| cur.sa_flags & libc::SA_SIGINFO != 0);
    if !siginfo {
        // Our handler put back without SA_SIGINFO: give it its flags back.
        let _ = signals::set_handler(sig, our_address(), sigval::OUR_FLAGS.load(Relaxed));
    }
    // A siginfo lost to a full queue reads SI_USER from pid 0.
    let lost = info.is_null() || !siginfo || code == libc::SI_USER && pid == 0;
    if lost {
        if let Some(i) = outstanding_capture(sys::gettid()) {
            on_capture_request(i, ctx);
            return;
        }
        if !siginfo {
            // A tick or the application's own: no telling. Taken as ours
            // (the application loses one of its signals) rather than chained
            // to a default action that would end the process.
            return;
        }
    }
    chain(sig, info, ctx);
}

/// The capture entry a dump asked this thread for and that is not answered
/// yet, if any. Async-signal-safe (a scan of the static table).
fn outstanding_capture(tid: libc::pid_t) -> Option<usize> {
    CAPTURES.iter().position(|c| c.tid.load(Acquire) == tid && c.frames.state.get() == CapState::Requested)
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
        && !capture_warning(s, idx, ctx, cpu_since_touch)
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
fn capture_warning(s: &Slot, idx: usize, ctx: *mut libc::c_void, cpu_since_touch: u64) -> bool {
    let Some(w) = warnings::take(idx, s.generation.load(Relaxed)) else {
        return false;
    };
    w.frames.figure.store(cpu_since_touch, Relaxed);
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler, on
    // the slot's own thread.
    unsafe { w.frames.capture(ctx, s.stack_bounds()) };
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
    if c.tid.load(Acquire) != tid || !c.frames.state.change(CapState::Requested, CapState::Writing) {
        return; // stale: the dump gave up on this request
    }
    let bounds = crate::os::stackwalk::StackBounds::new(c.lo.load(Relaxed), c.hi.load(Relaxed));
    // SAFETY: `ctx` is the ucontext the kernel passed to this handler, on
    // the thread the entry is for (checked above).
    unsafe { c.frames.capture(ctx, bounds) };
    CAPTURE_ANSWERS.fetch_add(1, Release);
    sys::futex_wake_all(&CAPTURE_ANSWERS);
}

/// Hands a signal that is not ours to the handler installed before us, the
/// way the kernel would have run it: `SA_RESETHAND` makes it `SIG_DFL` for
/// the next signal, its `sa_mask` is blocked while it runs, and the signal
/// itself too unless `SA_NODEFER`.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS is stable while our handler is installed.
    let prev = unsafe { &*PREVIOUS.0.get() };
    let h = if PREVIOUS_RESET.load(Relaxed) { libc::SIG_DFL } else { prev.sa_sigaction };
    if h == libc::SIG_IGN {
        return;
    }
    if h == libc::SIG_DFL {
        default_action(sig);
        return;
    }
    if prev.sa_flags & libc::SA_RESETHAND != 0 {
        PREVIOUS_RESET.store(true, Relaxed);
    }
    // Our handler runs with `sig` blocked (no SA_NODEFER) and nothing else.
    // SAFETY: sigset_t is plain data; pthread_sigmask on the calling thread
    // with valid pointers is async-signal-safe.
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `prev.sa_mask` is a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &prev.sa_mask, &mut before) };
    if prev.sa_flags & libc::SA_NODEFER != 0 {
        signals::unblock(sig);
    }
    call_previous(prev, h, sig, info, ctx);
    // SAFETY: putting back the mask read above, on the same thread.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
}

/// Calls the previous handler `h` with the arguments its flags promise.
fn call_previous(
    prev: &libc::sigaction,
    h: libc::sighandler_t,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
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
