//! Fixed limits, public as `failstop::MAX_THREADS`, `WARN_BURST` and
//! `WARN_WINDOW`. Built on every platform.

use std::time::Duration;

/// How many threads can be registered at once.
pub const MAX_THREADS: usize = 4096;
/// Warnings reported at most per window; the rest are counted as suppressed.
pub const WARN_BURST: usize = 5;
/// The rate-limit window.
pub const WARN_WINDOW: Duration = Duration::from_secs(60);
