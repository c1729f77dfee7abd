//! The wait-for graph of a dump: which thread sleeps on which lock, who
//! holds that lock when the lock records it, and the deadlock cycle when
//! there is one.
//!
//! The evidence is the kernel's (`/proc/self/task/TID/syscall`: a thread
//! asleep in `futex(2)` and its arguments) and the lock's own memory, read
//! with validated reads ([`read_mem`]: a bad address fails, never faults):
//!
//! - `FUTEX_LOCK_PI` / `FUTEX_LOCK_PI2` (priority-inheritance mutexes): the
//!   futex word is the owner's tid (`FUTEX_TID_MASK`).
//! - `FUTEX_WAIT` on a [`failstop::sync::Mutex`](crate::sync::Mutex): the
//!   word after the futex word is its magic (where glibc's mutex has
//!   `__count`, a small count), and the owner's tid is the `int` 8 bytes
//!   after the futex word, as in glibc's mutex. Tried first: the glibc
//!   reading would name the same owner as a `pthread_mutex_t`.
//! - `FUTEX_WAIT` on a glibc `pthread_mutex_t` (normal, recursive, error
//!   checking, robust): glibc waits with the value 2 (locked, contended) or,
//!   for a robust mutex, with the owner's tid in the word, and records the
//!   owner's tid in `__owner`, the `int` 8 bytes after the futex word. An
//!   edge is drawn only when that `int` is the tid of another thread of
//!   this process and, for a value other than 2, the word names the same
//!   thread: a lock of another kind rarely passes both.
//! - `FUTEX_WAIT_BITSET` with the value 3 (`1 | PTHREAD_RWLOCK_FUTEX_USED`)
//!   on a glibc `pthread_rwlock_t` held for writing: a reader waits on
//!   `__wrphase_futex` (8 bytes into the lock), a writer on
//!   `__writers_futex` (12 bytes in), and the writer's tid is in
//!   `__cur_writer` (24 bytes in). Whichever of the two readings names
//!   another thread of this process (above 1: the other reading falls on a
//!   field that is 0 or 1) gives the lock and its holder; both kinds of
//!   waiters are then listed under the lock's address.
//! - Anything else (`FUTEX_WAIT_BITSET`, which Rust's `std::sync::Mutex`
//!   and `Condvar`, parking_lot and most runtimes use; condition variables;
//!   a lock that records no owner): no owner. Such waits are grouped by the
//!   futex address, so that the threads waiting on one lock are seen
//!   together.
//!
//! Monitor thread; allocation-free (fixed arrays in the dump's scratch).

use crate::os::procfs::SyscallState;
use crate::os::stackwalk::read_mem;
use crate::state::captures::MAX_DUMP_THREADS;
use crate::sync::futex as failstop_mutex;

/// `FUTEX_WAIT`.
const FUTEX_WAIT: u64 = 0;
/// `FUTEX_LOCK_PI`.
const FUTEX_LOCK_PI: u64 = 6;
/// `FUTEX_LOCK_PI2` (Linux 5.14).
const FUTEX_LOCK_PI2: u64 = 13;
/// The command part of a futex operation (without `FUTEX_PRIVATE_FLAG`
/// and `FUTEX_CLOCK_REALTIME`).
const FUTEX_CMD_MASK: u64 = !(128 | 256);
/// The tid part of a PI or robust futex word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Where glibc's `pthread_mutex_t` keeps its owner's tid, after the futex
/// word (`__lock`, then `__count`, then `__owner`).
const GLIBC_MUTEX_OWNER_OFFSET: u64 = 8;
/// `FUTEX_WAIT_BITSET`.
const FUTEX_WAIT_BITSET: u64 = 9;
/// `FUTEX_WAIT_REQUEUE_PI`.
const FUTEX_WAIT_REQUEUE_PI: u64 = 11;
/// The value glibc's `pthread_rwlock_t` waiters wait for while a writer
/// holds it: `1 | PTHREAD_RWLOCK_FUTEX_USED`.
const GLIBC_RWLOCK_WRITER_PHASE: u32 = 3;
/// Offsets in glibc's `pthread_rwlock_t` of the futex words a reader
/// (`__wrphase_futex`) and a writer (`__writers_futex`) wait on, and of
/// `__cur_writer`.
const GLIBC_RWLOCK_WRPHASE: u64 = 8;
const GLIBC_RWLOCK_WRITERS: u64 = 12;
const GLIBC_RWLOCK_CUR_WRITER: u64 = 24;
/// The longest cycle printed in full.
pub(crate) const MAX_CYCLE: usize = 16;

/// What records the owner of a lock a thread waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// No owner recorded (or none that could be read).
    Unknown,
    /// A priority-inheritance futex: the word is the owner's tid.
    PiFutex(libc::pid_t),
    /// A glibc `pthread_mutex_t`: `__owner` next to the futex word.
    GlibcMutex(libc::pid_t),
    /// A `failstop::sync::Mutex`: its owner, where glibc keeps `__owner`.
    FailstopMutex(libc::pid_t),
    /// A glibc `pthread_rwlock_t` held for writing: `__cur_writer`.
    GlibcRwlock(libc::pid_t),
}

impl Holder {
    /// The owner's tid, if recorded.
    pub(crate) fn owner(self) -> Option<libc::pid_t> {
        match self {
            Holder::Unknown => None,
            Holder::PiFutex(t) | Holder::GlibcMutex(t) | Holder::FailstopMutex(t) | Holder::GlibcRwlock(t) => Some(t),
        }
    }

    /// How the owner is known, for the dump.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Holder::Unknown => {
                "no owner recorded (std::sync::Mutex, parking_lot, a condition variable, a channel, ...)"
            }
            Holder::PiFutex(_) => "priority-inheritance mutex",
            Holder::GlibcMutex(_) => "pthread_mutex_t",
            Holder::FailstopMutex(_) => "failstop::sync::Mutex",
            Holder::GlibcRwlock(_) => "pthread_rwlock_t held for writing",
        }
    }
}

/// One thread asleep in `futex(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    pub tid: libc::pid_t,
    /// The futex word's address.
    pub addr: u64,
    pub holder: Holder,
}

impl Wait {
    const NONE: Wait = Wait { tid: 0, addr: 0, holder: Holder::Unknown };
}

/// The futex waits of a dump's threads. Allocated once, with the scratch.
pub(crate) struct Waits {
    list: Box<[Wait; MAX_DUMP_THREADS]>,
    len: usize,
    /// The waits with a recorded owner, as (waiter, owner), sorted by
    /// waiter: the edges of the wait-for graph, found by binary search.
    edges: Box<[(libc::pid_t, libc::pid_t); MAX_DUMP_THREADS]>,
    edges_len: usize,
}

impl Waits {
    pub(crate) fn new() -> Self {
        Waits {
            list: Box::new([Wait::NONE; MAX_DUMP_THREADS]),
            len: 0,
            edges: Box::new([(0, 0); MAX_DUMP_THREADS]),
            edges_len: 0,
        }
    }

    /// The waits found, sorted by futex address (then tid) after
    /// [`Waits::collect`].
    pub(crate) fn list(&self) -> &[Wait] {
        &self.list[..self.len]
    }

    /// Keeps the futex waits among `threads` (each thread with what its
    /// `/proc/self/task/TID/syscall` said, read once by the dump before its
    /// capture request interrupts the sleeps), with their holders where the
    /// lock records them. `ours` says whether a tid is one of the dump's
    /// threads (a holder must be). Threads to leave out (failstop's own)
    /// are left out of `threads` by the caller; they may still be named as
    /// holders.
    pub(crate) fn collect(
        &mut self,
        threads: impl Iterator<Item = (libc::pid_t, SyscallState)>,
        ours: impl Fn(libc::pid_t) -> bool,
    ) {
        self.len = 0;
        for (tid, sc) in threads {
            let SyscallState::InSyscall { nr, args, .. } = sc else {
                continue;
            };
            if nr != libc::SYS_futex || self.len == self.list.len() {
                continue;
            }
            if let Some(w) = classify(tid, args, &ours, read_u32) {
                self.list[self.len] = w;
                self.len += 1;
            }
        }
        self.list[..self.len].sort_unstable_by_key(|w| (w.addr, w.tid));
        self.index();
    }

    /// Builds the sorted edges from the list.
    fn index(&mut self) {
        self.edges_len = 0;
        for w in &self.list[..self.len] {
            if let Some(owner) = w.holder.owner() {
                self.edges[self.edges_len] = (w.tid, owner);
                self.edges_len += 1;
            }
        }
        self.edges[..self.edges_len].sort_unstable();
    }

    /// The holder of the lock `tid` waits on, if recorded (binary search).
    fn waits_for(&self, tid: libc::pid_t) -> Option<libc::pid_t> {
        let edges = &self.edges[..self.edges_len];
        edges.binary_search_by_key(&tid, |e| e.0).ok().map(|i| edges[i].1)
    }

    /// A cycle of the wait-for graph, the one through `first` if there is
    /// one, else the first found: its threads in order (each waits for the
    /// next, the last for the first) into `out`; returns how many (0: no
    /// cycle). A cycle longer than `out` is cut to its first `out.len()`.
    /// Only waits with a recorded owner can be on a cycle: the walks start
    /// from those alone.
    pub(crate) fn cycle(&self, first: libc::pid_t, out: &mut [libc::pid_t; MAX_CYCLE]) -> usize {
        let starts =
            std::iter::once(first).chain(self.list().iter().filter(|w| w.holder.owner().is_some()).map(|w| w.tid));
        for start in starts {
            // Follow the edges from `start`; each thread waits for at most
            // one, so a walk longer than the number of waits has looped.
            let mut at = start;
            let mut steps = 0;
            while let Some(next) = self.waits_for(at) {
                at = next;
                steps += 1;
                if at == start {
                    return self.fill_cycle(start, out);
                }
                if steps > self.edges_len {
                    break;
                }
            }
        }
        0
    }

    fn fill_cycle(&self, start: libc::pid_t, out: &mut [libc::pid_t; MAX_CYCLE]) -> usize {
        let mut n = 0;
        let mut at = start;
        loop {
            if n < MAX_CYCLE {
                out[n] = at;
            }
            n += 1;
            match self.waits_for(at) {
                Some(next) if next != start && n <= self.edges_len => at = next,
                _ => return n.min(MAX_CYCLE),
            }
        }
    }
}

/// Reads a `u32` of our own memory, or `None` where it cannot be read.
pub(crate) fn read_u32(addr: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    read_mem(addr as usize, &mut b).then(|| u32::from_ne_bytes(b))
}

/// Classifies the futex call of `tid` (its six arguments); `ours` says
/// whether a tid is a thread of this process, `read` reads a word of
/// memory. `None`: not a wait on a futex word (a wake, a requeue).
pub(crate) fn classify(
    tid: libc::pid_t,
    args: [u64; 6],
    ours: impl Fn(libc::pid_t) -> bool,
    read: impl Fn(u64) -> Option<u32>,
) -> Option<Wait> {
    let addr = args[0];
    let cmd = args[1] & FUTEX_CMD_MASK;
    let other = |t: u32| -> Option<libc::pid_t> {
        let t = t as libc::pid_t;
        (t > 0 && t != tid && ours(t)).then_some(t)
    };
    let holder = match cmd {
        FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => {
            read(addr).and_then(|word| other(word & FUTEX_TID_MASK)).map_or(Holder::Unknown, Holder::PiFutex)
        }
        // A failstop lock's waiters wait with CONTENDED (2); its owner is
        // briefly 0 right after a taking: then no edge.
        FUTEX_WAIT if read(addr.wrapping_add(failstop_mutex::MAGIC_OFFSET)) == Some(failstop_mutex::MAGIC) => {
            match read(addr.wrapping_add(failstop_mutex::OWNER_OFFSET)).and_then(other) {
                Some(o) if args[2] as u32 == failstop_mutex::CONTENDED => Holder::FailstopMutex(o),
                _ => Holder::Unknown,
            }
        }
        FUTEX_WAIT => {
            let expected = args[2] as u32;
            let owner = read(addr.wrapping_add(GLIBC_MUTEX_OWNER_OFFSET)).and_then(other);
            match owner {
                Some(o) if expected == 2 || expected & FUTEX_TID_MASK == o as u32 => Holder::GlibcMutex(o),
                _ => Holder::Unknown,
            }
        }
        FUTEX_WAIT_BITSET if args[2] as u32 == GLIBC_RWLOCK_WRITER_PHASE => {
            let writer = |word: u64| {
                let base = addr.wrapping_sub(word);
                let t = read(base.wrapping_add(GLIBC_RWLOCK_CUR_WRITER))?;
                (t > 1).then_some(()).and_then(|()| other(t)).map(|t| (base, t))
            };
            match (writer(GLIBC_RWLOCK_WRPHASE), writer(GLIBC_RWLOCK_WRITERS)) {
                (Some((base, t)), None) | (None, Some((base, t))) => {
                    return Some(Wait { tid, addr: base, holder: Holder::GlibcRwlock(t) });
                }
                _ => Holder::Unknown,
            }
        }
        // The other waits: no owner to read.
        FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI => Holder::Unknown,
        _ => return None,
    };
    Some(Wait { tid, addr, holder })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::procfs;

    fn waits(list: &[Wait]) -> Waits {
        let mut w = Waits::new();
        w.list[..list.len()].copy_from_slice(list);
        w.len = list.len();
        w.index();
        w
    }

    fn mutex_wait(tid: i32, addr: u64, owner: i32) -> Wait {
        Wait { tid, addr, holder: Holder::GlibcMutex(owner) }
    }

    #[test]
    fn a_glibc_mutex_wait_names_its_owner() {
        let ours = |t| [10, 11, 12].contains(&t);
        let mem = |a| if a == 0x1008 { Some(11) } else { Some(2) };
        let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, mem).unwrap();
        assert_eq!(w.holder, Holder::GlibcMutex(11));
        // The owner field names a thread that is not ours: no edge.
        let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, |_| Some(999)).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
        // Nor the waiter itself.
        let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, |_| Some(10)).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
        // A plain FUTEX_WAIT with another value whose word does not name
        // the owner (a condition variable, say): no edge.
        let w = classify(10, [0x1000, 128, 7, 0, 0, 0], ours, mem).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
        // A robust mutex: the word is the owner's tid with FUTEX_WAITERS.
        let w = classify(10, [0x1000, 128, 0x8000_000b, 0, 0, 0], ours, mem).unwrap();
        assert_eq!(w.holder, Holder::GlibcMutex(11));
        // Unreadable memory: no edge, no fault.
        let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, |_| None).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
    }

    #[test]
    fn a_failstop_mutex_is_told_from_a_glibc_mutex_by_its_magic() {
        let ours = |t| [10, 11, 12].contains(&t);
        // The lock at 0x1000: the magic at 0x1004, the owner (11) at 0x1008.
        let mem = |a| match a {
            0x1004 => Some(failstop_mutex::MAGIC),
            0x1008 => Some(11),
            _ => Some(2),
        };
        let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, mem).unwrap();
        assert_eq!((w.addr, w.holder), (0x1000, Holder::FailstopMutex(11)));
        assert_eq!(w.holder.owner(), Some(11));
        assert_eq!(w.holder.describe(), "failstop::sync::Mutex");
        // Not the contended value: no edge, and not read as glibc's either.
        let w = classify(10, [0x1000, 128, 1, 0, 0, 0], ours, mem).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
        // The owner just released it (0), or is not ours, or is the waiter.
        for owner in [0, 999, 10] {
            let mem = |a| Some(if a == 0x1004 { failstop_mutex::MAGIC } else { owner });
            let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, mem).unwrap();
            assert_eq!(w.holder, Holder::Unknown, "owner {owner}");
        }
        // Another value there (glibc's __count): glibc's reading.
        let glibc = |a| match a {
            0x1004 => Some(1),
            0x1008 => Some(11),
            _ => Some(2),
        };
        let w = classify(10, [0x1000, 128, 2, 0, 0, 0], ours, glibc).unwrap();
        assert_eq!(w.holder, Holder::GlibcMutex(11));
        // A bitset wait on a word followed by the magic is no failstop lock's.
        let w = classify(10, [0x1000, 9 | 128, 2, 0, 0, u32::MAX as u64], ours, mem).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
    }

    /// A real thread asleep on a `failstop::sync::Mutex`, read as the dump
    /// reads it: its `/proc/self/task/TID/syscall` and the lock's memory.
    #[test]
    fn a_real_waiter_on_a_failstop_mutex_is_followed_to_its_holder() {
        use crate::os::sys::gettid;
        use crate::sync::futex::RawMutex;
        use std::time::{Duration, Instant};

        crate::os::stackwalk::init().expect("stackwalk init");
        let m = std::sync::Arc::new(RawMutex::new());
        let addr = m.word_addr();
        let holder = gettid();
        let held = m.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let m = m.clone();
            std::thread::spawn(move || {
                tx.send(gettid()).unwrap();
                drop(m.lock());
            })
        };
        let tid = rx.recv().unwrap();
        let mut io = [0u8; 4096];
        let until = Instant::now() + Duration::from_secs(10);
        let args = loop {
            match procfs::read_syscall(tid, &mut io) {
                Ok(SyscallState::InSyscall { nr, args, .. }) if nr == libc::SYS_futex && args[0] == addr => break args,
                _ => assert!(Instant::now() < until, "the waiter never slept on the lock"),
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // FUTEX_WAIT | FUTEX_PRIVATE_FLAG with the value 2, as glibc's.
        assert_eq!((args[1], args[2]), (128, 2));
        let w = classify(tid, args, |t| t == holder || t == tid, read_u32).unwrap();
        assert_eq!(w, Wait { tid, addr, holder: Holder::FailstopMutex(holder) });
        drop(held);
        waiter.join().unwrap();
        assert_eq!(m.owner(), 0);
    }

    #[test]
    fn a_pi_futex_word_is_its_owner() {
        let ours = |t| [10, 11].contains(&t);
        let w = classify(10, [0x2000, 6 | 128, 0, 0, 0, 0], ours, |_| Some(0x8000_000b)).unwrap();
        assert_eq!(w.holder, Holder::PiFutex(11));
        let w = classify(10, [0x2000, 13, 0, 0, 0, 0], ours, |_| Some(11)).unwrap();
        assert_eq!(w.holder, Holder::PiFutex(11));
    }

    #[test]
    fn bitset_waits_have_no_owner_and_wakes_are_not_waits() {
        let ours = |_| true;
        let w = classify(10, [0x3000, 9 | 128, 2, 0, 0, u32::MAX as u64], ours, |_| Some(11)).unwrap();
        assert_eq!(w.holder, Holder::Unknown);
        assert_eq!(classify(10, [0x3000, 1 | 128, 1, 0, 0, 0], ours, |_| Some(11)), None);
    }

    #[test]
    fn a_glibc_rwlock_held_for_writing_names_its_writer_for_readers_and_writers() {
        let ours = |t| [10, 11, 12].contains(&t);
        // The lock at 0x4000: __cur_writer (0x4018) is 12, __shared (0x401c)
        // 0, __pad4 (0x4014) 0.
        let mem = |a| Some(if a == 0x4018 { 12 } else { 0 });
        let reader = classify(10, [0x4008, 9 | 128 | 256, 3, 0, 0, u32::MAX as u64], ours, mem).unwrap();
        assert_eq!((reader.addr, reader.holder), (0x4000, Holder::GlibcRwlock(12)));
        let writer = classify(11, [0x400c, 9 | 128 | 256, 3, 0, 0, u32::MAX as u64], ours, mem).unwrap();
        assert_eq!((writer.addr, writer.holder), (0x4000, Holder::GlibcRwlock(12)));
        // __shared = 1 (process-shared) is not taken for a tid.
        let shared = |a| {
            Some(match a {
                0x4018 => 12,
                0x401c => 1,
                _ => 0,
            })
        };
        let writer = classify(11, [0x400c, 9, 3, 0, 0, 0], |t| t == 1 || ours(t), shared).unwrap();
        assert_eq!(writer.holder, Holder::GlibcRwlock(12));
        // Another value: no rwlock reading.
        let w = classify(10, [0x4008, 9 | 128, 2, 0, 0, 0], ours, mem).unwrap();
        assert_eq!((w.addr, w.holder), (0x4008, Holder::Unknown));
    }

    #[test]
    fn cycles_are_found_through_the_culprit_first() {
        let mut out = [0; MAX_CYCLE];
        // 1 -> 2 -> 1, and 3 -> 4 -> 5 -> 3.
        let w = waits(&[
            mutex_wait(1, 0x10, 2),
            mutex_wait(2, 0x20, 1),
            mutex_wait(3, 0x30, 4),
            mutex_wait(4, 0x40, 5),
            mutex_wait(5, 0x50, 3),
        ]);
        assert_eq!(w.cycle(4, &mut out), 3);
        assert_eq!(&out[..3], &[4, 5, 3]);
        assert_eq!(w.cycle(2, &mut out), 2);
        assert_eq!(&out[..2], &[2, 1]);
        // The culprit in no cycle: the first cycle found.
        assert_eq!(w.cycle(99, &mut out), 2);
        assert_eq!(&out[..2], &[1, 2]);
    }

    #[test]
    fn a_chain_into_a_cycle_or_into_a_running_thread_is_not_a_cycle_through_it() {
        let mut out = [0; MAX_CYCLE];
        // 1 -> 2 -> 3 (3 runs): no cycle.
        let w = waits(&[mutex_wait(1, 0x10, 2), mutex_wait(2, 0x20, 3)]);
        assert_eq!(w.cycle(1, &mut out), 0);
        // 1 -> 2 -> 3 -> 2: the cycle is 2, 3 (1 only waits on it).
        let w = waits(&[mutex_wait(1, 0x10, 2), mutex_wait(2, 0x20, 3), mutex_wait(3, 0x30, 2)]);
        assert_eq!(w.cycle(1, &mut out), 2);
        assert_eq!(&out[..2], &[2, 3]);
        // Waits without owners draw no edges.
        let w = waits(&[Wait { tid: 1, addr: 0x10, holder: Holder::Unknown }]);
        assert_eq!(w.cycle(1, &mut out), 0);
    }
}
