//! Floor 3, **sync**: [`Mutex`], a drop-in for [`std::sync::Mutex`] whose
//! lock records its owner, so that failstop can follow a thread that waits
//! on it to the thread that holds it.
//!
//! `std::sync::Mutex` records no owner: when a thread sleeps on one, the
//! kernel shows only a futex word, and neither the dump nor the monitor can
//! tell who holds it. This one keeps the holder's kernel tid next to its
//! futex word, where glibc's `pthread_mutex_t` keeps `__owner`, and waits
//! with the plain `FUTEX_WAIT` as glibc does, so that failstop reads it
//! from `/proc/self/task/TID/syscall` and the lock's memory:
//!
//! - **the dump** lists the lock as `failstop::sync::Mutex, held by "name"
//!   (tid N): waited on by ...`, and when the waits form a cycle it says so
//!   near the top: `failstop: deadlock: "a" (tid 1) waits for "b" (tid 2),
//!   which waits for "a" (tid 1)`;
//! - **the blocked rule** follows the wait chains: a registered thread that
//!   waits on such a lock while the holder is alive and moving is spared
//!   (it waits for a slow owner, and the owner is the one judged); a cycle
//!   of waiters is a deadlock, a `blocked` verdict.
//!
//! The API is std's: [`Mutex::new`] (`const`), [`lock`](Mutex::lock)
//! returning a [`LockResult`], [`try_lock`](Mutex::try_lock),
//! [`is_poisoned`](Mutex::is_poisoned), [`clear_poison`](Mutex::clear_poison),
//! [`into_inner`](Mutex::into_inner), [`get_mut`](Mutex::get_mut), and
//! poisoning as std's: a guard dropped while its thread panics poisons the
//! lock. Two differences: `std::sync::Condvar` takes std's guards only, so
//! a condition variable needs std's mutex; and on Linux, locking again a
//! lock the calling thread holds panics (std's may deadlock or panic).
//!
//! **Cost.** Beyond an ordinary futex mutex (std's), one store of the tid
//! on lock and one store of 0 on unlock; the tid is read from a `const`
//! thread-local cache (one load), which a `pthread_atfork` child handler
//! clears, so that a forked child records its own thread's tid. Measured
//! (`cargo bench -p failstop-benches --bench sync_mutex`, x86_64, 2 shared
//! cores): an uncontended lock, `+= 1` and unlock of a `Mutex<u64>` takes
//! 17.2 ns with `std::sync::Mutex` and 17.8 ns with this one (medians of
//! interleaved rounds, ratio 1.04); checking the cached tid against
//! `getpid()` on each lock instead of the atfork handler would add a
//! system call (90 ns there). A `Mutex<u64>` is 24 bytes (std's: 16). A
//! child made by `_Fork` or a raw `clone` (which run no atfork handler)
//! keeps its parent's tid in the cache: its locks work, only their owner
//! is misnamed (and not followed: no such thread in the child).
//!
//! On Linux with glibc only; elsewhere the same API wraps std's mutex and
//! records nothing. It may use `os`.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) mod futex;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use futex as imp;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod fallback;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use fallback as imp;

/// A mutual exclusion lock that records its owner's thread id, so that
/// failstop's dump names the thread that holds it and the monitor follows
/// its waiters to it (see [the module](self)). Used as
/// [`std::sync::Mutex`].
///
/// ```
/// use failstop::sync::Mutex;
/// use std::sync::Arc;
///
/// let counter = Arc::new(Mutex::new(0u64));
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let counter = counter.clone();
///         std::thread::spawn(move || *counter.lock().unwrap() += 1)
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(*counter.lock().unwrap(), 4);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: imp::RawMutex,
    poison: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to the data to one thread at a time,
// so sharing the lock only moves the data between threads, as std's
// `Mutex`: `T: Send` suffices.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

// As std's: a panic while the lock is held poisons it.
impl<T: ?Sized> UnwindSafe for Mutex<T> {}
impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}

/// The lock held: access to the data; dropping it unlocks. Returned by
/// [`Mutex::lock`] and [`Mutex::try_lock`].
///
/// ```
/// let m = failstop::sync::Mutex::new(vec![1, 2]);
/// let mut guard = m.lock().unwrap();
/// guard.push(3); // DerefMut
/// assert_eq!(guard.len(), 3); // Deref
/// drop(guard); // unlocks
/// assert!(m.try_lock().is_ok());
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    /// Whether the thread was panicking when it took the lock: then a
    /// drop during that panic does not poison.
    panicking: bool,
    /// Unlocks when dropped, after the guard's own `drop` (fields drop
    /// after it).
    _raw: imp::Guard<'a>,
    /// Not `Send`, as std's: the lock is released by the thread that took
    /// it (the owner the lock records).
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard gives only `&T`: sharing it is sharing `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex; `const`, so it can be a `static`.
    ///
    /// ```
    /// static COUNT: failstop::sync::Mutex<u32> = failstop::sync::Mutex::new(0);
    /// *COUNT.lock().unwrap() += 1;
    /// assert_eq!(*COUNT.lock().unwrap(), 1);
    /// ```
    pub const fn new(value: T) -> Self {
        Mutex { raw: imp::RawMutex::new(), poison: AtomicBool::new(false), data: UnsafeCell::new(value) }
    }

    /// Consumes the mutex and returns the data; an error (which still
    /// holds the data) if the mutex is poisoned.
    ///
    /// ```
    /// let m = failstop::sync::Mutex::new(String::from("state"));
    /// assert_eq!(m.into_inner().unwrap(), "state");
    /// ```
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.load(Relaxed);
        let data = self.data.into_inner();
        if poisoned { Err(PoisonError::new(data)) } else { Ok(data) }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Takes the lock, waiting for it as long as it takes.
    ///
    /// An error (which still holds the guard) if the mutex is poisoned: a
    /// thread panicked while it held it. Panics if the calling thread holds
    /// it already (std's mutex may deadlock there instead).
    ///
    /// ```
    /// let m = failstop::sync::Mutex::new(1);
    /// *m.lock().unwrap() += 1;
    /// assert_eq!(*m.lock().unwrap(), 2);
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let raw = self.raw.lock();
        self.guard(raw)
    }

    /// Takes the lock if it is free now: [`TryLockError::WouldBlock`] if
    /// another guard holds it (this thread's too), or
    /// [`TryLockError::Poisoned`] (with the guard) if it is poisoned.
    ///
    /// ```
    /// use std::sync::TryLockError;
    ///
    /// let m = failstop::sync::Mutex::new(());
    /// let held = m.lock().unwrap();
    /// assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    /// drop(held);
    /// assert!(m.try_lock().is_ok());
    /// ```
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        match self.raw.try_lock() {
            Some(raw) => Ok(self.guard(raw)?),
            None => Err(TryLockError::WouldBlock),
        }
    }

    /// Whether a thread panicked while it held the lock (and no
    /// [`clear_poison`](Self::clear_poison) since).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let m = Arc::new(failstop::sync::Mutex::new(0));
    /// let m2 = m.clone();
    /// let _ = std::thread::spawn(move || {
    ///     let _guard = m2.lock().unwrap();
    ///     panic!("poisons the lock");
    /// })
    /// .join();
    /// assert!(m.is_poisoned());
    /// ```
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.load(Relaxed)
    }

    /// Clears the poison: the data was repaired (or is fine as it is).
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let m = Arc::new(failstop::sync::Mutex::new(0));
    /// let m2 = m.clone();
    /// let _ = std::thread::spawn(move || {
    ///     let _guard = m2.lock().unwrap();
    ///     panic!("poisons the lock");
    /// })
    /// .join();
    /// let mut guard = m.lock().unwrap_or_else(|e| e.into_inner());
    /// *guard = 0; // repaired
    /// m.clear_poison();
    /// drop(guard);
    /// assert!(!m.is_poisoned());
    /// ```
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.store(false, Relaxed);
    }

    /// The data, through an exclusive borrow of the mutex: no locking. An
    /// error (which still holds the reference) if it is poisoned.
    ///
    /// ```
    /// let mut m = failstop::sync::Mutex::new(1);
    /// *m.get_mut().unwrap() = 5;
    /// assert_eq!(*m.lock().unwrap(), 5);
    /// ```
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.load(Relaxed);
        let data = self.data.get_mut();
        if poisoned { Err(PoisonError::new(data)) } else { Ok(data) }
    }

    /// Wraps a held raw lock in a guard, poisoned or not.
    #[inline]
    fn guard<'a>(&'a self, raw: imp::Guard<'a>) -> LockResult<MutexGuard<'a, T>> {
        let guard = MutexGuard { lock: self, panicking: std::thread::panicking(), _raw: raw, _not_send: PhantomData };
        if self.poison.load(Relaxed) { Err(PoisonError::new(guard)) } else { Ok(guard) }
    }
}

impl<T> From<T> for Mutex<T> {
    /// A new, unlocked mutex holding `value`: [`Mutex::new`].
    ///
    /// ```
    /// let m: failstop::sync::Mutex<u8> = 7.into();
    /// assert_eq!(*m.lock().unwrap(), 7);
    /// ```
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: Default> Default for Mutex<T> {
    /// A new, unlocked mutex holding `T::default()`.
    ///
    /// ```
    /// let m: failstop::sync::Mutex<Vec<u8>> = Default::default();
    /// assert!(m.lock().unwrap().is_empty());
    /// ```
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    /// As std's: `Mutex { data: .., poisoned: false, .. }`, with
    /// `<locked>` for the data of a held lock.
    ///
    /// ```
    /// let m = failstop::sync::Mutex::new(3);
    /// assert_eq!(format!("{m:?}"), "Mutex { data: 3, poisoned: false, .. }");
    /// let _held = m.lock().unwrap();
    /// assert_eq!(format!("{m:?}"), "Mutex { data: <locked>, poisoned: false, .. }");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&**e.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.load(Relaxed));
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other reference to the
        // data exists but through this guard, which it borrows.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as `deref`, and the guard is borrowed exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Poisons when the holder panicked while it held the lock. The raw
        // guard, a field, unlocks after this.
        if !self.panicking && std::thread::panicking() {
            self.lock.poison.store(true, Relaxed);
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    /// The data's `Debug`.
    ///
    /// ```
    /// let m = failstop::sync::Mutex::new(Some(1));
    /// assert_eq!(format!("{:?}", m.lock().unwrap()), "Some(1)");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    /// The data's `Display`.
    ///
    /// ```
    /// let m = failstop::sync::Mutex::new("text");
    /// assert_eq!(m.lock().unwrap().to_string(), "text");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn contending_threads_exclude_each_other() {
        const THREADS: usize = 4;
        const ROUNDS: u64 = 20_000;
        // A non-atomic read-modify-write with a yield between the read and
        // the write: any overlap loses an increment.
        let m = Arc::new(Mutex::new((0u64, false)));
        let start = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (m, start) = (m.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..ROUNDS {
                        let mut g = m.lock().unwrap();
                        assert!(!g.1, "two holders at once");
                        g.1 = true;
                        let n = g.0;
                        if i % 64 == 0 {
                            std::thread::yield_now();
                        }
                        g.0 = n + 1;
                        g.1 = false;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.lock().unwrap().0, THREADS as u64 * ROUNDS);
        assert!(!m.is_poisoned());
    }

    #[test]
    fn a_waiter_is_woken_by_the_unlock() {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock().unwrap();
        let waiter = {
            let m = m.clone();
            std::thread::spawn(move || *m.lock().unwrap() + 1)
        };
        std::thread::sleep(std::time::Duration::from_millis(50)); // asleep on the lock by now
        drop(g);
        assert_eq!(waiter.join().unwrap(), 1);
    }

    #[test]
    fn a_panic_while_held_poisons_and_clear_poison_clears() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            *g = 2;
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        let g = m.lock().expect_err("poisoned").into_inner();
        assert_eq!(*g, 2);
        drop(g);
        assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
        assert!(format!("{m:?}").contains("poisoned: true"));
        m.clear_poison();
        assert!(!m.is_poisoned());
        assert_eq!(*m.lock().unwrap(), 2);
        let m = Arc::try_unwrap(m).unwrap();
        assert_eq!(m.into_inner().unwrap(), 2);
    }

    #[test]
    fn a_guard_taken_during_a_panic_does_not_poison() {
        struct LockOnDrop<'a>(&'a Mutex<u8>);
        impl Drop for LockOnDrop<'_> {
            fn drop(&mut self) {
                *self.0.lock().unwrap() += 1; // taken and dropped while panicking
            }
        }
        let m = Mutex::new(0);
        let r = std::panic::catch_unwind(|| {
            let _l = LockOnDrop(&m);
            panic!("boom");
        });
        assert!(r.is_err());
        assert!(!m.is_poisoned());
        assert_eq!(*m.lock().unwrap(), 1);
    }

    #[test]
    fn get_mut_and_into_inner_report_the_poison() {
        let mut m = Mutex::new(5);
        *m.get_mut().unwrap() += 1;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = m.lock().unwrap();
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(**m.get_mut().expect_err("poisoned").get_ref(), 6);
        assert_eq!(m.into_inner().expect_err("poisoned").into_inner(), 6);
    }

    #[test]
    fn try_lock_would_block_while_held_by_any_thread() {
        let m = Arc::new(Mutex::new(()));
        let g = m.lock().unwrap();
        assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        let m2 = m.clone();
        let other = std::thread::spawn(move || matches!(m2.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(other.join().unwrap());
        assert_eq!(format!("{m:?}"), "Mutex { data: <locked>, poisoned: false, .. }");
        drop(g);
        assert!(m.try_lock().is_ok());
    }

    #[test]
    fn unsized_data_default_and_from() {
        let m: &Mutex<[u8]> = &Mutex::new([1, 2, 3]);
        m.lock().unwrap()[0] = 9;
        assert_eq!(&*m.lock().unwrap(), &[9, 2, 3]);
        assert_eq!(*Mutex::<u32>::default().lock().unwrap(), 0);
        assert_eq!(*Mutex::from("x").lock().unwrap(), "x");
    }
}
