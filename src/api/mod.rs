//! The public types, each written once over a platform `imp`: the engine
//! on Linux with glibc, [`unsupported`](crate::unsupported) elsewhere. A
//! method exists on every platform or on none, so a program that builds on
//! Linux builds everywhere (`examples/api_surface.rs` uses every public
//! item, and CI type-checks it for FreeBSD).
//!
//! Each type holds its platform's value and forwards to it; the forwarding
//! is `#[inline]`, so the hot path (`touch`, `tick`) costs what the
//! engine's own does.

mod guards;
mod imp;
mod thread_handle;
mod watchdog;

pub use guards::{HarmlessGuard, IdleGuard};
pub use thread_handle::ThreadHandle;
pub use watchdog::Watchdog;

/// Starts the platform's watchdog; see [`crate::start`].
pub(crate) fn start(config: crate::config::Config) -> Result<Watchdog, crate::error::Error> {
    imp::start(config).map(Watchdog::from_imp)
}

/// Registers the calling thread on the platform; see [`crate::register`].
pub(crate) fn register(name: &str) -> Result<ThreadHandle, crate::error::Error> {
    imp::register(name).map(ThreadHandle::from_imp)
}
