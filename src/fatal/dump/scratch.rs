//! The dump's memory, allocated at start ([`Scratch`]), and what is read
//! once per thread per dump ([`Facts`]: its `/proc` files) or per dump
//! ([`OwnThreads`]: failstop's own threads).

use super::copy::prepare_copy;
use crate::fatal::locks::Waits;
use crate::os::cgroup::CpuCgroups;
use crate::os::modules::ModuleMap;
use crate::os::procfs::{self, SCRATCH_LEN, STACK_LEN, TaskDir};
use crate::state::captures::MAX_DUMP_THREADS;
use crate::state::slots::{self, ACTIVE, DETACHED, NO_SLOT};
use std::sync::atomic::Ordering::*;

/// Per-dump scratch space, allocated once at start so the dump never allocates.
pub(crate) struct Scratch {
    pub modules: Box<ModuleMap>,
    /// The futex waits of the dump's threads (the wait-for graph).
    pub waits: Waits,
    pub tids: Box<[libc::pid_t; MAX_DUMP_THREADS]>,
    /// What each of `tids` showed in `/proc` (same index), read once per
    /// dump ([`Facts::read`]).
    pub(super) facts: Box<[Facts]>,
    /// `(tid, index in tids)` of the dump's threads, sorted by tid: the
    /// dump's tid lookups are binary searches ([`Scratch::index_of`]).
    pub(super) by_tid: Box<[(libc::pid_t, u32)]>,
    pub(super) by_tid_len: usize,
    /// Room for the largest `/proc` file read (a kernel stack).
    pub io: Box<[u8; STACK_LEN]>,
    /// Room for listing `/proc` (the children a thread waits for).
    pub dir: Box<[u8; SCRATCH_LEN]>,
    /// This process's cgroups with the CPU controller (throttling).
    pub cgroups: CpuCgroups,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        prepare_copy();
        Scratch {
            modules: ModuleMap::new_boxed(),
            waits: Waits::new(),
            tids: Box::new([0; MAX_DUMP_THREADS]),
            facts: Facts::zeroed_table(MAX_DUMP_THREADS),
            by_tid: vec![(0, 0); MAX_DUMP_THREADS].into_boxed_slice(),
            by_tid_len: 0,
            io: Box::new([0; STACK_LEN]),
            dir: Box::new([0; SCRATCH_LEN]),
            cgroups: CpuCgroups::discover(),
        }
    }

    /// Sorts `tids[first..n]` into the tid lookup and finds each thread's
    /// registry slot in one pass over the slots (the first slot in index
    /// order that watches the tid, as [`slots::find_tid`] would give):
    /// O((threads + slots) log threads) per dump, where a `find_tid` per
    /// thread would be threads × slots. Allocation-free.
    pub(super) fn index_threads(&mut self, first: usize, n: usize) {
        let Scratch { tids, facts, by_tid, .. } = self;
        for (k, i) in (first..n).enumerate() {
            by_tid[k] = (tids[i], i as u32);
            facts[i].slot = NO_SLOT;
        }
        self.by_tid_len = n - first;
        let sorted = &mut by_tid[..n - first];
        sorted.sort_unstable();
        for (idx, s) in slots::iter() {
            let st = s.state.load(Acquire);
            if st != ACTIVE && st != DETACHED {
                continue;
            }
            let tid = s.tid.load(Relaxed);
            if let Ok(k) = sorted.binary_search_by_key(&tid, |e| e.0) {
                let f = &mut facts[sorted[k].1 as usize];
                if f.slot == NO_SLOT {
                    f.slot = idx;
                }
            }
        }
    }

    /// The index in `tids` of one of the dump's threads.
    fn index_of(&self, tid: libc::pid_t) -> Option<usize> {
        let sorted = &self.by_tid[..self.by_tid_len];
        sorted.binary_search_by_key(&tid, |e| e.0).ok().map(|k| sorted[k].1 as usize)
    }

    /// The registry slot watching `tid`, for one of the dump's threads.
    pub(super) fn slot_of(&self, tid: libc::pid_t) -> Option<&'static slots::Slot> {
        self.index_of(tid).and_then(|i| slots::slot(self.facts[i].slot))
    }
}

/// What a dump reads of one thread in `/proc`, once: `status` (state,
/// name, blocked signals, context switches), `schedstat` (CPU and
/// run-queue time), `syscall` (what it does in the kernel: the system call
/// line, the wait-for graph and the capture request all use it), and
/// `stat` only where `status` or `schedstat` could not be read (its state
/// letter and CPU ticks stand in). Read for every thread before the
/// capture request, so that what the dump shows is what the thread did
/// before the request interrupted it. Plain integers: a table of them is
/// allocated zeroed.
#[derive(Clone, Copy)]
pub(super) struct Facts {
    /// The registry slot watching the thread, or [`NO_SLOT`].
    pub(super) slot: usize,
    /// Which of the files below were read (`HAS_*` bits).
    has: u8,
    stat: procfs::TaskStat,
    status: procfs::TaskStatus,
    sched: procfs::SchedStat,
    /// `syscall`, as [`procfs::SyscallState`]: 1 running, 2 not in a
    /// system call, 3 in system call `nr`; 0 when it was not read.
    sc_kind: u8,
    sc_nr: i64,
    sc_args: [u64; 6],
    sc_sp: u64,
    sc_pc: u64,
}

const HAS_STAT: u8 = 1;
const HAS_STATUS: u8 = 2;
const HAS_SCHED: u8 = 4;

impl Facts {
    /// A table of `n` zeroed entries, allocated without touching them (the
    /// pages are the kernel's zero pages until a dump writes them).
    fn zeroed_table(n: usize) -> Box<[Facts]> {
        let table = Box::<[Facts]>::new_zeroed_slice(n);
        // SAFETY: every field of `Facts` is an integer or an array of
        // integers (`TaskStat`, `TaskStatus` and `SchedStat` are plain
        // integer structs), for which all-zero bytes are a valid value.
        unsafe { table.assume_init() }
    }

    /// Reads thread `tid`'s files. Allocation-free.
    pub(super) fn read(&mut self, dir: &TaskDir, tid: libc::pid_t, io: &mut [u8]) {
        self.has = 0;
        if let Ok(st) = dir.status(tid, io) {
            self.status = st;
            self.has |= HAS_STATUS;
        }
        if let Ok(s) = dir.schedstat(tid, io) {
            self.sched = s;
            self.has |= HAS_SCHED;
        }
        if self.has != HAS_STATUS | HAS_SCHED
            && let Ok(st) = dir.stat(tid, io)
        {
            self.stat = st;
            self.has |= HAS_STAT;
        }
        self.sc_kind = match dir.syscall(tid, io) {
            Ok(procfs::SyscallState::Running) => 1,
            Ok(procfs::SyscallState::NotInSyscall { sp, pc }) => {
                (self.sc_sp, self.sc_pc) = (sp, pc);
                2
            }
            Ok(procfs::SyscallState::InSyscall { nr, args, sp, pc }) => {
                (self.sc_nr, self.sc_args, self.sc_sp, self.sc_pc) = (nr, args, sp, pc);
                3
            }
            Err(_) => 0,
        };
    }

    pub(super) fn status(&self) -> Option<&procfs::TaskStatus> {
        (self.has & HAS_STATUS != 0).then_some(&self.status)
    }

    pub(super) fn sched(&self) -> Option<procfs::SchedStat> {
        (self.has & HAS_SCHED != 0).then_some(self.sched)
    }

    /// Whether the thread was gone from `/proc` (no file could be read).
    pub(super) fn gone(&self) -> bool {
        self.has & (HAS_STAT | HAS_STATUS) == 0
    }

    /// The scheduler state letter (`?` when unreadable).
    pub(super) fn state(&self) -> u8 {
        if let Some(st) = self.status() {
            st.state
        } else if self.has & HAS_STAT != 0 {
            self.stat.state
        } else {
            b'?'
        }
    }

    /// CPU time: `schedstat`'s, else `stat`'s ticks.
    pub(super) fn cpu_ns(&self) -> Option<u64> {
        self.sched().map(|s| s.run_ns).or_else(|| {
            (self.has & HAS_STAT != 0)
                .then(|| procfs::ticks_to_ns(self.stat.utime_ticks + self.stat.stime_ticks, procfs::clk_tck()))
        })
    }

    pub(super) fn syscall(&self) -> Option<procfs::SyscallState> {
        match self.sc_kind {
            1 => Some(procfs::SyscallState::Running),
            2 => Some(procfs::SyscallState::NotInSyscall { sp: self.sc_sp, pc: self.sc_pc }),
            3 => Some(procfs::SyscallState::InSyscall {
                nr: self.sc_nr,
                args: self.sc_args,
                sp: self.sc_sp,
                pc: self.sc_pc,
            }),
            _ => None,
        }
    }
}

/// Threads to leave out of the capture: failstop's own.
pub(crate) struct OwnThreads {
    pub monitor: libc::pid_t,
    pub reporter: libc::pid_t,
    /// The fuse thread (PID 1 only; 0: none).
    pub fuse: libc::pid_t,
}

impl OwnThreads {
    pub(super) fn has(&self, tid: libc::pid_t) -> bool {
        tid == self.monitor || tid == self.reporter || (self.fuse != 0 && tid == self.fuse)
    }
}
