//! The constructor: resolve the real functions, then start the watchdog
//! from the defaults and the `FAILSTOP_*` variables.
//!
//! # Bad variables: exit with status 2
//!
//! A `FAILSTOP_*` variable with a bad value (or an unknown `FAILSTOP_*`
//! name), or any other reason the watchdog cannot start, prints one line on
//! stderr that names the variable and what is allowed, and the program exits
//! with status 2 before its `main` runs. Running unprotected while the
//! operator believes the service is protected is worse in a high-availability
//! cluster than a service that refuses to start: the refusal shows at
//! deployment, not at the next lockup. `LD_PRELOAD` and the variables are
//! inherited by every child, shells and helpers included, so a bad setting
//! stops each of them the same way, with the same line: the mistake cannot
//! hide in one process while the others run. `FAILSTOP_DISABLE=1` is the
//! way to keep the library loaded and watch nothing.
//!
//! # What runs in every process
//!
//! The watchdog starts in every process the library is preloaded into, also
//! in one that never waits in an interposed call, but that start is cheap:
//! it reads the configuration, checks `/proc`, creates the fuse's timer and
//! installs the handler for the watchdog signal (so that a bad setting or an
//! unusable signal still stops the program before its `main`). Everything
//! else waits for the first wait that may block, which registers its
//! thread: failstop's threads (monitor and reporter, which block every
//! signal), the DWARF unwinder (a copy of every module's unwind sections),
//! the stack walker's pipe and the ptrace helper's stack are made then,
//! once, by that thread before its timer is armed. A program that never
//! waits (`/bin/true`, a shell's helper, whatever a preloaded server
//! `exec`s) runs no failstop thread and costs little more than loading the
//! library (`scripts/preload-start-cost.sh` measures it).
//! Under systemd's watchdog (`WATCHDOG_USEC` set for this process) the
//! monitor starts at once, to send the pings.
//!
//! A forked child gets a watchdog of its own from its first wait that may
//! block, with the configuration the constructor read (see
//! [`ensure_running`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering::*};

/// Set once the watchdog runs. Waits that come earlier (from other
/// libraries' constructors) pass straight through and register nothing.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The watchdog signal and the handler failstop installed for it.
static SIGNO: AtomicI32 = AtomicI32::new(0);
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// The preload's default watchdog signal, `SIGRTMAX-3`, where the library's
/// is `SIGALRM`: a program we did not write may take `SIGALRM` over after
/// our constructor ran (redis-server sets it to `SIG_IGN`), and a program
/// that installs its own `SIGALRM` handler would receive failstop's timer
/// ticks. Real-time signals this high are rarely used. `FAILSTOP_SIGNAL`
/// still overrides it.
pub(crate) fn default_signal() -> failstop::Signal {
    failstop::Signal::new(libc::SIGRTMAX() - 3).expect("SIGRTMAX-3 is a valid watchdog signal")
}

/// The configuration the constructor started the watchdog with, kept for
/// the watchdogs of forked children (a child may have lost the variables:
/// nginx clears the environment of its workers).
static CONFIG: OnceLock<failstop::Config> = OnceLock::new();

/// How many forks separate this process from the one the constructor ran
/// in, along its line of ancestors (bumped by the atfork child handler).
static EPOCH: AtomicU32 = AtomicU32::new(0);
/// The epoch of the process in which a watchdog runs: 0 (the constructor's)
/// until a forked child starts its own.
static RUNS_IN: AtomicU32 = AtomicU32::new(0);
/// The epoch in which a thread is starting the watchdog (others pass).
static STARTING_IN: AtomicU32 = AtomicU32::new(u32::MAX);
/// The epoch in which starting failed (said once; not tried again).
static FAILED_IN: AtomicU32 = AtomicU32::new(u32::MAX);

/// This process's epoch: a thread-local registration made under another
/// epoch was made in an ancestor, before a fork.
#[inline(always)]
pub(crate) fn epoch() -> u32 {
    EPOCH.load(Relaxed)
}

/// In a forked child: a new epoch. Async-signal-safe (one atomic add).
extern "C" fn after_fork_in_child() {
    EPOCH.fetch_add(1, Relaxed);
}

/// Whether a watchdog runs in this process (epoch `e`); in a forked child
/// that has none yet, starts one with the parent's configuration first.
///
/// # Forked children
///
/// The parent's monitor and reporter do not exist in a child, and its
/// timers were not inherited. The child's watchdog is started here, from
/// the first wait that may block of any of its threads, rather than in an
/// atfork handler: a child that only execs or waits in `waitpid` costs
/// nothing (no thread, no timer, no descriptor), and the start runs in the
/// child's ordinary context, after `fork` returned, where glibc has reset
/// the allocator's and the loader's locks, instead of inside `fork`, where a
/// child of a multi-threaded parent may only make async-signal-safe calls.
/// It runs once per child: other threads that wait meanwhile pass through
/// unwatched and register at a later wait. A start that fails (or a child
/// that took the watchdog signal over) is said once on stderr; the child's
/// threads then wait unwatched.
#[inline(always)]
pub(crate) fn ensure_running(e: u32) -> bool {
    RUNS_IN.load(Acquire) == e || start_in_child(e)
}

#[cold]
#[inline(never)]
fn start_in_child(e: u32) -> bool {
    if FAILED_IN.load(Relaxed) == e || STARTING_IN.swap(e, AcqRel) == e {
        return false;
    }
    let Some(config) = CONFIG.get() else { return false };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if let Some(signo) = signal_taken_over() {
        FAILED_IN.store(e, Relaxed);
        say(&format!(
            "forked process {pid} is not watched: it replaced failstop's handler of signal {signo} (the watchdog \
             signal); set FAILSTOP_SIGNAL to a signal it does not use"
        ));
        return false;
    }
    match std::panic::catch_unwind(|| failstop::start(config.clone())) {
        Ok(Ok(watchdog)) => {
            std::mem::forget(watchdog);
            HANDLER.store(handler_of(SIGNO.load(Relaxed)), Relaxed);
            RUNS_IN.store(e, Release);
            true
        }
        Ok(Err(err)) => {
            FAILED_IN.store(e, Relaxed);
            say(&format!("forked process {pid} is not watched: its watchdog could not start: {err}"));
            false
        }
        Err(_) => {
            FAILED_IN.store(e, Relaxed);
            say(&format!("forked process {pid} is not watched: its watchdog panicked while starting"));
            false
        }
    }
}

/// The status a program exits with when the watchdog cannot start.
pub(crate) const EXIT_BAD_CONFIG: libc::c_int = 2;

/// Whether the watchdog runs (set at the end of the constructor).
#[inline]
pub(crate) fn started() -> bool {
    STARTED.load(Acquire)
}

/// Writes `failstop_preload: <msg>` and a newline to stderr in one write.
pub(crate) fn say(msg: &str) {
    let line = format!("failstop_preload: {msg}\n");
    // SAFETY: writing our own buffer to fd 2; a failure is ignored.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// Runs at load time, before the program's `main` (and before the
/// constructors of the libraries loaded after this one).
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    crate::real::resolve_all();
    crate::timeout::init();
    let started = std::panic::catch_unwind(|| {
        let config = failstop::Config::new().signal(default_signal()).with_env()?;
        let signo = config.settings().signal.number();
        failstop::start(config.clone()).map(|w| (w, signo, config))
    });
    match started {
        Ok(Ok((watchdog, signo, config))) => {
            // It runs for the life of the process.
            std::mem::forget(watchdog);
            let _ = CONFIG.set(config);
            SIGNO.store(signo, Relaxed);
            HANDLER.store(handler_of(signo), Relaxed);
            // SAFETY: registering a plain extern "C" function with no state.
            unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
            STARTED.store(true, Release);
        }
        Ok(Err(e)) => refuse(e.message()),
        Err(_) => refuse("the watchdog panicked while starting"),
    }
}

/// The handler currently installed for `signo` (or SIG_DFL / SIG_IGN).
fn handler_of(signo: libc::c_int) -> usize {
    // SAFETY: sigaction is plain data; a query only, into a valid out-pointer.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigaction(signo, std::ptr::null(), &mut sa) };
    sa.sa_sigaction
}

/// `None` while the watchdog signal still has the handler failstop
/// installed; otherwise the signal's number, for the message that says the
/// program took it over (then no thread may be registered: its timer ticks
/// would go to the program's handler, be ignored, or end the process).
pub(crate) fn signal_taken_over() -> Option<libc::c_int> {
    let signo = SIGNO.load(Relaxed);
    (handler_of(signo) != HANDLER.load(Relaxed)).then_some(signo)
}

fn refuse(why: &str) -> ! {
    say(&format!(
        "{why}; exiting with status {EXIT_BAD_CONFIG} (fix the FAILSTOP_* setting, set FAILSTOP_DISABLE=1, or unset LD_PRELOAD)"
    ));
    // SAFETY: ends the process at once, before main: nothing of the program
    // ran yet, so there is nothing to flush or clean up.
    unsafe { libc::_exit(EXIT_BAD_CONFIG) }
}
