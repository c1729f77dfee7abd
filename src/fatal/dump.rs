//! The one dump written on a verdict: every thread's state, culprit first.
//!
//! Two parts, in this order:
//!
//! 1. **Raw** (written by the monitor thread, allocation-free and lock-free,
//!    so it completes even when the culprit holds the allocator's or the
//!    dynamic loader's lock): the verdict line, then for every thread of the
//!    process its `/proc` state and its frames as raw addresses with module,
//!    offset and build-id, then the module table.
//! 2. **Symbolized** (by the reporter thread, which may allocate and take
//!    locks): function names and file:line. The monitor waits for it only
//!    until the dump deadline, so a symbolizer stuck on a lock held by the
//!    culprit costs the symbols, never the action.
//!
//! Frames are captured in each thread's own context: the monitor queues the
//! watchdog signal to the thread with [`CAPTURE_TAG`] and an entry index
//! (`rt_tgsigqueueinfo`); the thread's handler walks its own stack into
//! that entry (`engine::handler::on_capture_request`, async-signal-safe). All requests go
//! out at once and are answered in parallel; each answer is awaited when its
//! thread's turn to be written comes, under one bounded deadline for all, so
//! a thread that blocks the signal or sleeps uninterruptibly costs a bounded
//! time and is reported as not responding.
//!
//! Each thread's `/proc` files are read once per dump: `status`, `schedstat`
//! and `syscall` before the capture request (the lock graph, the decision
//! to ask, and the thread's lines all use that reading), `wchan` and `stack`
//! when the thread is written. Thread ids are looked up in a sorted array
//! built once per dump, never by a scan of the registry's slots.
//!
//! A signal interrupts the system call its receiver sleeps in, so in the
//! non-fatal modes only running threads (state R) are asked for frames.

use super::locks::{MAX_CYCLE, Waits};
use crate::os::cgroup::CpuCgroups;
use crate::os::fmt::FixedBuf;
use crate::os::modules::ModuleMap;
use crate::os::procfs::{self, SCRATCH_LEN, STACK_LEN, TaskDir};
use crate::os::ptrace;
use crate::os::signals;
use crate::os::sys;
use crate::state::captures::{CAPTURE_ANSWERS, CAPTURE_COUNT, CAPTURES, Capture, MAX_DUMP_THREADS};
use crate::state::frames::{
    self, CAP_EMPTY, CAP_MASKED, CAP_NOT_OURS, CAP_READY, CAP_REFUSED, CAP_REQUESTED, CAP_SIGWAIT, CAP_WRITING, Frames,
    MAX_FRAMES,
};
use crate::state::latch::{self, CULPRIT_FIGURE, CULPRIT_FRAMES, CULPRIT_SLOT, CULPRIT_TID, VERDICT_AT};
use crate::state::progress::{MONITOR_PERIOD, monitor_stall_limit_ns, wall_since_progress};
use crate::state::settings::LIVE;
use crate::state::sigval::{self, CAPTURE_TAG};
use crate::state::slots::{self, ACTIVE, CONTEXT_LEN, DEPARTED_PANICKED, DEPARTED_ZOMBIE, DETACHED, NAME_LEN, NO_SLOT};
use crate::verdict::VerdictKind;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::*;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};
use std::time::Duration;

/// The longest a dump waits for threads to answer a capture request.
const CAPTURE_WAIT_MAX: Duration = Duration::from_millis(500);

/// The in-memory copy of the dump, allocated once at start (lazily zeroed
/// pages: it costs memory only when a dump fills it). Every byte of the dump
/// goes here first; the file and stderr are two independent cursors over
/// it, so that a destination that blocks or fails never costs the other its
/// dump (see [`Sink`]).
const COPY_LEN: usize = 8 << 20;

struct Copy {
    ptr: AtomicPtr<u8>,
    /// Bytes written so far (published with Release after the bytes).
    len: AtomicUsize,
    /// The reporter appends only while this is false (it is false while
    /// the monitor waits for the symbolized part).
    sealed: AtomicBool,
    /// The reporter is appending now.
    busy: AtomicBool,
    /// Bytes that did not fit.
    lost: AtomicUsize,
}

static COPY: Copy = Copy {
    ptr: AtomicPtr::new(std::ptr::null_mut()),
    len: AtomicUsize::new(0),
    sealed: AtomicBool::new(true),
    busy: AtomicBool::new(false),
    lost: AtomicUsize::new(0),
};

/// Allocates the dump's in-memory copy (once per process). Normal context,
/// at start.
pub(crate) fn prepare_copy() {
    if COPY.ptr.load(Acquire).is_null() {
        let mem: &'static mut [u8] = Box::leak(vec![0u8; COPY_LEN].into_boxed_slice());
        if COPY.ptr.compare_exchange(std::ptr::null_mut(), mem.as_mut_ptr(), AcqRel, Acquire).is_err() {
            // Another start won the race: its copy is used; ours stays
            // leaked (zeroed pages, never touched).
        }
    }
}

/// Appends `bytes` to the copy. The caller is the one appender at this
/// moment (the monitor, or the reporter while the copy is unsealed).
fn copy_append(bytes: &[u8]) -> bool {
    let base = COPY.ptr.load(Acquire);
    let len = COPY.len.load(Relaxed);
    if base.is_null() || len + bytes.len() > COPY_LEN {
        COPY.lost.fetch_add(bytes.len(), Relaxed);
        return false;
    }
    // SAFETY: `base` points to COPY_LEN bytes leaked for the process's
    // life; [len, len + bytes.len()) is inside them and is written by the
    // one appender only (readers read below `len`, published afterwards).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(len), bytes.len()) };
    COPY.len.store(len + bytes.len(), Release);
    true
}

/// The copy's bytes `[from, len)`.
fn copy_since(from: usize) -> &'static [u8] {
    let base = COPY.ptr.load(Acquire);
    let len = COPY.len.load(Acquire);
    if base.is_null() || from >= len {
        return &[];
    }
    // SAFETY: bytes below the published `len` are written once and never
    // changed while this dump lasts; the memory lives as long as the process.
    unsafe { std::slice::from_raw_parts(base.add(from), len - from) }
}

/// The reporter appends the symbolized part (`text`) to the dump, unless
/// the monitor sealed the copy (the deadline passed). Allocation-free.
pub(crate) fn append_symbolized(text: &[u8]) {
    COPY.busy.store(true, SeqCst);
    if !COPY.sealed.load(SeqCst) {
        copy_append(text);
    }
    COPY.busy.store(false, SeqCst);
}

/// Where the dump goes: an in-memory copy first, then the dump file and
/// stderr, each written from the copy by its own cursor.
///
/// - The **file** is written as soon as it is open, each write bounded by
///   the dump deadline ([`sys::write_until`]); a failure (ENOSPC, EIO) is
///   said on stderr in one line and costs only the file.
/// - **stderr** is written in batches of whole lines of at most 4 KiB (so
///   lines never interleave mid-line with the application's own output on
///   a pipe), without waiting while the dump is being made (`ppoll` with
///   no timeout), then, once the file has its whole dump, waiting until
///   the deadline: a full pipe nobody reads costs at most the deadline and
///   never the file; a slow reader gets as much as the deadline allows. Its
///   `O_NONBLOCK` flag (a shared file description) is never changed.
///
/// One thread writes (the monitor, or the reporter for a stalled verdict);
/// the reporter only appends to the copy. Allocation-free.
pub(crate) struct Sink {
    buf: FixedBuf<4096>,
    deadline: u64,
    file: libc::c_int,
    file_sent: usize,
    file_short: Option<sys::WriteShort>,
    stderr: bool,
    err_sent: usize,
    err_short: Option<sys::WriteShort>,
}

impl Sink {
    /// A sink for a dump due by `deadline` (monotonic ns); `stderr` whether
    /// fd 2 is open and is not the file.
    pub(crate) fn new(stderr: bool, deadline: u64) -> Self {
        COPY.len.store(0, Release);
        COPY.lost.store(0, Relaxed);
        COPY.sealed.store(true, SeqCst);
        Sink {
            buf: FixedBuf::new(),
            deadline,
            file: -1,
            file_sent: 0,
            file_short: None,
            stderr,
            err_sent: 0,
            err_short: None,
        }
    }

    /// The dump file, once open: it gets everything written so far at once.
    pub(crate) fn set_file(&mut self, fd: libc::c_int) {
        self.file = fd;
        self.file_sent = 0;
        self.pump_file();
    }

    /// The line being built.
    pub(crate) fn line(&mut self) -> &mut FixedBuf<4096> {
        &mut self.buf
    }

    /// Ends the current line; writes out when the batch is large.
    pub(crate) fn eol(&mut self) {
        self.buf.push_str("\n");
        if self.buf.len() > 3000 {
            self.flush();
        }
    }

    /// Moves what is buffered to the copy and on to the destinations that
    /// take it without waiting.
    pub(crate) fn flush(&mut self) {
        if self.buf.len() > 0 {
            copy_append(self.buf.as_bytes());
            self.buf.clear();
        }
        self.pump(false);
    }

    /// Opens the copy to the reporter's symbolized part.
    pub(crate) fn unseal(&mut self) {
        self.flush();
        COPY.sealed.store(false, SeqCst);
    }

    /// Closes the copy to the reporter again, and waits (briefly: an append
    /// is a copy in memory) for one under way.
    pub(crate) fn seal(&mut self) {
        COPY.sealed.store(true, SeqCst);
        let until = sys::monotonic_ns() + 200_000_000;
        while COPY.busy.load(SeqCst) && sys::monotonic_ns() < until {
            // SAFETY: sched_yield has no arguments.
            unsafe { libc::sched_yield() };
        }
    }

    /// Writes the copy on to the file (bounded by the deadline) and to
    /// stderr: without waiting, or with `wait` until the deadline.
    pub(crate) fn pump(&mut self, wait: bool) {
        self.pump_file();
        self.pump_stderr(wait);
    }

    /// Whether stderr still has bytes to take.
    pub(crate) fn stderr_behind(&self) -> bool {
        self.stderr && self.err_short.is_none() && self.err_sent < COPY.len.load(Acquire)
    }

    fn pump_file(&mut self) {
        if self.file < 0 || self.file_short.is_some() {
            return;
        }
        let pending = copy_since(self.file_sent);
        if pending.is_empty() {
            return;
        }
        let (n, short) = sys::write_until(self.file, pending, self.deadline);
        self.file_sent += n;
        if let Some(why) = short {
            self.file_short = Some(why);
            // One line on stderr: the file lost its dump, and why.
            let mut b = FixedBuf::<512>::new();
            b.push_str("failstop: the dump file could not be written (");
            push_short(&mut b, why);
            b.push_str(") after ");
            b.push_u64(self.file_sent as u64);
            b.push_str(" bytes; the whole dump goes to stderr\n");
            copy_append(b.as_bytes());
        }
    }

    fn pump_stderr(&mut self, wait: bool) {
        if !self.stderr || self.err_short.is_some() {
            return;
        }
        let until = if wait { self.deadline } else { 0 };
        loop {
            let pending = copy_since(self.err_sent);
            if pending.is_empty() {
                return;
            }
            // Whole lines, at most PIPE_BUF bytes: one atomic write on a pipe.
            let mut take = pending.len().min(4096);
            if take < pending.len() {
                take = pending[..take].iter().rposition(|&c| c == b'\n').map_or(take, |i| i + 1);
            }
            let (n, short) = sys::write_until(2, &pending[..take], until);
            self.err_sent += n;
            match short {
                None => {}
                Some(sys::WriteShort::Deadline) if !wait => return,
                Some(why) => {
                    self.err_short = Some(why);
                    return;
                }
            }
        }
    }

    /// How the destinations fared, for the closing line: appends
    /// "; stderr ..." when stderr is behind or failed.
    pub(crate) fn push_outcome(&mut self) {
        let b = &mut self.buf;
        let lost = COPY.lost.load(Relaxed);
        if lost > 0 {
            b.push_str("; ");
            b.push_u64(lost as u64);
            b.push_str(" bytes did not fit in the dump's memory and are missing");
        }
        if let Some(why) = self.file_short {
            b.push_str("; the dump file failed: ");
            push_short(b, why);
        }
        if let Some(why) = self.err_short {
            b.push_str("; stderr failed: ");
            push_short(b, why);
        }
    }
}

/// Ends a dump: writes out what is buffered, fsyncs and closes the file,
/// and only then lets stderr take until the deadline (the file has its
/// whole dump first). Allocation-free.
pub(crate) fn close_out(sink: &mut Sink, file: Option<sys::Fd>) {
    sink.flush();
    if let Some(f) = &file {
        // SAFETY: fsync on our own open descriptor.
        unsafe { libc::fsync(f.raw()) };
    }
    drop(file);
    sink.pump(true);
}

/// Writes an errno by its name (`ENOSPC`), or as `errno N` when it has none.
fn push_errno<const N: usize>(b: &mut FixedBuf<N>, e: i32) {
    let name = sys::errno_name(e);
    if name.is_empty() {
        b.push_str("errno ");
        b.push_i64(e as i64);
    } else {
        b.push_str(name);
    }
}

fn push_short<const N: usize>(b: &mut FixedBuf<N>, why: sys::WriteShort) {
    match why {
        sys::WriteShort::Deadline => b.push_str("the dump deadline passed while it took no more bytes"),
        sys::WriteShort::Failed(e) => push_errno(b, e),
    }
}

/// Per-dump scratch space, allocated once at start so the dump never allocates.
pub(crate) struct Scratch {
    pub modules: Box<ModuleMap>,
    /// The futex waits of the dump's threads (the wait-for graph).
    pub waits: Waits,
    pub tids: Box<[libc::pid_t; MAX_DUMP_THREADS]>,
    /// What each of `tids` showed in `/proc` (same index), read once per
    /// dump ([`Facts::read`]).
    facts: Box<[Facts]>,
    /// `(tid, index in tids)` of the dump's threads, sorted by tid: the
    /// dump's tid lookups are binary searches ([`Scratch::index_of`]).
    by_tid: Box<[(libc::pid_t, u32)]>,
    by_tid_len: usize,
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
    fn index_threads(&mut self, first: usize, n: usize) {
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
    fn slot_of(&self, tid: libc::pid_t) -> Option<&'static slots::Slot> {
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
struct Facts {
    /// The registry slot watching the thread, or [`NO_SLOT`].
    slot: usize,
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
    fn read(&mut self, dir: &TaskDir, tid: libc::pid_t, io: &mut [u8]) {
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

    fn status(&self) -> Option<&procfs::TaskStatus> {
        (self.has & HAS_STATUS != 0).then_some(&self.status)
    }

    fn sched(&self) -> Option<procfs::SchedStat> {
        (self.has & HAS_SCHED != 0).then_some(self.sched)
    }

    /// Whether the thread was gone from `/proc` (no file could be read).
    fn gone(&self) -> bool {
        self.has & (HAS_STAT | HAS_STATUS) == 0
    }

    /// The scheduler state letter (`?` when unreadable).
    fn state(&self) -> u8 {
        if let Some(st) = self.status() {
            st.state
        } else if self.has & HAS_STAT != 0 {
            self.stat.state
        } else {
            b'?'
        }
    }

    /// CPU time: `schedstat`'s, else `stat`'s ticks.
    fn cpu_ns(&self) -> Option<u64> {
        self.sched().map(|s| s.run_ns).or_else(|| {
            (self.has & HAS_STAT != 0)
                .then(|| procfs::ticks_to_ns(self.stat.utime_ticks + self.stat.stime_ticks, procfs::clk_tck()))
        })
    }

    fn syscall(&self) -> Option<procfs::SyscallState> {
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
    fn has(&self, tid: libc::pid_t) -> bool {
        tid == self.monitor || tid == self.reporter || (self.fuse != 0 && tid == self.fuse)
    }
}

/// Pushes a thread's name, quoted, as the dump and the warnings print it:
/// the one place that does. A registered thread whose name was its `comm`
/// at registration (every thread of the preload) is named by its `comm` of
/// now, read from `/proc`, followed by the registered name when the two
/// differ: `"mc-worker" (registered as "memcached")`. A name the program
/// chose is printed as registered; an unregistered thread by its `comm`.
/// `io` is scratch for the read. Allocation-free; normal context (the
/// monitor's and the reporter's threads).
pub(crate) fn push_thread_name<const N: usize>(
    b: &mut FixedBuf<N>,
    slot: Option<&slots::Slot>,
    tid: libc::pid_t,
    io: &mut [u8],
) {
    let mut reg = [0u8; NAME_LEN];
    let reg_len = slot.map_or(0, |s| s.name_into(&mut reg));
    let by_comm = slot.is_none_or(|s| s.named_by_comm.load(Relaxed));
    let now = if by_comm { procfs::read_comm(tid, io).ok() } else { None };
    b.push_str("\"");
    match (slot, now) {
        (Some(_), Some(now)) if now != &reg[..reg_len] => {
            b.push_escaped(now);
            b.push_str("\" (registered as \"");
            b.push_escaped(&reg[..reg_len]);
            b.push_str("\")");
            return;
        }
        (Some(_), _) => b.push_escaped(&reg[..reg_len]),
        (None, now) => b.push_escaped(now.unwrap_or_default()),
    }
    b.push_str("\"");
}

/// Pushes `process <pid> "<comm of the main thread>"`: which process a
/// dump is from (a forked worker's dump looks like its siblings'
/// otherwise). Allocation-free.
fn push_process<const N: usize>(b: &mut FixedBuf<N>, io: &mut [u8]) {
    let pid = sys::getpid();
    b.push_str("process ");
    b.push_i64(pid as i64);
    b.push_str(" \"");
    b.push_escaped(procfs::read_comm(pid, io).unwrap_or_default());
    b.push_str("\"");
}

/// The verdict line's clause for a culprit in uninterruptible sleep (D):
/// no signal reaches it, and the process cannot end while it sleeps (the
/// other threads wait for it in the exit or the core dump, the descriptors
/// it shares stay open). Only the system call's return, or the node's
/// reboot, clears it: this is the case fencing exists for.
/// (Some D sleeps are killable, a vfork parent's for one; /proc does not
/// tell them apart, so the clause says "unless".)
pub(crate) const UNKILLABLE: &str = "; it is in uninterruptible sleep (state D): unless that sleep is a killable one, \
     it cannot be killed until the system call returns, so the process may not end and its descriptors stay open \
     until then: if the process does not end, fence the node";

/// Writes the raw part of the dump. `spared_by`: the tracer that spares
/// the process (`fatal::end::spare_if_traced`) and how often the process
/// looks whether it is still traced. Allocation-free; monitor thread.
/// Returns the number of threads listed.
pub(crate) fn write_raw(
    out: &mut Sink,
    scratch: &mut Scratch,
    own: &OwnThreads,
    spared_by: Option<(libc::pid_t, Duration)>,
) -> usize {
    let kind = latch::latched().unwrap_or(VerdictKind::Stuck);
    let culprit = CULPRIT_TID.load(Relaxed);
    let culprit_slot = slots::slot(CULPRIT_SLOT.load(Relaxed));
    let figure = CULPRIT_FIGURE.load(Relaxed);

    // The threads and the wait-for graph first (the verdict line names
    // who waits for a blocked culprit).
    // Every thread of the process, the culprit first (index 0 is kept for
    // it, so that it is listed even when there are too many threads).
    let mut ntids = 1;
    let mut culprit_seen = false;
    let tids = &mut scratch.tids;
    let mut more = 0usize;
    let _ = procfs::for_each_task(&mut scratch.io[..], |tid| {
        if tid == culprit {
            culprit_seen = true;
        } else if ntids < MAX_DUMP_THREADS {
            tids[ntids] = tid;
            ntids += 1;
        } else {
            more += 1;
        }
    });
    tids[0] = culprit;
    let first = if culprit_seen { 0 } else { 1 };
    // Each thread's registry slot, and its /proc files read once, before
    // the capture request interrupts the sleeps.
    // The threads' files are opened relative to /proc/self/task, held
    // open while the dump lasts.
    let task_dir = TaskDir::open();
    scratch.index_threads(first, ntids);
    for i in first..ntids {
        let tid = scratch.tids[i];
        scratch.facts[i].read(&task_dir, tid, &mut scratch.io[..]);
    }
    // The wait-for graph. A stuck culprit sleeps in failstop's handler (it
    // waits for this dump): that wait is failstop's, not the application's.
    let in_handler = if kind == VerdictKind::Stuck { culprit } else { 0 };
    {
        let Scratch { waits, tids, facts, by_tid, by_tid_len, .. } = &mut *scratch;
        let threads = (first..ntids)
            .filter(|&i| !own.has(tids[i]) && tids[i] != in_handler)
            .filter_map(|i| Some((tids[i], facts[i].syscall()?)));
        let sorted = &by_tid[..*by_tid_len];
        waits.collect(threads, |t| sorted.binary_search_by_key(&t, |e| e.0).is_ok());
    }

    // 1. The verdict line.
    let mut name = FixedBuf::<96>::new();
    if kind == VerdictKind::Stalled {
        name.push_str("\"failstop-monitor\"");
    } else {
        push_thread_name(&mut name, culprit_slot, culprit, &mut scratch.io[..]);
    }
    let b = out.line();
    b.push_str("failstop: ");
    b.push_str(kind.as_str());
    b.push_str(": thread ");
    b.push_bytes(name.as_bytes());
    b.push_str(" (tid ");
    b.push_i64(culprit as i64);
    match kind {
        VerdictKind::Blocked => {
            b.push_str(") made no progress for ");
            b.push_ms(figure);
            let still = latch::CULPRIT_STILL.load(Relaxed);
            if still > 0 {
                // The rule's evidence: the thread's CPU clock did not move
                // (so it neither ran nor switched) for at least the last
                // three quarters of the stall budget.
                b.push_str(" ms, with no CPU time and no context switch in the last ");
                b.push_ms(still);
                b.push_str(" ms (stall_budget ");
            } else {
                b.push_str(" ms (stall_budget ");
            }
            b.push_u64(LIVE.stall_budget_ns.load(Relaxed) / 1_000_000);
        }
        VerdictKind::Deaf => {
            b.push_str(") used ");
            b.push_ms(figure);
            b.push_str(" ms of CPU without progress and without running failstop's signal handler (cpu_budget ");
            b.push_u64(LIVE.cpu_budget_ns.load(Relaxed) / 1_000_000);
            b.push_str(" ms, seen by the monitor, which looks every ");
            b.push_u64(MONITOR_PERIOD.as_millis() as u64);
        }
        VerdictKind::Stalled => {
            b.push_str(") is failstop's own monitor: it has not come around for ");
            b.push_ms(figure);
            b.push_str(" ms (it should every ");
            b.push_u64(MONITOR_PERIOD.as_millis() as u64);
            b.push_str(" ms), so nothing judges the threads any more (limit ");
            b.push_u64(monitor_stall_limit_ns() / 1_000_000);
        }
        VerdictKind::Polling => {
            b.push_str(") made no progress for ");
            b.push_ms(figure);
            b.push_str(" ms and read or wrote no byte while it only slept and woke (poll_budget ");
            b.push_u64(LIVE.poll_budget_ns.load(Relaxed) / 1_000_000);
        }
        VerdictKind::Vanished => {
            b.push_str(") is gone without unregistering (");
            b.push_str(match culprit_slot.map_or(0, |s| s.departed.load(Relaxed)) {
                DEPARTED_PANICKED => "it unwound from a panic with its handle alive",
                DEPARTED_ZOMBIE => "the main thread ended by SYS_exit and is a zombie while the other threads run",
                _ => "it ended without running its thread-exit path: SYS_exit, or killed in the kernel",
            });
            b.push_str("; its loop no longer runs; last progress ");
            b.push_ms(figure);
        }
        VerdictKind::Stuck => {
            b.push_str(") used ");
            b.push_ms(figure);
            b.push_str(" ms of CPU without progress (cpu_budget ");
            b.push_u64(LIVE.cpu_budget_ns.load(Relaxed) / 1_000_000);
            b.push_str(" ms, checked every ");
            b.push_ms(LIVE.period_ns.load(Relaxed));
        }
    }
    b.push_str(" ms)");
    if kind == VerdictKind::Blocked {
        push_waited_for_by(b, scratch, culprit);
    }
    if culprit_seen && scratch.facts[0].state() == b'D' {
        b.push_str(UNKILLABLE);
    }
    b.push_str("; action: ");
    push_action(b);
    b.push_str("; ");
    push_process(b, &mut scratch.io[..]);
    out.eol();

    // 2. A debugger spares the process: say so, and until when.
    if let Some((tracer, poll)) = spared_by {
        let b = out.line();
        b.push_str("failstop: a debugger is attached (TracerPid ");
        b.push_i64(tracer as i64);
        b.push_str("): reporting only, the process is not ended while it is traced, and is ended once no thread is (looked at every ");
        b.push_u64(poll.as_millis() as u64);
        b.push_str(" ms; FAILSTOP_ABORT_UNDER_DEBUGGER=1 to end it at once)");
        out.eol();
    }

    // 3. The process: its threads, and what held it back (CPU quota).
    let b = out.line();
    b.push_str("failstop: pid ");
    b.push_i64(sys::getpid() as i64);
    b.push_str(", ");
    b.push_u64((ntids - first + more) as u64);
    b.push_str(" threads; verdict at CLOCK_MONOTONIC ");
    b.push_ms(VERDICT_AT.load(Relaxed));
    b.push_str(" ms; '>' marks the culprit; failstop ");
    b.push_str(env!("CARGO_PKG_VERSION"));
    out.eol();

    write_cgroups(out, scratch);

    // 4. A deadlock cycle is said here, near the top.
    write_deadlock_line(out, scratch, culprit);

    // The culprit's state and system call first: a capture request would
    // interrupt the system call a blocked culprit sleeps in, and /proc read
    // afterwards could show it returning from the handler instead.
    let culprit_state = if culprit_seen { write_thread_state(out, scratch, &task_dir, 0, true, own) } else { None };
    if !culprit_seen {
        let b = out.line();
        b.push_str("> thread ");
        b.push_i64(culprit as i64);
        b.push_str(" ");
        b.push_bytes(name.as_bytes());
        b.push_str(" gone: it is no longer in /proc/self/task");
        out.eol();
    }
    PTRACE_COUNT.store(0, Relaxed);
    // The requests go out to every thread at once and are answered in
    // parallel; each thread's answer is awaited only when its turn to be
    // written comes (under one deadline for all), so that the /proc lines of
    // the threads before it are written meanwhile.
    request_captures(&scratch.tids[first..ntids], &scratch.facts[first..ntids], culprit, own);
    let budget = Duration::from_nanos(LIVE.dump_timeout_ns.load(Relaxed) / 4).min(CAPTURE_WAIT_MAX);
    let capture_deadline = sys::monotonic_ns() + budget.as_nanos() as u64;

    let _ = scratch.modules.refresh();
    if let Some(state) = culprit_state {
        await_capture(&CAPTURES[0], state, capture_deadline);
        write_thread_frames(out, scratch, 0, culprit, true, state);
    }
    for i in 1..ntids {
        let tid = scratch.tids[i];
        let ci = i - first;
        await_capture(&CAPTURES[ci], scratch.facts[i].state(), capture_deadline);
        if let Some(state) = write_thread_state(out, scratch, &task_dir, i, false, own) {
            write_thread_frames(out, scratch, ci, tid, false, state);
        }
    }
    if more > 0 {
        let b = out.line();
        b.push_str("failstop: ");
        b.push_u64(more as u64);
        b.push_str(" more threads not listed (limit ");
        b.push_u64(MAX_DUMP_THREADS as u64);
        b.push_str(")");
        out.eol();
    }
    write_locks(out, scratch);
    out.line().push_str("failstop: modules (path, load base, bias, build-id):");
    out.eol();
    write_modules(out, &scratch.modules);
    out.flush();
    ntids - first
}

/// Appends `"name" (tid N)`, the name as [`push_thread_name`] gives it
/// (the current `comm`, and the registered name where they differ).
fn push_named_tid(b: &mut FixedBuf<4096>, scratch: &mut Scratch, tid: libc::pid_t) {
    let slot = scratch.slot_of(tid);
    push_thread_name(b, slot, tid, &mut scratch.io[..]);
    b.push_str(" (tid ");
    b.push_i64(tid as i64);
    b.push_str(")");
}

/// The deadlock line, when the wait-for graph has a cycle (the one through
/// the culprit if there is one):
/// `failstop: deadlock: "a" (tid 1) waits for "b" (tid 2), which waits for "a"`.
fn write_deadlock_line(out: &mut Sink, scratch: &mut Scratch, culprit: libc::pid_t) {
    let mut cycle = [0; MAX_CYCLE];
    let n = scratch.waits.cycle(culprit, &mut cycle);
    if n == 0 {
        return;
    }
    let b = out.line();
    b.push_str("failstop: deadlock: ");
    for (i, &tid) in cycle[..n].iter().enumerate() {
        if i > 0 {
            b.push_str(if i == 1 { " waits for " } else { ", which waits for " });
        }
        push_named_tid(b, scratch, tid);
    }
    // A thread never waits for itself here (no such edge is drawn), so a
    // cycle has at least two threads, and it closes on the first.
    b.push_str(", which waits for ");
    push_named_tid(b, scratch, cycle[0]);
    out.eol();
}

/// Waiters named on the verdict line; the rest are counted.
const WAITERS_ON_VERDICT: usize = 8;

/// Pushes `; waited for by "NAME" (tid N), ...`: the threads asleep on a
/// lock `culprit` holds (as the wait-for graph has them), if any.
fn push_waited_for_by(b: &mut FixedBuf<4096>, scratch: &mut Scratch, culprit: libc::pid_t) {
    let mut shown = 0;
    let mut more = 0u64;
    for i in 0..scratch.waits.list().len() {
        let w = scratch.waits.list()[i];
        if w.holder.owner() != Some(culprit) {
            continue;
        }
        if shown == WAITERS_ON_VERDICT {
            more += 1;
            continue;
        }
        b.push_str(if shown == 0 { "; waited for by " } else { ", " });
        push_named_tid(b, scratch, w.tid);
        shown += 1;
    }
    if more > 0 {
        b.push_str(", and ");
        b.push_u64(more);
        b.push_str(" more");
    }
}

/// One line per cgroup with the CPU controller the process is in (its own,
/// and each ancestor with a quota): the quota and how often and how long it
/// held the process back, so that "throttled, not hung" is seen at once.
fn write_cgroups(out: &mut Sink, scratch: &mut Scratch) {
    let Scratch { cgroups, io, .. } = scratch;
    let mut first = true;
    cgroups.for_each(&mut io[..], |version, name, t| {
        let own = std::mem::take(&mut first);
        if !own && t.quota.is_none() && t.nr_throttled == 0 {
            return;
        }
        let b = out.line();
        b.push_str("failstop: cgroup v");
        b.push_u64(version.into());
        b.push_str(" \"");
        b.push_escaped(name);
        b.push_str("\": ");
        match t.quota {
            Some((quota, period)) => {
                b.push_str("cpu quota ");
                b.push_u64(quota);
                b.push_str(" us per ");
                b.push_u64(period);
                b.push_str(" us");
            }
            None => b.push_str("no cpu quota"),
        }
        b.push_str("; nr_throttled ");
        b.push_u64(t.nr_throttled);
        b.push_str(" of ");
        b.push_u64(t.nr_periods);
        b.push_str(" periods; throttled ");
        b.push_ms(t.throttled_ns);
        b.push_str(" ms (summed over CPUs)");
        out.eol();
    });
}

/// Waiters named on one lock's line; the rest are counted.
const WAITERS_SHOWN: usize = 32;

/// The locks the dump's threads sleep on, one line per futex word (grouped
/// by address): who holds it when the lock records it, and who waits.
fn write_locks(out: &mut Sink, scratch: &mut Scratch) {
    let len = scratch.waits.list().len();
    if len == 0 {
        return;
    }
    out.line().push_str("failstop: locks waited on (futex word: what it is, who holds it, who waits):");
    out.eol();
    let mut i = 0;
    while i < len {
        let first = scratch.waits.list()[i];
        let mut end = i + 1;
        while end < len && scratch.waits.list()[end].addr == first.addr {
            end += 1;
        }
        let b = out.line();
        b.push_str("    ");
        b.push_hex(first.addr);
        b.push_str(" ");
        b.push_str(first.holder.describe());
        if let Some(owner) = first.holder.owner() {
            b.push_str(", held by ");
            push_named_tid(b, scratch, owner);
        }
        b.push_str(": waited on by ");
        let shown = end.min(i + WAITERS_SHOWN);
        for j in i..shown {
            if j > i {
                b.push_str(", ");
            }
            let tid = scratch.waits.list()[j].tid;
            push_named_tid(b, scratch, tid);
        }
        if end > shown {
            b.push_str(", and ");
            b.push_u64((end - shown) as u64);
            b.push_str(" more");
        }
        out.eol();
        i = end;
    }
}

/// Writes the configured action as the dump and the `tracing` events name
/// it: [`Action`](crate::Action)'s one text form (`abort`, `exit:N`,
/// `unhealthy`, `warn`). Allocation-free: `core::fmt` into a fixed buffer.
pub(crate) fn push_action<const N: usize>(b: &mut FixedBuf<N>) {
    let _ = write!(b, "{}", LIVE.action());
}

/// Queues a capture request to every thread that may be signalled (each
/// with its `/proc` facts, read beforehand). The requests are sent in one
/// loop, so that the threads answer in parallel.
fn request_captures(tids: &[libc::pid_t], facts: &[Facts], culprit: libc::pid_t, own: &OwnThreads) {
    let signo = LIVE.signo.load(Relaxed);
    let fatal = LIVE.fatal();
    // A request would reach the application's handler or default action.
    let ours = signals::disposition(signo).is_some_and(|cur| cur.sa_sigaction == sigval::OUR_HANDLER.load(Acquire));
    for (i, (&tid, f)) in tids.iter().zip(facts).enumerate() {
        let c = &CAPTURES[i];
        c.frames.state.store(CAP_EMPTY, Relaxed);
        c.tid.store(0, Relaxed);
        // The slot goes with every entry: the reporter names the thread by it.
        c.slot.store(f.slot, Relaxed);
        if tid == culprit && CULPRIT_FRAMES.state.load(Acquire) == CAP_READY || own.has(tid) {
            continue;
        }
        // A culprit blocked in a system call is not signalled for its
        // frames: the signal would end a sleep the kernel does not restart
        // (`nanosleep`, `epoll_wait`: EINTR), and the convicted thread would
        // run on while the dump is written, to be ended by the action in
        // the middle of whatever it does next (a crash reporter's handler
        // then reports on half-done work). The ptrace helper reads it
        // instead: a ptrace stop restarts the system call unseen. Should
        // the helper fail, the signal is the fallback.
        if fatal && tid == culprit && matches!(f.syscall(), Some(procfs::SyscallState::InSyscall { .. })) {
            let mut got = [0usize; MAX_FRAMES];
            if let Ok((n, _)) = by_ptrace(i, tid, &mut got)
                && n > 0
            {
                c.tid.store(tid, Relaxed);
                c.frames.store(&got[..n]);
                c.frames.state.store(CAP_READY, Release);
                continue;
            }
        }
        // A signal interrupts the system call a thread sleeps in: outside a
        // fatal verdict, only running threads are asked. A thread in
        // uninterruptible sleep (D) cannot answer: it is asked, in case it
        // wakes in time, but not waited for.
        let state = f.state();
        if !fatal && state != b'R' {
            continue;
        }
        // A thread that blocks the signal (a sigwait loop, a thread that
        // masks everything, a deaf culprit) cannot answer: not asked, so
        // that the dump does not wait for it.
        if f.status().is_some_and(|st| st.blocks(signo)) {
            c.tid.store(tid, Relaxed);
            c.frames.state.store(CAP_MASKED, Release);
            continue;
        }
        // A thread in sigtimedwait (sigwait, sigwaitinfo) has the signals it
        // waits for unblocked meanwhile, and would take the request.
        let sigwait = matches!(f.syscall(),
            Some(procfs::SyscallState::InSyscall { nr, .. }) if nr == libc::SYS_rt_sigtimedwait);
        if sigwait || !ours {
            c.tid.store(tid, Relaxed);
            c.frames.state.store(if ours { CAP_SIGWAIT } else { CAP_NOT_OURS }, Release);
            continue;
        }
        let (lo, hi) = slots::slot(f.slot).map_or((0, 0), |s| (s.stack_lo.load(Relaxed), s.stack_hi.load(Relaxed)));
        c.lo.store(lo, Relaxed);
        c.hi.store(hi, Relaxed);
        c.tid.store(tid, Relaxed);
        c.frames.state.store(CAP_REQUESTED, Release);
        match sys::tgsigqueue(tid, signo, sigval::encode(CAPTURE_TAG, i)) {
            Ok(()) => {}
            // Real-time signals are queued with their siginfo or refused.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => c.frames.state.store(CAP_REFUSED, Release),
            Err(_) => c.frames.state.store(CAP_EMPTY, Relaxed),
        }
    }
    CAPTURE_COUNT.store(tids.len(), Release);
}

/// Waits until capture entry `c` is answered, or `deadline` passed: only
/// while the request is out (or the answer being written), and not for a
/// thread in uninterruptible sleep (`state` D), which cannot answer. Every
/// answer bumps [`CAPTURE_ANSWERS`] and wakes its futex.
fn await_capture(c: &Capture, state: u8, deadline: u64) {
    if state == b'D' {
        return;
    }
    loop {
        let seen = CAPTURE_ANSWERS.load(Acquire);
        let st = c.frames.state.load(Acquire);
        if st != CAP_REQUESTED && st != CAP_WRITING {
            return;
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            return;
        }
        sys::futex_wait(&CAPTURE_ANSWERS, seen, Some(Duration::from_nanos(deadline - now)));
    }
}

/// Writes the line of thread `tids[i]` and its `/proc` evidence (state,
/// counters and system call as [`Facts::read`] found them; wchan and kernel
/// stack read now); returns its state letter, or `None` if it exited (one
/// line says so).
fn write_thread_state(
    out: &mut Sink,
    scratch: &mut Scratch,
    dir: &TaskDir,
    i: usize,
    is_culprit: bool,
    own: &OwnThreads,
) -> Option<u8> {
    let tid = scratch.tids[i];
    let facts = scratch.facts[i];
    let slot_idx = Some(facts.slot).filter(|&s| s != NO_SLOT);
    let slot = slot_idx.and_then(slots::slot);
    let status = facts.status().copied();
    let sched = facts.sched();
    let cpu_ns = facts.cpu_ns();

    // Listed a moment ago, gone now: before its files were read, or since
    // (a thread woken by the capture request may answer and leave). Signal
    // 0 tells whether it still exists, without a signal.
    let exited = facts.gone() || sys::tgkill(tid, 0).is_err_and(|e| e.raw_os_error() == Some(libc::ESRCH));
    if exited && !is_culprit {
        let b = out.line();
        b.push_str("  thread ");
        b.push_i64(tid as i64);
        b.push_str(" exited while the dump was written");
        out.eol();
        return None;
    }
    let b = out.line();
    b.push_str(if is_culprit { "> thread " } else { "  thread " });
    b.push_i64(tid as i64);
    b.push_str(" ");
    match (slot, &status) {
        (None, Some(st)) => {
            b.push_str("\"");
            b.push_escaped(st.name());
            b.push_str("\"");
        }
        _ => push_thread_name(b, slot, tid, &mut scratch.io[..]),
    }
    b.push_str(" state ");
    let state = facts.state();
    b.push_bytes(&[state]);
    b.push_str(" (");
    b.push_str(procfs::state_name(state));
    b.push_str(")");
    if own.has(tid) {
        b.push_str(" failstop's own thread");
    }
    match slot {
        Some(s) => {
            b.push_str(" registered");
            if s.idle_depth.load(Relaxed) > 0 {
                b.push_str(" idle");
            }
            if s.harmless_depth.load(Relaxed) > 0 {
                b.push_str(" harmless");
            }
            if s.suspended.load(Relaxed) {
                b.push_str(" suspended");
            }
        }
        None => b.push_str(" unregistered"),
    }
    if let Some(ns) = cpu_ns {
        b.push_str(" cpu ");
        b.push_ms(ns);
        b.push_str(" ms");
    }
    if let Some(s) = sched {
        // Time runnable but not running: starved or throttled, not hung.
        b.push_str(" runq ");
        b.push_ms(s.run_delay_ns);
        b.push_str(" ms");
    }
    if let Some(st) = &status {
        b.push_str(" ctxsw ");
        b.push_u64(st.voluntary_ctxt_switches);
        b.push_str(" voluntary ");
        b.push_u64(st.nonvoluntary_ctxt_switches);
        b.push_str(" involuntary");
    }
    if let Some(s) = slot {
        let clock = s.cpu_clock.load(Relaxed);
        let now_cpu = sys::clock_ns(clock);
        let since = now_cpu.saturating_sub(s.progress_cpu.load(Relaxed));
        b.push_str(" since-progress ");
        b.push_ms(since);
        b.push_str(" ms cpu");
        let wall = wall_since_progress(slot_idx.unwrap_or(0));
        if let Some(w) = wall {
            b.push_str(" ");
            b.push_ms(w);
            b.push_str(" ms wall");
        }
    }
    out.eol();
    if let Some(s) = slot {
        let mut text = [0u8; CONTEXT_LEN];
        let n = s.context_into(&mut text);
        if n > 0 {
            let b = out.line();
            b.push_str("    context: \"");
            b.push_escaped(&text[..n]);
            b.push_str("\"");
            out.eol();
        }
    }
    if is_culprit && latch::latched() == Some(VerdictKind::Stuck) {
        out.line().push_str("    (the culprit is inside failstop's signal handler: its state and system call are the handler's; the frames show where it was interrupted)");
        out.eol();
    }
    if is_culprit && latch::latched() == Some(VerdictKind::Deaf) {
        let signo = LIVE.signo.load(Relaxed);
        let masked = status.as_ref().is_some_and(|st| st.blocks(signo));
        let b = out.line();
        b.push_str("    (failstop's signal handler cannot run on the culprit: ");
        b.push_str(if masked {
            "it blocks the watchdog signal, or runs a signal handler that masks it"
        } else {
            "the watchdog signal does not reach failstop's handler (was it replaced?)"
        });
        b.push_str("; the watchdog signal is ");
        b.push_i64(signo as i64);
        b.push_str(". No frames can be captured in its own context: a ptrace helper reads them where it can; with `abort` the core file has its registers)");
        out.eol();
    }

    write_syscall_line(out, scratch, dir, tid, facts.syscall());
    Some(state)
}

/// Writes a thread's frames, captured in its own context (capture entry
/// `ci`), or why there are none; `state` is its state letter as
/// [`write_thread_state`] read it.
fn write_thread_frames(
    out: &mut Sink,
    scratch: &mut Scratch,
    ci: usize,
    tid: libc::pid_t,
    is_culprit: bool,
    state: u8,
) {
    let mut frames = [0usize; MAX_FRAMES];
    let (n, source) = if is_culprit && CULPRIT_FRAMES.state.load(Acquire) == CAP_READY {
        (CULPRIT_FRAMES.load(&mut frames), Some(&CULPRIT_FRAMES))
    } else {
        match captured(ci, tid, &mut frames) {
            Ok((found, source)) => (found, Some(source)),
            Err(why) if ptrace_may_help(why, state) => match by_ptrace(ci, tid, &mut frames) {
                Ok((found, source)) => {
                    let b = out.line();
                    b.push_str("    (");
                    b.push_str(why);
                    b.push_str(": frames read by a ptrace helper process instead)");
                    out.eol();
                    (found, source)
                }
                Err(also) => {
                    let b = out.line();
                    b.push_str("    (no backtrace: ");
                    b.push_str(why);
                    b.push_str("; a ptrace helper could not read it either: ");
                    b.push_str(also);
                    b.push_str(")");
                    out.eol();
                    return;
                }
            },
            Err(why) => {
                let b = out.line();
                b.push_str("    (no backtrace: ");
                b.push_str(why);
                if state == b'D' {
                    b.push_str("; state D, uninterruptible: it cannot run a signal handler; the /proc data above is all there is");
                }
                b.push_str(")");
                out.eol();
                return;
            }
        }
    };
    // Code built without frame pointers, where the DWARF unwinder could not
    // help, leaves other words where a frame record should be. The first
    // "return address" outside every executable mapping ends the backtrace
    // here and in the symbolized part (the reporter reads the shortened
    // count).
    let plausible = scratch.modules.plausible_frames(&frames[..n]);
    if plausible < n
        && let Some(source) = source
    {
        source.len.store(plausible, Relaxed);
    }
    for (i, &a) in frames[..plausible].iter().enumerate() {
        let b = out.line();
        b.push_str("    #");
        b.push_u64(i as u64);
        b.push_str(" ");
        scratch.modules.write_frame(b, a);
        out.eol();
    }
    if plausible < n {
        let b = out.line();
        b.push_str("    (the walk ends here: the next return address, ");
        b.push_hex(frames[plausible] as u64);
        b.push_str(", is in no executable mapping; the code there has no frame pointers)");
        out.eol();
    }
}

/// Why a thread has no frames of its own capture: it blocks the signal.
const MASKED: &str = "not asked: it blocks the watchdog signal";
/// Why a thread has no frames of its own capture: it waits for signals.
const SIGWAIT: &str = "not asked: it waits for signals (sigwait, sigtimedwait), which would take the request";
/// Why no thread has frames of its own capture: the handler was replaced.
const NOT_OURS: &str = "not asked: the application replaced failstop's handler of the watchdog signal";
/// Why a thread has no frames of its own capture: the signal queue is full.
const REFUSED: &str = "the capture signal could not be queued: the queue of pending signals is used up \
                       (RLIMIT_SIGPENDING, `ulimit -i`)";
/// Why a thread has no frames of its own capture: no answer in time.
const NOT_RESPONDING: &str =
    "not responding to the capture signal in time (signal blocked, stopped, or uninterruptible)";
/// Threads whose frames a dump reads with the ptrace helper, at most.
const PTRACE_MAX: usize = 32;
/// The longest one ptrace capture may take.
const PTRACE_EACH: Duration = Duration::from_millis(100);
/// ptrace captures made in this dump (reset by `write_raw`).
static PTRACE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Whether the ptrace helper is worth trying for a thread without frames
/// (`why`, `state`): it was not asked (it blocks the signal, waits for
/// signals, the handler was replaced, the queue is full) or did not
/// answer, and it is not
/// in uninterruptible sleep (it would not stop). Outside a fatal verdict
/// only a running thread is stopped (a stop can cut a sleeping system call
/// short, as the signal would).
fn ptrace_may_help(why: &str, state: u8) -> bool {
    [MASKED, SIGWAIT, NOT_OURS, REFUSED, NOT_RESPONDING].contains(&why)
        && state != b'D'
        && (LIVE.fatal() || state == b'R')
}

/// Frames of `tid` read by the ptrace helper, within the limits of a dump:
/// [`PTRACE_MAX`] threads, [`PTRACE_EACH`] each, and never in the second
/// half of the dump deadline (the rest of the dump needs it).
/// Returns their count and the capture entry they were also stored in (for
/// the symbolized part), if any.
fn by_ptrace(
    ci: usize,
    tid: libc::pid_t,
    frames: &mut [usize; MAX_FRAMES],
) -> Result<(usize, Option<&'static Frames>), &'static str> {
    if PTRACE_COUNT.fetch_add(1, Relaxed) >= PTRACE_MAX {
        return Err("the dump's limit of ptrace captures was reached");
    }
    let timeout = LIVE.dump_timeout_ns.load(Relaxed);
    let left = (VERDICT_AT.load(Relaxed) + timeout).saturating_sub(sys::monotonic_ns());
    if left < timeout / 2 {
        return Err("not enough of the dump deadline left");
    }
    let mut got = [0usize; ptrace::MAX_FRAMES];
    let n = ptrace::capture(tid, &mut got, PTRACE_EACH.min(Duration::from_nanos(left / 4)), frames::capture_registers)?;
    let n = n.min(MAX_FRAMES);
    frames[..n].copy_from_slice(&got[..n]);
    // Into the thread's capture entry, for the symbolized part. The entry
    // is masked, or was abandoned (a late answer of the handler finds it
    // so and leaves it): taken with a compare-and-swap either way.
    if let Some(c) = capture_entry(ci, tid) {
        let was = c.frames.state.load(Acquire);
        if (was == CAP_MASKED || was == CAP_EMPTY)
            && c.frames.state.compare_exchange(was, CAP_WRITING, AcqRel, Relaxed).is_ok()
        {
            c.frames.store(&frames[..n]);
            c.frames.state.store(CAP_READY, Release);
            return Ok((n, Some(&c.frames)));
        }
    }
    Ok((n, None))
}

/// Capture entry `ci` of this dump, if it is `tid`'s.
fn capture_entry(ci: usize, tid: libc::pid_t) -> Option<&'static Capture> {
    let count = CAPTURE_COUNT.load(Acquire).min(MAX_DUMP_THREADS);
    CAPTURES[..count].get(ci).filter(|c| c.tid.load(Relaxed) == tid)
}

/// The frames thread `tid` answered with in capture entry `ci` (their count
/// and where they are), or why there are none.
fn captured(
    ci: usize,
    tid: libc::pid_t,
    frames: &mut [usize; MAX_FRAMES],
) -> Result<(usize, &'static Frames), &'static str> {
    let Some(c) = capture_entry(ci, tid) else {
        return Err(if LIVE.fatal() {
            "failstop's own thread"
        } else {
            "not asked: it sleeps in a system call and a signal would interrupt it (non-fatal mode)"
        });
    };
    match c.frames.state.load(Acquire) {
        CAP_READY => Ok((c.frames.load(frames), &c.frames)),
        CAP_REQUESTED => {
            // Give up on it: a late answer will find the entry abandoned.
            let _ = c.frames.state.compare_exchange(CAP_REQUESTED, CAP_EMPTY, AcqRel, Relaxed);
            Err(NOT_RESPONDING)
        }
        CAP_MASKED => Err(MASKED),
        CAP_SIGWAIT => Err(SIGWAIT),
        CAP_NOT_OURS => Err(NOT_OURS),
        CAP_REFUSED => Err(REFUSED),
        _ => Err("the capture signal could not be sent"),
    }
}

fn write_syscall_line(
    out: &mut Sink,
    scratch: &mut Scratch,
    dir: &TaskDir,
    tid: libc::pid_t,
    sc: Option<procfs::SyscallState>,
) {
    let b = out.line();
    b.push_str("    syscall: ");
    match sc {
        Some(procfs::SyscallState::Running) => b.push_str("none (running in user space)"),
        Some(procfs::SyscallState::NotInSyscall { .. }) => b.push_str("none (blocked outside a system call)"),
        Some(procfs::SyscallState::InSyscall { nr, args, .. }) => {
            b.push_str(procfs::syscall_name(nr).unwrap_or("?"));
            b.push_str(" (nr ");
            b.push_i64(nr);
            b.push_str(") args");
            for a in args {
                b.push_str(" ");
                b.push_hex(a);
            }
        }
        None => b.push_str("unreadable"),
    }
    out.eol();
    // wchan and the kernel stack, when readable.
    if let Ok(w) = dir.wchan(tid, &mut scratch.io[..256]) {
        let b = out.line();
        b.push_str("    wchan: ");
        b.push_sanitized(w.unwrap_or(b"0"));
        out.eol();
    }
    if let Ok(text) = dir.stack(tid, &mut scratch.io[..])
        && !text.is_empty()
    {
        {
            out.line().push_str("    kernel stack:");
            out.eol();
            for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let b = out.line();
                b.push_str("      ");
                b.push_sanitized(line);
                out.eol();
            }
        }
    }
}

fn write_modules(out: &mut Sink, modules: &ModuleMap) {
    let mut tmp = FixedBuf::<4096>::new();
    modules.write_modules(&mut tmp);
    let bytes = tmp.as_bytes();
    for line in bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let b = out.line();
        b.push_str("    ");
        b.push_bytes(line);
        out.eol();
    }
}

/// Where dump files go, resolved at start: the directory held open (so that
/// a later `chdir`, a rename of the path or every descriptor in use costs
/// nothing) and the file-name pattern (`%p` the pid, `%t` the Unix time in
/// seconds, `%%` a percent sign).
#[derive(Clone, Debug)]
pub(crate) struct DumpPath {
    dir: std::sync::Arc<sys::Fd>,
    name: std::ffi::CString,
}

impl DumpPath {
    /// Checks `path` (from `dump_path` / `FAILSTOP_DUMP_PATH`) at start: made
    /// absolute against the current directory, its directory must exist
    /// and be writable. Normal context.
    pub(crate) fn resolve(path: &std::path::Path) -> Result<DumpPath, crate::error::Error> {
        use std::os::unix::ffi::OsStrExt;
        let fail = |why: String| {
            crate::error::Error::invalid_config(format!("dump_path (FAILSTOP_DUMP_PATH) {path:?}: {why}"))
        };
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| fail(format!("relative, and the current directory is unknown ({e})")))?
                .join(path)
        };
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Err(fail("names no file".into()));
        };
        let name = std::ffi::CString::new(name.as_bytes()).map_err(|_| fail("contains a NUL byte".into()))?;
        let dir_c =
            std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| fail("contains a NUL byte".into()))?;
        match std::fs::metadata(dir) {
            Err(e) => return Err(fail(format!("its directory {dir:?} cannot be used ({e})"))),
            Ok(m) if !m.is_dir() => return Err(fail(format!("{dir:?} is not a directory"))),
            Ok(_) => {}
        }
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::access(dir_c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail(format!("its directory {dir:?} is not writable ({e}): a dump could not be kept there")));
        }
        let fd = sys::Fd::open(&dir_c, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| fail(format!("its directory {dir:?} cannot be opened ({e})")))?;
        Ok(DumpPath { dir: std::sync::Arc::new(fd), name })
    }

    /// Opens a new dump file: the pattern with its placeholders filled in,
    /// created with `O_EXCL` (an earlier dump is never overwritten: when the
    /// name exists, `.1`, `.2`, ... up to `.99` is added). A FIFO or a
    /// character device at the name is opened as it is, with `O_NONBLOCK`
    /// (a FIFO with no reader fails at once with ENXIO instead of blocking).
    /// Returns the descriptor, or the errno. Allocation-free.
    pub(crate) fn open_new(&self) -> Result<sys::Fd, libc::c_int> {
        let mut name = FixedBuf::<512>::new();
        self.fill_name(&mut name);
        let base_len = name.len();
        let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        for n in 0..100u64 {
            if n > 0 {
                name.truncate(base_len);
                name.push_str(".");
                name.push_u64(n);
            }
            let end = name.len();
            name.push_bytes(b"\0");
            let Ok(c) = std::ffi::CStr::from_bytes_with_nul(name.as_bytes()) else {
                return Err(libc::ENAMETOOLONG);
            };
            // A FIFO or a device (a log collector's) is written, not replaced.
            // SAFETY: stat is plain data; valid pointers for the call.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a held directory descriptor, a NUL-terminated name, a valid out-pointer.
            let special = unsafe { libc::fstatat(self.dir.raw(), c.as_ptr(), &mut st, 0) } == 0
                && matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFCHR);
            let r = if special {
                sys::Fd::openat(self.dir.raw(), c, flags, 0)
            } else {
                sys::Fd::openat(self.dir.raw(), c, flags | libc::O_CREAT | libc::O_EXCL, 0o644)
            };
            name.truncate(end);
            match r {
                Ok(fd) => return Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
        Err(libc::EEXIST)
    }

    fn fill_name<const N: usize>(&self, out: &mut FixedBuf<N>) {
        let pat = self.name.as_bytes();
        let mut i = 0;
        while i < pat.len() {
            match (pat[i], pat.get(i + 1)) {
                (b'%', Some(b'p')) => out.push_i64(sys::getpid() as i64),
                (b'%', Some(b't')) => out.push_u64(sys::clock_ns(libc::CLOCK_REALTIME) / 1_000_000_000),
                (b'%', Some(b'%')) => out.push_str("%"),
                (c, _) => {
                    out.push_bytes(&[c]);
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
    }
}

/// Opens the dump file for `sink`, or says on stderr in one line why it
/// cannot be. Allocation-free.
pub(crate) fn open_file(path: Option<&DumpPath>, sink: &mut Sink) -> Option<sys::Fd> {
    let p = path?;
    match p.open_new() {
        Ok(fd) => {
            sink.set_file(fd.raw());
            Some(fd)
        }
        Err(e) => {
            let b = sink.line();
            b.push_str("failstop: the dump file could not be opened (");
            push_errno(b, e);
            b.push_str("): the dump is on stderr only");
            sink.eol();
            sink.flush();
            None
        }
    }
}
