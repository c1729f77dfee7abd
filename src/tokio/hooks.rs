//! The runtime's thread hooks, run by tokio on the thread itself, and the
//! registration that [`block_on`](super::block_on) holds for a
//! current-thread runtime.

use super::sampler;
use crate::error::Error;
use crate::state::slots::{NAME_LEN, Slot};
use crate::watch::registry::ThreadHandle;
use ::tokio::runtime::{Handle, Id, Runtime, RuntimeFlavor};
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// How long a worker whose registration failed waits before trying again
/// at a later park (the watchdog may start after the runtime).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The calling thread's registration as a worker of one runtime.
struct Worker {
    handle: ThreadHandle,
    runtime: Id,
    /// The worker it runs, as of its last park; `None` for a thread
    /// registered at its start that has not parked yet.
    index: Option<usize>,
    /// Inside the idle scope that the park hook opened.
    parked: Cell<bool>,
}

impl Worker {
    fn slot(&self) -> &'static Slot {
        self.handle.raw_slot()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        sampler::leave(self.runtime, self.handle.slot_id());
        // `handle` drops next: the thread is unregistered.
    }
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
    /// No registration attempt before this instant (after a failure).
    static RETRY_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The slot of the calling thread when it is a watched worker (or a
/// current-thread runtime's `block_on` thread).
pub(super) fn current_worker() -> Option<&'static Slot> {
    WORKER.try_with(|cell| cell.try_borrow().ok().and_then(|w| w.as_ref().map(Worker::slot))).ok().flatten()
}

/// `on_thread_start`: a pool thread of a multi-thread runtime starts,
/// before it takes its first task. While the runtime has started no more
/// pool threads than it has workers, the thread is certain to run a worker
/// (see `sampler::thread_started`): it is registered and watched from here,
/// before its first task, under the name `<thread name>-?` (the worker
/// index is not known until it parks). Any other thread, and every thread
/// of a current-thread runtime (its pool has only blocking threads), waits
/// for its first park as a worker. Nothing is said on failure: the thread
/// may be a blocking one, and a worker tries again at its first park.
pub(super) fn on_start() {
    let Ok(handle) = Handle::try_current() else { return };
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread || !sampler::thread_started(&handle) {
        return;
    }
    let name = format!("{}-?", std::thread::current().name().unwrap_or("tokio-worker"));
    let registered = sampler::start().and_then(|()| crate::engine::watchdog::register(&name));
    let Ok(h) = registered else { return };
    // Suspended until the sampler has it in its table (a pool thread beyond
    // the workers may have started in the meantime).
    h.raw_slot().set_suspended(true);
    h.touch();
    sampler::join_presumed(&handle, h.slot_id());
    let worker = Worker { handle: h, runtime: handle.id(), index: None, parked: Cell::new(false) };
    let _ = WORKER.try_with(|cell| {
        if let Ok(mut w) = cell.try_borrow_mut() {
            *w = Some(worker);
        }
    });
}

/// `on_thread_park`: the worker goes idle. A worker seen for the first time
/// is registered; a thread registered at its start learns its worker
/// index; a thread that runs another worker than before (after
/// `block_in_place`) takes that worker over.
pub(super) fn on_park() {
    // `None` on the blocking pool's threads: they are never watched.
    let Some(index) = ::tokio::runtime::worker_index() else { return };
    let _ = WORKER.try_with(|cell| {
        // The hooks never nest, so this borrow never fails.
        let Ok(mut w) = cell.try_borrow_mut() else { return };
        match w.as_mut() {
            Some(x) if x.index != Some(index) || x.slot().suspended.load(std::sync::atomic::Ordering::Relaxed) => {
                if x.index.is_none() {
                    let name = format!("{}-{index}", std::thread::current().name().unwrap_or("tokio-worker"));
                    rename(x.slot(), &name);
                }
                sampler::take_over(x.runtime, index, x.handle.slot_id());
                x.index = Some(index);
            }
            Some(_) => {}
            None => *w = register_worker(index),
        }
        if let Some(x) = w.as_ref()
            && !x.parked.replace(true)
        {
            x.slot().enter(&x.slot().idle_depth);
        }
    });
}

/// `on_thread_unpark`: the worker leaves its idle scope, with a touch.
pub(super) fn on_unpark() {
    let _ = WORKER.try_with(|cell| {
        let Ok(w) = cell.try_borrow() else { return };
        if let Some(x) = w.as_ref()
            && x.parked.replace(false)
        {
            x.slot().leave_idle();
        }
    });
}

/// `on_thread_stop`: the thread ends; its registration goes with it.
pub(super) fn on_stop() {
    let w = WORKER.try_with(|cell| cell.try_borrow_mut().ok().and_then(|mut w| w.take()));
    drop(w);
}

/// Gives the calling thread's slot `name` (cut to [`NAME_LEN`] bytes): a
/// thread registered at its start, once it knows its worker index. The
/// bytes go first and the length last; a report written at that instant
/// may show a mix of the two names (they differ only after the last `-`).
fn rename(slot: &Slot, name: &str) {
    let bytes = name.as_bytes();
    let n = bytes.len().min(NAME_LEN);
    for (d, &c) in slot.name.iter().zip(&bytes[..n]) {
        d.store(c, std::sync::atomic::Ordering::Relaxed);
    }
    slot.name_len.store(n, std::sync::atomic::Ordering::Relaxed);
}

/// Registers the calling thread as worker `index` of the current
/// multi-thread runtime. Failures are said once per runtime and retried
/// after [`RETRY_AFTER`].
fn register_worker(index: usize) -> Option<Worker> {
    let handle = Handle::try_current().ok()?;
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        sampler::say_once(
            handle.id(),
            "a current-thread runtime built with failstop::tokio::watch is driven by Runtime::block_on: its thread \
             is not watched; run it with failstop::tokio::block_on",
        );
        return None;
    }
    let now = Instant::now();
    if RETRY_AT.get().is_some_and(|at| now < at) {
        return None;
    }
    let name = format!("{}-{index}", std::thread::current().name().unwrap_or("tokio-worker"));
    let joined = sampler::start().and_then(|()| {
        let h = crate::engine::watchdog::register(&name)?;
        h.touch();
        sampler::join(&handle, index, h.slot_id(), true);
        Ok(h)
    });
    match joined {
        Ok(h) => Some(Worker { handle: h, runtime: handle.id(), index: Some(index), parked: Cell::new(false) }),
        Err(e) => {
            RETRY_AT.set(Some(now + RETRY_AFTER));
            sampler::say_once(handle.id(), &format!("a worker runs unwatched: {e}"));
            None
        }
    }
}

/// Held by [`block_on`](super::block_on) on a current-thread runtime: the
/// calling thread's registration as that runtime's worker. Not `Send`: it
/// is dropped on the thread that registered.
pub(super) struct BlockOn {
    _not_send: PhantomData<*mut ()>,
}

impl Drop for BlockOn {
    fn drop(&mut self) {
        on_stop();
    }
}

/// Registers the calling thread as worker 0 of `rt` if it is a
/// current-thread runtime; `None` for a multi-thread one.
pub(super) fn enter_block_on(rt: &Runtime) -> Result<Option<BlockOn>, Error> {
    let handle = rt.handle();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        return Ok(None);
    }
    sampler::start()?;
    let h = crate::engine::watchdog::register("tokio-current-thread")?;
    h.touch();
    // Another thread may be in `block_on` already and own the runtime: this
    // one then waits, suspended, until its first park as the worker.
    if !sampler::join(handle, 0, h.slot_id(), false) {
        h.raw_slot().set_suspended(true);
    }
    let worker = Worker { handle: h, runtime: handle.id(), index: Some(0), parked: Cell::new(false) };
    WORKER.with(|cell| *cell.borrow_mut() = Some(worker));
    Ok(Some(BlockOn { _not_send: PhantomData }))
}
