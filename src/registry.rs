//! The registry of watched threads: a fixed array of cache-padded slots.
//!
//! # Signal-safety contract
//!
//! The slots live in a `static` array, zero-initialised by the loader: there
//! is nothing to initialise lazily and nothing is ever freed, so the signal
//! handler can index the array at any time. Every field is an atomic. A slot
//! goes `FREE → CLAIMED → ACTIVE` when a thread registers (fields are filled
//! while `CLAIMED`, then published with a release store), `ACTIVE → DETACHED`
//! when the watchdog stops (the timer is gone, the owner still holds its
//! handle), and back to `FREE` only when its owner unregisters or is found
//! dead. The handler acts on a slot only when it is `ACTIVE` and its tid is
//! the handler's own thread.
//!
//! # The hot path
//!
//! [`ThreadHandle::touch`] and [`ThreadHandle::tick`] are a relaxed load and a
//! relaxed store to a counter that only the owning thread writes, in a cache
//! line no other thread writes: no clock read, no system call, no TLS lookup.

use crate::error::{Error, ErrorKind};
use crate::verdict::Tracker;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

pub(crate) use crate::gate::MAX_THREADS;
/// Frames kept per captured backtrace.
pub(crate) const MAX_FRAMES: usize = 64;
/// Bytes of a thread name kept (longer names are cut).
pub(crate) const NAME_LEN: usize = 48;

pub(crate) const FREE: u32 = 0;
pub(crate) const CLAIMED: u32 = 1;
pub(crate) const ACTIVE: u32 = 2;
pub(crate) const DETACHED: u32 = 3;

/// Warning capture buffer states.
pub(crate) const CAP_EMPTY: u32 = 0;
pub(crate) const CAP_WRITING: u32 = 1;
pub(crate) const CAP_READY: u32 = 2;

/// Frames captured in a thread's own context, with a small state machine so
/// that the writer (a handler) and the reader (another thread) never overlap.
pub(crate) struct Frames {
    pub state: AtomicU32,
    pub len: AtomicUsize,
    pub addrs: [AtomicUsize; MAX_FRAMES],
    /// The figure that goes with the capture (CPU ns since touch or progress).
    pub figure: AtomicU64,
}

impl Frames {
    pub(crate) const fn new() -> Self {
        Frames {
            state: AtomicU32::new(CAP_EMPTY),
            len: AtomicUsize::new(0),
            addrs: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            figure: AtomicU64::new(0),
        }
    }

    /// Stores frames (async-signal-safe).
    pub(crate) fn store(&self, frames: &[usize]) {
        for (dst, &a) in self.addrs.iter().zip(frames) {
            dst.store(a, Relaxed);
        }
        self.len.store(frames.len().min(MAX_FRAMES), Relaxed);
    }

    /// Copies the frames out into `out`, returning how many.
    pub(crate) fn load(&self, out: &mut [usize; MAX_FRAMES]) -> usize {
        let n = self.len.load(Relaxed).min(MAX_FRAMES);
        for (o, a) in out.iter_mut().zip(&self.addrs[..n]) {
            *o = a.load(Relaxed);
        }
        n
    }
}

/// One registered thread. The first cache line holds what the owner writes
/// on its hot path; everything else is written rarely.
pub(crate) struct Slot {
    // --- hot: written only by the owner thread ---
    pub touch_seq: AtomicU64,
    pub tick_seq: AtomicU64,
    pub idle_depth: AtomicU32,
    pub harmless_depth: AtomicU32,
    // --- lifecycle ---
    pub state: CachePadded<AtomicU32>,
    // --- written by other threads (outside the owner's hot line) ---
    /// Progress observed from another thread: `failstop::tokio`'s sampler
    /// saw the worker's scheduler loop come around. Counts as a touch.
    /// Any thread, `fetch_add`.
    pub remote_seq: AtomicU64,
    /// Set by another thread: the thread does no watched work for now (a
    /// tokio worker that handed its core to another thread). Counts as a
    /// scope: never judged while set.
    pub suspended: AtomicBool,
    pub generation: AtomicU32,
    pub tid: AtomicI32,
    pub cpu_clock: AtomicI32,
    /// The POSIX timer (a `timer_t`), valid while `has_timer`.
    pub timer: AtomicUsize,
    pub has_timer: AtomicBool,
    pub stack_lo: AtomicUsize,
    pub stack_hi: AtomicUsize,
    pub altstack: AtomicUsize,
    pub altstack_len: AtomicUsize,
    /// The alternate stack the thread had before ours (restored on unregister).
    pub prev_altstack: AtomicUsize,
    pub prev_altstack_len: AtomicUsize,
    pub name_len: AtomicUsize,
    pub name: [std::sync::atomic::AtomicU8; NAME_LEN],
    /// failstop's own signals (timer ticks, capture requests) handled on
    /// the owner thread; written only by the owner's handler (wrapping).
    pub own_signals: AtomicU32,
    // --- the stuck rule's state: written only by the owner's handler ---
    pub seen_touch: AtomicU64,
    pub seen_tick: AtomicU64,
    pub progress_cpu: AtomicU64,
    pub touch_cpu: AtomicU64,
    pub warn_next: AtomicU64,
    pub armed: AtomicBool,
    pub convicted: AtomicBool,
    // --- captures taken by the owner's handler ---
    pub warning: Frames,
    /// A verdict reached on this thread after the dump was already written
    /// (non-fatal modes): the figure, for the reporter to print; 0 = none.
    pub late_verdict: AtomicU64,
    /// The kind of that late verdict (`action::STUCK` or `action::BLOCKED`).
    pub late_kind: AtomicU32,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            touch_seq: AtomicU64::new(0),
            tick_seq: AtomicU64::new(0),
            idle_depth: AtomicU32::new(0),
            harmless_depth: AtomicU32::new(0),
            state: CachePadded::new(AtomicU32::new(FREE)),
            remote_seq: AtomicU64::new(0),
            suspended: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            tid: AtomicI32::new(0),
            cpu_clock: AtomicI32::new(0),
            timer: AtomicUsize::new(0),
            has_timer: AtomicBool::new(false),
            stack_lo: AtomicUsize::new(0),
            stack_hi: AtomicUsize::new(0),
            altstack: AtomicUsize::new(0),
            altstack_len: AtomicUsize::new(0),
            prev_altstack: AtomicUsize::new(0),
            prev_altstack_len: AtomicUsize::new(0),
            name_len: AtomicUsize::new(0),
            name: [const { std::sync::atomic::AtomicU8::new(0) }; NAME_LEN],
            own_signals: AtomicU32::new(0),
            seen_touch: AtomicU64::new(0),
            seen_tick: AtomicU64::new(0),
            progress_cpu: AtomicU64::new(0),
            touch_cpu: AtomicU64::new(0),
            warn_next: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            convicted: AtomicBool::new(false),
            warning: Frames::new(),
            late_verdict: AtomicU64::new(0),
            late_kind: AtomicU32::new(0),
        }
    }

    /// The thread's name as registered (copied out; async-signal-safe).
    pub(crate) fn name_into(&self, out: &mut [u8; NAME_LEN]) -> usize {
        let n = self.name_len.load(Relaxed).min(NAME_LEN);
        for (o, c) in out.iter_mut().zip(&self.name[..n]) {
            *o = c.load(Relaxed);
        }
        n
    }

    /// The loop came around (progress; the warning clock restarts). Only the
    /// owner thread writes these counters, so a relaxed load and store (no
    /// locked read-modify-write) are enough. Shared by `ThreadHandle` and
    /// the C ABI.
    #[inline(always)]
    pub(crate) fn touch(&self) {
        self.touch_seq.store(self.touch_seq.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// One unit of work done (progress for the verdict only).
    #[inline(always)]
    pub(crate) fn tick(&self) {
        self.tick_seq.store(self.tick_seq.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Enters an idle or harmless scope (`depth` is `idle_depth` or
    /// `harmless_depth`); scopes nest.
    #[inline(always)]
    pub(crate) fn enter(depth: &AtomicU32) {
        depth.store(depth.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Leaves a scope; an unmatched leave (a C caller's mistake) stays at 0.
    #[inline(always)]
    pub(crate) fn leave(depth: &AtomicU32) {
        let v = depth.load(Relaxed);
        depth.store(v.saturating_sub(1), Relaxed);
    }

    /// Progress observed by another thread (see `remote_seq`): a touch.
    #[inline]
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn touch_remote(&self) {
        self.remote_seq.fetch_add(1, Relaxed);
    }

    /// The touch count the rules see: the owner's touches plus the remote
    /// ones. Both only grow, so the sum moves whenever either does.
    #[inline]
    pub(crate) fn touches(&self) -> u64 {
        self.touch_seq.load(Relaxed).wrapping_add(self.remote_seq.load(Relaxed))
    }

    /// Counts one of failstop's own signals handled on the owner thread.
    /// Only the owner's handler writes the counter. Async-signal-safe.
    pub(crate) fn note_own_signal(&self) {
        self.own_signals.store(self.own_signals.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Whether the thread is inside an idle or harmless scope, or suspended.
    pub(crate) fn scoped(&self) -> bool {
        self.idle_depth.load(Relaxed) > 0 || self.harmless_depth.load(Relaxed) > 0 || self.suspended.load(Relaxed)
    }

    pub(crate) fn load_tracker(&self) -> Tracker {
        Tracker {
            seen_touch: self.seen_touch.load(Relaxed),
            seen_tick: self.seen_tick.load(Relaxed),
            progress_cpu: self.progress_cpu.load(Relaxed),
            touch_cpu: self.touch_cpu.load(Relaxed),
            warn_next: self.warn_next.load(Relaxed),
            armed: self.armed.load(Relaxed),
            convicted: self.convicted.load(Relaxed),
        }
    }

    pub(crate) fn store_tracker(&self, t: &Tracker) {
        self.seen_touch.store(t.seen_touch, Relaxed);
        self.seen_tick.store(t.seen_tick, Relaxed);
        self.progress_cpu.store(t.progress_cpu, Relaxed);
        self.touch_cpu.store(t.touch_cpu, Relaxed);
        self.warn_next.store(t.warn_next, Relaxed);
        self.armed.store(t.armed, Relaxed);
        self.convicted.store(t.convicted, Relaxed);
    }

    /// Whether the slot is watched and belongs to thread `tid`.
    pub(crate) fn is_active_for(&self, tid: libc::pid_t) -> bool {
        self.state.load(Acquire) == ACTIVE && self.tid.load(Relaxed) == tid
    }
}

/// The slots. Static, zero-initialised, never freed (see the module doc).
pub(crate) static SLOTS: [CachePadded<Slot>; MAX_THREADS] = [const { CachePadded::new(Slot::new()) }; MAX_THREADS];

/// The slot at `idx`, if in range (async-signal-safe).
pub(crate) fn slot(idx: usize) -> Option<&'static Slot> {
    SLOTS.get(idx).map(|s| &**s)
}

/// Number of slots in the ACTIVE state.
pub(crate) fn watched_count() -> usize {
    SLOTS.iter().filter(|s| s.state.load(Relaxed) == ACTIVE).count()
}

/// Finds the slot watching `tid` (async-signal-safe, linear scan).
pub(crate) fn find_tid(tid: libc::pid_t) -> Option<usize> {
    SLOTS.iter().position(|s| {
        let st = s.state.load(Acquire);
        (st == ACTIVE || st == DETACHED) && s.tid.load(Relaxed) == tid
    })
}

/// Claims a free slot, returning its index and new generation.
fn claim() -> Option<(usize, u32)> {
    for (i, s) in SLOTS.iter().enumerate() {
        if s.state.load(Relaxed) == FREE && s.state.compare_exchange(FREE, CLAIMED, Acquire, Relaxed).is_ok() {
            let generation = s.generation.fetch_add(1, Relaxed).wrapping_add(1);
            return Some((i, generation));
        }
    }
    None
}

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

/// Watches the calling thread under `name`. See [`crate::register`].
pub(crate) fn register(name: &str) -> Result<ThreadHandle, Error> {
    let run = crate::watchdog::current().ok_or_else(|| {
        Error::new(ErrorKind::NotRunning, "register: no watchdog is running; call failstop::start first")
    })?;
    let existing = REGISTRATION
        .try_with(|r| r.0.get())
        .map_err(|_| Error::new(ErrorKind::NotRunning, "register: the calling thread is exiting"))?;
    if let Some((idx, generation)) = existing {
        let s = &SLOTS[idx];
        if s.generation.load(Relaxed) == generation && s.state.load(Relaxed) != FREE {
            return Err(Error::new(
                ErrorKind::AlreadyRegistered,
                format!("register({name:?}): this thread is already registered (as slot {idx}); drop its handle first"),
            ));
        }
    }
    let (idx, generation) = claim().ok_or_else(|| {
        Error::new(
            ErrorKind::ResourceLimit,
            format!(
                "register({name:?}): all {MAX_THREADS} thread slots are in use (failstop::MAX_THREADS, fixed at build \
                 time); drop the handles of threads that no longer need watching (a thread that exits frees its slot)"
            ),
        )
    })?;
    let s = &SLOTS[idx];
    let tid = crate::sys::gettid();
    s.tid.store(tid, Relaxed);
    let bytes = name.as_bytes();
    let n = bytes.len().min(NAME_LEN);
    for (d, &c) in s.name.iter().zip(&bytes[..n]) {
        d.store(c, Relaxed);
    }
    s.name_len.store(n, Relaxed);
    s.touch_seq.store(0, Relaxed);
    s.tick_seq.store(0, Relaxed);
    s.idle_depth.store(0, Relaxed);
    s.harmless_depth.store(0, Relaxed);
    s.remote_seq.store(0, Relaxed);
    s.suspended.store(false, Relaxed);
    s.late_verdict.store(0, Relaxed);
    s.warning.state.store(CAP_EMPTY, Relaxed);
    let bounds = crate::stackwalk::StackBounds::current_thread();
    let (lo, hi) = bounds.map_or((0, 0), |b| (b.lo(), b.hi()));
    s.stack_lo.store(lo, Relaxed);
    s.stack_hi.store(hi, Relaxed);

    let watched = !run.disabled;
    if watched && let Err(e) = crate::cpu_timer::attach(s, idx, &run) {
        s.state.store(FREE, Release);
        return Err(e.prefixed(&format!("register({name:?})")));
    }
    s.state.store(if watched { ACTIVE } else { DETACHED }, Release);
    REGISTRATION.with(|r| r.0.set(Some((idx, generation))));
    Ok(ThreadHandle { slot: s, idx, generation, _not_send: PhantomData })
}

/// Frees slot `idx` if it still holds registration `generation`. Runs on the owner
/// thread (handle drop, thread-exit destructor, `failstop_unregister`).
pub(crate) fn release(idx: usize, generation: u32) {
    let s = &SLOTS[idx];
    if s.generation.load(Relaxed) != generation {
        return;
    }
    let st = s.state.load(Acquire);
    if (st == ACTIVE || st == DETACHED) && s.state.compare_exchange(st, CLAIMED, Acquire, Relaxed).is_ok() {
        crate::cpu_timer::detach(s);
        crate::cpu_timer::drop_altstack(s, true);
        s.state.store(FREE, Release);
    }
    let _ = REGISTRATION.try_with(|r| {
        if r.0.get() == Some((idx, generation)) {
            r.0.set(None);
        }
    });
}

/// Frees the slots of watched threads that no longer exist (they exited
/// without running thread-local destructors). Called by the monitor.
pub(crate) fn reap_dead() {
    for s in SLOTS.iter() {
        let st = s.state.load(Acquire);
        if st != ACTIVE && st != DETACHED {
            continue;
        }
        let tid = s.tid.load(Relaxed);
        if crate::sys::tgkill(tid, 0).is_err() && s.state.compare_exchange(st, CLAIMED, Acquire, Relaxed).is_ok() {
            crate::cpu_timer::detach(s);
            crate::cpu_timer::drop_altstack(s, false);
            s.state.store(FREE, Release);
        }
    }
}

/// Stops watching every slot (the watchdog stops): timers are deleted, the
/// owners keep their handles.
pub(crate) fn detach_all() {
    for s in SLOTS.iter() {
        if s.state.compare_exchange(ACTIVE, DETACHED, AcqRel, Relaxed).is_ok() {
            crate::cpu_timer::detach(s);
        }
    }
}

/// After `fork()` in the child: no thread but the caller exists and no timer
/// was inherited, so nothing is watched. Async-signal-safe.
pub(crate) fn forget_after_fork() {
    for s in SLOTS.iter() {
        if s.state.load(Relaxed) == ACTIVE {
            s.has_timer.store(false, Relaxed);
            s.state.store(DETACHED, Relaxed);
        }
    }
}

/// A registered thread: the handle its loop uses to mark progress.
///
/// Created by [`register`](crate::register) on the thread it watches; it
/// cannot be sent to another thread. Dropping it stops watching the thread;
/// if the thread exits without dropping it, its slot is freed anyway.
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new())?;
/// let h = failstop::register("event-loop")?;
/// loop {
///     let events = h.with_idle(|| wait_for_events());
///     h.touch();
///     for e in events {
///         handle(e);
///         h.tick();
///     }
/// }
/// # fn wait_for_events() -> Vec<u32> { vec![] }
/// # fn handle(_: u32) {}
/// # Ok::<(), failstop::Error>(())
/// ```
pub struct ThreadHandle {
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
    /// The thread's loop came around (it left its poll): progress, and the
    /// warning clock starts again. Costs a relaxed load and store.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("poller")?;
    /// h.touch();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn touch(&self) {
        self.slot.touch();
    }

    /// One unit of work completed: progress for the `stuck` verdict, but the
    /// warning clock keeps running, so a loop that never returns to its poll
    /// still gets warnings.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("worker")?;
    /// for task in 0..1000 {
    ///     let _ = task * 2;
    ///     h.tick();
    /// }
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn tick(&self) {
        self.slot.tick();
    }

    /// Marks the thread idle (waiting for work, e.g. around `epoll_wait`)
    /// until the guard drops; leaving counts as a touch. An idle thread is
    /// never judged.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("poller")?;
    /// {
    ///     let _idle = h.idle();
    ///     std::thread::sleep(std::time::Duration::from_secs(1)); // epoll_wait
    /// }
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn idle(&self) -> IdleGuard<'_> {
        Slot::enter(&self.slot.idle_depth);
        IdleGuard { h: self }
    }

    /// Runs `f` with the thread marked idle; see [`idle`](Self::idle).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("poller")?;
    /// let n = h.with_idle(|| 42 /* epoll_wait(...) */);
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn with_idle<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.idle();
        f()
    }

    /// Marks the thread harmless (waiting on others: a lock, a rendezvous)
    /// until the guard drops. A harmless thread is never blamed: the thread
    /// that holds up the others is.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("worker")?;
    /// let m = std::sync::Mutex::new(0);
    /// let guard = { let _w = h.harmless(); m.lock().unwrap() };
    /// # drop(guard);
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn harmless(&self) -> HarmlessGuard<'_> {
        Slot::enter(&self.slot.harmless_depth);
        HarmlessGuard { h: self }
    }

    /// Runs `f` with the thread marked harmless; see [`harmless`](Self::harmless).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("worker")?;
    /// let m = std::sync::Mutex::new(0);
    /// let v = h.with_harmless(|| *m.lock().unwrap());
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn with_harmless<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.harmless();
        f()
    }

    /// The kernel thread id of the watched thread.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("worker")?;
    /// assert!(h.tid() > 0);
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn tid(&self) -> i32 {
        self.slot.tid.load(Relaxed)
    }

    /// How many of failstop's own signals (CPU-timer ticks, dump capture
    /// requests) this thread has handled so far (a wrapping count).
    ///
    /// The kernel never restarts `poll`, `epoll_wait` or `select` after a
    /// signal handler ran, even with `SA_RESTART`: they fail with `EINTR`.
    /// failstop's signals rarely land there (CPU-clock ticks come while the
    /// thread runs; capture requests only during a dump), but with
    /// wall-clock timers they do. A wrapper around such a wait compares the
    /// count before and after an `EINTR`: if it moved, failstop's signal
    /// was (at least one of) the cause, and the wait can go on with the
    /// time it has left. `libfailstop_preload.so` does exactly that.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("poller")?;
    /// let before = h.signal_count();
    /// let r = h.with_idle(|| unsafe { libc::poll(std::ptr::null_mut(), 0, 100) });
    /// let interrupted = std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
    /// if r == -1 && interrupted && h.signal_count() != before {
    ///     // failstop's signal, not the application's: wait again
    /// }
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn signal_count(&self) -> u32 {
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
        release(self.idx, self.generation);
    }
}

/// Returned by [`ThreadHandle::idle`]; leaving the scope touches.
#[must_use = "the thread is idle only while the guard lives"]
#[derive(Debug)]
pub struct IdleGuard<'a> {
    h: &'a ThreadHandle,
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.h.touch();
        Slot::leave(&self.h.slot.idle_depth);
    }
}

/// Returned by [`ThreadHandle::harmless`].
#[must_use = "the thread is harmless only while the guard lives"]
#[derive(Debug)]
pub struct HarmlessGuard<'a> {
    h: &'a ThreadHandle,
}

impl Drop for HarmlessGuard<'_> {
    fn drop(&mut self) {
        Slot::leave(&self.h.slot.harmless_depth);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots are static (`MAX_THREADS` of them, in .bss: a page becomes
    /// resident only once a slot on it is used); one must stay small.
    #[test]
    fn a_slot_stays_small() {
        let bytes = std::mem::size_of::<CachePadded<Slot>>();
        println!("slot: {bytes} bytes, all slots: {} KiB", bytes * MAX_THREADS / 1024);
        assert!(bytes <= 2048, "a slot takes {bytes} bytes");
    }
}
