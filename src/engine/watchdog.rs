//! Starting and stopping the watchdog, and what a fork leaves of it.
//!
//! `start` stores the settings in `state::settings::LIVE` (everything the
//! signal handler reads), prepares the fuse and the stack walker, spawns
//! the reporter and the monitor, and installs the handler last; `stop`
//! undoes it in the opposite order.

use super::handler;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::fatal::dump::DumpPath;
use crate::fatal::{end, monitor, reporter, systemd};
use crate::os::{procfs, ptrace, stackwalk, sys, unwind};
use crate::state::settings::{LIVE, RUNNING, STARTING, STOPPED, STOPPING};
use crate::watch::registry;
use std::sync::Mutex;
use std::sync::atomic::Ordering::*;

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
/// During a verdict, the stop first waits for the dump (at most
/// `dump_timeout`); during a fatal one it never returns, and the verdict's
/// action ends the process: a guard dropped at the end of `main` while a
/// dump is written cannot end the process with the application's own
/// status. An `exit()` is held the same way.
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
    // A watchdog started before in another process: this is a forked child.
    let forked = LIVE.pid.load(Relaxed) != 0 && LIVE.pid.load(Relaxed) != sys::getpid();
    if LIVE.lifecycle.compare_exchange(STOPPED, STARTING, AcqRel, Relaxed).is_err() {
        // A watchdog inherited across fork() does not run in this process.
        if forked {
            reset_after_fork();
            return start(config);
        }
        return Err(Error::new(ErrorKind::AlreadyRunning, "start: a watchdog is already running in this process"));
    }
    match start_locked(&config, forked) {
        Ok(w) => Ok(w),
        Err(e) => {
            teardown();
            LIVE.lifecycle.store(STOPPED, Release);
            Err(e)
        }
    }
}

fn start_locked(config: &Config, forked: bool) -> Result<Watchdog, Error> {
    let s = config.settings();
    LIVE.store(s, sys::getpid());
    sys::note_stderr_at_start();
    sys::page_size(); // cached now, before the handler can need it

    // systemd's variables are read once, here; a broken one fails start.
    let mut notifier = systemd::from_env(s.systemd)?;
    if s.disabled && notifier.take().is_some() {
        tracing::warn!(
            "failstop: disabled, so nothing sends WATCHDOG=1 to systemd although WATCHDOG_USEC is set: \
             the service must ping by itself or systemd will end it"
        );
    }
    install_process_hooks_once();
    if !s.disabled {
        // Without /proc the blocked and deaf rules would never fire and the
        // dump would be empty: refuse to run half-blind.
        let mut buf = [0u8; procfs::SCRATCH_LEN];
        procfs::check_readable(&mut buf).map_err(|(path, e)| {
            let message = format!(
                "start: {path} cannot be read ({e}): failstop needs /proc, where the monitor reads each watched \
                 thread's state and the dump its kernel evidence; mount it in the sandbox or chroot \
                 (mount -t proc proc /proc)"
            );
            Error::with_source(ErrorKind::Os, message, e)
        })?;
        sys::reserve_descriptors().map_err(|e| Error::os("start: reserving descriptors for the monitor", e))?;
        stackwalk::init().map_err(|e| Error::os("stack walker setup (pipe)", e))?;
        ptrace::prepare().map_err(|e| Error::os("ptrace helper setup (its stack)", e))?;
        unwind::prepare().map_err(|e| Error::os("DWARF unwinder setup (/proc/self/maps)", e))?;
        end::prepare()?;
        let path = s.dump_path.as_deref().map(|p| inherited_dump_path(p, forked)).transpose()?;
        let reporter = reporter::spawn(path.clone())?;
        let monitor = monitor::spawn(path, notifier)?;
        *OWNED.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Owned { monitor: Some(monitor), reporter: Some(reporter) });
        crate::watch::cpu_timer::TICKS_OFF.store(false, Release);
        handler::install(s.signal.number())?;
    }
    LIVE.lifecycle.store(RUNNING, Release);
    Ok(Watchdog { _private: () })
}

fn stop() {
    // A stop (the guard dropped at the end of `main`, say) during a verdict
    // must not cut the dump short, nor, for a fatal one, end the process
    // with the application's own status instead of the verdict's action.
    end::hold_if_ending();
    if LIVE.pid.load(Relaxed) != sys::getpid() {
        // A copy of the parent's watchdog in a forked child: nothing of it
        // runs here (no timers, no threads); just put the handlers back.
        reset_after_fork();
        return;
    }
    if LIVE.lifecycle.compare_exchange(RUNNING, STOPPING, AcqRel, Relaxed).is_err() {
        return;
    }
    teardown();
    LIVE.lifecycle.store(STOPPED, Release);
}

/// Undoes whatever `start` did; safe to call on a half-started watchdog.
fn teardown() {
    registry::detach_all();
    handler::restore();
    let owned = OWNED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut o) = owned {
        monitor::request_stop();
        reporter::request_stop();
        if let Some(t) = o.monitor.take() {
            let _ = t.join();
        }
        if let Some(t) = o.reporter.take() {
            let _ = t.join();
        }
    }
    end::release();
    sys::release_descriptors();
    systemd::report_failures();
}

fn reset_after_fork() {
    // The atfork child handler did this already, unless the fork bypassed
    // it (a raw clone): then nothing is known of the forking thread.
    registry::forget_after_fork(0, 0);
    handler::restore();
    // The parent's threads do not exist here: forget their handles unjoined.
    if let Ok(mut g) = OWNED.try_lock()
        && let Some(o) = g.take()
    {
        std::mem::forget(o);
    }
    LIVE.lifecycle.store(STOPPED, Release);
}

/// Registers, once per process, the fork handler and the exit handler.
/// An exit handler registered later by the application runs before
/// failstop's (they run in the reverse order of registration).
fn install_process_hooks_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering plain extern "C" functions with no state.
        unsafe {
            libc::pthread_atfork(Some(before_fork), None, Some(after_fork_in_child));
            libc::atexit(at_exit);
        }
    });
}

/// Run by `exit()` (and so by a return from `main`) on the exiting thread:
/// during a verdict, the dump is waited for, and a fatal verdict's action
/// ends the process instead of the application's exit (see
/// [`end::hold_if_ending`]). Without a verdict it returns at once.
extern "C" fn at_exit() {
    end::hold_if_ending();
}

/// The tid of the thread that is forking (glibc runs the prepare, parent
/// and child handlers of one fork under one lock, so forks do not mix).
static FORKER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// In the parent, just before `fork()`: remembers the forking thread, and
/// lets the reporter leave the symbolizer first (bounded; see
/// `reporter::before_fork`).
extern "C" fn before_fork() {
    FORKER.store(sys::gettid(), Relaxed);
    reporter::before_fork();
}

/// In a forked child only the forking thread exists and no timer was
/// inherited: nothing is watched there. Async-signal-safe (atomics and
/// `gettid` only).
///
/// The child may start a watchdog of its own later ([`start`] again, as
/// `libfailstop_preload.so` does from the child's first wait): a new
/// monitor and reporter, new timers for the threads that register. What
/// the child inherits and keeps: the descriptor reserve (its own copies of
/// the eventfds: they only hold numbers), the stack walker's probe pipe
/// (shared with the parent, which is harmless: a probe only checks that
/// bytes are readable and copies them itself), and the dump directory held
/// open (see [`inherited_dump_path`]).
extern "C" fn after_fork_in_child() {
    reporter::after_fork_in_child();
    if LIVE.lifecycle.load(Relaxed) != STOPPED {
        registry::forget_after_fork(FORKER.load(Relaxed), sys::gettid());
        LIVE.lifecycle.store(STOPPED, Release);
        // Handlers stay installed until the child starts its own watchdog or
        // drops the inherited one; they chain every signal that is not ours.
    }
}

/// The dump path the last `start` resolved (its configured form and the
/// resolved one, directory held open), for a forked child's own `start`.
static DUMP_PATH: Mutex<Option<(std::path::PathBuf, DumpPath)>> = Mutex::new(None);

/// The dump path for `configured`: in a forked child whose parent resolved
/// the same path, the parent's (the child has the directory open already,
/// which still works after it changed directory, dropped privileges or
/// entered a chroot; a relative path would otherwise resolve against the
/// child's current directory); otherwise resolved now.
fn inherited_dump_path(configured: &std::path::Path, forked: bool) -> Result<DumpPath, Error> {
    let reuse = forked
        .then(|| DUMP_PATH.try_lock().ok())
        .flatten()
        .and_then(|g| g.as_ref().filter(|(p, _)| p == configured).map(|(_, d)| d.clone()));
    let path = match reuse {
        Some(d) => d,
        None => DumpPath::resolve(configured)?,
    };
    if let Ok(mut g) = DUMP_PATH.try_lock() {
        *g = Some((configured.to_path_buf(), path.clone()));
    }
    Ok(path)
}
