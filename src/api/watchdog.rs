//! [`Watchdog`]: the value that keeps failstop running.

use super::imp;

/// A running watchdog, returned by [`start`](crate::start). Dropping it (or
/// calling [`stop`](Watchdog::stop)) deletes every timer, stops failstop's
/// threads and restores the signal handlers that were installed before.
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
    _imp: imp::Watchdog,
}

impl Watchdog {
    pub(super) fn from_imp(imp: imp::Watchdog) -> Self {
        Watchdog { _imp: imp }
    }

    /// Stops watching: same as dropping the value, spelled out.
    ///
    /// ```no_run
    /// let wd = failstop::start(failstop::Config::new())?;
    /// wd.stop();
    /// assert!(failstop::register("late").is_err());
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn stop(self) {
        drop(self);
    }
}
