//! The platform `imp` of the public API (see `api/`) on platforms other
//! than Linux with glibc: [`start`] validates the configuration and then
//! fails with [`ErrorKind::Unsupported`], and nothing can be registered.
//! The handle and guard types hold [`Infallible`], so no value of them can
//! exist here; their methods have the engine's signatures, so the public
//! types forward to them alike on every platform.

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

/// A running watchdog; never exists here.
#[derive(Debug)]
pub(crate) struct Watchdog {
    _never: Infallible,
}

/// A watched thread's handle; never exists here.
#[derive(Debug)]
pub(crate) struct ThreadHandle {
    never: Infallible,
    _not_send: PhantomData<*mut ()>,
}

impl ThreadHandle {
    pub(crate) fn touch(&self) {
        match self.never {}
    }

    pub(crate) fn tick(&self) {
        match self.never {}
    }

    pub(crate) fn set_context(&self, _context: &'static str) {
        match self.never {}
    }

    pub(crate) fn idle(&self) -> IdleGuard<'_> {
        match self.never {}
    }

    pub(crate) fn harmless(&self) -> HarmlessGuard<'_> {
        match self.never {}
    }

    pub(crate) fn tid(&self) -> i32 {
        match self.never {}
    }

    pub(crate) fn signal_count(&self) -> u32 {
        match self.never {}
    }
}

/// The idle scope; never exists here.
#[derive(Debug)]
pub(crate) struct IdleGuard<'a> {
    _never: Infallible,
    _h: PhantomData<&'a ThreadHandle>,
}

/// The harmless scope; never exists here.
#[derive(Debug)]
pub(crate) struct HarmlessGuard<'a> {
    _never: Infallible,
    _h: PhantomData<&'a ThreadHandle>,
}
