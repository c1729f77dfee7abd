//! Registering and releasing watched threads, and [`ThreadHandle`], the
//! handle a watched thread marks its progress with.
//!
//! The slot table itself (and its signal-safety contract) is in
//! `state::slots`; this file moves slots through their states and arms or
//! disarms their timers (`cpu_timer`).

use super::cpu_timer;
use super::guards::{HarmlessGuard, IdleGuard};
use crate::error::{Error, ErrorKind};
use crate::os::stackwalk::StackBounds;
use crate::os::sys;
use crate::state::progress;
use crate::state::settings::LIVE;
use crate::state::slots::{
    self, ACTIVE, CLAIMED, DEPARTED_PANICKED, DETACHED, FREE, MAX_THREADS, NAME_LEN, Slot, pack_context,
};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::*;

thread_local! {
    /// The calling thread's registration, so that registering twice is an
    /// error and a thread that exits without dropping its handle is cleaned
    /// up by this value's destructor.
    static REGISTRATION: RegistrationTls = const { RegistrationTls(Cell::new(None)) };
}

struct RegistrationTls(Cell<Option<(usize, u32)>>);

impl Drop for RegistrationTls {
    fn drop(&mut self) {
        if let Some((idx, generation)) = self.0.take() {
            release(idx, generation);
        }
    }
}

/// Watches the calling thread under `name`. See [`crate::register`]; the
/// front ends call it through `engine::watchdog::register`, which prepares
/// failstop's threads first.
pub(crate) fn register(name: &str) -> Result<ThreadHandle, Error> {
    let run = LIVE.registration(sys::getpid()).ok_or_else(|| {
        Error::new(ErrorKind::NotRunning, "register: no watchdog is running; call failstop::start first")
    })?;
    let existing = REGISTRATION
        .try_with(|r| r.0.get())
        .map_err(|_| Error::new(ErrorKind::NotRunning, "register: the calling thread is exiting"))?;
    if let Some((idx, generation)) = existing
        && let Some(s) = slots::slot(idx)
        && s.generation.load(Relaxed) == generation
        && s.state.load(Relaxed) != FREE
    {
        return Err(Error::new(
            ErrorKind::AlreadyRegistered,
            format!("register({name:?}): this thread is already registered (as slot {idx}); drop its handle first"),
        ));
    }
    let (idx, generation) = slots::claim().map_err(|why| {
        let text = if why == slots::ALL_IN_USE {
            format!(
                "register({name:?}): all {MAX_THREADS} thread slots are in use (failstop::limits::MAX_THREADS); drop the \
                 handles of threads that no longer need watching (a thread that exits frees its slot)"
            )
        } else {
            format!("register({name:?}): no thread slot: {why}")
        };
        Error::new(ErrorKind::ResourceLimit, text)
    })?;
    let (Some(s), Ok(())) = (slots::slot(idx), progress::prepare(idx)) else {
        slots::free(idx);
        return Err(Error::new(
            ErrorKind::ResourceLimit,
            format!("register({name:?}): no memory for the monitor's record of the thread"),
        ));
    };
    let tid = sys::gettid();
    s.tid.store(tid, Relaxed);
    let bytes = name.as_bytes();
    let n = bytes.len().min(NAME_LEN);
    for (d, &c) in s.name.iter().zip(&bytes[..n]) {
        d.store(c, Relaxed);
    }
    s.name_len.store(n, Relaxed);
    let mut comm = [0u8; 64];
    let by_comm = crate::os::procfs::read_comm(tid, &mut comm).is_ok_and(|c| c == bytes);
    s.named_by_comm.store(by_comm, Relaxed);
    s.touch_seq.store(0, Relaxed);
    s.tick_seq.store(0, Relaxed);
    s.context.store(0, Relaxed);
    s.idle_depth.store(0, Relaxed);
    s.harmless_depth.store(0, Relaxed);
    s.remote_seq.store(0, Relaxed);
    s.suspended.store(false, Relaxed);
    s.late_verdict.store(0, Relaxed);
    s.departed.store(0, Relaxed);
    s.stamp.store(slots::EPOCH.load(Relaxed), Relaxed);
    let bounds = StackBounds::current_thread();
    let (lo, hi) = bounds.map_or((0, 0), |b| (b.lo(), b.hi()));
    s.stack_lo.store(lo, Relaxed);
    s.stack_hi.store(hi, Relaxed);

    let watched = !run.disabled;
    if watched && let Err(e) = cpu_timer::attach(s, idx, &run) {
        slots::free(idx);
        return Err(e.prefixed(&format!("register({name:?})")));
    }
    s.state.store(if watched { ACTIVE } else { DETACHED }, Release);
    progress::look_soon(idx);
    REGISTRATION.with(|r| r.0.set(Some((idx, generation))));
    Ok(ThreadHandle { slot: s, idx, generation, _not_send: PhantomData })
}

/// Frees slot `idx` if it still holds registration `generation`. Runs on the owner
/// thread (handle drop, thread-exit destructor, `failstop_unregister`).
pub(crate) fn release(idx: usize, generation: u32) {
    let Some(s) = slots::slot(idx) else { return };
    if s.generation.load(Relaxed) != generation {
        return;
    }
    let st = s.state.load(Acquire);
    if (st == ACTIVE || st == DETACHED) && s.state.compare_exchange(st, CLAIMED, Acquire, Relaxed).is_ok() {
        cpu_timer::detach(s);
        slots::free(idx);
    }
    let _ = REGISTRATION.try_with(|r| {
        if r.0.get() == Some((idx, generation)) {
            r.0.set(None);
        }
    });
}

/// Frees the `DETACHED` slots (the watchdog stopped) of threads that no
/// longer exist: they exited without running thread-local destructors.
/// `ACTIVE` slots of vanished threads are the monitor's (its vanished rule
/// convicts them first, then calls [`reap`]). Called by the monitor.
pub(crate) fn reap_detached_dead() {
    for (idx, s) in slots::iter() {
        if s.state.load(Acquire) == DETACHED && sys::tgkill(s.tid.load(Relaxed), 0).is_err() {
            reap(idx);
        }
    }
}

/// Frees slot `idx`, whose owner is gone (or has departed: see
/// [`Slot::departed`]): its timer is deleted. Monitor thread.
pub(crate) fn reap(idx: usize) {
    let Some(s) = slots::slot(idx) else { return };
    let st = s.state.load(Acquire);
    if (st == ACTIVE || st == DETACHED) && s.state.compare_exchange(st, CLAIMED, Acquire, Relaxed).is_ok() {
        cpu_timer::detach(s);
        slots::free(idx);
    }
}

/// The owner unwinds from a panic with its handle alive, and panics are
/// verdicts: its timer is deleted (the thread may live on if the panic is
/// caught), but the slot stays `ACTIVE`, marked [`DEPARTED_PANICKED`], for the monitor's
/// vanished rule. Owner thread.
fn depart_by_panic(idx: usize, generation: u32) {
    let Some(s) = slots::slot(idx) else { return };
    if s.generation.load(Relaxed) != generation || s.state.load(Acquire) != ACTIVE {
        release(idx, generation);
        return;
    }
    cpu_timer::detach(s);
    s.departed.store(DEPARTED_PANICKED, Release);
    progress::look_soon(idx);
    // The thread-exit destructor must not release the slot before the
    // monitor has seen it.
    let _ = REGISTRATION.try_with(|r| {
        if r.0.get() == Some((idx, generation)) {
            r.0.set(None);
        }
    });
}

/// Stops watching every slot (the watchdog stops): timers are deleted, the
/// owners keep their handles.
pub(crate) fn detach_all() {
    for (_, s) in slots::iter() {
        if s.state.compare_exchange(ACTIVE, DETACHED, AcqRel, Relaxed).is_ok() {
            cpu_timer::detach(s);
        }
    }
}

/// After `fork()` in the child: no thread but the caller exists and no timer
/// was inherited, so nothing is watched. Async-signal-safe.
///
/// `forker` is the forking thread's tid in the parent, `me` its tid in the
/// child: its slot (if it had one) gets the child's tid, so that a watchdog
/// started later in the child sees its owner alive and leaves the slot to
/// the owner's handle (whose drop frees the slot). Without it the monitor
/// would take the owner for gone and free the slot under its handle.
pub(crate) fn forget_after_fork(forker: libc::pid_t, me: libc::pid_t) {
    for (_, s) in slots::iter() {
        let st = s.state.load(Relaxed);
        if st == ACTIVE {
            s.has_timer.store(false, Relaxed);
            s.state.store(DETACHED, Relaxed);
        }
        if (st == ACTIVE || st == DETACHED) && forker != 0 && s.tid.load(Relaxed) == forker {
            s.tid.store(me, Relaxed);
        }
    }
}

/// A registered thread, as the engine holds it: its slot and the
/// registration's generation. The public [`crate::ThreadHandle`] wraps it
/// (and documents each method); front ends inside the crate
/// (`failstop::tokio`) hold it directly. Not `Send`: it belongs to the
/// thread it watches. Dropping it stops watching the thread.
pub(crate) struct ThreadHandle {
    slot: &'static Slot,
    idx: usize,
    generation: u32,
    _not_send: PhantomData<*mut ()>,
}

impl std::fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut name = [0u8; NAME_LEN];
        let n = self.slot.name_into(&mut name);
        f.debug_struct("ThreadHandle")
            .field("slot", &self.idx)
            .field("name", &String::from_utf8_lossy(&name[..n]))
            .field("tid", &self.slot.tid.load(Relaxed))
            .finish()
    }
}

impl ThreadHandle {
    /// Progress: the loop came around. See [`crate::ThreadHandle::touch`].
    #[inline]
    pub(crate) fn touch(&self) {
        self.slot.touch();
    }

    /// Progress: one unit of work. See [`crate::ThreadHandle::tick`].
    #[inline]
    pub(crate) fn tick(&self) {
        self.slot.tick();
    }

    /// What the thread is doing now. See [`crate::ThreadHandle::set_context`].
    #[inline]
    pub(crate) fn set_context(&self, context: &'static str) {
        self.slot.set_context(pack_context(context.as_ptr() as usize, Some(context.len())));
    }

    /// Enters the idle scope. See [`crate::ThreadHandle::idle`].
    #[inline]
    pub(crate) fn idle(&self) -> IdleGuard<'_> {
        IdleGuard::new(self.slot)
    }

    /// Enters the harmless scope. See [`crate::ThreadHandle::harmless`].
    #[inline]
    pub(crate) fn harmless(&self) -> HarmlessGuard<'_> {
        HarmlessGuard::new(self.slot)
    }

    /// The kernel thread id of the watched thread.
    #[inline]
    pub(crate) fn tid(&self) -> i32 {
        self.slot.tid.load(Relaxed)
    }

    /// How many of failstop's own signals the thread has handled. See
    /// [`crate::ThreadHandle::signal_count`].
    #[inline]
    pub(crate) fn signal_count(&self) -> u32 {
        self.slot.own_signals.load(Relaxed)
    }

    /// The raw slot, for `failstop::tokio`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn raw_slot(&self) -> &'static Slot {
        self.slot
    }

    /// The slot index and registration generation, for code that refers to
    /// this registration from another thread (`failstop::tokio`).
    pub(crate) fn slot_id(&self) -> (usize, u32) {
        (self.idx, self.generation)
    }
}

impl Drop for ThreadHandle {
    fn drop(&mut self) {
        if std::thread::panicking() && LIVE.panic_is_verdict.load(Relaxed) {
            depart_by_panic(self.idx, self.generation);
        } else {
            release(self.idx, self.generation);
        }
    }
}
