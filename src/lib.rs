//! failstop turns thread lockups into clean fail-stops.
//!
//! A service links failstop in and registers the threads that must keep
//! moving. On a verdict failstop closes the heartbeat gate ([`healthy`]),
//! dumps every thread of the process with the culprit's own backtrace, and
//! ends the process with `SIGABRT` on the culprit, so that a supervisor
//! restarts it and the peers take over. What it catches:
//!
//! - a thread that **spins** (uses CPU without making progress): a timer on
//!   its own CPU clock; CPU time does not advance while a thread is
//!   preempted, stopped or in a paused VM, so slow machines do not cause
//!   false alarms. A spinner that blocks every signal, or runs inside a
//!   signal handler, is caught by the monitor instead (the deaf rule);
//! - a thread that is **blocked** (a deadlock, a system call that never
//!   returns): the monitor thread sees no progress, no CPU time and no
//!   context switch for `stall_budget`, with the kernel's evidence from
//!   `/proc/self/task` in the dump.
//!
//! Scopes say what is not a lockup: [`ThreadHandle::idle`] (waiting for
//! work) and [`ThreadHandle::harmless`] (waiting on others). The same
//! watchdog serves C and C++ through a C ABI (`include/failstop.h`,
//! `libfailstop.so`), programs that cannot change through
//! `libfailstop_preload.so` (`LD_PRELOAD`: every thread that waits in
//! `epoll_wait`, `poll` or `select` is watched), and tokio runtimes through
//! `failstop::tokio` (feature `tokio`). The repository's `docs/` has a
//! chapter on each.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! let _watchdog = failstop::start(failstop::Config::new().cpu_budget(Duration::from_millis(500)).with_env()?)?;
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
//! Each folder of `src/` is a floor, and each floor uses only the floors
//! below it (`scripts/layers.py` checks this in CI: no cycle between files,
//! no `use crate::` that runs up a floor): errors and the verdict rule,
//! `config/`, `os/`, `state/` and `sync/`, `watch/`, `fatal/`, `engine/`
//! (every signal-context entry point), then the front ends (this API in
//! `api/`, `ffi_support`, `tokio/`, `unsupported`). The table of what lives
//! on each floor is in the repository's `docs/architecture.md`.
//!
//! failstop needs Linux with glibc; only `config`, `error`, `state::gate`,
//! `sync` (over std's mutex, recording no owner), `api` and `unsupported`
//! are built elsewhere, so that the crate still compiles and [`start`] returns
//! [`ErrorKind::Unsupported`].

#![cfg_attr(docsrs, feature(doc_cfg))]

/// Keeps each item only on Linux with glibc, the one supported platform.
macro_rules! linux_gnu {
    ($($item:item)*) => {
        $(
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            $item
        )*
    };
}

// Floor 0 and 1: pure.
mod config;
mod error;
linux_gnu! {
    mod verdict;
    // Floors 2 to 6.
    mod os;
}
mod state;
pub mod sync;
linux_gnu! {
    mod watch;
    mod fatal;
    mod engine;
}
// Floor 7, the front ends. The public types, each written once over the
// platform's implementation (the engine, or `unsupported`).
mod api;
pub use api::{HarmlessGuard, IdleGuard, ThreadHandle, Watchdog};
// The C ABI is the crate `failstop-ffi` (ffi/), built on `ffi_support`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[doc(hidden)]
pub mod ffi_support;
/// Not part of the API (feature `bench-hooks`): the capture primitives, for
/// the criterion benches (benches/unwind.rs) that compare the DWARF unwind with the
/// frame-pointer walk.
#[cfg(all(target_os = "linux", target_env = "gnu", feature = "bench-hooks"))]
#[doc(hidden)]
pub mod __unwind_bench {
    use crate::os::stackwalk::{self, StackBounds};
    use crate::os::unwind::{self, Unwound};
    use std::time::{Duration, Instant};

    /// Prepares the DWARF unwinder (as `start` does): (modules with unwind
    /// information, bytes of section data copied, time taken).
    pub fn prepare() -> std::io::Result<(usize, usize, Duration)> {
        stackwalk::init()?;
        let t0 = Instant::now();
        let b = unwind::prepare()?;
        Ok((b.modules, b.section_bytes, t0.elapsed()))
    }

    /// The calling thread's stack bounds `(lo, hi)`.
    pub fn stack_bounds() -> (usize, usize) {
        StackBounds::current_thread().map_or((0, 0), |b| (b.lo(), b.hi()))
    }

    /// The DWARF unwind of `ctx` into `out`: (frames, reached the root).
    ///
    /// # Safety
    /// `ctx` is a `ucontext_t` whose stack is live for the call; `lo..hi`
    /// its thread's stack (or 0, 0).
    pub unsafe fn dwarf(ctx: *const libc::c_void, lo: usize, hi: usize, out: &mut [usize]) -> (usize, bool) {
        // SAFETY: forwarded.
        match unsafe { unwind::unwind_ucontext(ctx, StackBounds::new(lo, hi), out) } {
            Unwound::Unavailable => (0, false),
            Unwound::Complete(n) => (n, true),
            Unwound::Truncated(n) => (n, false),
        }
    }

    /// The frame-pointer walk of `ctx` into `out`.
    ///
    /// # Safety
    /// As [`dwarf`].
    pub unsafe fn frame_pointers(ctx: *const libc::c_void, lo: usize, hi: usize, out: &mut [usize]) -> usize {
        // SAFETY: forwarded.
        unsafe { stackwalk::walk_ucontext(ctx, StackBounds::new(lo, hi), out) }
    }
}
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod unsupported;

pub use config::{Action, Config, ENV_VARS, EnvVar, Settings, Signal, Systemd};
pub use error::{Error, ErrorKind};
pub use state::gate::{Stats, healthy, stats};
/// failstop's fixed limits: the most threads watched at once, and the
/// rate limit of warnings.
///
/// ```
/// assert!(failstop::limits::MAX_THREADS >= 65_536);
/// assert_eq!(failstop::limits::WARN_BURST, 5);
/// ```
pub mod limits {
    pub use crate::state::limits::{MAX_THREADS, WARN_BURST, WARN_WINDOW};
}
/// The most threads watched at once: see [`limits::MAX_THREADS`].
#[deprecated(since = "0.1.0", note = "use failstop::limits::MAX_THREADS")]
pub const MAX_THREADS: usize = limits::MAX_THREADS;
/// Warnings per window: see [`limits::WARN_BURST`].
#[deprecated(since = "0.1.0", note = "use failstop::limits::WARN_BURST")]
pub const WARN_BURST: usize = limits::WARN_BURST;
/// The warnings' window: see [`limits::WARN_WINDOW`].
#[deprecated(since = "0.1.0", note = "use failstop::limits::WARN_WINDOW")]
pub const WARN_WINDOW: std::time::Duration = limits::WARN_WINDOW;

/// The manual's examples (README.md and docs/), compiled as doctests so
/// that they stay true.
#[cfg(doctest)]
mod manual {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/rust.md")]
    struct Rust;
    #[doc = include_str!("../docs/c.md")]
    struct C;
    #[doc = include_str!("../docs/zero-code.md")]
    struct ZeroCode;
    #[doc = include_str!("../docs/deploy.md")]
    struct Deploy;
    #[doc = include_str!("../docs/failover.md")]
    struct Failover;
    #[doc = include_str!("../docs/dump.md")]
    struct Dump;
    #[doc = include_str!("../docs/performance.md")]
    struct Performance;
    #[doc = include_str!("../docs/architecture.md")]
    struct Architecture;
    #[doc = include_str!("../docs/testing.md")]
    struct Testing;
}

/// Starts the watchdog with `config` (use [`Config::with_env`] to let
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
    api::start(config)
}

/// Starts the watchdog from the defaults and the `FAILSTOP_*` variables.
///
/// ```no_run
/// let _wd = failstop::start_from_env()?;
/// # Ok::<(), failstop::Error>(())
/// ```
pub fn start_from_env() -> Result<Watchdog, Error> {
    api::start(Config::new().with_env()?)
}

/// Watches the calling thread under `name` (used in reports; cut to 48 bytes).
///
/// The thread is judged from its first [`touch`](ThreadHandle::touch) or
/// [`tick`](ThreadHandle::tick) on. Fails if no watchdog runs, if the thread
/// is already registered, or when a limit is reached (the message says
/// which and how to raise it; up to [`MAX_THREADS`] threads at once).
///
/// The first registration of a watchdog starts failstop's own threads and
/// prepares the unwinder its signal handler uses (a few ms, once); it
/// fails with an OS error if a thread cannot be started. Later ones take a
/// slot (O(1)) and create the thread's CPU timer.
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
    api::register(name)
}
