//! failstop turns thread lockups into clean fail-stops.
//!
//! A service links failstop in and registers the threads that must keep
//! moving. A thread that **spins** (uses CPU without making progress) is
//! caught by a timer on its own CPU clock; on a verdict failstop closes the
//! heartbeat gate ([`healthy`]), dumps every thread of the process with the
//! culprit's own backtrace, and ends the process with `SIGABRT` on the
//! culprit, so that a supervisor restarts it and the peers take over.
//! CPU time does not advance while a thread is preempted, stopped or in a
//! paused VM, so slow machines do not cause false alarms.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let _watchdog = failstop::start(failstop::Config::new().cpu_budget(Duration::from_millis(500)).from_env()?)?;
//! let h = failstop::register("event-loop")?;
//! loop {
//!     let work = h.with_idle(|| next_batch()); // waiting for work: never judged
//!     h.touch(); // the loop came around
//!     for item in work {
//!         process(item);
//!         h.tick(); // one unit of work done
//!     }
//! #   break;
//! }
//! # fn next_batch() -> Vec<u32> { vec![] }
//! # fn process(_: u32) {}
//! # Ok::<(), failstop::Error>(())
//! ```
//!
//! # Layout
//!
//! One module per mechanism:
//!
//! | module | what it does |
//! |---|---|
//! | `config` | [`Config`], defaults, `FAILSTOP_*` variables |
//! | `registry` | the fixed array of per-thread slots, [`ThreadHandle`] |
//! | `cpu_timer` | per-thread CPU-clock POSIX timers, alternate signal stacks |
//! | `signal` | the signal handler: dispatch, chaining to the application's handler |
//! | `verdict` | the stuck rule as a pure function |
//! | `stackwalk` | frame-pointer walk from a signal's ucontext, validated reads |
//! | `modules` | the module map (path, base, build-id) read without the loader lock |
//! | `procfs` | allocation-free readers of `/proc/self/task/*` |
//! | `dump` | the one dump: every thread, culprit first |
//! | `monitor` | the monitor thread: the blocked and deaf-thread rules, writes the dump |
//! | `reporter` | warnings and symbolization, in normal context |
//! | `action` | the verdict latch, the fuse, abort / exit / unhealthy / warn |
//! | `gate` | [`healthy`] and [`stats`] |
//! | `systemd` | systemd's watchdog: `WATCHDOG=1` while healthy, `WATCHDOG=trigger` on a verdict |
//! | `watchdog` | [`start`], [`Watchdog`], the settings the handler reads |
//! | `sys`, `fmt` | raw system calls and allocation-free formatting |
//! | `capi` | the C ABI (`include/failstop.h`): `failstop_start`, `failstop_register`, ... |
//! | `unsupported` | the same API on other platforms, where [`start`] fails |
//! | `tokio` | feature `tokio` (`failstop::tokio`): a tokio runtime's workers, watched through its thread hooks and metrics |
//!
//! failstop needs Linux with glibc; only `config`, `error` and `gate` are
//! built elsewhere, with `unsupported`, so that the crate still compiles and
//! [`start`] returns [`ErrorKind::Unsupported`].

/// Keeps each item only on Linux with glibc, the one supported platform.
macro_rules! linux_gnu {
    ($($item:item)*) => {
        $(
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            $item
        )*
    };
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[macro_use]
mod sys;
linux_gnu! {
    mod action;
    mod cpu_timer;
    mod dump;
    mod fmt;
    mod modules;
    mod monitor;
    mod procfs;
    mod registry;
    mod reporter;
    mod signal;
    mod stackwalk;
    mod systemd;
    mod verdict;
    mod watchdog;

    pub use registry::{HarmlessGuard, IdleGuard, ThreadHandle};
    pub use watchdog::Watchdog;
    use registry::register as register_impl;
    use watchdog::start as start_impl;
}
// Outside `linux_gnu!` so that cbindgen, which does not expand macros,
// finds the C ABI.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod capi;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod unsupported;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub use unsupported::{HarmlessGuard, IdleGuard, ThreadHandle, Watchdog};
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use unsupported::{register as register_impl, start as start_impl};

mod config;
mod error;
mod gate;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use config::{Action, Config, ENV_VARS, Settings, Signal, Systemd};
pub use error::{Error, ErrorKind};
pub use gate::{MAX_THREADS, Stats, WARN_BURST, WARN_WINDOW, healthy, stats};

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Starts the watchdog with `config` (use [`Config::from_env`] to let
/// `FAILSTOP_*` variables override it).
///
/// Fails if the configuration is invalid, if a watchdog already runs in this
/// process, or on a platform other than Linux with glibc. With
/// [`Config::disabled`] it succeeds and watches nothing.
///
/// ```no_run
/// let wd = failstop::start(failstop::Config::new())?;
/// assert!(failstop::start(failstop::Config::new()).is_err()); // already running
/// drop(wd);
/// # Ok::<(), failstop::Error>(())
/// ```
pub fn start(config: Config) -> Result<Watchdog, Error> {
    start_impl(config)
}

/// Starts the watchdog from the defaults and the `FAILSTOP_*` variables.
///
/// ```no_run
/// let _wd = failstop::start_from_env()?;
/// # Ok::<(), failstop::Error>(())
/// ```
pub fn start_from_env() -> Result<Watchdog, Error> {
    start_impl(Config::new().from_env()?)
}

/// Watches the calling thread under `name` (used in reports; cut to 48 bytes).
///
/// The thread is judged from its first [`touch`](ThreadHandle::touch) or
/// [`tick`](ThreadHandle::tick) on. Fails if no watchdog runs, if the thread
/// is already registered, or when a limit is reached (the message says
/// which and how to raise it).
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new())?;
/// let worker = std::thread::spawn(|| -> Result<(), failstop::Error> {
///     let h = failstop::register("worker")?;
///     for _ in 0..10 {
///         h.touch();
///     }
///     Ok(())
/// });
/// worker.join().unwrap()?;
/// # Ok::<(), failstop::Error>(())
/// ```
pub fn register(name: &str) -> Result<ThreadHandle, Error> {
    register_impl(name)
}
