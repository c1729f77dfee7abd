//! The raw lock on Linux with glibc: a futex word that records its owner's
//! tid next to it, laid out so that the dump's wait-for graph
//! (`fatal/locks.rs`) reads it as it reads glibc's `pthread_mutex_t`.
//!
//! The algorithm is that of Rust's own futex mutex (the word is 0
//! unlocked, 1 locked, 2 locked with waiters; a short spin, then
//! `FUTEX_WAIT` with the value 2), with two differences: the waits are the
//! plain `FUTEX_WAIT` (not `FUTEX_WAIT_BITSET`), so that a reader of
//! `/proc/self/task/TID/syscall` can tell them from condition variables,
//! and a store of the owner's tid after the lock is taken and of 0 before
//! it is released. The tid comes from a thread-local cache, which a
//! `pthread_atfork` child handler clears: a forked child's thread has a
//! new tid.

use crate::os::sys;
use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::AtomicI32;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// The word after the futex word of a failstop lock, where glibc's
/// `pthread_mutex_t` has `__count` (a recursion count, small): "FA11 5709",
/// for "fail-stop".
pub(crate) const MAGIC: u32 = 0xFA11_5709;
/// Where [`MAGIC`] is, after the futex word.
pub(crate) const MAGIC_OFFSET: u64 = 4;
/// Where the owner's tid is, after the futex word (where glibc's
/// `pthread_mutex_t` keeps `__owner`).
pub(crate) const OWNER_OFFSET: u64 = 8;
/// The futex word's value while a thread waits on it: the waits are
/// `FUTEX_WAIT` with this value, as glibc's.
pub(crate) const CONTENDED: u32 = 2;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;

/// A futex mutex that records its owner.
#[repr(C)]
pub(crate) struct RawMutex {
    /// [`UNLOCKED`], [`LOCKED`] or [`CONTENDED`].
    word: AtomicU32,
    /// Always [`MAGIC`].
    magic: u32,
    /// The holder's kernel tid while it holds the lock, else 0 (for a
    /// moment also while it is held: between the taking and this store).
    owner: AtomicI32,
}

const _: () = {
    assert!(std::mem::offset_of!(RawMutex, word) == 0);
    assert!(std::mem::offset_of!(RawMutex, magic) == MAGIC_OFFSET as usize);
    assert!(std::mem::offset_of!(RawMutex, owner) == OWNER_OFFSET as usize);
};

/// Holds a [`RawMutex`]; unlocks it when dropped.
pub(crate) struct Guard<'a>(&'a RawMutex);

impl RawMutex {
    pub(crate) const fn new() -> Self {
        RawMutex { word: AtomicU32::new(UNLOCKED), magic: MAGIC, owner: AtomicI32::new(0) }
    }

    /// Takes the lock, waiting as long as it takes.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_> {
        if self.word.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_err() {
            self.lock_contended();
        }
        self.owner.store(current_tid(), Relaxed);
        Guard(self)
    }

    /// Takes the lock if it is free.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Guard<'_>> {
        self.word.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).ok()?;
        self.owner.store(current_tid(), Relaxed);
        Some(Guard(self))
    }

    /// The holder's tid (0: free, or just taken).
    #[cfg(test)]
    pub(crate) fn owner(&self) -> libc::pid_t {
        self.owner.load(Relaxed)
    }

    /// The futex word's address, for the tests that read it as the dump does.
    #[cfg(test)]
    pub(crate) fn word_addr(&self) -> u64 {
        self.word.as_ptr() as u64
    }

    #[cold]
    fn lock_contended(&self) {
        // The holder is this thread: std's mutex would sleep forever here.
        if self.owner.load(Relaxed) == current_tid() {
            panic!("failstop::sync::Mutex locked again by the thread that holds it (it would deadlock)");
        }
        let mut state = self.spin();
        if state == UNLOCKED {
            match self.word.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed) {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
        loop {
            // Mark the lock contended (our unlock then wakes a waiter); if
            // it was free, we hold it now.
            if state != CONTENDED && self.word.swap(CONTENDED, Acquire) == UNLOCKED {
                return;
            }
            sys::futex_wait(&self.word, CONTENDED, None);
            state = self.spin();
        }
    }

    /// Spins a short while for a holder that is about to release the lock,
    /// until it is free or contended; returns the word.
    fn spin(&self) -> u32 {
        for _ in 0..100 {
            let state = self.word.load(Relaxed);
            if state != LOCKED {
                return state;
            }
            std::hint::spin_loop();
        }
        self.word.load(Relaxed)
    }

    #[cold]
    fn wake(&self) {
        sys::futex_wake(&self.word, 1);
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Cleared before the release: the next holder's store comes after.
        self.0.owner.store(0, Relaxed);
        if self.0.word.swap(UNLOCKED, Release) == CONTENDED {
            self.0.wake();
        }
    }
}

thread_local! {
    /// The calling thread's kernel tid, 0 until first asked (and in a
    /// forked child, until asked again).
    static TID: Cell<libc::pid_t> = const { Cell::new(0) };
}

/// The calling thread's kernel tid, cached: a thread-local load.
#[inline]
pub(crate) fn current_tid() -> libc::pid_t {
    let tid = TID.get();
    if tid != 0 { tid } else { fill_tid() }
}

#[cold]
fn fill_tid() -> libc::pid_t {
    // Before any tid is cached, so that no fork can copy a cached tid into
    // a child without the handler that clears it.
    static AT_FORK: Once = Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a plain extern "C" function with no state; its
        // failure (ENOMEM) leaves only the owner of a lock taken in a
        // forked child wrong, which the dump does not follow (not a thread
        // of the child).
        unsafe { libc::pthread_atfork(None, None, Some(forget_tid_in_child)) };
    });
    let tid = sys::gettid();
    TID.set(tid);
    tid
}

/// In a forked child, on its only thread (the one that called `fork`): its
/// cached tid is the parent's thread's. A `const` thread-local without a
/// destructor: setting it only writes memory.
extern "C" fn forget_tid_in_child() {
    TID.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_one_the_dump_reads() {
        let m = RawMutex::new();
        let base = &m as *const RawMutex as usize;
        assert_eq!(m.word_addr() as usize, base);
        assert_eq!(std::mem::size_of::<RawMutex>(), 12);
        // SAFETY: offset 4 of a live RawMutex is its `magic` u32.
        assert_eq!(unsafe { *((base + 4) as *const u32) }, MAGIC);
    }

    #[test]
    fn the_owner_is_recorded_while_held_and_cleared_after() {
        let m = RawMutex::new();
        assert_eq!(m.owner(), 0);
        let g = m.lock();
        assert_eq!(m.owner(), sys::gettid());
        assert!(m.try_lock().is_none());
        drop(g);
        assert_eq!(m.owner(), 0);
        let g = m.try_lock().expect("free");
        assert_eq!(m.owner(), sys::gettid());
        drop(g);
        assert_eq!(m.owner(), 0);
    }

    #[test]
    fn each_thread_records_its_own_tid() {
        let m = std::sync::Arc::new(RawMutex::new());
        let tids: Vec<(libc::pid_t, libc::pid_t)> = (0..3)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    let _g = m.lock();
                    (m.owner(), sys::gettid())
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        for (owner, tid) in tids {
            assert_eq!(owner, tid);
        }
    }

    #[test]
    fn a_forked_child_records_its_own_tid() {
        let m = RawMutex::new();
        drop(m.lock()); // the parent's tid is cached now
        let parent = sys::gettid();
        // SAFETY: the child only takes and reads a lock of its own copy of
        // memory (atomics, a thread-local, gettid), then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let g = m.lock();
            let code = if m.owner() == parent {
                1 // the parent's stale tid
            } else if m.owner() != sys::gettid() {
                2
            } else if current_tid() != sys::gettid() {
                3
            } else {
                0
            };
            drop(g);
            // SAFETY: ends the child without running the parent's test
            // harness or atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child, with a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "child status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "1: the owner is the parent's tid, 2: another tid, 3: the cache is stale"
        );
        assert_eq!(current_tid(), parent);
    }

    #[test]
    fn relocking_by_the_holder_panics_instead_of_sleeping_forever() {
        let m = RawMutex::new();
        let _g = m.lock();
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(m.lock())));
        assert!(again.is_err());
        // Still held, by this thread.
        assert_eq!(m.owner(), sys::gettid());
    }
}
