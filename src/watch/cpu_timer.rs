//! Per-thread CPU-time timers.
//!
//! Each watched thread gets a POSIX timer on its own CPU clock
//! (`pthread_getcpuclockid`) that delivers the watchdog signal to that very
//! thread (`SIGEV_THREAD_ID`) every `period` of the thread's CPU time. A
//! thread that sleeps, is preempted, stopped or inside a paused VM uses no
//! CPU, so its timer does not advance and nothing is judged. Where a CPU
//! clock cannot arm a timer, the timer runs on `CLOCK_MONOTONIC` instead and
//! the handler still decides on CPU-time deltas.
//!
//! The signal value carries [`TIMER_TAG`] and the slot index, which is how
//! the handler recognises its own ticks among the application's signals.

use crate::error::{Error, ErrorKind};
use crate::os::sys::{self, syscall};
use crate::state::settings::Registration;
use crate::state::sigval::{self, TIMER_TAG};
use crate::state::slots;
use crate::state::slots::Slot;
use crate::verdict::Tracker;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering::*};

static WALL_FALLBACK_SAID: Once = Once::new();

/// Set while the ticks are off: the application replaced failstop's
/// handler of the watchdog signal, so that a tick would reach its handler
/// or its default action (see `fatal::monitor`). Timers of threads that
/// register meanwhile are created unarmed.
pub(crate) static TICKS_OFF: AtomicBool = AtomicBool::new(false);

/// Held by [`set_ticks`] while it re-arms or disarms timers: [`detach`]
/// waits for it, so that a timer is never armed after its deletion (its id
/// may already name a new timer of the application's).
static SETTING: AtomicBool = AtomicBool::new(false);

/// Arms (`on`) or disarms every watched thread's timer, and records it in
/// [`TICKS_OFF`]. The monitor's thread; allocation-free.
pub(crate) fn set_ticks(on: bool, period_ns: u64) {
    TICKS_OFF.store(!on, Release);
    while SETTING.compare_exchange(false, true, SeqCst, Relaxed).is_err() {
        std::hint::spin_loop();
    }
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let period = if on { sys::timespec(std::time::Duration::from_nanos(period_ns)) } else { zero };
    let spec = libc::itimerspec { it_interval: period, it_value: period };
    for (_, s) in slots::iter() {
        if s.has_timer.load(SeqCst) {
            let t = s.timer.load(Relaxed) as libc::timer_t;
            // SAFETY: `t` is a live timer of ours: `detach` cannot delete it
            // while SETTING is held.
            unsafe { libc::timer_settime(t, 0, &spec, std::ptr::null_mut()) };
        }
    }
    SETTING.store(false, Release);
}

/// Arms the calling thread's timer for slot `idx`.
/// Normal context, on the thread being registered.
pub(crate) fn attach(s: &Slot, idx: usize, run: &Registration) -> Result<(), Error> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: pthread_self is always valid; `clock` is a valid out-pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    if rc != 0 {
        return Err(Error::os("pthread_getcpuclockid", std::io::Error::from_raw_os_error(rc)));
    }
    s.cpu_clock.store(clock, Relaxed);
    s.store_tracker(&Tracker::new(sys::thread_cpu_ns(), run.budgets));
    let mut wall = run.wall_clock_timers;
    let timer = match create_timer(if wall { libc::CLOCK_MONOTONIC } else { clock }, idx, run) {
        Ok(t) => t,
        Err(e) if !wall && e.kind() != ErrorKind::ResourceLimit => {
            let t = create_timer(libc::CLOCK_MONOTONIC, idx, run)?;
            wall = true;
            WALL_FALLBACK_SAID.call_once(|| {
                tracing::warn!(
                    error = %e,
                    "failstop: CPU-time clocks cannot arm timers here; using wall-clock timers that still judge CPU time"
                );
            });
            t
        }
        Err(e) => return Err(e),
    };
    s.timer.store(timer as usize, Relaxed);
    s.has_timer.store(true, Release);
    let period = if TICKS_OFF.load(Acquire) {
        libc::timespec { tv_sec: 0, tv_nsec: 0 }
    } else {
        sys::timespec(std::time::Duration::from_nanos(run.budgets.period))
    };
    // On a CPU clock, the first tick comes at once (at the kernel's next
    // scheduler tick while this thread runs), not a period from now: a
    // thread that touches right after registering and then spins has its
    // progress seen within a jiffy, not a period and a jiffy, and its
    // verdict comes that much closer to the budget. (A wall-clock tick
    // would come while the thread sleeps, for nothing.)
    let first = if TICKS_OFF.load(Acquire) || wall { period } else { libc::timespec { tv_sec: 0, tv_nsec: 1 } };
    let spec = libc::itimerspec { it_interval: period, it_value: first };
    if let Err(e) = syscall!(timer_settime(timer, 0, &spec, std::ptr::null_mut())) {
        detach(s);
        return Err(Error::os("timer_settime", e));
    }
    Ok(())
}

fn create_timer(clock: libc::clockid_t, idx: usize, run: &Registration) -> Result<libc::timer_t, Error> {
    // SAFETY: sigevent is plain data; zero is a valid starting value.
    let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
    sev.sigev_notify = libc::SIGEV_THREAD_ID;
    sev.sigev_signo = run.signo;
    sev.sigev_value = libc::sigval { sival_ptr: sigval::encode(TIMER_TAG, idx) as *mut libc::c_void };
    sev.sigev_notify_thread_id = sys::gettid();
    let mut timer: libc::timer_t = std::ptr::null_mut();
    syscall!(timer_create(clock, &mut sev, &mut timer))
        .map(|_| timer)
        .map_err(|e| timer_create_error("timer_create", "each watched thread needs one POSIX timer", e))
}

/// The error of a failed `timer_create` (`what`): for `EAGAIN`, the limit
/// on queued signals, by name, with `need` (who needs a timer) and how to
/// raise it; otherwise the OS error.
pub(crate) fn timer_create_error(what: &str, need: &str, e: std::io::Error) -> Error {
    if e.raw_os_error() != Some(libc::EAGAIN) {
        return Error::os(what, e);
    }
    Error::with_source(
        ErrorKind::ResourceLimit,
        format!(
            "{what}: the limit on queued signals (RLIMIT_SIGPENDING = {}) is used up; {need}; raise it with \
             `ulimit -i`, `LimitSIGPENDING=` in a systemd unit, or setrlimit",
            sigpending_limit()
        ),
        e,
    )
}

fn sigpending_limit() -> String {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut r) } == 0 {
        format!("{}", r.rlim_cur)
    } else {
        "unknown".into()
    }
}

/// Deletes the slot's timer if it still has one. Any thread; async-signal-safe.
pub(crate) fn detach(s: &Slot) {
    if s.has_timer.swap(false, SeqCst) {
        // `set_ticks` may be about to use this timer: wait until it is done
        // (a loop of timer_settime calls, microseconds).
        while SETTING.load(SeqCst) {
            std::hint::spin_loop();
        }
        let t = s.timer.load(Relaxed) as libc::timer_t;
        // SAFETY: `t` was returned by timer_create and, thanks to the swap
        // above, is deleted exactly once.
        unsafe { libc::timer_delete(t) };
    }
}
