//! The fuse: the last deadline of a fatal verdict, after which the process
//! ends whatever any of its threads does.
//!
//! Created at start (a PID 1's thread: when the first thread is watched)
//! and armed only by a fatal verdict. Normally a kernel timer
//! (`CLOCK_MONOTONIC`) that sends `SIGKILL`: nothing in the process can
//! block, catch or delay it. As PID 1 of a PID namespace the kernel ignores
//! every signal whose action is the default, `SIGKILL` included, so there
//! the fuse is a thread of its own (`failstop-fuse`, every signal blocked,
//! asleep on a futex with the deadline as timeout) that writes one line and
//! calls `_exit` with the action's status (134, i.e. 128+`SIGABRT`, for
//! `abort`; N for `exit:N`). Arming and disarming it ([`set`]) is
//! async-signal-safe either way (`timer_settime`, or atomics and a futex
//! wake).

use crate::config::Action;
use crate::error::Error;
use crate::os::fmt::FixedBuf;
use crate::os::signals;
use crate::os::sys::{self, syscall};
use crate::state::enum_cell::state_enum;
use crate::state::latch::LATCH;
use crate::state::settings::LIVE;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

/// The exit status of an abort where the process cannot die by `SIGABRT`
/// (PID 1): what a shell or a container runtime reports for `SIGABRT`.
pub(crate) const ABORT_STATUS: libc::c_int = 128 + libc::SIGABRT;

state_enum! {
    /// What the fuse is in this process.
    enum Kind in KindCell {
        /// None (not made yet, released, or a PID 1's thread not started).
        None = 0,
        /// A kernel timer that sends `SIGKILL`.
        Timer = 1,
        /// The fuse thread (PID 1).
        Thread = 2,
    }
}

/// The fuse's state: one value per process, written at start and stop and
/// read (and armed) in signal context. Atomics only.
struct Fuse {
    kind: KindCell,
    /// The timer fuse's `timer_t`.
    timer: AtomicUsize,
    /// The thread fuse's deadline, `CLOCK_MONOTONIC` ns (0: disarmed).
    at: AtomicU64,
    /// Bumped at every change of the thread fuse: the futex word it sleeps on.
    seq: AtomicU32,
    /// The generation of the fuse thread that serves; [`release`] moves it
    /// on, which tells the thread to end.
    generation: AtomicU32,
    /// The fuse thread's id.
    tid: AtomicI32,
    /// The process the fuse was made in: a forked child inherits these
    /// statics but neither the timer nor the thread, so it makes its own.
    pid: AtomicI32,
    /// This process is PID 1 of its PID namespace (read at start).
    pid1: AtomicBool,
}

static FUSE: Fuse = Fuse {
    kind: KindCell::new(Kind::None),
    timer: AtomicUsize::new(0),
    at: AtomicU64::new(0),
    seq: AtomicU32::new(0),
    generation: AtomicU32::new(0),
    tid: AtomicI32::new(0),
    pid: AtomicI32::new(0),
    pid1: AtomicBool::new(false),
};

impl Fuse {
    fn kind(&self) -> Kind {
        self.kind.get()
    }

    fn set_kind(&self, k: Kind) {
        self.kind.set(k);
    }

    /// Wakes the fuse thread to look at its deadline (or generation) again.
    fn wake(&self) {
        self.seq.fetch_add(1, Release);
        sys::futex_wake_all(&self.seq);
    }
}

/// Creates the fuse (disarmed): a `SIGKILL` timer. As PID 1 the fuse is a
/// thread, started by [`start_thread`] once a thread is watched: only a
/// watched thread can bring a verdict that arms it. Normal context, at
/// start.
pub(crate) fn prepare() -> Result<(), Error> {
    let pid = sys::getpid();
    if FUSE.kind() != Kind::None && FUSE.pid.load(Relaxed) == pid {
        return Ok(());
    }
    FUSE.set_kind(Kind::None);
    FUSE.pid.store(pid, Relaxed);
    let pid1 = pid == 1;
    FUSE.pid1.store(pid1, Relaxed);
    if pid1 {
        return Ok(());
    }
    // SAFETY: sigevent is plain data.
    let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
    sev.sigev_notify = libc::SIGEV_SIGNAL;
    sev.sigev_signo = libc::SIGKILL;
    let mut t: libc::timer_t = std::ptr::null_mut();
    syscall!(timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut t)).map_err(|e| {
        crate::watch::cpu_timer::timer_create_error(
            "timer_create (fuse)",
            "the watchdog needs one POSIX timer for its fuse, and one per watched thread",
            e,
        )
    })?;
    FUSE.timer.store(t as usize, Relaxed);
    FUSE.set_kind(Kind::Timer);
    Ok(())
}

/// Whether this process is PID 1 of its PID namespace (as [`prepare`]
/// found). Async-signal-safe.
pub(crate) fn is_pid1() -> bool {
    FUSE.pid1.load(Relaxed)
}

/// As PID 1 (see [`prepare`], which must have run in this process):
/// starts the fuse thread unless it runs. Otherwise does nothing. Normal
/// context, when the first thread is watched.
pub(crate) fn start_thread() -> Result<(), Error> {
    if !is_pid1() || FUSE.pid.load(Relaxed) != sys::getpid() || FUSE.kind() != Kind::None {
        return Ok(());
    }
    let generation = FUSE.generation.load(Acquire);
    FUSE.at.store(0, Relaxed);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("failstop-fuse".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            signals::block_all_in_this_thread();
            FUSE.tid.store(sys::gettid(), Release);
            let _ = tx.send(());
            fuse_thread(generation);
        })
        .map_err(|e| Error::os("spawning the fuse thread", e))?;
    let _ = rx.recv();
    FUSE.set_kind(Kind::Thread);
    Ok(())
}

/// The fuse thread: sleeps until the deadline (or a change), then ends the
/// process; returns when its generation is over. Allocation-free.
fn fuse_thread(generation: u32) {
    loop {
        let seq = FUSE.seq.load(Acquire);
        if FUSE.generation.load(Acquire) != generation {
            return;
        }
        let at = FUSE.at.load(Acquire);
        let now = sys::monotonic_ns();
        if at != 0 && now >= at {
            blow();
        }
        let timeout = (at != 0).then(|| Duration::from_nanos(at - now));
        sys::futex_wait(&FUSE.seq, seq, timeout);
    }
}

/// The thread fuse's end: one line, then `_exit` with the action's status.
fn blow() -> ! {
    let status = end_status();
    let mut b = FixedBuf::<256>::new();
    b.push_str(
        "failstop: the fuse blew: the process was still alive at its last deadline; as PID 1 it ends with _exit(",
    );
    b.push_i64(status.into());
    b.push_str(")\n");
    if sys::stderr_usable() {
        let _ = sys::write_all(2, b.as_bytes());
    }
    // SAFETY: _exit is async-signal-safe and ends the process.
    unsafe { libc::_exit(status) }
}

/// The status a process that cannot die by a signal (PID 1) ends with:
/// the action's `exit:N`, else 134 (128+`SIGABRT`). Async-signal-safe.
pub(crate) fn end_status() -> libc::c_int {
    match LIVE.action() {
        Action::Exit(status) => status,
        _ => ABORT_STATUS,
    }
}

/// The thread id of the fuse thread (0: there is none). For the dump.
pub(crate) fn tid() -> libc::pid_t {
    if FUSE.kind() == Kind::Thread { FUSE.tid.load(Acquire) } else { 0 }
}

/// Deletes the fuse unless a fatal verdict armed it. Normal context, at stop.
pub(crate) fn release() {
    if LATCH.load(Acquire) != 0 {
        return;
    }
    match FUSE.kind.swap(Kind::None) {
        // SAFETY: created by `prepare`, deleted once thanks to the swap.
        Kind::Timer => unsafe {
            libc::timer_delete(FUSE.timer.load(Relaxed) as libc::timer_t);
        },
        Kind::Thread => {
            FUSE.generation.fetch_add(1, Release);
            FUSE.wake();
        }
        Kind::None => {}
    }
}

/// Arms the fuse for `after` from now, or with zero disarms it.
/// Async-signal-safe.
pub(crate) fn set(after: Duration) {
    match FUSE.kind() {
        Kind::Timer => {
            let spec = libc::itimerspec { it_interval: sys::timespec(Duration::ZERO), it_value: sys::timespec(after) };
            // SAFETY: a live timer and a valid spec.
            unsafe { libc::timer_settime(FUSE.timer.load(Relaxed) as libc::timer_t, 0, &spec, std::ptr::null_mut()) };
        }
        Kind::Thread => {
            let at =
                if after.is_zero() { 0 } else { sys::monotonic_ns().saturating_add(after.as_nanos() as u64).max(1) };
            FUSE.at.store(at, Release);
            FUSE.wake();
        }
        Kind::None => {}
    }
}
