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
//! out at once and are awaited together under one bounded wait, so a thread
//! that blocks the signal or sleeps uninterruptibly costs a bounded time and
//! is reported as not responding.
//!
//! A signal interrupts the system call its receiver sleeps in, so in the
//! non-fatal modes only running threads (state R) are asked for frames.

use crate::os::fmt::FixedBuf;
use crate::os::modules::ModuleMap;
use crate::os::procfs::{self, STACK_LEN};
use crate::os::sys;
use crate::state::captures::{CAPTURE_ANSWERS, CAPTURE_COUNT, CAPTURES, MAX_DUMP_THREADS};
use crate::state::frames::{CAP_EMPTY, CAP_MASKED, CAP_READY, CAP_REQUESTED, MAX_FRAMES};
use crate::state::latch::{self, CULPRIT_FIGURE, CULPRIT_FRAMES, CULPRIT_SLOT, CULPRIT_TID, VERDICT_AT};
use crate::state::progress::{MONITOR_PERIOD, wall_since_progress};
use crate::state::settings::LIVE;
use crate::state::sigval::{self, CAPTURE_TAG};
use crate::state::slots::{self, NAME_LEN};
use crate::verdict::VerdictKind;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

/// The longest a dump waits for threads to answer a capture request.
const CAPTURE_WAIT_MAX: Duration = Duration::from_millis(500);

/// Where the dump goes: stderr and the dump file, one write(2) per batch of
/// whole lines (at most 4 KiB, so lines never interleave mid-line with the
/// application's own output on a pipe).
pub(crate) struct Sink {
    fds: [libc::c_int; 2],
    nfds: usize,
    buf: FixedBuf<4096>,
}

impl Sink {
    pub(crate) fn new(stderr: bool, file: Option<libc::c_int>) -> Self {
        let mut s = Sink { fds: [-1; 2], nfds: 0, buf: FixedBuf::new() };
        if stderr {
            s.fds[s.nfds] = 2;
            s.nfds += 1;
        }
        if let Some(fd) = file {
            s.fds[s.nfds] = fd;
            s.nfds += 1;
        }
        s
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

    /// Writes what is buffered to every destination.
    pub(crate) fn flush(&mut self) {
        for &fd in &self.fds[..self.nfds] {
            // A closed stderr or a broken pipe must not stop the file copy.
            let _ = sys::write_all(fd, self.buf.as_bytes());
        }
        self.buf.clear();
    }

    /// The destinations, for the symbolizer.
    pub(crate) fn fds(&self) -> &[libc::c_int] {
        &self.fds[..self.nfds]
    }
}

/// Per-dump scratch space, allocated once at start so the dump never allocates.
pub(crate) struct Scratch {
    pub modules: Box<ModuleMap>,
    pub tids: Box<[libc::pid_t; MAX_DUMP_THREADS]>,
    /// Room for the largest `/proc` file read (a kernel stack).
    pub io: Box<[u8; STACK_LEN]>,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch { modules: ModuleMap::new_boxed(), tids: Box::new([0; MAX_DUMP_THREADS]), io: Box::new([0; STACK_LEN]) }
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

    // 1. The verdict line.
    let mut name = [0u8; NAME_LEN];
    let n = culprit_slot.map_or(0, |s| s.name_into(&mut name));
    let b = out.line();
    b.push_str("failstop: ");
    b.push_str(kind.as_str());
    b.push_str(": thread \"");
    b.push_sanitized(&name[..n]);
    b.push_str("\" (tid ");
    b.push_i64(culprit as i64);
    match kind {
        VerdictKind::Blocked => {
            b.push_str(") made no progress for ");
            b.push_ms(figure);
            b.push_str(" ms with no CPU time and no context switch (stall_budget ");
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
        VerdictKind::Stuck => {
            b.push_str(") used ");
            b.push_ms(figure);
            b.push_str(" ms of CPU without progress (cpu_budget ");
            b.push_u64(LIVE.cpu_budget_ns.load(Relaxed) / 1_000_000);
            b.push_str(" ms, checked every ");
            b.push_ms(LIVE.period_ns.load(Relaxed));
        }
    }
    b.push_str(" ms); action: ");
    push_action(b);
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

    // 3. Every thread of the process, the culprit first (index 0 is kept
    // for it, so that it is listed even when there are too many threads).
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

    // The culprit's state and system call first: a capture request would
    // interrupt the system call a blocked culprit sleeps in, and /proc read
    // afterwards could show it returning from the handler instead.
    let culprit_state = if culprit_seen { write_thread_state(out, scratch, culprit, true, own) } else { None };
    let answers_before = CAPTURE_ANSWERS.load(Acquire);
    let asked = request_captures(&scratch.tids[first..ntids], culprit, own, &mut scratch.io[..]);
    wait_for_captures(answers_before, asked);

    let _ = scratch.modules.refresh();
    if let Some(state) = culprit_state {
        write_thread_frames(out, scratch, culprit, true, state);
    }
    for i in 1..ntids {
        let tid = scratch.tids[i];
        if let Some(state) = write_thread_state(out, scratch, tid, false, own) {
            write_thread_frames(out, scratch, tid, false, state);
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
    out.line().push_str("failstop: modules (path, load base, bias, build-id):");
    out.eol();
    write_modules(out, &scratch.modules);
    out.flush();
    ntids - first
}

/// Writes the configured action as the dump and the `tracing` events name
/// it: [`Action`](crate::Action)'s one text form (`abort`, `exit:N`,
/// `unhealthy`, `warn`). Allocation-free: `core::fmt` into a fixed buffer.
pub(crate) fn push_action<const N: usize>(b: &mut FixedBuf<N>) {
    let _ = write!(b, "{}", LIVE.action());
}

/// Queues a capture request to every thread that may be signalled; returns
/// how many were asked.
fn request_captures(tids: &[libc::pid_t], culprit: libc::pid_t, own: &OwnThreads, io: &mut [u8]) -> usize {
    let signo = LIVE.signo.load(Relaxed);
    let fatal = LIVE.fatal();
    let mut asked = 0;
    for (i, &tid) in tids.iter().enumerate() {
        let c = &CAPTURES[i];
        c.frames.state.store(CAP_EMPTY, Relaxed);
        c.tid.store(0, Relaxed);
        c.slot.store(usize::MAX, Relaxed);
        if tid == culprit && CULPRIT_FRAMES.state.load(Acquire) == CAP_READY || own.has(tid) {
            continue;
        }
        // A signal interrupts the system call a thread sleeps in: outside a
        // fatal verdict, only running threads are asked. A thread in
        // uninterruptible sleep (D) cannot answer: it is asked, in case it
        // wakes in time, but not waited for.
        let state = procfs::read_stat(tid, io).map_or(b'?', |s| s.state);
        if !fatal && state != b'R' {
            continue;
        }
        // A thread that blocks the signal (a sigwait loop, a thread that
        // masks everything, a deaf culprit) cannot answer: not asked, so
        // that the dump does not wait for it.
        if procfs::read_status(tid, io).is_ok_and(|st| st.blocks(signo)) {
            c.tid.store(tid, Relaxed);
            c.frames.state.store(CAP_MASKED, Release);
            continue;
        }
        let slot_idx = slots::find_tid(tid);
        let (lo, hi) =
            slot_idx.and_then(slots::slot).map_or((0, 0), |s| (s.stack_lo.load(Relaxed), s.stack_hi.load(Relaxed)));
        c.slot.store(slot_idx.unwrap_or(usize::MAX), Relaxed);
        c.lo.store(lo, Relaxed);
        c.hi.store(hi, Relaxed);
        c.tid.store(tid, Relaxed);
        c.frames.state.store(CAP_REQUESTED, Release);
        if sys::tgsigqueue(tid, signo, sigval::encode(CAPTURE_TAG, i)).is_ok() {
            if state != b'D' {
                asked += 1;
            }
        } else {
            c.frames.state.store(CAP_EMPTY, Relaxed);
        }
    }
    CAPTURE_COUNT.store(tids.len(), Release);
    asked
}

/// Waits until `asked` handlers answered or the capture deadline passed.
fn wait_for_captures(start: u32, asked: usize) {
    let budget = Duration::from_nanos(LIVE.dump_timeout_ns.load(Relaxed) / 4).min(CAPTURE_WAIT_MAX);
    let deadline = sys::monotonic_ns() + budget.as_nanos() as u64;
    loop {
        let seen = CAPTURE_ANSWERS.load(Acquire);
        if seen.wrapping_sub(start) as usize >= asked {
            return;
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            return;
        }
        sys::futex_wait(&CAPTURE_ANSWERS, seen, Some(Duration::from_nanos(deadline - now)));
    }
}

/// Writes a thread's line and its `/proc` evidence (state, counters, system
/// call, wchan, kernel stack); returns its state letter, or `None` if it
/// exited (one line says so).
fn write_thread_state(
    out: &mut Sink,
    scratch: &mut Scratch,
    tid: libc::pid_t,
    is_culprit: bool,
    own: &OwnThreads,
) -> Option<u8> {
    let slot_idx = slots::find_tid(tid);
    let slot = slot_idx.and_then(slots::slot);
    let stat = procfs::read_stat(tid, &mut scratch.io[..]).ok();
    let status = procfs::read_status(tid, &mut scratch.io[..]).ok();
    let cpu_ns = procfs::read_schedstat(tid, &mut scratch.io[..])
        .map(|s| s.run_ns)
        .ok()
        .or_else(|| stat.as_ref().map(|s| procfs::ticks_to_ns(s.utime_ticks + s.stime_ticks, procfs::clk_tck())));

    if stat.is_none() && status.is_none() && !is_culprit {
        // Listed a moment ago, gone from /proc now.
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
    b.push_str(" \"");
    match slot {
        Some(s) => {
            let mut name = [0u8; NAME_LEN];
            let n = s.name_into(&mut name);
            b.push_sanitized(&name[..n]);
        }
        None => {
            if let Some(st) = &status {
                b.push_sanitized(st.name());
            }
        }
    }
    b.push_str("\" state ");
    let state = stat.as_ref().map_or(b'?', |s| s.state);
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
        b.push_str(". No frames can be captured in its own context; with `abort` the core file has its registers)");
        out.eol();
    }

    write_syscall_line(out, scratch, tid);
    Some(state)
}

/// Writes a thread's frames, captured in its own context, or why there are
/// none; `state` is its state letter as [`write_thread_state`] read it.
fn write_thread_frames(out: &mut Sink, scratch: &mut Scratch, tid: libc::pid_t, is_culprit: bool, state: u8) {
    let mut frames = [0usize; MAX_FRAMES];
    let n = if is_culprit && CULPRIT_FRAMES.state.load(Acquire) == CAP_READY {
        CULPRIT_FRAMES.load(&mut frames)
    } else {
        match captured(tid, &mut frames) {
            Ok(n) => n,
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
    for (i, &a) in frames[..n].iter().enumerate() {
        let b = out.line();
        b.push_str("    #");
        b.push_u64(i as u64);
        b.push_str(" ");
        scratch.modules.write_frame(b, a);
        out.eol();
    }
}

/// The frames a thread answered with, or why there are none.
fn captured(tid: libc::pid_t, frames: &mut [usize; MAX_FRAMES]) -> Result<usize, &'static str> {
    let count = CAPTURE_COUNT.load(Acquire).min(MAX_DUMP_THREADS);
    let Some(c) = CAPTURES[..count].iter().find(|c| c.tid.load(Relaxed) == tid) else {
        return Err(if LIVE.fatal() {
            "failstop's own thread"
        } else {
            "not asked: it sleeps in a system call and a signal would interrupt it (non-fatal mode)"
        });
    };
    match c.frames.state.load(Acquire) {
        CAP_READY => Ok(c.frames.load(frames)),
        CAP_REQUESTED => {
            // Give up on it: a late answer will find the entry abandoned.
            let _ = c.frames.state.compare_exchange(CAP_REQUESTED, CAP_EMPTY, AcqRel, Relaxed);
            Err("not responding to the capture signal in time (signal blocked, stopped, or uninterruptible)")
        }
        CAP_MASKED => Err("not asked: it blocks the watchdog signal"),
        _ => Err("the capture signal could not be sent"),
    }
}

fn write_syscall_line(out: &mut Sink, scratch: &mut Scratch, tid: libc::pid_t) {
    let sc = procfs::read_syscall(tid, &mut scratch.io[..]);
    let b = out.line();
    b.push_str("    syscall: ");
    match sc {
        Ok(procfs::SyscallState::Running) => b.push_str("none (running in user space)"),
        Ok(procfs::SyscallState::NotInSyscall { .. }) => b.push_str("none (blocked outside a system call)"),
        Ok(procfs::SyscallState::InSyscall { nr, args, .. }) => {
            b.push_str(procfs::syscall_name(nr).unwrap_or("?"));
            b.push_str(" (nr ");
            b.push_i64(nr);
            b.push_str(") args");
            for a in args {
                b.push_str(" ");
                b.push_hex(a);
            }
        }
        Err(_) => b.push_str("unreadable"),
    }
    out.eol();
    // wchan and the kernel stack, when readable.
    if let Ok(w) = procfs::read_wchan(tid, &mut scratch.io[..256]) {
        let b = out.line();
        b.push_str("    wchan: ");
        b.push_sanitized(w.unwrap_or(b"0"));
        out.eol();
    }
    if let Ok(text) = procfs::read_stack(tid, &mut scratch.io[..])
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
