//! The wait chain of a thread the blocked rule is about to convict: what it
//! waits for, who that waits for, and whether the end of the chain is alive.
//!
//! A thread asleep on a lock is not hung while the lock's owner works: it
//! is slow. The chain is followed with the evidence the kernel and the
//! locks give, and only as far as that evidence is certain:
//!
//! - a `futex(2)` wait on a lock that records its owner
//!   ([`locks::classify`]: glibc's `pthread_mutex_t`, priority-inheritance
//!   mutexes, a `pthread_rwlock_t` held for writing,
//!   `failstop::sync::Mutex`): an edge to the owner, a thread of this
//!   process;
//! - `wait4`/`waitid` for children: an edge to those child processes and
//!   their descendants (found by their parent pid in `/proc`);
//! - anything else (a read, a condition variable, a lock that records no
//!   owner): the chain ends at that thread.
//!
//! A chain that comes back to a thread it passed is a deadlock: no thread
//! in it can run until another does. It is cut at [`MAX_DEPTH`] hops.
//!
//! [`Life`] is the evidence that the end of a chain runs: its CPU time and
//! its count of runs on a CPU (`schedstat`), or for child processes their
//! CPU time and bytes moved, and whether it is runnable now. The monitor
//! compares two readings taken apart in time.
//!
//! Monitor thread only; allocation-free (the reads go through the caller's
//! scratch buffer).

use super::locks;
use crate::os::procfs::{self, SyscallState};
use crate::os::sys;

/// The most hops followed from the first thread.
pub(crate) const MAX_DEPTH: usize = 8;
/// The most child processes (with their descendants) read for one wait.
const MAX_CHILDREN: usize = 32;

/// Where a chain leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Walk {
    /// The thread waits on nothing that can be followed.
    Nothing,
    /// The chain ends at `end`, another thread of this process, which
    /// waits on nothing that can be followed.
    Thread { end: libc::pid_t },
    /// `waiter` (the first thread or one down the chain) waits for child
    /// processes: `target` is `wait4`'s pid argument (`-1` any child, `0`
    /// the caller's process group, `< -1` the group `-target`).
    Children { waiter: libc::pid_t, target: libc::pid_t },
    /// A deadlock: the chain comes back to `member`, the first thread of
    /// the cycle it reached; `through_first` when the first thread is in
    /// the cycle (not only waiting on it).
    Cycle { member: libc::pid_t, through_first: bool },
}

/// Evidence that a thread or a set of processes runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Life {
    /// CPU time (ns).
    pub cpu: u64,
    /// Runs on a CPU (threads), or bytes read and written (processes).
    pub moves: u64,
    /// Runnable now (state `R`).
    pub runnable: bool,
}

impl Life {
    /// Whether `self`, read later than `before`, shows that it ran.
    pub(crate) fn ran_since(&self, before: &Life) -> bool {
        self.runnable || self.cpu != before.cpu || self.moves != before.moves
    }
}

/// What `tid` waits for, one hop.
enum Hop {
    Owner(libc::pid_t),
    Children(libc::pid_t),
    Unfollowable,
}

/// One hop from `tid`: the owner of the lock it sleeps on, the children it
/// waits for, or nothing followable.
fn hop(tid: libc::pid_t, io: &mut [u8]) -> Hop {
    let Ok(SyscallState::InSyscall { nr, args, .. }) = procfs::read_syscall(tid, io) else {
        return Hop::Unfollowable;
    };
    match nr {
        libc::SYS_futex => {
            let ours = |t: libc::pid_t| sys::tgkill(t, 0).is_ok();
            locks::classify(tid, args, ours, locks::read_u32)
                .and_then(|w| w.holder.owner())
                .map_or(Hop::Unfollowable, Hop::Owner)
        }
        libc::SYS_wait4 => Hop::Children(args[0] as i32),
        libc::SYS_waitid => match args[0] as u32 {
            libc::P_ALL => Hop::Children(-1),
            libc::P_PID if args[1] as i32 > 0 => Hop::Children(args[1] as i32),
            libc::P_PGID => Hop::Children((args[1] as i32).saturating_neg()),
            _ => Hop::Unfollowable,
        },
        _ => Hop::Unfollowable,
    }
}

/// Follows the chain from `first`. Allocation-free.
pub(crate) fn walk(first: libc::pid_t, io: &mut [u8]) -> Walk {
    let mut path = [0 as libc::pid_t; MAX_DEPTH + 1];
    let mut n = 0;
    let mut at = first;
    loop {
        path[n] = at;
        n += 1;
        match hop(at, io) {
            Hop::Owner(next) => {
                if let Some(pos) = path[..n].iter().position(|&t| t == next) {
                    return Walk::Cycle { member: next, through_first: pos == 0 };
                }
                if n == path.len() {
                    return Walk::Nothing; // too long to be sure of
                }
                at = next;
            }
            Hop::Children(target) => return Walk::Children { waiter: at, target },
            Hop::Unfollowable if at == first => return Walk::Nothing,
            Hop::Unfollowable => return Walk::Thread { end: at },
        }
    }
}

/// The evidence that thread `tid` of this process runs; `None` when it
/// cannot be read (it exited).
pub(crate) fn thread_life(tid: libc::pid_t, io: &mut [u8]) -> Option<Life> {
    let sched = procfs::read_schedstat(tid, io).ok()?;
    let stat = procfs::read_stat(tid, io).ok()?;
    Some(Life { cpu: sched.run_ns, moves: sched.timeslices, runnable: stat.state == b'R' })
}

/// The evidence that the children `waiter` waits for (`target` as in
/// [`Walk::Children`]) run, with their descendants: summed CPU time and
/// bytes moved, runnable if any is. `None` when no such child is found.
/// Lists `/proc` (only when a waiter is about to be convicted).
pub(crate) fn children_life(target: libc::pid_t, dir: &mut [u8], io: &mut [u8]) -> Option<Life> {
    let me = sys::getpid();
    // SAFETY: getpgrp has no preconditions and cannot fail.
    let my_group = unsafe { libc::getpgrp() };
    let mut family = [0 as libc::pid_t; MAX_CHILDREN];
    let mut n = 0;
    // Children first, then up to three levels of their descendants: each
    // pass adds the processes whose parent is already in the family.
    for pass in 0..4 {
        let before = n;
        let _ = procfs::for_each_process(dir, |pid| {
            if n == MAX_CHILDREN || family[..n].contains(&pid) {
                return;
            }
            let Ok(st) = procfs::read_process_stat(pid, io) else { return };
            let wanted = if pass == 0 {
                st.ppid == me
                    && match target {
                        -1 => true,
                        0 => st.pgrp == my_group,
                        t if t < -1 => st.pgrp == -t,
                        t => pid == t,
                    }
            } else {
                family[..before].contains(&st.ppid)
            };
            if wanted {
                family[n] = pid;
                n += 1;
            }
        });
        if n == before {
            break;
        }
    }
    if n == 0 {
        return None;
    }
    let tck = procfs::clk_tck();
    let mut life = Life::default();
    for &pid in &family[..n] {
        if let Ok(st) = procfs::read_process_stat(pid, io) {
            life.cpu += procfs::ticks_to_ns(st.utime_ticks + st.stime_ticks, tck);
            life.runnable |= st.state == b'R';
        }
        if let Ok(tio) = procfs::read_process_io(pid, io) {
            life.moves = life.moves.wrapping_add(tio.rchar).wrapping_add(tio.wchar);
        }
    }
    Some(life)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    fn gettid() -> libc::pid_t {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    #[test]
    fn a_thread_in_a_sleep_waits_on_nothing_followable() {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let tid = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let mut io = [0u8; 4096];
        assert_eq!(walk(tid, &mut io), Walk::Nothing);
        let life = thread_life(tid, &mut io).unwrap();
        assert!(!life.runnable);
        t.join().unwrap();
    }

    /// A glibc mutex held by a thread that sleeps: the chain ends at the
    /// holder; two glibc mutexes in opposite order: a cycle through both.
    #[test]
    fn glibc_mutex_chains_and_cycles() {
        struct M(std::cell::UnsafeCell<libc::pthread_mutex_t>);
        // SAFETY: a pthread mutex is made to be shared between threads.
        unsafe impl Sync for M {}
        static A: M = M(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
        static B: M = M(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
        let both = Arc::new(Barrier::new(2));
        let (tx, rx) = std::sync::mpsc::channel();
        let b2 = both.clone();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            // SAFETY: the mutexes are statics, initialised.
            unsafe { libc::pthread_mutex_lock(A.0.get()) };
            tx2.send(("a", gettid())).unwrap();
            b2.wait();
            // SAFETY: as above.
            unsafe { libc::pthread_mutex_lock(B.0.get()) };
        });
        std::thread::spawn(move || {
            // SAFETY: the mutexes are statics, initialised.
            unsafe { libc::pthread_mutex_lock(B.0.get()) };
            tx.send(("b", gettid())).unwrap();
            both.wait();
            // SAFETY: as above.
            unsafe { libc::pthread_mutex_lock(A.0.get()) };
        });
        let mut tids = [rx.recv().unwrap(), rx.recv().unwrap()];
        tids.sort();
        std::thread::sleep(Duration::from_millis(300));
        let mut io = [0u8; 4096];
        let (a, b) = (tids[0].1, tids[1].1);
        assert_eq!(walk(a, &mut io), Walk::Cycle { member: a, through_first: true });
        assert_eq!(walk(b, &mut io), Walk::Cycle { member: b, through_first: true });
        // (The two threads stay deadlocked until the test process ends.)
    }

    #[test]
    fn a_working_child_shows_life() {
        // SAFETY: the child only spins and calls _exit (async-signal-safe).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_secs(2) {
                std::hint::spin_loop();
            }
            // SAFETY: ends the forked child.
            unsafe { libc::_exit(0) };
        }
        let mut dir = [0u8; 4096];
        let mut io = [0u8; 4096];
        let first = children_life(pid, &mut dir, &mut io).expect("the child is found");
        std::thread::sleep(Duration::from_millis(300));
        let later = children_life(-1, &mut dir, &mut io).expect("the child is found as any child");
        assert!(later.ran_since(&first), "{first:?} {later:?}");
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(children_life(pid, &mut dir, &mut io), None);
    }
}
