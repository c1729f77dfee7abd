//! The monitor thread: writes the dump on a verdict, tracks each watched
//! thread's wall-clock progress, frees the slots of threads that died, and
//! feeds systemd's watchdog while the gate is open (see `systemd`).
//!
//! It applies two rules of its own, for what the CPU-timer handler cannot
//! see:
//!
//! - **blocked** ([`judge`]): no progress, no CPU time and no
//!   context switch for `stall_budget` (a deadlock, a system call that never
//!   returns);
//! - **deaf** ([`judge_deaf`]): a thread that burns CPU without progress
//!   while failstop's handler never runs on it (it blocks every signal, it
//!   spins inside a signal handler that masks the watchdog signal, or the
//!   application replaced failstop's handler). Its timer fires, but the
//!   signal stays pending, so the `stuck` rule never gets to decide: the
//!   monitor reads the thread's CPU clock and its count of handled signals
//!   instead, and convicts it as `stuck` once it has used `cpu_budget` plus
//!   [`deaf_margin`] of CPU with neither moving.
//!
//! The monitor never allocates after it has started (its buffers are made
//! before the loop), so it can write the dump while another thread holds
//! the allocator's lock. It blocks every asynchronous signal, so writing to
//! a closed stderr returns EPIPE instead of killing the process.

use super::dump::{self, OwnThreads, Scratch, Sink};
use super::end;
use super::reporter;
use super::systemd::Notifier;
use crate::error::Error;
use crate::os::procfs;
use crate::os::signals;
use crate::os::sys;
use crate::state::bells::MONITOR as BELL;
use crate::state::latch::{self, DUMP_DONE, SPARED_FOR_DEBUGGER, VERDICT_AT};
use crate::state::progress::{MONITOR_PERIOD as PERIOD, NO_WINDOW, PROGRESS, Progress};
use crate::state::settings::LIVE;
use crate::state::slots::{ACTIVE, SLOTS, Slot};
use crate::verdict::VerdictKind;
use crate::watch::registry;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

/// A sleep that overran by more than this means the whole process (or the
/// machine) was frozen: the overrun counts against nobody.
const FREEZE_SLACK: u64 = 100_000_000;

/// Asks the monitor to finish its loop (the watchdog stops).
pub(crate) fn request_stop() {
    BELL.request_stop();
}

/// Starts the monitor thread. It owns `notifier` (closed when the monitor
/// stops).
pub(crate) fn spawn(
    dump_path: Option<PathBuf>,
    notifier: Option<Notifier>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let path = match dump_path {
        Some(p) => Some(CString::new(p.as_os_str().as_bytes()).map_err(|_| {
            Error::invalid_config(format!("dump_path {p:?}: contains a NUL byte"))
        })?),
        None => None,
    };
    BELL.reset();
    let mut scratch = Scratch::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("failstop-monitor".into())
        .spawn(move || {
            signals::block_all_in_this_thread();
            let _ = tx.send(());
            let mut notifier = notifier;
            monitor_loop(&mut scratch, path.as_deref(), notifier.as_mut());
        })
        .map_err(|e| Error::os("spawning the monitor thread", e))?;
    let _ = rx.recv();
    Ok(handle)
}

fn monitor_loop(scratch: &mut Scratch, path: Option<&std::ffi::CStr>, mut notifier: Option<&mut Notifier>) {
    let mut dumped = false;
    let mut last_reap = sys::monotonic_ns();
    let mut last_loop = sys::monotonic_ns();
    loop {
        let seen = BELL.seen();
        if BELL.stopping() {
            return;
        }
        let now = sys::monotonic_ns();
        // Freeze guard: a sleep that overran (SIGSTOP of the whole process,
        // a paused VM, a starved monitor) moves every window forward.
        let overrun = now.saturating_sub(last_loop).saturating_sub(PERIOD.as_nanos() as u64);
        if overrun > FREEZE_SLACK {
            forgive(overrun, now);
        }
        last_loop = now;
        if !dumped && latch::latched().is_some() {
            dumped = true;
            write_dump(scratch, path, notifier.as_deref_mut());
            last_loop = sys::monotonic_ns();
        }
        judge(now, &mut scratch.io[..]);
        if now.saturating_sub(last_reap) >= 1_000_000_000 {
            registry::reap_dead();
            last_reap = now;
        }
        // A ping due before the next period is not skipped: wait only until it.
        let wait = notifier.as_deref_mut().map_or(PERIOD, |n| n.ping_if_due(sys::monotonic_ns()).min(PERIOD));
        BELL.wait(seen, wait);
    }
}

/// Moves every window forward by `overrun`: time the whole process did not
/// run is nobody's fault.
fn forgive(overrun: u64, now: u64) {
    for w in PROGRESS.iter() {
        for t in [&w.progress_at, &w.quiet_since] {
            let v = t.load(Relaxed);
            t.store(v.saturating_add(overrun).min(now), Relaxed);
        }
    }
}

/// The monitor's rules, applied to every watched thread outside idle and
/// harmless scopes that made no progress since the last look: the deaf rule
/// ([`judge_deaf`]) and the blocked rule.
///
/// The blocked rule is the kernel's hung-task test done in user space: a
/// watched thread outside idle and harmless scopes, judged from its first
/// progress mark on, is `blocked` when for `stall_budget` it made no
/// progress, used no CPU time, had no context switch, and was never seen
/// runnable (a starved thread is not a blocked one) or stopped. Evidence
/// comes from the thread's CPU clock and /proc, sampled only for threads
/// that stopped making progress, and the verdict is only taken right after
/// a sample. Allocation-free.
fn judge(now: u64, io: &mut [u8]) {
    let stall = LIVE.stall_budget_ns.load(Relaxed);
    let sample_every = (stall / 8).max(PERIOD.as_nanos() as u64);
    for (idx, (s, w)) in SLOTS.iter().zip(PROGRESS.iter()).enumerate() {
        if s.state.load(Acquire) != ACTIVE {
            continue;
        }
        let generation = s.generation.load(Relaxed);
        let progress = s.touches().wrapping_add(s.tick_seq.load(Relaxed));
        if w.generation.load(Relaxed) != generation
            || w.progress.load(Relaxed) != progress
            || progress == 0
            || s.scoped()
        {
            w.generation.store(generation, Relaxed);
            w.progress.store(progress, Relaxed);
            w.progress_at.store(now, Relaxed);
            w.quiet_since.store(now, Relaxed);
            w.ctxsw.store(u64::MAX, Relaxed);
            w.sampled_at.store(0, Relaxed);
            w.convicted.store(false, Relaxed);
            w.deaf_cpu.store(NO_WINDOW, Relaxed);
            continue;
        }
        let tid = s.tid.load(Relaxed);
        let cpu = sys::clock_ns(s.cpu_clock.load(Relaxed));
        judge_deaf(s, w, idx, tid, cpu);
        if now.saturating_sub(w.sampled_at.load(Relaxed)) < sample_every {
            continue;
        }
        w.sampled_at.store(now, Relaxed);
        let state = procfs::read_stat(tid, io).map_or(b'?', |st| st.state);
        let ctxsw = procfs::read_status(tid, io)
            .map_or(u64::MAX - 1, |st| st.voluntary_ctxt_switches.wrapping_add(st.nonvoluntary_ctxt_switches));
        let moved = cpu != w.cpu.load(Relaxed) || ctxsw != w.ctxsw.load(Relaxed);
        w.cpu.store(cpu, Relaxed);
        w.ctxsw.store(ctxsw, Relaxed);
        if moved || !matches!(state, b'S' | b'D') {
            w.quiet_since.store(now, Relaxed);
            continue;
        }
        let quiet = now.saturating_sub(w.quiet_since.load(Relaxed));
        if quiet >= stall && !w.convicted.swap(true, Relaxed) {
            on_verdict(VerdictKind::Blocked, s, idx, tid, now.saturating_sub(w.progress_at.load(Relaxed)));
        }
    }
}

/// CPU time a deaf thread may use beyond `cpu_budget` before the monitor
/// convicts it: two timer periods (the handler would have run twice), and
/// at least 50 ms (several scheduler ticks, at which CPU timers expire).
fn deaf_margin(period_ns: u64) -> u64 {
    period_ns.saturating_mul(2).max(50_000_000)
}

/// The deaf rule (see the module doc), for a watched thread outside any
/// scope that made no progress since the monitor last looked. `cpu` is its
/// CPU clock now. Every monitor period, so that the verdict comes within
/// one period of the threshold. Allocation-free.
fn judge_deaf(s: &Slot, w: &Progress, idx: usize, tid: libc::pid_t, cpu: u64) {
    let signals = s.own_signals.load(Relaxed);
    let start = w.deaf_cpu.load(Relaxed);
    if start == NO_WINDOW || signals != w.deaf_signals.load(Relaxed) {
        // First look, or the handler ran: it judges the thread itself.
        w.deaf_cpu.store(cpu, Relaxed);
        w.deaf_signals.store(signals, Relaxed);
        return;
    }
    let used = cpu.saturating_sub(start);
    let threshold = LIVE.cpu_budget_ns.load(Relaxed).saturating_add(deaf_margin(LIVE.period_ns.load(Relaxed)));
    if used < threshold || w.convicted.swap(true, Relaxed) {
        return;
    }
    on_verdict(VerdictKind::Deaf, s, idx, tid, used);
}

/// A verdict the monitor reached (`kind` [`VerdictKind::Blocked`] or
/// [`VerdictKind::Deaf`]; `figure` its ns). The dump and the action follow in
/// the monitor's loop; in the non-fatal modes a verdict after the dump is
/// reported by the reporter in one line. A blocked thread is never
/// signalled unless the verdict is fatal (a signal would interrupt its
/// system call).
fn on_verdict(kind: VerdictKind, s: &Slot, idx: usize, tid: libc::pid_t, figure: u64) {
    if end::latch(kind, idx, tid, figure) {
        BELL.ring();
    } else if !LIVE.fatal() {
        end::note_late_verdict(s, kind, figure);
    }
}

/// Writes the dump (raw, then symbolized under the deadline), fsyncs it and
/// lets the acting thread go. Under systemd's watchdog, when the action
/// closes the gate: `STATUS=` first, `WATCHDOG=trigger` once the dump is
/// written (not before: systemd's signal would cut it short).
fn write_dump(scratch: &mut Scratch, path: Option<&std::ffi::CStr>, mut notifier: Option<&mut Notifier>) {
    let started = sys::monotonic_ns();
    // First, so that a spared process's fuse is disarmed before anything
    // that takes time.
    let spared_by = end::spare_if_traced(&mut scratch.io[..]);
    if LIVE.closes_gate()
        && let Some(n) = notifier.as_deref_mut()
    {
        n.announce_verdict();
    }
    let deadline = VERDICT_AT.load(Acquire) + LIVE.dump_timeout_ns.load(Relaxed);
    let file = path.and_then(|p| sys::Fd::open(p, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644).ok());
    // If stderr was closed, the file may have been given fd 2: write it once.
    // SAFETY: F_GETFD on a descriptor number only queries it.
    let stderr_open = unsafe { libc::fcntl(2, libc::F_GETFD) } != -1;
    let file_fd = file.as_ref().map(|f| f.raw());
    let mut sink = Sink::new(stderr_open && file_fd != Some(2), file_fd);
    let own = OwnThreads { monitor: sys::gettid(), reporter: reporter::tid(), fuse: end::fuse_tid() };
    dump::write_raw(&mut sink, scratch, &own, spared_by.map(|t| (t, end::TRACER_POLL)));
    let raw_done = sys::monotonic_ns();
    // Leave a little of the deadline for the trailer and fsync.
    let sym_deadline = deadline.saturating_sub(100_000_000).max(raw_done);
    // In `warn` mode the gate stays open: keep pinging systemd while the
    // reporter symbolizes (this can take most of `dump_timeout`).
    let mut ping = |now| notifier.as_deref_mut().map_or(Duration::MAX, |n| n.ping_if_due(now));
    let symbolized = reporter::symbolize_dump(sink.fds(), sym_deadline, &mut ping);
    let b = sink.line();
    if !symbolized {
        b.push_str(
            "failstop: symbolization did not finish before the dump deadline; the raw frames above are complete",
        );
        sink.eol();
    }
    let b = sink.line();
    b.push_str("failstop: dump written in ");
    b.push_ms(sys::monotonic_ns().saturating_sub(started));
    b.push_str(" ms (raw part ");
    b.push_ms(raw_done.saturating_sub(started));
    b.push_str(" ms)");
    sink.eol();
    sink.flush();
    if let Some(f) = &file {
        // SAFETY: fsync on our own open descriptor.
        unsafe { libc::fsync(f.raw()) };
    }
    drop(file);
    if LIVE.closes_gate()
        && !SPARED_FOR_DEBUGGER.load(Acquire)
        && let Some(n) = notifier
    {
        n.trigger();
    }
    DUMP_DONE.store(1, Release);
    sys::futex_wake_all(&DUMP_DONE);
    // The monitor's part of the end: it acts on the verdicts it reached
    // itself (their culprit cannot: it sleeps in a system call, or
    // failstop's handler cannot run on it), waits out a tracer that spares
    // the process, and stands by while a stuck culprit acts.
    if LIVE.fatal()
        && let Some(kind) = latch::latched()
    {
        end::follow_through(kind);
    }
}
