//! The public API on platforms other than Linux with glibc: it compiles,
//! [`start`] validates the configuration and then fails with
//! [`ErrorKind::Unsupported`], and nothing can be registered. The handle and
//! guard types hold [`Infallible`], so no value of them can exist here.

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use std::convert::Infallible;
use std::marker::PhantomData;

/// Why failstop does not run on this platform.
pub(crate) fn unsupported() -> Error {
    let libc = if cfg!(target_os = "linux") { " without glibc" } else { "" };
    Error::new(
        ErrorKind::Unsupported,
        format!(
            "unsupported platform: failstop needs Linux with glibc (per-thread CPU-time timers, /proc); \
             this build targets {}{libc}",
            std::env::consts::OS
        ),
    )
}

/// Validates `config`, then fails: see [`crate::start`].
pub(crate) fn start(config: Config) -> Result<Watchdog, Error> {
    config.validate()?;
    Err(unsupported())
}

/// Fails: see [`crate::register`].
pub(crate) fn register(_name: &str) -> Result<ThreadHandle, Error> {
    Err(unsupported())
}

/// A running watchdog; never exists on this platform (see [`crate::start`]).
///
/// ```no_run
/// let wd = failstop::start(failstop::Config::new())?;
/// wd.stop();
/// # Ok::<(), failstop::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the watchdog stops when this value is dropped"]
pub struct Watchdog {
    never: Infallible,
}

impl Watchdog {
    /// Stops watching: same as dropping the value, spelled out.
    ///
    /// ```no_run
    /// let wd = failstop::start(failstop::Config::new())?;
    /// wd.stop();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn stop(self) {
        match self.never {}
    }
}

/// A watched thread's handle; never exists on this platform (see
/// [`crate::register`]).
///
/// ```no_run
/// let h = failstop::register("worker")?;
/// h.touch();
/// # Ok::<(), failstop::Error>(())
/// ```
#[derive(Debug)]
pub struct ThreadHandle {
    never: Infallible,
    _not_send: PhantomData<*mut ()>,
}

impl ThreadHandle {
    /// The thread's loop came around (progress).
    ///
    /// ```no_run
    /// failstop::register("poller")?.touch();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn touch(&self) {
        match self.never {}
    }

    /// One unit of work completed (progress).
    ///
    /// ```no_run
    /// failstop::register("worker")?.tick();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn tick(&self) {
        match self.never {}
    }

    /// Marks the thread idle until the guard drops.
    ///
    /// ```no_run
    /// let h = failstop::register("poller")?;
    /// let _idle = h.idle();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn idle(&self) -> IdleGuard<'_> {
        match self.never {}
    }

    /// Runs `f` with the thread marked idle.
    ///
    /// ```no_run
    /// let n = failstop::register("poller")?.with_idle(|| 42);
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn with_idle<R>(&self, _f: impl FnOnce() -> R) -> R {
        match self.never {}
    }

    /// Marks the thread harmless until the guard drops.
    ///
    /// ```no_run
    /// let h = failstop::register("worker")?;
    /// let _waiting = h.harmless();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn harmless(&self) -> HarmlessGuard<'_> {
        match self.never {}
    }

    /// Runs `f` with the thread marked harmless.
    ///
    /// ```no_run
    /// let v = failstop::register("worker")?.with_harmless(|| 7);
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn with_harmless<R>(&self, _f: impl FnOnce() -> R) -> R {
        match self.never {}
    }

    /// The kernel thread id of the watched thread.
    ///
    /// ```no_run
    /// let tid = failstop::register("worker")?.tid();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn tid(&self) -> i32 {
        match self.never {}
    }

    /// How many of failstop's own signals this thread has handled.
    ///
    /// ```no_run
    /// let n = failstop::register("poller")?.signal_count();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn signal_count(&self) -> u32 {
        match self.never {}
    }
}

/// Returned by [`ThreadHandle::idle`].
#[must_use = "the thread is idle only while the guard lives"]
#[derive(Debug)]
pub struct IdleGuard<'a> {
    _never: Infallible,
    _h: PhantomData<&'a ThreadHandle>,
}

/// Returned by [`ThreadHandle::harmless`].
#[must_use = "the thread is harmless only while the guard lives"]
#[derive(Debug)]
pub struct HarmlessGuard<'a> {
    _never: Infallible,
    _h: PhantomData<&'a ThreadHandle>,
}
