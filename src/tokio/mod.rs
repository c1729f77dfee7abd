//! Watching a tokio runtime (feature `tokio`): the task that blocks a
//! worker is reported with its own backtrace, which names the async fn.
//!
//! ```no_run
//! # async fn serve() {}
//! let _wd = failstop::start(failstop::Config::new().with_env()?)?;
//! let rt = failstop::tokio::watch(&mut tokio::runtime::Builder::new_multi_thread()).build()?;
//! rt.block_on(async { tokio::spawn(serve()).await })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What tokio offers in a stable release, and what this module builds on
//!
//! tokio 1.54 has no stable per-task hook: `on_task_spawn`,
//! `on_before_task_poll`, `on_after_task_poll` and `on_task_terminate`, and
//! the per-worker poll counter `worker_poll_count`, need
//! `--cfg tokio_unstable`. What it does offer, and what this module uses:
//!
//! - `Builder::on_thread_start` / `on_thread_park` / `on_thread_unpark` /
//!   `on_thread_stop`: called on the thread itself.
//! - `tokio::runtime::worker_index()` (stable since 1.54): the index of the
//!   worker the calling thread runs, `None` on a thread of the blocking pool.
//! - `RuntimeMetrics::worker_total_busy_duration(i)` and
//!   `worker_park_unpark_count(i)`: a worker publishes them each time its
//!   scheduler loop comes around for maintenance (every `event_interval`
//!   polls: 61 on the multi-thread runtime, 31 on the current-thread one)
//!   and each time it parks and unparks. They stop moving while one poll
//!   lasts.
//!
//! So a worker is judged like any registered thread (see the crate docs),
//! from its start (see below), with these progress marks:
//!
//! - **parked** (between the park and unpark hooks): idle, never judged;
//! - **unpark**: a touch;
//! - **running tasks**: a sampler thread (`failstop-tokio`, one per
//!   process) reads every watched worker's two metrics every
//!   `min(warn_after, cpu_budget/4)/4` of wall time and turns each change
//!   into a touch of that worker's slot.
//!
//! A busy, healthy worker that runs short polls back to back without ever
//! parking is therefore touched several times per timer period and reports
//! nothing. A task whose poll does not return (a spin, a
//! `std::thread::sleep`, blocking I/O, a `std::sync::Mutex` held across slow
//! work) freezes its worker's metrics: a spin is caught by the CPU rule
//! (warning at `warn_after`, `stuck` at `cpu_budget`), a sleep or a blocked
//! system call by the blocked rule (`blocked` at `stall_budget`). The
//! warning and the verdict carry the worker's backtrace, captured in its own
//! context: the task's async fn appears in it as `<fn path>::{{closure}}`.
//!
//! Because marks come every `event_interval` polls, a worker whose polls
//! *average* more than `warn_after / event_interval` of CPU gets warnings;
//! lower the interval with `Builder::event_interval` to tighten that (each
//! maintenance polls the I/O driver once more).
//!
//! # The runtime flavours
//!
//! | | multi-thread | current-thread |
//! |---|---|---|
//! | wiring | [`watch`] on the builder | [`watch`] on the builder, and run it with [`block_on`] |
//! | watched threads | each worker, from its start (see below) | the thread in [`block_on`], for the length of the call |
//! | slot name | the thread's name and the worker index (`tokio-rt-worker-0` with tokio's default name; `tokio-rt-worker-?` until its first park) | `tokio-current-thread` |
//! | the `block_on` future | runs on the caller, not a worker: not watched (keep it thin, spawn the work) | polled by the watched thread: watched |
//! | blocking pool (`spawn_blocking`, `block_in_place` closures) | never judged | never judged |
//!
//! # Workers from their start, the blocking pool never
//!
//! A multi-thread runtime runs its workers on threads of its blocking
//! pool, and at a thread's start nothing in tokio's stable API tells
//! whether it will run a worker or a `spawn_blocking` closure:
//! `worker_index()` is `None` until the thread runs the worker, and the
//! first hook tokio runs there is the worker's first park, which a worker
//! whose first task blocks never reaches. What is certain is the order:
//! `build()` queues the `N` workers as the pool's first `N` tasks, the
//! pool's queue is first in, first out, and a thread that took a worker
//! keeps it. So while at most `N` pool threads of the runtime have
//! started, each of them runs a worker or is about to (the proof is on
//! `sampler::thread_started`). Such a thread is registered in
//! `on_thread_start` ([`on_start`]), before its first task, named
//! `<thread name>-?` until its first park gives it its index, and credited
//! with the progress of every worker no registered thread is bound to. The
//! `N+1`th pool thread to start, the first that may run a blocking closure,
//! suspends (before it takes a task) the threads registered that way that
//! have not parked yet: from then on, like every thread that starts later,
//! they are watched from their first park as workers (`worker_index()` is
//! `Some`). A blocking-pool thread is therefore never judged. With tokio's
//! sharded blocking queue (`TOKIO_UNSTABLE_SHARDED_BLOCKING_QUEUE`, or a
//! build with `--cfg tokio_unstable`, which can turn it on), whose order is
//! not first in, first out, no thread is registered at its start. A
//! current-thread runtime's pool has only blocking threads: they are never
//! registered.
//!
//! When `block_in_place` hands a worker to another thread, the thread that
//! takes it over is watched from its first park, and the one that gave it
//! away is suspended (never judged) until it parks as a worker again; in
//! between, that worker's progress is credited to the thread that gave it
//! away.
//!
//! A current-thread runtime is driven by whatever thread calls `block_on`,
//! and tokio has no hook for the end of that call: a thread registered by
//! the park hook would stay judged after `Runtime::block_on` returned, while
//! it does something else. So that flavour is watched only through
//! [`block_on`]; a plain `Runtime::block_on` on a watched current-thread
//! runtime is not watched, and says so once in a `tracing` WARN event.
//!
//! `watch` takes the builder's `on_thread_start`, `on_thread_park`,
//! `on_thread_unpark` and `on_thread_stop` callbacks (tokio keeps one of
//! each). To keep callbacks of your own, call [`on_start`], [`on_park`],
//! [`on_unpark`] and [`on_stop`] from them (set them after `watch`, or
//! instead of it).
//!
//! `#[tokio::main]` builds its runtime itself; to watch it, build the
//! runtime by hand as above.

mod context;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod hooks;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod sampler;

pub use context::{WithContext, with_context};

use crate::error::Error;
use ::tokio::runtime::{Builder, Runtime};
use std::future::Future;

/// Wires failstop into a runtime being built: a worker is registered at
/// its start (or at its first park, see the module doc), idle while
/// parked, touched when it unparks and whenever its scheduler loop comes
/// around, and unregistered when its thread stops. Needs a running
/// watchdog ([`crate::start`]) by the time the workers start (at the
/// latest by their first park); a worker that cannot be registered runs
/// unwatched and the reason is given once in a `tracing` WARN event.
///
/// Sets the builder's `on_thread_start`, `on_thread_park`,
/// `on_thread_unpark` and `on_thread_stop` callbacks (replacing any set
/// before; see [`on_start`] and [`on_park`] to combine them with your own). On platforms other than Linux with glibc it
/// leaves the builder as it is.
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new().with_env()?)?;
/// let rt = failstop::tokio::watch(&mut tokio::runtime::Builder::new_multi_thread())
///     .worker_threads(4)
///     .build()?;
/// rt.block_on(async {
///     tokio::spawn(async { /* work */ }).await
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn watch(builder: &mut Builder) -> &mut Builder {
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        builder.on_thread_start(on_start).on_thread_park(on_park).on_thread_unpark(on_unpark).on_thread_stop(on_stop)
    } else {
        builder
    }
}

/// What [`watch`] runs in `on_thread_start`, for builders that need a
/// start callback of their own: call it first thing in yours (the thread
/// is watched from then on). It registers a pool thread of a multi-thread
/// runtime that is certain to run a worker, so that the worker is watched
/// from its start, and counts the others (see the module doc).
///
/// ```no_run
/// let rt = failstop::tokio::watch(&mut tokio::runtime::Builder::new_multi_thread())
///     .on_thread_start(|| {
///         failstop::tokio::on_start();
///         // your own bookkeeping
///     })
///     .build()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn on_start() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    hooks::on_start();
}

/// What [`watch`] runs in `on_thread_park`, for builders that need a park
/// callback of their own: call it first thing in yours.
///
/// ```no_run
/// let rt = tokio::runtime::Builder::new_multi_thread()
///     .on_thread_start(failstop::tokio::on_start)
///     .on_thread_park(|| {
///         failstop::tokio::on_park();
///         // your own bookkeeping
///     })
///     .on_thread_unpark(failstop::tokio::on_unpark)
///     .on_thread_stop(failstop::tokio::on_stop)
///     .build()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn on_park() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    hooks::on_park();
}

/// What [`watch`] runs in `on_thread_unpark`; see [`on_park`].
///
/// ```no_run
/// let b = tokio::runtime::Builder::new_multi_thread().on_thread_unpark(failstop::tokio::on_unpark);
/// ```
pub fn on_unpark() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    hooks::on_unpark();
}

/// What [`watch`] runs in `on_thread_stop`; see [`on_park`].
///
/// ```no_run
/// let b = tokio::runtime::Builder::new_multi_thread().on_thread_stop(failstop::tokio::on_stop);
/// ```
pub fn on_stop() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    hooks::on_stop();
}

/// Runs `future` to completion on `rt`, like `Runtime::block_on`, with the
/// calling thread watched for the length of the call when `rt` is a
/// current-thread runtime built with [`watch`] (it is that runtime's worker:
/// it polls every task). On a multi-thread runtime the workers are watched
/// by [`watch`] alone and this is `Runtime::block_on`.
///
/// Fails before running anything when the calling thread cannot be
/// registered: no watchdog runs, the thread is already registered (with
/// [`crate::register`] or an enclosing `block_on`), a limit is reached, or
/// the platform is not supported.
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new().with_env()?)?;
/// let rt = failstop::tokio::watch(&mut tokio::runtime::Builder::new_current_thread()).build()?;
/// let answer = failstop::tokio::block_on(&rt, async { 6 * 7 })?;
/// assert_eq!(answer, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn block_on<F: Future>(rt: &Runtime, future: F) -> Result<F::Output, Error> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let _registration = hooks::enter_block_on(rt)?;
        Ok(rt.block_on(future))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (rt, future);
        Err(crate::unsupported::unsupported())
    }
}
