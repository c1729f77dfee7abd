//! Floor 6, **engine**: what ties the floors together.
//!
//! - `handler`: the signal handler, and with it **every** function failstop
//!   runs in signal context (timer ticks, warnings, the `stuck` verdict,
//!   capture requests, chaining to the application's handler);
//! - `watchdog`: [`start`](crate::start), [`Watchdog`](crate::Watchdog),
//!   stop, and what a `fork()` leaves of a running watchdog.
//!
//! It may use every floor below; only the front ends (`lib.rs`, `capi`,
//! `tokio`) use it.

pub(crate) mod handler;
pub(crate) mod watchdog;
