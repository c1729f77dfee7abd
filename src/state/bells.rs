//! The wake-up bells of failstop's two threads, rung from signal handlers
//! and from other threads (see [`Doorbell`]).

use crate::os::sys::Doorbell;

/// Wakes the monitor thread (a verdict to dump, a stop request).
pub(crate) static MONITOR: Doorbell = Doorbell::new();
/// Wakes the reporter thread (a warning to report, a dump to symbolize).
pub(crate) static REPORTER: Doorbell = Doorbell::new();
