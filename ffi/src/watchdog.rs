//! Starting and stopping the watchdog from C, the pre-abort hook, and the
//! heartbeat gate.

use crate::error::{
    FAILSTOP_E_ALREADY_RUNNING, FAILSTOP_E_NOT_RUNNING, FAILSTOP_E_REENTERED, FAILSTOP_OK, fail, guarded,
    set_last_error,
};
use failstop::{Config, ErrorKind, Watchdog, ffi_support};
use libc::c_int;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::*};

/// The watchdog started through the C ABI.
static WATCHDOG: Mutex<Option<Watchdog>> = Mutex::new(None);

thread_local! {
    /// Set while this thread is inside start, stop or set_pre_abort_hook
    /// (it holds, or is about to take, [`WATCHDOG`]'s lock). A const
    /// initialiser without destructor: reading it from a signal handler
    /// allocates nothing and takes no lock.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with [`BUSY`] set; a call from a signal handler that
/// interrupted one of these calls on the same thread returns
/// `FAILSTOP_E_REENTERED` at once, without a message (setting one
/// allocates, and the interrupted call may hold the allocator's lock).
pub(crate) fn exclusive(f: impl FnOnce() -> c_int) -> c_int {
    if BUSY.get() {
        return FAILSTOP_E_REENTERED;
    }
    BUSY.set(true);
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            BUSY.set(false);
        }
    }
    let _clear = Clear;
    f()
}

/// The C pre-abort hook, an `extern "C" fn()` as usize (0 = none).
static C_HOOK: AtomicUsize = AtomicUsize::new(0);

/// The Rust `fn()` given to `Config::pre_abort_hook`: calls the C hook.
fn hook_trampoline() {
    let p = C_HOOK.load(Acquire);
    if p != 0 {
        // SAFETY: `p` was stored from a non-null `extern "C" fn()` by
        // `failstop_set_pre_abort_hook`; function pointers and usize have the
        // same size on the supported platforms.
        let f: extern "C" fn() = unsafe { std::mem::transmute::<usize, extern "C" fn()>(p) };
        f();
    }
}

/// Starts the watchdog with `config`, with the C hook if one is set.
/// Inside [`exclusive`] only.
pub(crate) fn start_config(mut config: Config) -> c_int {
    if C_HOOK.load(Acquire) != 0 {
        // SAFETY: the trampoline only loads an atomic and calls the C hook,
        // whose contract (async-signal-safe, quick) failstop.h states for
        // failstop_set_pre_abort_hook.
        config = unsafe { config.pre_abort_hook(hook_trampoline) };
    }
    let mut slot = WATCHDOG.lock().unwrap_or_else(|p| p.into_inner());
    if slot.is_some() {
        return fail(&ffi_support::error(
            ErrorKind::AlreadyRunning,
            "start: a watchdog is already running in this process",
        ));
    }
    match failstop::start(config) {
        Ok(w) => {
            *slot = Some(w);
            FAILSTOP_OK
        }
        Err(e) => fail(&e),
    }
}

/// Starts the watchdog from the defaults and the `FAILSTOP_*` environment
/// variables.
///
/// Returns `FAILSTOP_OK`, or a negative `FAILSTOP_E_*` code with a message
/// for `failstop_last_error`: `FAILSTOP_E_ALREADY_RUNNING` if a watchdog
/// runs, `FAILSTOP_E_INVALID_CONFIG` for a bad variable.
///
/// Not async-signal-safe (it allocates, spawns threads, takes a lock):
/// never call it from a signal handler. One that interrupted `failstop_start`,
/// `failstop_start_with` or `failstop_stop` on the same thread gets
/// `FAILSTOP_E_REENTERED` instead of a deadlock.
#[unsafe(no_mangle)]
pub extern "C" fn failstop_start() -> c_int {
    guarded("failstop_start", || {
        exclusive(|| match Config::new().with_env() {
            Ok(config) => start_config(config),
            Err(e) => fail(&e),
        })
    })
}

/// Stops the watchdog started by `failstop_start` or `failstop_start_with`:
/// timers are deleted, failstop's threads end, the previous signal handlers
/// are restored. Handles stay valid (their threads are no longer watched)
/// and must still be passed to `failstop_unregister`.
///
/// During a verdict it first waits for the dump (at most `dump_timeout`);
/// during a fatal verdict it never returns: the verdict's action ends the
/// process (the same holds for `exit()` and a return from `main`).
///
/// Returns `FAILSTOP_OK`, or `FAILSTOP_E_NOT_RUNNING` if none was started.
///
/// Not async-signal-safe (it joins threads, frees memory, takes a lock):
/// never call it from a signal handler. One that interrupted
/// `failstop_start`, `failstop_start_with` or `failstop_stop` on the same
/// thread gets `FAILSTOP_E_REENTERED` instead of a deadlock.
#[unsafe(no_mangle)]
pub extern "C" fn failstop_stop() -> c_int {
    guarded("failstop_stop", || exclusive(stop_exclusive))
}

fn stop_exclusive() -> c_int {
    {
        let w = WATCHDOG.lock().unwrap_or_else(|p| p.into_inner()).take();
        match w {
            Some(w) => {
                w.stop();
                FAILSTOP_OK
            }
            None => {
                set_last_error("failstop: stop: no watchdog was started through failstop_start");
                FAILSTOP_E_NOT_RUNNING
            }
        }
    }
}

/// Sets the function run after a verdict is final and before the process
/// ends (NULL clears it). It runs in signal context or on the fatal path: it
/// must be async-signal-safe and quick (closing a heartbeat socket is the
/// typical use).
///
/// Must be called before `failstop_start`/`failstop_start_with`: while a
/// watchdog runs it returns `FAILSTOP_E_ALREADY_RUNNING` and changes nothing.
#[unsafe(no_mangle)]
pub extern "C" fn failstop_set_pre_abort_hook(hook: Option<extern "C" fn()>) -> c_int {
    guarded("failstop_set_pre_abort_hook", || exclusive(|| set_hook_exclusive(hook)))
}

fn set_hook_exclusive(hook: Option<extern "C" fn()>) -> c_int {
    {
        let running = WATCHDOG.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if running || ffi_support::running() {
            set_last_error("failstop: set_pre_abort_hook: a watchdog is running; set the hook before failstop_start");
            return FAILSTOP_E_ALREADY_RUNNING;
        }
        C_HOOK.store(hook.map_or(0, |f| f as usize), Release);
        FAILSTOP_OK
    }
}

/// 1 while no verdict closed the heartbeat gate, 0 after one (for a health
/// endpoint). 1 also when no watchdog runs. Async-signal-safe (one atomic
/// load), as are `failstop_touch`, `failstop_tick`, the idle and harmless
/// scopes' begin and end; every other function is not.
#[unsafe(no_mangle)]
pub extern "C" fn failstop_healthy() -> c_int {
    guarded("failstop_healthy", || c_int::from(failstop::healthy())).max(0)
}
