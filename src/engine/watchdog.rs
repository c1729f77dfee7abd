//! Starting and stopping the watchdog, and what a fork leaves of it.
//!
//! # Two steps: `start`, then the first registration
//!
//! `start` does what is cheap and what can fail because of the
//! configuration or the environment, so that those errors come from
//! `start`: it stores the settings in `state::settings::LIVE` (everything
//! the signal handler reads), reads systemd's variables, checks `/proc`,
//! resolves the dump path, creates the fuse's timer and installs the
//! handler. It starts no thread.
//!
//! The rest waits for the first thread that registers
//! ([`prepare_for_first_thread`], the first thing `register` does, in the
//! registering thread's normal context, before its timer is armed): the
//! descriptor reserve, the stack walker's probe pipe, the ptrace helper's
//! stack, the DWARF unwinder (a copy of every module's unwind sections, the
//! costly part), the fuse thread of a PID 1, the reporter and the monitor.
//! A process that never registers a thread (a program started under
//! `libfailstop_preload.so` that never waits, every program such a process
//! `exec`s) pays for none of it. Where systemd's watchdog is configured, all
//! of it is done at `start`: the monitor sends the pings from then on,
//! whether or not a thread is ever watched.
//!
//! # Signal-safety contract
//!
//! The handler is installed at `start`, before the step that prepares what
//! it needs to capture a backtrace. That is safe because it only captures
//! on a watched thread (a timer tick, tagged with the thread's slot) or on
//! the monitor's request during a dump, and neither can happen before
//! [`prepare_for_first_thread`] returned: a thread's timer is armed after
//! it, and the monitor is started by it. Before that, the handler only
//! chains the application's own signals to the application's handler.
//! Nothing here runs in signal context; the one function called on every
//! registration, [`prepare_for_first_thread`], is two atomic loads once the
//! step is done.
//!
//! `stop` undoes both steps in the opposite order.

use super::handler;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::fatal::dump::DumpPath;
use crate::fatal::{end, fuse, monitor, reporter, systemd};
use crate::os::stackwalk::StackBounds;
use crate::os::{procfs, ptrace, signals, stackwalk, sys, unwind};
use crate::state::lifecycle::Lifecycle;
use crate::state::settings::LIVE;
use crate::watch::registry;
use std::cell::UnsafeCell;
use std::sync::Mutex;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// Threads and resources owned by a running watchdog.
struct Owned {
    monitor: Option<std::thread::JoinHandle<()>>,
    reporter: Option<std::thread::JoinHandle<()>>,
    /// The dump path for the monitor and the reporter, until the first
    /// registration starts them (then `None`).
    deferred: Option<Option<DumpPath>>,
}

static OWNED: ProcessLock<Option<Owned>> = ProcessLock::new(None);

/// A lock that a forked child does not inherit held. The first
/// registration holds [`OWNED`] for milliseconds (it builds the unwinder
/// and starts threads); a `fork` by another thread meanwhile copies the
/// lock held by a thread the child does not have, and a `std` mutex would
/// then hang the child's own `start`. Here the lock word is the holder's
/// pid: a child that finds its parent's pid there takes the lock over and
/// forgets what it guards (perhaps half-written: never read nor dropped),
/// as it forgets the parent's thread handles anyway. Normal context only.
struct ProcessLock<T> {
    /// The pid of the process whose thread holds the lock; 0 when free.
    holder: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through a `ProcessGuard`, which one
// thread of a process holds at a time (the `holder` word).
unsafe impl<T: Send> Sync for ProcessLock<T> {}

struct ProcessGuard<'a, T>(&'a ProcessLock<T>);

impl<T> ProcessLock<T> {
    const fn new(value: T) -> Self {
        ProcessLock { holder: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    /// Takes the lock; `fresh` replaces a value held over a fork.
    fn lock(&self, fresh: impl Fn() -> T) -> ProcessGuard<'_, T> {
        let me = sys::getpid() as u32;
        loop {
            match self.holder.compare_exchange(0, me, Acquire, Relaxed) {
                Ok(_) => return ProcessGuard(self),
                Err(h) if h != me => {
                    // Held by a thread of another process: this is a forked
                    // child, and that thread does not exist here.
                    if self.holder.compare_exchange(h, me, Acquire, Relaxed).is_ok() {
                        // SAFETY: we hold the lock now; the old value may be
                        // torn, so it is overwritten without being dropped.
                        unsafe { std::ptr::write(self.value.get(), fresh()) };
                        return ProcessGuard(self);
                    }
                }
                Err(_) => sys::futex_wait(&self.holder, me, Some(Duration::from_millis(50))),
            }
        }
    }
}

impl<T> std::ops::Deref for ProcessGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.0.value.get() }
    }
}

impl<T> std::ops::DerefMut for ProcessGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock.
        unsafe { &mut *self.0.value.get() }
    }
}

impl<T> Drop for ProcessGuard<'_, T> {
    fn drop(&mut self) {
        self.0.holder.store(0, Release);
        sys::futex_wake_all(&self.0.holder);
    }
}

/// Bumped by every `start`: which watchdog runs (a forked child's own
/// start moves it on too).
static RUN: AtomicU64 = AtomicU64::new(0);
/// The [`RUN`] whose threads are started and whose handler has what it
/// needs ([`prepare_for_first_thread`]); `RUN` itself once they are.
static PREPARED: AtomicU64 = AtomicU64::new(0);

/// The engine's running watchdog (see [`crate::Watchdog`]): dropping it
/// stops everything [`start`] made.
#[derive(Debug)]
pub(crate) struct Watchdog {
    _private: (),
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
    if !LIVE.lifecycle.change(Lifecycle::Stopped, Lifecycle::Starting) {
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
            LIVE.lifecycle.set(Lifecycle::Stopped);
            Err(e)
        }
    }
}

fn start_locked(config: &Config, forked: bool) -> Result<Watchdog, Error> {
    let s = config.settings();
    let run = RUN.fetch_add(1, AcqRel) + 1;
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
        fuse::prepare()?;
        let path = s.dump_path.as_deref().map(|p| inherited_dump_path(p, forked)).transpose()?;
        let mut g = OWNED.lock(|| None);
        // A forked child's copy of the parent's handles names threads that
        // do not exist here: forgotten, not dropped (otherwise `stop` took
        // them already).
        if forked {
            std::mem::forget(g.take());
        }
        let o = g.insert(Owned { monitor: None, reporter: None, deferred: Some(path) });
        if notifier.is_some() {
            // systemd's watchdog: the monitor pings it from now on, whether
            // or not a thread is ever watched.
            prepare_aside(o, notifier)?;
            PREPARED.store(run, Release);
        }
        drop(g);
        crate::watch::cpu_timer::TICKS_OFF.store(false, Release);
        handler::install(s.signal.number())?;
    } else {
        // Disabled: registrations are bookkeeping only, nothing to prepare.
        PREPARED.store(run, Release);
    }
    LIVE.lifecycle.set(Lifecycle::Running);
    Ok(Watchdog { _private: () })
}

/// Watches the calling thread under `name` (see [`crate::register`]):
/// prepares failstop's threads if this is the watchdog's first
/// registration, then takes a slot. What every front end calls.
pub(crate) fn register(name: &str) -> Result<crate::watch::registry::ThreadHandle, Error> {
    prepare_for_first_thread()?;
    crate::watch::registry::register(name)
}

/// What a watched thread needs, made once per watchdog by the first thread
/// that registers (see the module doc), in its normal context and before
/// its timer is armed: the descriptor reserve, the stack walker's probe
/// pipe, the ptrace helper's stack, the DWARF unwinder, the fuse thread (a
/// PID 1's), the reporter and the monitor. Every later call is two atomic
/// loads. Does nothing when no watchdog runs in this process (then
/// `register` says so) or while it stops. An error leaves what was made in
/// place (the next registration tries the rest again, `stop` undoes it).
pub(crate) fn prepare_for_first_thread() -> Result<(), Error> {
    if PREPARED.load(Acquire) == RUN.load(Acquire) {
        return Ok(());
    }
    prepare_slow()
}

#[cold]
#[inline(never)]
fn prepare_slow() -> Result<(), Error> {
    if LIVE.lifecycle.get() != Lifecycle::Running || LIVE.pid.load(Relaxed) != sys::getpid() {
        return Ok(()); // `register` says that no watchdog runs
    }
    let mut g = OWNED.lock(|| None);
    // A `stop` that began is seen here (not RUNNING); one that begins now
    // waits for OWNED in `teardown`, then stops what this starts.
    let run = RUN.load(Acquire);
    if PREPARED.load(Acquire) == run
        || LIVE.lifecycle.get() != Lifecycle::Running
        || LIVE.pid.load(Relaxed) != sys::getpid()
    {
        return Ok(());
    }
    let Some(o) = g.as_mut() else { return Ok(()) };
    prepare_aside(o, None)?;
    PREPARED.store(run, Release);
    Ok(())
}

/// Stack [`prepare_threads`] may use, with a wide margin (building the
/// unwinder and starting threads, in a debug build).
const PREPARE_STACK: usize = 512 * 1024;

/// [`prepare_threads`], on the calling thread when it has
/// [`PREPARE_STACK`] left, else on a short-lived thread of its own, which
/// the caller waits for: the registering thread may have a small stack (a
/// C thread with `PTHREAD_STACK_MIN`, 16 KiB, less its TLS). Then the
/// caller's part is kept shallow: `pthread_create` and `pthread_join` from
/// a small, non-generic frame ([`run_aside`]).
fn prepare_aside(o: &mut Owned, notifier: Option<systemd::Notifier>) -> Result<(), Error> {
    let here = (&raw const o) as usize;
    let room = StackBounds::current_thread().map_or(0, |b| here.saturating_sub(b.lo()));
    if room >= PREPARE_STACK {
        return prepare_threads(o, notifier);
    }
    let mut notifier = notifier;
    let mut result = Err(Error::new(ErrorKind::Os, "preparing the watchdog panicked"));
    run_aside(&mut || result = prepare_threads(o, notifier.take()))
        .map_err(|e| Error::os("starting the thread that prepares the watchdog", e))?;
    result
}

/// Runs `job` on a new thread (`failstop-prepare`, every signal blocked,
/// the default stack size) and waits for it to end. A panic in `job` is
/// caught there (it cannot unwind through `pthread_create`'s frames).
#[inline(never)]
fn run_aside(job: &mut (dyn FnMut() + Send)) -> std::io::Result<()> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> *mut libc::c_void {
        signals::block_all_in_this_thread();
        // SAFETY: a NUL-terminated name of at most 16 bytes, for the
        // calling thread.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"failstop-prepare".as_ptr() as libc::c_ulong, 0, 0, 0) };
        // SAFETY: `arg` points at `run_aside`'s `job`, which outlives this
        // thread (`run_aside` joins it before returning).
        let job = unsafe { &mut *arg.cast::<&mut (dyn FnMut() + Send)>() };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        std::ptr::null_mut()
    }
    let mut job = job;
    let mut thread: libc::pthread_t = 0;
    // SAFETY: default attributes; `trampoline` only uses `job` before the
    // thread ends, and the thread is joined below.
    let r = unsafe {
        libc::pthread_create(&mut thread, std::ptr::null(), trampoline, (&raw mut job).cast::<libc::c_void>())
    };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    // SAFETY: a joinable thread created just above, joined once.
    unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
    Ok(())
}

/// The heavy step (see [`prepare_for_first_thread`]); `o.deferred` holds
/// the dump path until it succeeds. Each part is made once: a retry after
/// an error does not make a second one. The monitor comes last, so that
/// when it can judge a thread, everything its verdicts use is ready.
fn prepare_threads(o: &mut Owned, notifier: Option<systemd::Notifier>) -> Result<(), Error> {
    let Some(path) = o.deferred.as_ref() else { return Ok(()) };
    sys::reserve_descriptors().map_err(|e| Error::os("reserving descriptors for the monitor", e))?;
    stackwalk::init().map_err(|e| Error::os("stack walker setup (pipe)", e))?;
    ptrace::prepare().map_err(|e| Error::os("ptrace helper setup (its stack)", e))?;
    unwind::prepare().map_err(|e| Error::os("DWARF unwinder setup (/proc/self/maps)", e))?;
    fuse::start_thread()?;
    if o.reporter.is_none() {
        o.reporter = Some(reporter::spawn(path.clone())?);
    }
    if o.monitor.is_none() {
        o.monitor = Some(monitor::spawn(path.clone(), notifier)?);
    }
    o.deferred = None;
    Ok(())
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
    if !LIVE.lifecycle.change(Lifecycle::Running, Lifecycle::Stopping) {
        return;
    }
    teardown();
    LIVE.lifecycle.set(Lifecycle::Stopped);
}

/// Undoes whatever `start` did; safe to call on a half-started watchdog.
fn teardown() {
    registry::detach_all();
    handler::restore();
    let owned = OWNED.lock(|| None).take();
    if let Some(mut o) = owned {
        // Threads that never started (nothing was registered) are not asked.
        if o.monitor.is_some() {
            monitor::request_stop();
        }
        if o.reporter.is_some() {
            reporter::request_stop();
        }
        if let Some(t) = o.monitor.take() {
            let _ = t.join();
        }
        if let Some(t) = o.reporter.take() {
            let _ = t.join();
        }
    }
    fuse::release();
    sys::release_descriptors();
    systemd::report_failures();
}

fn reset_after_fork() {
    // The atfork child handler did this already, unless the fork bypassed
    // it (a raw clone): then nothing is known of the forking thread.
    registry::forget_after_fork(0, 0);
    handler::restore();
    // The parent's threads do not exist here: forget their handles unjoined.
    std::mem::forget(OWNED.lock(|| None).take());
    LIVE.lifecycle.set(Lifecycle::Stopped);
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
    if LIVE.lifecycle.get() != Lifecycle::Stopped {
        registry::forget_after_fork(FORKER.load(Relaxed), sys::gettid());
        LIVE.lifecycle.set(Lifecycle::Stopped);
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
