//! The platform's implementation of the public types: what they hold and
//! call. The engine on Linux with glibc; `unsupported` elsewhere, whose
//! items have the same names and signatures.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) use crate::engine::watchdog::{Watchdog, register, start};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) use crate::watch::guards::{HarmlessGuard, IdleGuard};
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(super) use crate::watch::registry::ThreadHandle;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(super) use crate::unsupported::{HarmlessGuard, IdleGuard, ThreadHandle, Watchdog, register, start};
