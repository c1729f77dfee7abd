//! The watchdog signal handler: installation, dispatch, chaining.
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
//! from our own pid, [`CAPTURE_TAG`](crate::dump::CAPTURE_TAG)). Everything
//! else (the application's `alarm()`, `setitimer`, its own timers) goes to
//! the handler that was installed before us, exactly as it would have.

use crate::cpu_timer::{TIMER_TAG, split_sigval};
use crate::error::Error;
use crate::sys;
use crate::verdict::{Budgets, Decision, Observation, judge};
use crate::watchdog::RT;
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
    let (tag, idx) = split_sigval(unsafe { sys::siginfo_value(info) });
    if code == libc::SI_TIMER && tag == TIMER_TAG {
        on_tick(idx, ctx);
    } else if code == libc::SI_QUEUE
        && tag == crate::dump::CAPTURE_TAG
        // SAFETY: as above.
        && unsafe { sys::siginfo_pid(info) } == sys::getpid()
    {
        crate::dump::on_capture_request(idx, ctx);
    } else {
        chain(sig, info, ctx);
    }
}

/// One tick of a watched thread's timer, on that thread.
fn on_tick(idx: usize, ctx: *mut libc::c_void) {
    let Some(s) = crate::registry::slot(idx) else { return };
    let tid = sys::gettid();
    if !RT.running() || !s.is_active_for(tid) {
        return; // a late tick of a slot that was just released or stopped
    }
    s.note_own_signal();
    let budgets = Budgets {
        cpu_budget: RT.cpu_budget_ns.load(Relaxed),
        warn_after: RT.warn_after_ns.load(Relaxed),
        period: RT.period_ns.load(Relaxed),
    };
    let seen = Observation {
        touch_seq: s.touches(),
        tick_seq: s.tick_seq.load(Relaxed),
        scoped: s.scoped(),
        cpu: sys::thread_cpu_ns(),
    };
    let mut t = s.load_tracker();
    let warn_next = t.warn_next;
    let decision = judge(&mut t, seen, budgets);
    if let Decision::Warn { cpu_since_touch } = decision
        && !crate::reporter::capture_warning(s, ctx, cpu_since_touch)
    {
        // The reporter has not taken the previous warning yet: keep this
        // one due, so that the next tick raises it again.
        t.warn_next = warn_next;
    }
    s.store_tracker(&t);
    if let Decision::Stuck { cpu_since_progress } = decision {
        crate::action::on_stuck(s, idx, tid, ctx, cpu_since_progress);
    }
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
    // SAFETY: sigaction is plain data; resetting to SIG_DFL and re-raising
    // reproduces the default disposition exactly (async-signal-safe calls).
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    let _ = sys::tgkill(sys::gettid(), sig);
}

/// Blocks every asynchronous signal in the calling thread (failstop's own
/// threads: the application's signals are never delivered to them, and a
/// write to a broken pipe returns EPIPE instead of raising SIGPIPE).
pub(crate) fn block_all_in_this_thread() {
    // SAFETY: building and applying a signal set for the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
