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
    /// Registered threads of this runtime (bound to a worker or suspended).
    threads: usize,
}

struct Table {
    runtimes: Vec<Watched>,
    /// What was said once, per runtime.
    said: Vec<(Id, String)>,
    started: bool,
}

static TABLE: Mutex<Table> = Mutex::new(Table { runtimes: Vec::new(), said: Vec::new(), started: false });
static WAKE: Condvar = Condvar::new();

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often the metrics are read: a quarter of the timer period, so that a
/// busy, healthy worker is touched several times per tick of its CPU timer.
fn period() -> Duration {
    let p = LIVE.period_ns.load(Relaxed) / 4;
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
            for (i, w) in rt.workers.iter_mut().enumerate() {
                let now = read(&rt.metrics, i);
                if now != w.seen {
                    w.seen = now;
                    if let Some(s) = w.thread.and_then(live) {
                        s.touch_remote();
                    }
                }
            }
        }
        t = WAKE.wait_timeout(t, period()).unwrap_or_else(|p| p.into_inner()).0;
    }
}

/// Adds registered thread `me` to the runtime of `handle` and binds it to
/// worker `index`. When another live thread is bound there: with
/// `take_over`, that one is suspended and `me` bound; without, `me` is left
/// unbound and false returned.
pub(super) fn join(handle: &Handle, index: usize, me: SlotId, take_over: bool) -> bool {
    let mut t = table();
    let id = handle.id();
    let pos = match t.runtimes.iter().position(|r| r.id == id) {
        Some(p) => p,
        None => {
            let metrics = handle.metrics();
            let workers = vec![Worker::default(); metrics.num_workers()];
            t.runtimes.push(Watched { id, metrics, workers, threads: 0 });
            t.runtimes.len() - 1
        }
    };
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
    for w in rt.workers.iter_mut().filter(|w| w.thread == Some(me)) {
        w.thread = None;
    }
    let Some(n) = rt.workers.len().checked_sub(1) else { return };
    let i = index.min(n);
    if let Some(s) = rt.workers[i].thread.filter(|&h| h != me).and_then(live) {
        s.suspended.store(true, Relaxed);
    }
    rt.workers[i] = Worker { thread: Some(me), seen: read(&rt.metrics, i) };
    if let Some(s) = live(me) {
        s.suspended.store(false, Relaxed);
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
