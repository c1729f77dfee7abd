//! Configuration: the [`Config`] builder, its [`Settings`], and the
//! `FAILSTOP_*` environment variables that can override them.
//!
//! Every value is checked before the watchdog starts. A bad value is never
//! ignored or replaced with a default: it is an [`Error`](crate::Error) of
//! kind [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) whose
//! message names the setting or variable, repeats the value as given and
//! says what is allowed.
//!
//! Floor 1 (pure: no system call, no global state). It may use only
//! `error`. Inside it, `builder` uses `env`, `signal`, `action` and
//! `systemd`; `env` uses `action`; none of them uses this index.

mod action;
mod builder;
mod env;
mod signal;
mod systemd;
#[cfg(test)]
mod tests;

pub use action::Action;
pub use builder::{Config, Settings};
pub use env::{ENV_VARS, EnvVar};
pub use signal::Signal;
pub use systemd::Systemd;
