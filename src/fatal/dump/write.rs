//! [`write_raw`]: the raw part of the dump, in named steps: the verdict
//! line, the process, the cgroups, a deadlock, then every thread.

use super::capture::{PTRACE_COUNT, await_capture, request_captures};
use super::scratch::{OwnThreads, Scratch};
use super::sink::Sink;
use super::thread::{push_thread_name, write_modules, write_thread_frames, write_thread_state};
use crate::fatal::locks::MAX_CYCLE;
use crate::os::fmt::FixedBuf;
use crate::os::procfs::{self, TaskDir};
use crate::os::sys;
use crate::state::captures::{CAPTURES, MAX_DUMP_THREADS};
use crate::state::latch::{self, CULPRIT_FIGURE, CULPRIT_SLOT, CULPRIT_TID, VERDICT_AT};
use crate::state::progress::{MONITOR_PERIOD, monitor_stall_limit_ns};
use crate::state::settings::LIVE;
use crate::state::slots::{self, DEPARTED_PANICKED, DEPARTED_ZOMBIE};
use crate::verdict::VerdictKind;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

/// The longest a dump waits for threads to answer a capture request.
const CAPTURE_WAIT_MAX: Duration = Duration::from_millis(500);

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

/// The threads a dump lists: `scratch.tids[first..n]`, the culprit at
/// index 0 (kept for it, so that it is listed even when there are too many
/// threads; `first` is 1 when it is gone), and how many more there were.
struct Listing {
    culprit: libc::pid_t,
    culprit_seen: bool,
    first: usize,
    n: usize,
    more: usize,
}

impl Listing {
    /// The threads of the process now, the culprit first.
    fn take(scratch: &mut Scratch, culprit: libc::pid_t) -> Listing {
        let mut n = 1;
        let mut culprit_seen = false;
        let mut more = 0usize;
        let tids = &mut scratch.tids;
        let _ = procfs::for_each_task(&mut scratch.io[..], |tid| {
            if tid == culprit {
                culprit_seen = true;
            } else if n < MAX_DUMP_THREADS {
                tids[n] = tid;
                n += 1;
            } else {
                more += 1;
            }
        });
        tids[0] = culprit;
        Listing { culprit, culprit_seen, first: if culprit_seen { 0 } else { 1 }, n, more }
    }

    /// Threads listed, culprit included when seen.
    fn listed(&self) -> usize {
        self.n - self.first
    }
}

/// Writes the raw part of the dump. `spared_by`: the tracer that spares
/// the process (`fatal::end::spare_if_traced`) and how often the process
/// looks whether it is still traced. Allocation-free; monitor thread.
/// Returns the number of threads listed.
///
/// The threads are listed and their `/proc` files read first, before any
/// capture request interrupts a sleep, and the wait-for graph is built
/// from that reading (the verdict line names who waits for a blocked
/// culprit); then the lines, top to bottom.
pub(crate) fn write_raw(
    out: &mut Sink,
    scratch: &mut Scratch,
    own: &OwnThreads,
    spared_by: Option<(libc::pid_t, Duration)>,
) -> usize {
    let kind = latch::latched().unwrap_or(VerdictKind::Stuck);
    let list = Listing::take(scratch, CULPRIT_TID.load(Relaxed));
    // The threads' files are opened relative to /proc/self/task, held open
    // while the dump lasts.
    let task_dir = TaskDir::open();
    read_facts(scratch, &list, &task_dir);
    collect_waits(scratch, &list, kind, own);
    let mut name = FixedBuf::<96>::new();
    if kind == VerdictKind::Stalled {
        name.push_str("\"failstop-monitor\"");
    } else {
        push_thread_name(&mut name, slots::slot(CULPRIT_SLOT.load(Relaxed)), list.culprit, &mut scratch.io[..]);
    }
    write_verdict_line(out, scratch, &list, kind, &name);
    if let Some((tracer, poll)) = spared_by {
        write_spared_line(out, tracer, poll);
    }
    write_process_line(out, &list);
    write_cgroups(out, scratch);
    write_deadlock_line(out, scratch, list.culprit);
    write_threads(out, scratch, &list, &task_dir, own, &name);
    write_locks(out, scratch);
    out.line().push_str("failstop: modules (path, load base, bias, build-id):");
    out.eol();
    write_modules(out, &scratch.modules);
    out.flush();
    list.listed()
}

/// Each listed thread's registry slot, and its `/proc` files read once,
/// before the capture request interrupts the sleeps.
fn read_facts(scratch: &mut Scratch, list: &Listing, task_dir: &TaskDir) {
    scratch.index_threads(list.first, list.n);
    for i in list.first..list.n {
        let tid = scratch.tids[i];
        scratch.facts[i].read(task_dir, tid, &mut scratch.io[..]);
    }
}

/// The wait-for graph, from the system calls the threads sleep in. A stuck
/// culprit sleeps in failstop's handler (it waits for this dump): that
/// wait is failstop's, not the application's.
fn collect_waits(scratch: &mut Scratch, list: &Listing, kind: VerdictKind, own: &OwnThreads) {
    let in_handler = if kind == VerdictKind::Stuck { list.culprit } else { 0 };
    let Scratch { waits, tids, facts, by_tid, by_tid_len, .. } = &mut *scratch;
    let threads = (list.first..list.n)
        .filter(|&i| !own.has(tids[i]) && tids[i] != in_handler)
        .filter_map(|i| Some((tids[i], facts[i].syscall()?)));
    let sorted = &by_tid[..*by_tid_len];
    waits.collect(threads, |t| sorted.binary_search_by_key(&t, |e| e.0).is_ok());
}

/// The verdict line: the kind, the culprit, the rule's figure and budget,
/// who waits for a blocked culprit, whether it can be killed, the action
/// and the process.
fn write_verdict_line(out: &mut Sink, scratch: &mut Scratch, list: &Listing, kind: VerdictKind, name: &FixedBuf<96>) {
    let culprit = list.culprit;
    let culprit_slot = slots::slot(CULPRIT_SLOT.load(Relaxed));
    let figure = CULPRIT_FIGURE.load(Relaxed);
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
    if list.culprit_seen && scratch.facts[0].state() == b'D' {
        b.push_str(UNKILLABLE);
    }
    b.push_str("; action: ");
    push_action(b);
    b.push_str("; ");
    push_process(b, &mut scratch.io[..]);
    out.eol();
}

/// A debugger spares the process: say so, and until when.
fn write_spared_line(out: &mut Sink, tracer: libc::pid_t, poll: Duration) {
    let b = out.line();
    b.push_str("failstop: a debugger is attached (TracerPid ");
    b.push_i64(tracer as i64);
    b.push_str(
        "): reporting only, the process is not ended while it is traced, and is ended once no thread is (looked at every ",
    );
    b.push_u64(poll.as_millis() as u64);
    b.push_str(" ms; FAILSTOP_ABORT_UNDER_DEBUGGER=1 to end it at once)");
    out.eol();
}

/// The process: its thread count and the verdict's time.
fn write_process_line(out: &mut Sink, list: &Listing) {
    let b = out.line();
    b.push_str("failstop: pid ");
    b.push_i64(sys::getpid() as i64);
    b.push_str(", ");
    b.push_u64((list.listed() + list.more) as u64);
    b.push_str(" threads; verdict at CLOCK_MONOTONIC ");
    b.push_ms(VERDICT_AT.load(Relaxed));
    b.push_str(" ms; '>' marks the culprit; failstop ");
    b.push_str(env!("CARGO_PKG_VERSION"));
    out.eol();
}

/// Every listed thread: its `/proc` evidence and its frames, the culprit
/// first. The culprit's state and system call are written before any
/// capture request goes out: a request would interrupt the system call a
/// blocked culprit sleeps in, and `/proc` read afterwards could show it
/// returning from the handler instead. The requests then go out to every
/// thread at once and are answered in parallel; each answer is awaited
/// only when its thread's turn comes (under one deadline for all), so that
/// the lines of the threads before it are written meanwhile.
fn write_threads(
    out: &mut Sink,
    scratch: &mut Scratch,
    list: &Listing,
    task_dir: &TaskDir,
    own: &OwnThreads,
    name: &FixedBuf<96>,
) {
    let culprit = list.culprit;
    let culprit_state = if list.culprit_seen { write_thread_state(out, scratch, task_dir, 0, true, own) } else { None };
    if !list.culprit_seen {
        let b = out.line();
        b.push_str("> thread ");
        b.push_i64(culprit as i64);
        b.push_str(" ");
        b.push_bytes(name.as_bytes());
        b.push_str(" gone: it is no longer in /proc/self/task");
        out.eol();
    }
    PTRACE_COUNT.store(0, Relaxed);
    let (first, n) = (list.first, list.n);
    request_captures(&scratch.tids[first..n], &scratch.facts[first..n], culprit, own);
    let budget = Duration::from_nanos(LIVE.dump_timeout_ns.load(Relaxed) / 4).min(CAPTURE_WAIT_MAX);
    let capture_deadline = sys::monotonic_ns() + budget.as_nanos() as u64;

    let _ = scratch.modules.refresh();
    if let Some(state) = culprit_state {
        await_capture(&CAPTURES[0], state, capture_deadline);
        write_thread_frames(out, scratch, 0, culprit, true, state);
    }
    for i in 1..n {
        let tid = scratch.tids[i];
        let ci = i - first;
        await_capture(&CAPTURES[ci], scratch.facts[i].state(), capture_deadline);
        if let Some(state) = write_thread_state(out, scratch, task_dir, i, false, own) {
            write_thread_frames(out, scratch, ci, tid, false, state);
        }
    }
    if list.more > 0 {
        let b = out.line();
        b.push_str("failstop: ");
        b.push_u64(list.more as u64);
        b.push_str(" more threads not listed (limit ");
        b.push_u64(MAX_DUMP_THREADS as u64);
        b.push_str(")");
        out.eol();
    }
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
