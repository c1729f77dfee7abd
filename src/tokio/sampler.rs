//! The sampler: one thread per process (`failstop-tokio`) that reads each
//! watched worker's stable runtime metrics and turns every change into a
//! touch of the slot of the thread that runs that worker.
//!
//! `worker_total_busy_duration(i)` and `worker_park_unpark_count(i)` are
//! published by worker `i` itself when its scheduler loop comes around (its
//! maintenance, every `event_interval` polls) and when it parks and
//! unparks; they stay put while one poll lasts. The sampler reads them every
//! [`period`] (a quarter of the watchdog's timer period), so a worker that
//! keeps coming around is touched several times per timer period, and one
//! stuck in a poll is not touched at all.
//!
//! The table of watched runtimes holds each runtime's `RuntimeMetrics` (a
//! runtime handle) only while a thread of that runtime is registered, so a
//! runtime that shuts down is not kept alive by it.

use crate::error::Error;
use crate::state::settings::LIVE;
use crate::state::slots::{self, Slot};
use ::tokio::runtime::{Handle, Id, RuntimeMetrics};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A registration: slot index and generation.
type SlotId = (usize, u32);

/// One worker index of a watched runtime.
#[derive(Clone, Copy, Default)]
struct Worker {
    /// The registered thread that runs this worker now.
    thread: Option<SlotId>,
    /// The metrics last read: busy ns, park/unpark count.
    seen: (u64, u64),
}

struct Watched {
    id: Id,
    metrics: RuntimeMetrics,
    workers: Vec<Worker>,
    /// Registered threads of this runtime (bound to a worker, presumed, or
    /// suspended).
    threads: usize,
    /// Threads registered at their start as workers that have not parked
    /// yet, so whose worker index is not known (see [`thread_started`]).
    /// Each change of an unbound worker's metrics touches all of them.
    presumed: Vec<SlotId>,
}

struct Table {
    runtimes: Vec<Watched>,
    /// How many pool threads of each multi-thread runtime have started so
    /// far (never forgotten: see [`thread_started`]).
    starts: Vec<(Id, usize)>,
    /// What was said once, per runtime.
    said: Vec<(Id, String)>,
    started: bool,
}

static TABLE: Mutex<Table> =
    Mutex::new(Table { runtimes: Vec::new(), starts: Vec::new(), said: Vec::new(), started: false });
static WAKE: Condvar = Condvar::new();

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often the metrics are read: a sixteenth of the budget or a quarter
/// of the warning threshold, so that a busy, healthy worker is touched
/// several times before either could be reached.
fn period() -> Duration {
    let p = LIVE.warn_after_ns.load(Relaxed).min(LIVE.cpu_budget_ns.load(Relaxed) / 4) / 4;
    Duration::from_nanos(p).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// The slot of registration `id`, if it is still that registration and
/// watched.
fn live(id: SlotId) -> Option<&'static Slot> {
    let s = slots::slot(id.0)?;
    (s.generation.load(Relaxed) == id.1 && s.state.load(Acquire) == slots::ACTIVE).then_some(s)
}

fn read(metrics: &RuntimeMetrics, i: usize) -> (u64, u64) {
    let busy = u64::try_from(metrics.worker_total_busy_duration(i).as_nanos()).unwrap_or(u64::MAX);
    (busy, metrics.worker_park_unpark_count(i))
}

/// Starts the sampler thread if it does not run yet.
pub(super) fn start() -> Result<(), Error> {
    let mut t = table();
    if !t.started {
        std::thread::Builder::new()
            .name("failstop-tokio".into())
            .spawn(run)
            .map_err(|e| Error::os("spawning the failstop-tokio sampler thread", e))?;
        t.started = true;
    }
    Ok(())
}

fn run() {
    let mut t = table();
    loop {
        if t.runtimes.is_empty() {
            t = WAKE.wait(t).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        for rt in &mut t.runtimes {
            let mut unbound_moved = false;
            for (i, w) in rt.workers.iter_mut().enumerate() {
                let now = read(&rt.metrics, i);
                if now != w.seen {
                    w.seen = now;
                    match w.thread.and_then(live) {
                        Some(s) => s.touch_remote(),
                        None => unbound_moved = true,
                    }
                }
            }
            // A worker no registered thread is bound to came around: it is
            // run by one of the presumed threads (which one, tokio does not
            // say), so each of them is credited.
            if unbound_moved {
                for s in rt.presumed.iter().filter_map(|&p| live(p)) {
                    s.touch_remote();
                }
            }
        }
        t = WAKE.wait_timeout(t, period()).unwrap_or_else(|p| p.into_inner()).0;
    }
}

/// Counts the start of a pool thread of the multi-thread runtime of
/// `handle` (called from `on_thread_start`, before the thread takes its
/// first task). Returns whether that thread is certain to run a worker
/// unless told otherwise: the runtime has started no more pool threads than
/// it has workers, and its blocking pool takes tasks in order.
///
/// Why this is sound. The runtime launches its `N` workers as the first `N`
/// tasks of its blocking pool, queued in `build()` before any other task
/// can be. The pool's default queue hands tasks out first in, first out,
/// and a thread that took a worker's task runs that worker until shutdown
/// or a `block_in_place` hand-off (which queues a new task, behind the
/// first `N`). So before any thread takes a task that is not one of the
/// first `N` worker tasks, those `N` were taken by `N` distinct threads and
/// the one taking the other task is an `N+1`th; each of them started (and
/// counted itself here) before taking its task. Hence while at most `N`
/// pool threads have started, every one of them runs, or is about to run,
/// a worker. When the `N+1`th starts, it suspends the threads presumed
/// workers that have not parked yet (they may not have taken their task,
/// and may take a blocking one), here, before it takes a task itself; they
/// are judged again from their first park as workers, like any thread that
/// starts later.
pub(super) fn thread_started(handle: &Handle) -> bool {
    let n = handle.metrics().num_workers();
    let id = handle.id();
    let mut t = table();
    let s = match t.starts.iter_mut().find(|(i, _)| *i == id) {
        Some((_, c)) => {
            *c = c.saturating_add(1);
            *c
        }
        None => {
            t.starts.push((id, 1));
            1
        }
    };
    if s == n + 1
        && let Some(rt) = t.runtimes.iter_mut().find(|r| r.id == id)
    {
        for p in rt.presumed.drain(..) {
            if let Some(slot) = live(p) {
                slot.set_suspended(true);
            }
        }
    }
    s <= n && fifo_pool()
}

/// Whether tokio's blocking pool hands tasks out in order: not with the
/// sharded queue, which `TOKIO_UNSTABLE_SHARDED_BLOCKING_QUEUE` (read by
/// `Builder::new_*`) or `Builder::enable_sharded_blocking_queue` (only
/// with `--cfg tokio_unstable`) turns on. Read at each thread start: a
/// variable set by then, or a build with `tokio_unstable`, turns the
/// presumption off.
#[allow(unexpected_cfgs)]
fn fifo_pool() -> bool {
    if cfg!(tokio_unstable) {
        return false;
    }
    std::env::var_os("TOKIO_UNSTABLE_SHARDED_BLOCKING_QUEUE").is_none_or(|v| v.is_empty() || v == "0")
}

/// The position of the runtime of `handle` in the table, added if new.
fn entry(t: &mut Table, handle: &Handle) -> usize {
    let id = handle.id();
    match t.runtimes.iter().position(|r| r.id == id) {
        Some(p) => p,
        None => {
            let metrics = handle.metrics();
            let workers = vec![Worker::default(); metrics.num_workers()];
            t.runtimes.push(Watched { id, metrics, workers, threads: 0, presumed: Vec::new() });
            t.runtimes.len() - 1
        }
    }
}

/// Adds registered thread `me`, which [`thread_started`] presumed a
/// worker, to the runtime of `handle`, unbound. Returns whether it is
/// still presumed a worker (no pool thread beyond the workers started in
/// the meantime): then `me` is watched (not suspended), else it stays
/// suspended until its first park as a worker. `me` must be suspended when
/// this is called.
pub(super) fn join_presumed(handle: &Handle, me: SlotId) -> bool {
    let n = handle.metrics().num_workers();
    let id = handle.id();
    let mut t = table();
    let presumed = t.starts.iter().find(|(i, _)| *i == id).is_some_and(|&(_, s)| s <= n);
    let pos = entry(&mut t, handle);
    let rt = &mut t.runtimes[pos];
    rt.threads += 1;
    if presumed && let Some(slot) = live(me) {
        rt.presumed.push(me);
        slot.set_suspended(false);
    }
    WAKE.notify_all();
    presumed
}

/// Adds registered thread `me` to the runtime of `handle` and binds it to
/// worker `index`. When another live thread is bound there: with
/// `take_over`, that one is suspended and `me` bound; without, `me` is left
/// unbound and false returned.
pub(super) fn join(handle: &Handle, index: usize, me: SlotId, take_over: bool) -> bool {
    let mut t = table();
    let pos = entry(&mut t, handle);
    t.runtimes[pos].threads += 1;
    let holder = t.runtimes[pos].workers.get(index).and_then(|w| w.thread).and_then(|h| live(h).map(|_| h));
    let bound = match holder {
        Some(h) if h != me && !take_over => false,
        _ => {
            bind(&mut t.runtimes[pos], index, me);
            true
        }
    };
    WAKE.notify_all();
    bound
}

/// Binds `me`, already a registered thread of runtime `id`, to worker
/// `index` (it runs that worker now), suspending the thread bound before.
pub(super) fn take_over(id: Id, index: usize, me: SlotId) {
    let mut t = table();
    if let Some(rt) = t.runtimes.iter_mut().find(|r| r.id == id) {
        bind(rt, index, me);
    }
}

fn bind(rt: &mut Watched, index: usize, me: SlotId) {
    rt.presumed.retain(|&p| p != me);
    for w in rt.workers.iter_mut().filter(|w| w.thread == Some(me)) {
        w.thread = None;
    }
    let Some(n) = rt.workers.len().checked_sub(1) else { return };
    let i = index.min(n);
    if let Some(s) = rt.workers[i].thread.filter(|&h| h != me).and_then(live) {
        s.set_suspended(true);
    }
    rt.workers[i] = Worker { thread: Some(me), seen: read(&rt.metrics, i) };
    if let Some(s) = live(me) {
        s.set_suspended(false);
    }
}

/// Removes registered thread `me` from runtime `id`; the runtime's entry
/// (and its handle) goes when no thread of it is left.
pub(super) fn leave(id: Id, me: SlotId) {
    let gone = {
        let mut t = table();
        let Some(pos) = t.runtimes.iter().position(|r| r.id == id) else { return };
        let rt = &mut t.runtimes[pos];
        for w in rt.workers.iter_mut().filter(|w| w.thread == Some(me)) {
            w.thread = None;
        }
        rt.presumed.retain(|&p| p != me);
        rt.threads = rt.threads.saturating_sub(1);
        (rt.threads == 0).then(|| t.runtimes.swap_remove(pos))
    };
    // The runtime handle drops here, outside the lock.
    drop(gone);
}

/// Says `what` about runtime `id` in a `tracing` WARN event, once.
pub(super) fn say_once(id: Id, what: &str) {
    let mut t = table();
    if t.said.iter().any(|(i, w)| *i == id && w == what) {
        return;
    }
    t.said.push((id, what.to_string()));
    drop(t);
    tracing::warn!(runtime = %id, "failstop::tokio: {what}");
}
