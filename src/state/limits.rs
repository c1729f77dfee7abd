//! Fixed limits, public as `failstop::limits::MAX_THREADS`, `WARN_BURST` and
//! `WARN_WINDOW`. Built on every platform.

use std::time::Duration;

/// How many threads can be registered at once. The slots' memory is
/// allocated as registrations reach it, a segment of 256 slots at a time
/// (about 100 KiB of address space, resident only as slots are used).
///
/// ```
/// assert!(failstop::stats().registered <= failstop::limits::MAX_THREADS);
/// ```
pub const MAX_THREADS: usize = 65_536;
/// Warnings reported at most per window; the rest are counted as suppressed.
///
/// ```
/// // At most this many warnings in any WARN_WINDOW; `stats()` counts the rest.
/// let s = failstop::stats();
/// assert!(s.warnings <= s.warnings + s.suppressed_warnings);
/// assert_eq!(failstop::limits::WARN_BURST, 5);
/// ```
pub const WARN_BURST: usize = 5;
/// The rate-limit window of [`WARN_BURST`].
///
/// ```
/// assert_eq!(failstop::limits::WARN_WINDOW, std::time::Duration::from_secs(60));
/// ```
pub const WARN_WINDOW: Duration = Duration::from_secs(60);
