//! Floor 4, **watch**: putting threads under watch and taking them off it.
//!
//! - `registry`: register and release a thread, reap the slots of threads
//!   that died, [`ThreadHandle`](crate::ThreadHandle);
//! - `guards`: the idle and harmless scopes of a handle;
//! - `cpu_timer`: each watched thread's CPU-time timer.
//!
//! Normal context, on the thread being registered or released (except
//! `cpu_timer::detach` and `registry::forget_after_fork`, which are
//! async-signal-safe). It may use `state`, `os`, `config`, `verdict` and
//! `error`; never the fatal path or the handler above it.

pub(crate) mod cpu_timer;
pub(crate) mod guards;
pub(crate) mod registry;
