//! Starting and stopping the watchdog, and the settings the handler reads.
//!
//! Everything the signal handler needs is stored in the atomics of [`RT`]
//! before the handler is installed and stays valid until after it is
//! removed. The handler never reads the environment or a `Config`.

use crate::config::{Action, Config};
use crate::error::{Error, ErrorKind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

const STOPPED: u32 = 0;
const STARTING: u32 = 1;
const RUNNING: u32 = 2;
const STOPPING: u32 = 3;

/// Action codes as stored in [`Runtime::action`].
pub(crate) const ACT_ABORT: u32 = 0;
pub(crate) const ACT_EXIT: u32 = 1;
pub(crate) const ACT_UNHEALTHY: u32 = 2;
pub(crate) const ACT_WARN: u32 = 3;

/// The settings the signal handler and the fatal path read, as atomics.
pub(crate) struct Runtime {
    pub state: AtomicU32,
    pub pid: AtomicI32,
    pub disabled: AtomicBool,
    pub signo: AtomicI32,
    pub cpu_budget_ns: AtomicU64,
    pub warn_after_ns: AtomicU64,
    pub stall_budget_ns: AtomicU64,
    pub period_ns: AtomicU64,
    pub dump_timeout_ns: AtomicU64,
    pub action: AtomicU32,
    pub exit_code: AtomicI32,
    pub wall_clock_timers: AtomicBool,
    pub abort_under_debugger: AtomicBool,
    /// The pre-abort hook, a `fn()` as usize (0 = none).
    pub hook: AtomicUsize,
}

pub(crate) static RT: Runtime = Runtime {
    state: AtomicU32::new(STOPPED),
    pid: AtomicI32::new(0),
    disabled: AtomicBool::new(false),
    signo: AtomicI32::new(libc::SIGALRM),
    cpu_budget_ns: AtomicU64::new(0),
    warn_after_ns: AtomicU64::new(0),
    stall_budget_ns: AtomicU64::new(0),
    period_ns: AtomicU64::new(0),
    dump_timeout_ns: AtomicU64::new(0),
    action: AtomicU32::new(ACT_ABORT),
    exit_code: AtomicI32::new(0),
    wall_clock_timers: AtomicBool::new(false),
    abort_under_debugger: AtomicBool::new(false),
    hook: AtomicUsize::new(0),
};

impl Runtime {
    /// Whether a watchdog runs in this process (async-signal-safe).
    pub(crate) fn running(&self) -> bool {
        self.state.load(Acquire) == RUNNING
    }

    /// Whether the configured action ends the process.
    pub(crate) fn fatal(&self) -> bool {
        matches!(self.action.load(Relaxed), ACT_ABORT | ACT_EXIT)
    }

    /// Whether a verdict closes the heartbeat gate (every mode but `warn`).
    pub(crate) fn closes_gate(&self) -> bool {
        self.action.load(Relaxed) != ACT_WARN
    }
}

/// A copy of what registration needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub disabled: bool,
    pub signo: libc::c_int,
    pub cpu_budget_ns: u64,
    pub warn_after_ns: u64,
    pub period_ns: u64,
    pub wall_clock_timers: bool,
}

/// The running watchdog's settings, if one runs.
pub(crate) fn current() -> Option<Run> {
    if !RT.running() || RT.pid.load(Relaxed) != crate::sys::getpid() {
        return None;
    }
    Some(Run {
        disabled: RT.disabled.load(Relaxed),
        signo: RT.signo.load(Relaxed),
        cpu_budget_ns: RT.cpu_budget_ns.load(Relaxed),
        warn_after_ns: RT.warn_after_ns.load(Relaxed),
        period_ns: RT.period_ns.load(Relaxed),
        wall_clock_timers: RT.wall_clock_timers.load(Relaxed),
    })
}

/// The timer period: a tick at least every warning threshold, and at least
/// four per budget, so that the verdict comes by `budget + period`.
pub(crate) fn timer_period(cpu_budget: Duration, warn_after: Duration) -> Duration {
    warn_after.min(cpu_budget / 4).max(Duration::from_millis(1))
}

/// Threads and resources owned by a running watchdog.
struct Owned {
    monitor: Option<std::thread::JoinHandle<()>>,
    reporter: Option<std::thread::JoinHandle<()>>,
}

static OWNED: Mutex<Option<Owned>> = Mutex::new(None);

/// A running watchdog. Dropping it (or calling [`stop`](Watchdog::stop))
/// deletes every timer, stops failstop's threads and restores the signal
/// handlers that were installed before.
///
/// ```no_run
/// let wd = failstop::start(failstop::Config::new())?;
/// // ... the service runs ...
/// wd.stop();
/// # Ok::<(), failstop::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the watchdog stops when this value is dropped"]
pub struct Watchdog {
    _private: (),
}

impl Watchdog {
    /// Stops watching: same as dropping the value, spelled out.
    ///
    /// ```no_run
    /// let wd = failstop::start(failstop::Config::new())?;
    /// wd.stop();
    /// assert!(failstop::register("late").is_err());
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn stop(self) {}
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        stop();
    }
}

/// Starts watching with `config`. See [`crate::start`].
pub(crate) fn start(config: Config) -> Result<Watchdog, Error> {
    config.validate()?;
    if RT.state.compare_exchange(STOPPED, STARTING, AcqRel, Relaxed).is_err() {
        // A watchdog inherited across fork() does not run in this process.
        if RT.pid.load(Relaxed) != crate::sys::getpid() {
            reset_after_fork();
            return start(config);
        }
        return Err(Error::new(ErrorKind::AlreadyRunning, "start: a watchdog is already running in this process"));
    }
    match start_locked(&config) {
        Ok(w) => Ok(w),
        Err(e) => {
            teardown();
            RT.state.store(STOPPED, Release);
            Err(e)
        }
    }
}

fn start_locked(config: &Config) -> Result<Watchdog, Error> {
    let s = config.settings();
    RT.pid.store(crate::sys::getpid(), Relaxed);
    RT.disabled.store(s.disabled, Relaxed);
    RT.signo.store(s.signal.number(), Relaxed);
    RT.cpu_budget_ns.store(s.cpu_budget.as_nanos() as u64, Relaxed);
    RT.warn_after_ns.store(s.warn_after.as_nanos() as u64, Relaxed);
    RT.stall_budget_ns.store(s.stall_budget.as_nanos() as u64, Relaxed);
    RT.period_ns.store(timer_period(s.cpu_budget, s.warn_after).as_nanos() as u64, Relaxed);
    RT.dump_timeout_ns.store(s.dump_timeout.as_nanos() as u64, Relaxed);
    let (code, exit) = match s.action {
        Action::Abort => (ACT_ABORT, 0),
        Action::Exit(c) => (ACT_EXIT, c),
        Action::Unhealthy => (ACT_UNHEALTHY, 0),
        Action::Warn => (ACT_WARN, 0),
    };
    RT.action.store(code, Relaxed);
    RT.exit_code.store(exit, Relaxed);
    RT.wall_clock_timers.store(s.wall_clock_timers, Relaxed);
    RT.abort_under_debugger.store(s.abort_under_debugger, Relaxed);
    RT.hook.store(s.pre_abort_hook.map_or(0, |f| f as usize), Relaxed);

    // systemd's variables are read once, here; a broken one fails start.
    let mut notifier = crate::systemd::from_env(s.systemd)?;
    if s.disabled && notifier.take().is_some() {
        tracing::warn!(
            "failstop: disabled, so nothing sends WATCHDOG=1 to systemd although WATCHDOG_USEC is set: \
             the service must ping by itself or systemd will end it"
        );
    }
    install_atfork_once();
    if !s.disabled {
        crate::stackwalk::init().map_err(|e| Error::os("stack walker setup (pipe)", e))?;
        crate::action::prepare()?;
        let reporter = crate::reporter::spawn()?;
        let monitor = crate::monitor::spawn(s.dump_path.clone(), notifier)?;
        *OWNED.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Owned { monitor: Some(monitor), reporter: Some(reporter) });
        crate::signal::install(s.signal.number())?;
    }
    RT.state.store(RUNNING, Release);
    Ok(Watchdog { _private: () })
}

fn stop() {
    if RT.pid.load(Relaxed) != crate::sys::getpid() {
        // A copy of the parent's watchdog in a forked child: nothing of it
        // runs here (no timers, no threads); just put the handlers back.
        reset_after_fork();
        return;
    }
    if RT.state.compare_exchange(RUNNING, STOPPING, AcqRel, Relaxed).is_err() {
        return;
    }
    teardown();
    RT.state.store(STOPPED, Release);
}

/// Undoes whatever `start` did; safe to call on a half-started watchdog.
fn teardown() {
    crate::registry::detach_all();
    crate::signal::restore();
    let owned = OWNED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut o) = owned {
        crate::monitor::request_stop();
        crate::reporter::request_stop();
        if let Some(t) = o.monitor.take() {
            let _ = t.join();
        }
        if let Some(t) = o.reporter.take() {
            let _ = t.join();
        }
    }
    crate::action::release();
    crate::systemd::report_failures();
}

fn reset_after_fork() {
    crate::registry::forget_after_fork();
    crate::signal::restore();
    // The parent's threads do not exist here: forget their handles unjoined.
    if let Ok(mut g) = OWNED.try_lock()
        && let Some(o) = g.take()
    {
        std::mem::forget(o);
    }
    RT.state.store(STOPPED, Release);
}

fn install_atfork_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a plain extern "C" function with no state.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// In a forked child only the forking thread exists and no timer was
/// inherited: nothing is watched there. Async-signal-safe (atomics only).
extern "C" fn after_fork_in_child() {
    if RT.state.load(Relaxed) != STOPPED {
        crate::registry::forget_after_fork();
        RT.state.store(STOPPED, Release);
        // Handlers stay installed until the child starts its own watchdog or
        // drops the inherited one; they chain every signal that is not ours.
    }
}
