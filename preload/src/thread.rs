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
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering::*};

enum Registration {
    /// No wait yet on this thread.
    Untried,
    Watched(ThreadHandle),
    /// Registration failed once; the thread's waits pass through.
    Unwatched,
}

thread_local! {
    static REGISTRATION: RefCell<Registration> = const { RefCell::new(Registration::Untried) };
}

/// Whether a registration failure was already reported in this process.
static FAILURE_SAID: AtomicBool = AtomicBool::new(false);

/// Runs `f` with the calling thread's handle, registering the thread first
/// if this is its first wait that may block (`may_block`: a timeout other
/// than zero). A wait with a zero timeout only checks for readiness and
/// registers nothing: Rust's runtime `poll`s its standard descriptors with
/// timeout 0 before `main`, and a one-off readiness check does not make a
/// thread an event loop. `f` gets `None` when the thread is not
/// watched (or not yet registered), and also when the thread-local is not usable (the thread is
/// exiting, or this call interrupted a registration in progress on the
/// same thread, from a signal handler).
pub(crate) fn with_handle<R>(may_block: bool, f: impl FnOnce(Option<&ThreadHandle>) -> R) -> R {
    let handle = REGISTRATION
        .try_with(|cell| {
            if may_block
                && matches!(cell.try_borrow().as_deref(), Ok(Registration::Untried))
                && let Ok(mut reg) = cell.try_borrow_mut()
            {
                *reg = register();
            }
            match cell.try_borrow().as_deref() {
                Ok(Registration::Watched(h)) => Some(h as *const ThreadHandle),
                _ => None,
            }
        })
        .ok()
        .flatten();
    // SAFETY: a `Watched` registration is never replaced (only `Untried` is),
    // so the handle stays where it is until this thread's thread-locals are
    // destroyed, which cannot happen during this call on this same thread.
    f(handle.map(|h| unsafe { &*h }))
}

fn register() -> Registration {
    let name = comm();
    if let Some(signo) = crate::init::signal_taken_over() {
        if !FAILURE_SAID.swap(true, Relaxed) {
            crate::init::say(&format!(
                "thread \"{name}\" is not watched: the program replaced failstop's handler of signal {signo} \
                 (the watchdog signal); set FAILSTOP_SIGNAL to a signal it does not use \
                 (this is said once per process)"
            ));
        }
        return Registration::Unwatched;
    }
    match failstop::register(&name) {
        Ok(h) => Registration::Watched(h),
        Err(e) => {
            if e.kind() != ErrorKind::NotRunning && !FAILURE_SAID.swap(true, Relaxed) {
                crate::init::say(&format!(
                    "thread \"{name}\" (tid {}) is not watched: {e} (this is said once per process)",
                    // SAFETY: gettid has no preconditions.
                    unsafe { libc::gettid() }
                ));
            }
            Registration::Unwatched
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
