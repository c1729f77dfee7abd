//! [`ThreadHandle`]: how a watched thread marks its progress and scopes.

use super::guards::{HarmlessGuard, IdleGuard};
use super::imp;
use std::fmt;

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
    imp: imp::ThreadHandle,
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.imp.fmt(f)
    }
}

impl ThreadHandle {
    pub(super) fn from_imp(imp: imp::ThreadHandle) -> Self {
        ThreadHandle { imp }
    }

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
        self.imp.touch();
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
        self.imp.tick();
    }

    /// Says what the thread is doing now, for its entry in a dump and in
    /// warnings (`context "..."`): the request being served, the phase of a
    /// job, the task being polled. One relaxed store of a pointer: cheap
    /// enough for every iteration of a loop. The text must be `'static` (a
    /// literal, or a leaked string); `""` says nothing. The dump shows at
    /// most 64 bytes of it.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// let h = failstop::register("worker")?;
    /// h.set_context("compacting the log");
    /// // ... a lockup here shows `context "compacting the log"` in the dump ...
    /// h.set_context("");
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline]
    pub fn set_context(&self, context: &'static str) {
        self.imp.set_context(context);
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
        IdleGuard::from_imp(self.imp.idle())
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
        HarmlessGuard::from_imp(self.imp.harmless())
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
    #[inline]
    pub fn tid(&self) -> i32 {
        self.imp.tid()
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
        self.imp.signal_count()
    }
}
