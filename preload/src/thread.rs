//! Per-thread registration: a thread is registered on its first wait that
//! may block (see [`with_handle`]), under
//! its `comm` name (`prctl(PR_GET_NAME)`: what `ps -L` and `top -H` show).
//!
//! The outcome is remembered in a thread-local: a registered thread keeps its
//! handle until it exits (the handle's destructor then frees the slot, and
//! failstop's monitor frees the slots of threads that vanished without
//! destructors). A thread that cannot be registered (no slot left,
//! `RLIMIT_SIGPENDING` used up, or a forked child, where no watchdog runs)
//! is not tried again: its waits pass straight through. The first such
//! failure in a process is reported in one line on stderr, unless it only
//! says that no watchdog runs (a forked child).

use failstop::{ErrorKind, ThreadHandle};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicU32, Ordering::*};

/// No wait that may block yet on this thread (in this process).
const UNTRIED: u8 = 0;
/// Registered: `handle` holds the handle.
const WATCHED: u8 = 1;
/// Registration failed once; the thread's waits pass through.
const UNWATCHED: u8 = 2;
/// The registration is being made or dropped: a wait that interrupts it (a
/// signal handler's, on this thread) passes through.
const BUSY: u8 = 3;

/// The calling thread's registration. Only this thread reads or writes it.
struct Registration {
    state: Cell<u8>,
    /// The process epoch ([`crate::init::epoch`]) `state` belongs to: a
    /// registration made before a fork belongs to the parent.
    epoch: Cell<u32>,
    /// The handle while `state` is `WATCHED`; written only while `BUSY`.
    handle: UnsafeCell<Option<ThreadHandle>>,
}

thread_local! {
    static REGISTRATION: Registration = const {
        Registration { state: Cell::new(UNTRIED), epoch: Cell::new(0), handle: UnsafeCell::new(None) }
    };
}

/// The epoch in which a registration failure was last said (once per process).
static FAILURE_SAID_IN: AtomicU32 = AtomicU32::new(u32::MAX);

/// Runs `f` with the calling thread's handle, registering the thread first
/// if this is its first wait that may block (`may_block`: a timeout other
/// than zero). A wait with a zero timeout only checks for readiness and
/// registers nothing: Rust's runtime `poll`s its standard descriptors with
/// timeout 0 before `main`, and a one-off readiness check does not make a
/// thread an event loop. `f` gets `None` when the thread is not
/// watched (or not yet registered), and also when the thread-local is not usable (the thread is
/// exiting, or this call interrupted a registration in progress on the
/// same thread, from a signal handler).
///
/// The path of a registered thread is one thread-local read and one
/// compare of its epoch with the process's; everything else is
/// [`slow_path`].
#[inline(always)]
pub(crate) fn with_handle<R>(may_block: bool, f: impl FnOnce(Option<&ThreadHandle>) -> R) -> R {
    let handle = REGISTRATION
        .try_with(|r| {
            if r.state.get() == WATCHED && r.epoch.get() == crate::init::epoch() {
                // SAFETY: WATCHED: `handle` is Some; only this thread writes
                // it, and only while BUSY.
                unsafe { (*r.handle.get()).as_ref().map(|h| h as *const ThreadHandle) }
            } else {
                slow_path(r, may_block)
            }
        })
        .ok()
        .flatten();
    // SAFETY: the handle is only replaced by this thread, in `slow_path`,
    // which cannot run during this call on this same thread except from a
    // signal handler, and then it finds the state WATCHED and changes
    // nothing (a handle of another epoch is only dropped on a later wait);
    // thread-locals are not destroyed during a call on their thread.
    f(handle.map(|h| unsafe { &*h }))
}

/// A thread that is not (yet) registered in this process: a registration
/// inherited from the parent is dropped, the watchdog is started in a
/// forked child that has none, and the thread is registered. `errno` is
/// kept as the caller had it.
#[cold]
#[inline(never)]
fn slow_path(r: &Registration, may_block: bool) -> Option<*const ThreadHandle> {
    // SAFETY: __errno_location always returns the calling thread's errno.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    let h = slow_path_inner(r, may_block);
    // SAFETY: as above.
    unsafe { *errno = saved };
    h
}

fn slow_path_inner(r: &Registration, may_block: bool) -> Option<*const ThreadHandle> {
    let e = crate::init::epoch();
    let st = r.state.get();
    if st == BUSY {
        return None;
    }
    if r.epoch.get() != e {
        // Made in the parent, before a fork: its slot belongs to a watchdog
        // that does not run here. Dropping the handle frees the slot and
        // gives the thread its alternate stack back.
        r.state.set(BUSY);
        // SAFETY: BUSY: nothing else reads or writes `handle` now.
        let old = unsafe { (*r.handle.get()).take() };
        drop(old);
        r.epoch.set(e);
        r.state.set(UNTRIED);
    } else if st != UNTRIED {
        return None; // UNWATCHED (or WATCHED: not reached)
    }
    if !may_block || !crate::init::ensure_running(e) {
        return None;
    }
    r.state.set(BUSY);
    let reg = register(e);
    let watched = reg.is_some();
    // SAFETY: BUSY, as above.
    unsafe { *r.handle.get() = reg };
    r.state.set(if watched { WATCHED } else { UNWATCHED });
    // SAFETY: as above; a `Some` just stored.
    unsafe { (*r.handle.get()).as_ref().map(|h| h as *const ThreadHandle) }
}

/// Says a registration failure once per process.
fn say_once(e: u32, msg: &str) {
    if FAILURE_SAID_IN.swap(e, Relaxed) != e {
        crate::init::say(msg);
    }
}

fn register(e: u32) -> Option<ThreadHandle> {
    let name = comm();
    if let Some(signo) = crate::init::signal_taken_over() {
        say_once(
            e,
            &format!(
                "thread \"{name}\" is not watched: the program replaced failstop's handler of signal {signo} \
                 (the watchdog signal); set FAILSTOP_SIGNAL to a signal it does not use \
                 (this is said once per process)"
            ),
        );
        return None;
    }
    match failstop::register(&name) {
        Ok(h) => Some(h),
        Err(err) => {
            if err.kind() != ErrorKind::NotRunning {
                say_once(
                    e,
                    &format!(
                        "thread \"{name}\" (tid {}) is not watched: {err} (this is said once per process)",
                        // SAFETY: gettid has no preconditions.
                        unsafe { libc::gettid() }
                    ),
                );
            }
            None
        }
    }
}

/// The calling thread's `comm` (at most 15 bytes).
fn comm() -> String {
    let mut buf = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into `buf`.
    let r = unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr() as libc::c_ulong, 0, 0, 0) };
    if r != 0 {
        return "thread".into();
    }
    let n = buf.iter().position(|&c| c == 0).unwrap_or(16);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
