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
//! - `flock` or `fcntl(F_SETLKW)` on a file another process holds a lock
//!   on (`/proc/locks`): an edge to that process and its descendants (a
//!   lock held by this process itself names no thread: not followed);
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
    /// `waiter` waits for a file lock that process `pid` holds.
    Holder { waiter: libc::pid_t, pid: libc::pid_t },
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
    Holder(libc::pid_t),
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
        libc::SYS_flock if args[1] as i32 & libc::LOCK_NB == 0 => file_lock_holder(args[0] as i32, b"FLOCK", io),
        libc::SYS_fcntl if args[1] as i32 == libc::F_SETLKW => file_lock_holder(args[0] as i32, b"POSIX", io),
        libc::SYS_fcntl if args[1] as i32 == libc::F_OFD_SETLKW => file_lock_holder(args[0] as i32, b"OFDLCK", io),
        _ => Hop::Unfollowable,
    }
}

/// The other process that holds a lock of `kind` (`FLOCK`, `POSIX`,
/// `OFDLCK`) on the file open as `fd` in this process, from `/proc/locks`.
/// A lock this process holds, or one whose holder is not recorded (`-1`),
/// is not followed.
fn file_lock_holder(fd: libc::c_int, kind: &[u8], io: &mut [u8]) -> Hop {
    // SAFETY: an all-zero `stat` is a valid value; fstat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; a closed fd fails with EBADF.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Hop::Unfollowable;
    }
    let Ok(text) = sys::read_file(c"/proc/locks", io) else {
        return Hop::Unfollowable;
    };
    let me = sys::getpid();
    let (major, minor) = (libc::major(st.st_dev), libc::minor(st.st_dev));
    text.split(|&b| b == b'\n')
        .find_map(|line| {
            let held = parse_lock_line(line)?;
            (held.kind == kind && held.file == (major, minor, st.st_ino) && held.pid > 0 && held.pid != me)
                .then_some(held.pid)
        })
        .map_or(Hop::Unfollowable, Hop::Holder)
}

/// A lock held (not waited for) as `/proc/locks` lists it.
#[derive(Debug, PartialEq, Eq)]
struct HeldLock<'a> {
    kind: &'a [u8],
    pid: libc::pid_t,
    /// The file: device major, minor, inode.
    file: (u32, u32, u64),
}

/// Parses a `/proc/locks` line (`1: POSIX  ADVISORY  WRITE 4242 08:02:131090 0 EOF`);
/// `None` for a waiter's line (`1: -> FLOCK ...`) or malformed text. Pure.
fn parse_lock_line(line: &[u8]) -> Option<HeldLock<'_>> {
    let mut f = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
    let _id = f.next()?;
    let kind = f.next()?;
    if kind == b"->" {
        return None;
    }
    let (_mode, _rw) = (f.next()?, f.next()?);
    let pid: libc::pid_t = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
    let mut dev = f.next()?.split(|&b| b == b':');
    let hex = |x: &[u8]| u32::from_str_radix(std::str::from_utf8(x).ok()?, 16).ok();
    let major = hex(dev.next()?)?;
    let minor = hex(dev.next()?)?;
    let inode = std::str::from_utf8(dev.next()?).ok()?.parse().ok()?;
    Some(HeldLock { kind, pid, file: (major, minor, inode) })
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
            Hop::Holder(pid) => return Walk::Holder { waiter: at, pid },
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

/// Processes a thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Procs {
    /// Children of this process: `wait4`'s pid argument (see
    /// [`Walk::Children`]).
    Children(libc::pid_t),
    /// One process, of any parent (a file lock's holder).
    One(libc::pid_t),
}

/// The evidence that the processes `procs` run, with their descendants:
/// summed CPU time and bytes moved, runnable if any is. `None` when none
/// is found. Lists `/proc` (only when a waiter's window is noted or ends).
pub(crate) fn processes_life(procs: Procs, dir: &mut [u8], io: &mut [u8]) -> Option<Life> {
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
                match procs {
                    Procs::One(p) => pid == p,
                    Procs::Children(target) => {
                        st.ppid == me
                            && match target {
                                -1 => true,
                                0 => st.pgrp == my_group,
                                t if t < -1 => st.pgrp == -t,
                                t => pid == t,
                            }
                    }
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
        let first = processes_life(Procs::Children(pid), &mut dir, &mut io).expect("the child is found");
        std::thread::sleep(Duration::from_millis(300));
        let later = processes_life(Procs::Children(-1), &mut dir, &mut io).expect("the child is found as any child");
        let one = processes_life(Procs::One(pid), &mut dir, &mut io).expect("the child is found by its pid");
        assert!(one.cpu > 0, "{one:?}");
        assert!(later.ran_since(&first), "{first:?} {later:?}");
        let mut status = 0;
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(processes_life(Procs::Children(pid), &mut dir, &mut io), None);
    }

    #[test]
    fn proc_locks_lines() {
        let held = parse_lock_line(b"1: POSIX  ADVISORY  WRITE 4242 08:02:131090 0 EOF").unwrap();
        assert_eq!(held, HeldLock { kind: b"POSIX", pid: 4242, file: (8, 2, 131_090) });
        let held = parse_lock_line(b"2: FLOCK  ADVISORY  WRITE 17 fd:1a:5678 0 EOF").unwrap();
        assert_eq!(held, HeldLock { kind: b"FLOCK", pid: 17, file: (0xfd, 0x1a, 5678) });
        let ofd = parse_lock_line(b"3: OFDLCK ADVISORY  READ  -1 00:05:12 0 EOF").unwrap();
        assert_eq!(ofd.pid, -1);
        assert_eq!(parse_lock_line(b"2: -> FLOCK  ADVISORY  WRITE 18 fd:1a:5678 0 EOF"), None);
        assert_eq!(parse_lock_line(b""), None);
        assert_eq!(parse_lock_line(b"1: POSIX ADVISORY WRITE x 08:02:1 0 EOF"), None);
    }

    /// A child holds an exclusive `flock` on a file; a thread of ours that
    /// waits for it in `flock` is followed to the child.
    #[test]
    fn a_flock_wait_is_followed_to_the_holding_process() {
        let path = std::env::temp_dir().join(format!("failstop-chain-flock-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        use std::os::fd::AsRawFd;
        let mut fds = [0; 2];
        // SAFETY: a valid array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (rd, wr) = (fds[0], fds[1]);
        // SAFETY: the child takes the lock, says so and sleeps, calling only
        // async-signal-safe functions; it is killed below.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: the forked child's own copies of the descriptors.
            unsafe {
                let held = std::fs::File::open(&path).unwrap_or_else(|_| libc::_exit(1));
                libc::flock(held.as_raw_fd(), libc::LOCK_EX);
                libc::write(wr, b"x".as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into `b`.
        assert_eq!(unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) }, 1);
        let fd = file.as_raw_fd();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(gettid()).unwrap();
            // SAFETY: a valid descriptor; blocks until the child dies.
            unsafe { libc::flock(fd, libc::LOCK_EX) };
        });
        let tid = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut io = [0u8; 16384];
        let walk = walk(tid, &mut io);
        // SAFETY: ends and reaps our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
            libc::close(rd);
            libc::close(wr);
        }
        let _ = std::fs::remove_file(&path);
        assert_eq!(walk, Walk::Holder { waiter: tid, pid: child });
    }
}
