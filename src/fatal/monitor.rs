//! The monitor thread: writes the dump on a verdict, tracks each watched
//! thread's wall-clock progress, frees the slots of threads that died, and
//! feeds systemd's watchdog while the gate is open (see `systemd`).
//!
//! It applies rules of its own, for what the CPU-timer handler cannot see:
//!
//! - **blocked** ([`look`], [`judge_blocked`]): no progress for
//!   `stall_budget`, and no CPU time (so no context switch) for the last
//!   three quarters of it (a deadlock, a system call that never returns);
//! - **deaf** ([`judge_deaf`]): a thread that burns CPU without progress
//!   while failstop's handler never runs on it (it blocks every signal, it
//!   spins inside a signal handler that masks the watchdog signal, or the
//!   application replaced failstop's handler). Its timer fires, but the
//!   signal stays pending, so the `stuck` rule never gets to decide: the
//!   monitor reads the thread's CPU clock and its count of handled signals
//!   instead, and convicts it as `stuck` once it has used `cpu_budget` plus
//!   [`deaf_margin`] of CPU with neither moving;
//! - **polling** ([`judge_polling`]): no progress and no byte read or
//!   written for `poll_budget` while the thread only sleeps and wakes (a
//!   `usleep` loop waiting for a flag that never comes): it context-switches,
//!   so it is not blocked, and uses too little CPU for the stuck rule;
//! - **disposition** ([`check_disposition`]): failstop's handler of the
//!   watchdog signal is still installed. An application that replaces it
//!   (or sets the signal to `SIG_DFL` or `SIG_IGN`) would receive every
//!   tick in its own handler or its default action, which ends the process:
//!   the ticks are switched off within a monitor period, with one line on
//!   stderr, and on again when the handler is back (spinning threads are
//!   still caught meanwhile, by the deaf rule). Our own handler put back
//!   without `SA_SIGINFO` gets its flags back;
//! - **vanished** ([`vanished`]): a registered thread that is gone without
//!   unregistering (it ended by `SYS_exit` or a kernel bug, skipping its
//!   thread-exit path; the main thread that did so is a zombie), or that
//!   unwound from a panic with its handle alive. A thread that makes no
//!   progress is looked at, and its CPU clock read, a quarter of the stall
//!   budget after its last progress at the latest: a clock that cannot be
//!   read any more is a thread that is gone ([`gone`]). A thread that
//!   unregisters, drops its handle or returns (its thread-exit destructor
//!   releases the slot) is never one.
//!
//! **Looks by deadline.** The monitor does not sample every thread every
//! period: each slot has a due time ([`progress::next_look`]), and a loop
//! looks only at the threads that are due ([`judge`]), reading as little
//! as the evidence needs. A thread's progress marks stamp the monitor's
//! current epoch (`slots::EPOCH`), so a look tells when the last progress
//! came without having watched for it; a thread that makes progress more
//! often than a quarter of the stall budget (or the deaf threshold) costs
//! one look of a few loads per that much time, and no system call. A
//! thread that made none since is read once (its CPU clock: any run moves
//! it), then again when one of its windows could end at the earliest: the
//! deaf threshold reached at one CPU-second per second, the still window's
//! end, the polling budget. Its `/proc` files are read only at the end of a
//! still window (its state and wait chain) or when it moved without
//! progress (its I/O, for the polling rule). The loop sleeps until the
//! next look is due, at most a period ([`period`]).
//!
//! The monitor never allocates after it has started (its buffers are made
//! before the loop), so it can write the dump while another thread holds
//! the allocator's lock. It blocks every asynchronous signal, so writing to
//! a closed stderr returns EPIPE instead of killing the process.

use super::chain::{self, Life};
use super::dump::{self, DumpPath, OwnThreads, Scratch, Sink};
use super::end;
use super::fuse;
use super::reporter;
use super::systemd::Notifier;
use crate::error::Error;
use crate::os::cgroup::CpuCgroups;
use crate::os::fmt::FixedBuf;
use crate::os::procfs;
use crate::os::signals;
use crate::os::sys;
use crate::state::bells::MONITOR as BELL;
use crate::state::frames::CapState;
use crate::state::latch::{
    self, CULPRIT_FRAMES, CULPRIT_SLOT, CULPRIT_TID, DUMP_DONE, SPARED_FOR_DEBUGGER, VERDICT_AT,
};
use crate::state::progress::{
    self, CHAIN_CHILDREN, CHAIN_CYCLE, CHAIN_HOLDER, CHAIN_NONE, CHAIN_THREAD, CHAIN_UNSEEN, FORGIVEN_NS,
    MONITOR_LOOP_AT, MONITOR_PERIOD as PERIOD, MONITOR_TID, NO_READING, NO_WINDOW, Progress,
};
use crate::state::settings::LIVE;
use crate::state::sigval;
use crate::state::slots::{self, ACTIVE, DEPARTED_GONE, DEPARTED_ZOMBIE, NO_SLOT, Slot};
use crate::verdict::VerdictKind;
use crate::watch::cpu_timer;
use crate::watch::registry;
use std::fmt::Write as _;
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
pub(crate) fn spawn(path: Option<DumpPath>, notifier: Option<Notifier>) -> Result<std::thread::JoinHandle<()>, Error> {
    BELL.reset();
    let mut scratch = Scratch::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("failstop-monitor".into())
        .spawn(move || {
            signals::block_all_in_this_thread();
            let _ = tx.send(());
            let mut notifier = notifier;
            monitor_loop(&mut scratch, path.as_ref(), notifier.as_mut());
        })
        .map_err(|e| Error::os("spawning the monitor thread", e))?;
    let _ = rx.recv();
    Ok(handle)
}

fn monitor_loop(scratch: &mut Scratch, path: Option<&DumpPath>, mut notifier: Option<&mut Notifier>) {
    let mut dumped = false;
    let mut last_reap = sys::monotonic_ns();
    let mut last_tick = sys::monotonic_ns();
    let mut last_judge = 0u64;
    let mut earliest = 0u64;
    MONITOR_TID.store(sys::gettid(), Relaxed);
    let mut own_runq = run_delay_ns(&mut scratch.io[..]);
    loop {
        let seen = BELL.seen();
        if BELL.stopping() {
            MONITOR_LOOP_AT.store(0, Release);
            return;
        }
        let now = sys::monotonic_ns();
        MONITOR_LOOP_AT.store(now, Release);
        let period = period(LIVE.stall_budget_ns.load(Relaxed));
        let period_ns = period.as_nanos() as u64;
        let tick = now.saturating_sub(last_tick) >= period_ns;
        if tick {
            // A tick, once per period: a new progress epoch, and the
            // guards. Freeze guard: a tick that came late (SIGSTOP of the
            // whole process, a paused VM, a starved monitor) is nobody's
            // fault. Throttle guard: nor is time the cgroup held the process
            // back. Either is forgiven: every window leaves it out.
            let slept = now.saturating_sub(last_tick);
            let overrun = slept.saturating_sub(period_ns);
            let frozen = if overrun > FREEZE_SLACK { overrun } else { 0 };
            last_tick = now;
            let held_back = held_back_ns(&mut scratch.cgroups, &mut own_runq, slept, &mut scratch.io[..]);
            FORGIVEN_NS.fetch_add(held_back.max(frozen), Relaxed);
            progress::next_epoch(now);
        }
        if !dumped && latch::latched().is_some() {
            dumped = true;
            write_dump(scratch, path, notifier.as_deref_mut());
            last_tick = sys::monotonic_ns();
        }
        check_disposition();
        // The rules at every tick, and between ticks when a look is due,
        // at most every half period (looks that fall due close together
        // are taken in one pass, at most half a period late).
        if tick || (now >= earliest && now.saturating_sub(last_judge) >= period_ns / 2) {
            let mut pass = Pass::new(now, dumped, &mut scratch.io[..], &mut scratch.dir[..]);
            earliest = judge(&mut pass);
            last_judge = now;
        }
        if now.saturating_sub(last_reap) >= REAP_EVERY.as_nanos() as u64 {
            registry::reap_detached_dead();
            last_reap = now;
        }
        // Sleep until the next tick, or the next look if it is due before
        // that, but not less than half a period; and no longer than three
        // timer periods, so that an application's handler that replaced
        // failstop's takes at most about three of its ticks before they are
        // switched off ([`check_disposition`]). A ping due before that is
        // not skipped.
        let after = sys::monotonic_ns();
        let until = earliest.min(last_tick.saturating_add(period_ns));
        let disposition_every = Duration::from_nanos(LIVE.period_ns.load(Relaxed).saturating_mul(3))
            .max(Duration::from_millis(10))
            .min(period);
        let mut wait =
            Duration::from_nanos(until.saturating_sub(after)).clamp(period / 2, period).min(disposition_every);
        if let Some(n) = notifier.as_deref_mut() {
            wait = wait.min(n.ping_if_due(after));
        }
        BELL.wait(seen, wait);
    }
}

/// The longest the monitor sleeps between ticks, and so the resolution of
/// the progress epochs (see `slots::EPOCH`): [`PERIOD`], and at most a
/// 64th of the stall budget, so that a window's start is known to within
/// 1.6% of it, and a look is at most half of that late; at least 4 ms.
fn period(stall: u64) -> Duration {
    PERIOD.min(Duration::from_nanos(stall / 64)).max(Duration::from_millis(4))
}

/// The monitor thread's own run-queue wait so far (ns; 0 if unreadable).
fn run_delay_ns(io: &mut [u8]) -> u64 {
    procfs::read_schedstat(sys::gettid(), io).map_or(0, |s| s.run_delay_ns)
}

/// How long, of the `slept` ns since the last loop, the process could not
/// run: the wall time its cgroup (or an ancestor) was throttled, or the time
/// the monitor itself waited in a run queue, whichever is longer, at most
/// `slept`.
///
/// The kernel sums throttled time over the CPUs a group was throttled on;
/// it is turned into wall time by dividing by the whole number of CPUs
/// nearest to the average (at least 1): one thread held back by a quota
/// counts its own time, four threads held back on two CPUs count each
/// instant once. Allocation-free: two small `/proc` and cgroup reads.
fn held_back_ns(cgroups: &mut CpuCgroups, own_runq: &mut u64, slept: u64, io: &mut [u8]) -> u64 {
    let throttled = cgroups.sample(io);
    let cpus = (throttled.saturating_add(slept / 2) / slept.max(1)).max(1);
    let runq = run_delay_ns(io);
    let waited = runq.saturating_sub(*own_runq);
    *own_runq = runq;
    (throttled / cpus).max(waited).min(slept)
}

/// What one pass of the rules shares: the time, the scratch buffers.
struct Pass<'a> {
    now: u64,
    /// `now` on the clock that stands while the process is held back (the
    /// polling window's).
    eff: u64,
    stall: u64,
    pid: libc::pid_t,
    /// The dump is written (vanished slots may be freed).
    dumped: bool,
    io: &'a mut [u8],
    dir: &'a mut [u8],
}

impl<'a> Pass<'a> {
    fn new(now: u64, dumped: bool, io: &'a mut [u8], dir: &'a mut [u8]) -> Self {
        Pass {
            now,
            eff: now.saturating_sub(FORGIVEN_NS.load(Relaxed)),
            stall: LIVE.stall_budget_ns.load(Relaxed),
            pid: sys::getpid(),
            dumped,
            io,
            dir,
        }
    }
}

/// The monitor's rules, applied to each watched thread when its look is
/// due ([`look`]), and never in between: a pass touches 8 bytes per slot
/// (its due time) and nothing else of a thread that is not due. Returns
/// when the next look is due. Allocation-free.
fn judge(pass: &mut Pass<'_>) -> u64 {
    let mut earliest = u64::MAX;
    progress::for_each_due(slots::high_water(), |base, dues| {
        for (i, next) in dues.iter().enumerate() {
            let due = next.load(Relaxed);
            if due > pass.now {
                earliest = earliest.min(due);
                continue;
            }
            let idx = base + i;
            let (Some(s), Some(w)) = (slots::slot(idx), progress::progress(idx)) else { continue };
            let then = look(idx, s, w, pass).max(pass.now + MIN_GAP);
            // A look asked for meanwhile (`progress::look_soon`) wins.
            let _ = next.compare_exchange(due, then, AcqRel, Relaxed);
            earliest = earliest.min(next.load(Relaxed));
        }
    });
    earliest
}

/// The shortest time between two looks at one thread.
const MIN_GAP: u64 = 1_000_000;

/// The share of `stall_budget` over which a quiet thread must have been
/// seen still (its CPU clock unchanged) before the blocked rule judges it:
/// three quarters, as the first reading comes at most a quarter of the
/// budget after its last progress ([`first_look`]).
fn still_needed(stall: u64) -> u64 {
    stall / 4 * 3
}

/// How long after a thread's last progress the monitor first looks at it
/// again: a quarter of the stall budget (a thread that makes progress more
/// often is never read at all). A deaf spinner's window opens then too, so
/// its verdict comes that much later than its CPU alone would say.
fn first_look(stall: u64) -> u64 {
    stall / 4
}

/// One look at a watched thread (slot `s`, `idx`, its record `w`); returns
/// when to look next.
///
/// The blocked rule is the kernel's hung-task test done in user space,
/// without sampling: a watched thread outside idle and harmless scopes,
/// judged from its first progress mark on, is quiet when it made no
/// progress for `stall_budget` (its stamp, see `slots::EPOCH`, says when
/// the last came, to within an epoch), and its CPU clock did not move for
/// the last three quarters of it (any run of a thread adds to its CPU
/// clock: a context switch, a wake-up, a spin), and it is not runnable
/// now (a starved thread is not a blocked one). So a thread is looked at a
/// quarter of the budget after its last progress (its CPU clock read once,
/// if nothing moved), halfway through its still window (its wait chain
/// noted) and when the window could end; a thread that makes progress more
/// often than that costs one look per quarter budget. Time the process
/// could not run (its cgroup throttled, a freeze, see `monitor_loop`) is
/// not counted. A quiet thread is then judged by its wait chain
/// ([`decide`]).
fn look(idx: usize, s: &Slot, w: &Progress, pass: &mut Pass<'_>) -> u64 {
    let now = pass.now;
    let stall = pass.stall;
    if s.state.load(Acquire) != ACTIVE {
        return u64::MAX; // free or detached: registering asks for a look again
    }
    if s.departed.load(Acquire) != 0 {
        return vanished(idx, s, w, pass);
    }
    let generation = s.generation.load(Relaxed);
    let progress = s.touches().wrapping_add(s.tick_seq.load(Relaxed));
    let stamp = s.stamp.load(Relaxed);
    let scoped = s.scoped();
    let fresh = w.generation.load(Relaxed) != generation;
    if fresh
        || w.progress.load(Relaxed) != progress
        || w.stamp.load(Relaxed) != stamp
        || w.scoped.load(Relaxed) != scoped
        || progress == 0
    {
        let (at, forgiven) = if fresh {
            (now, FORGIVEN_NS.load(Relaxed))
        } else {
            let (at, forgiven) = progress::stamp_bounds(stamp, now);
            (at.max(w.progress_at.load(Relaxed)), forgiven)
        };
        w.generation.store(generation, Relaxed);
        w.progress.store(progress, Relaxed);
        w.stamp.store(stamp, Relaxed);
        w.scoped.store(scoped, Relaxed);
        w.progress_at.store(at, Relaxed);
        w.quiet_forgiven.store(forgiven, Relaxed);
        start_still(w, at, NO_READING);
        w.convicted.store(false, Relaxed);
        w.deaf_cpu.store(NO_WINDOW, Relaxed);
        w.io_known.store(false, Relaxed);
        return at.saturating_add(first_look(stall));
    }
    let tid = s.tid.load(Relaxed);
    let Some(cpu) = sys::try_clock_ns(s.cpu_clock.load(Relaxed)) else {
        return gone(idx, s, w, tid, pass);
    };
    let first = w.cpu.load(Relaxed) == NO_READING;
    let ran = !first && cpu != w.cpu.load(Relaxed);
    if tid == pass.pid && !first && !ran && main_thread_is_zombie(tid, pass.io) {
        s.departed.store(DEPARTED_ZOMBIE, Release);
        return vanished(idx, s, w, pass);
    }
    if scoped {
        return judge_scoped(s, w, idx, tid, cpu, pass);
    }
    let deaf_next = judge_deaf(s, w, idx, tid, cpu, now);
    let mut poll_next = u64::MAX;
    if first || ran {
        start_still(w, now, cpu);
        if ran {
            poll_next = judge_polling(s, w, idx, tid, pass);
        }
    } else if !w.convicted.load(Relaxed) {
        judge_blocked(s, w, idx, tid, cpu, pass);
    }
    if w.convicted.load(Relaxed) {
        return now.saturating_add(REAP_EVERY.as_nanos() as u64);
    }
    let (end, wall_end) = still_end(w, stall);
    let mut next = deaf_next.min(poll_next).min(if w.chain_kind.load(Relaxed) == CHAIN_CYCLE { wall_end } else { end });
    if w.chain_kind.load(Relaxed) == CHAIN_UNSEEN {
        next = next.min(wall_end.saturating_sub(stall / 2).max(w.quiet_since.load(Relaxed)));
    }
    if next <= now {
        // A verdict left to another thread's window, or a chain noted just
        // now: look again in a little while.
        next = now.saturating_add(retry_after(stall));
    }
    next
}

/// When a still window of `w` ends (the blocked rule can judge it): a full
/// stall budget after the last progress and [`still_needed`] after the
/// first still reading, plus the time the process was held back since;
/// and the same in wall time (for a deadlock, which is judged on it).
fn still_end(w: &Progress, stall: u64) -> (u64, u64) {
    let wall = w
        .progress_at
        .load(Relaxed)
        .saturating_add(stall)
        .max(w.quiet_since.load(Relaxed).saturating_add(still_needed(stall)));
    let held_back = FORGIVEN_NS.load(Relaxed).saturating_sub(w.quiet_forgiven.load(Relaxed));
    (wall.saturating_add(held_back), wall)
}

/// How long the monitor waits before it looks again at a thread whose
/// judgement it could not finish (its chain just noted, or its culprit
/// left to its own window): an eighth of the stall budget, at least a
/// period.
fn retry_after(stall: u64) -> u64 {
    (stall / 8).max(PERIOD.as_nanos() as u64)
}

/// The blocked rule's judgement at a look that found `w`'s thread still
/// (its CPU clock at `cpu`, as at the window's start): halfway through
/// the window its wait chain is noted; at the window's end (in wall time
/// for a deadlock) it is judged ([`decide`]), unless it is runnable now.
fn judge_blocked(s: &Slot, w: &Progress, idx: usize, tid: libc::pid_t, cpu: u64, pass: &mut Pass<'_>) {
    let now = pass.now;
    let stall = pass.stall;
    let (end, wall_end) = still_end(w, stall);
    // The chain is noted halfway through the window in wall time, so that
    // a deadlock is found on wall time however long the process is held
    // back.
    if w.chain_kind.load(Relaxed) == CHAIN_UNSEEN && now >= wall_end.saturating_sub(stall / 2) {
        note_chain(w, tid, pass.io, pass.dir);
    }
    let cycle = w.chain_kind.load(Relaxed) == CHAIN_CYCLE && now >= wall_end;
    if now < end && !cycle {
        return;
    }
    // A read that fails (every descriptor in use despite the reserve, a
    // thread exiting) is no evidence either way: the window stands, so
    // that a failed read never passes for life.
    let Ok(stat) = procfs::read_stat(tid, pass.io) else { return };
    if !matches!(stat.state, b'S' | b'D') {
        // Runnable (starved: waiting for a CPU is not being blocked) or
        // stopped: the window starts again.
        start_still(w, now, cpu);
        return;
    }
    decide(s, w, idx, tid, now, now < end, pass.io, pass.dir);
}

/// Starts `w`'s still window at `at`, with the CPU clock reading `cpu`
/// there ([`NO_READING`]: none yet); the wait chain is noted again halfway
/// through it.
fn start_still(w: &Progress, at: u64, cpu: u64) {
    w.quiet_since.store(at, Relaxed);
    w.cpu.store(cpu, Relaxed);
    w.chain_kind.store(CHAIN_UNSEEN, Relaxed);
}

/// Starts `w`'s still window again now (the thread's wait chain showed
/// life, or a deadlock turned out to be none), keeping its CPU reading.
fn restart_quiet(w: &Progress, now: u64) {
    w.quiet_since.store(now, Relaxed);
    w.chain_kind.store(CHAIN_UNSEEN, Relaxed);
}

/// Where `tid`'s wait chain leads, and the evidence of life of its end now
/// (`None`: no end to read, or it could not be read). Allocation-free.
fn chain_end(tid: libc::pid_t, io: &mut [u8], dir: &mut [u8]) -> (chain::Walk, Option<Life>) {
    let walk = chain::walk(tid, io);
    let life = match walk {
        chain::Walk::Thread { end } if !is_own_thread(end) => chain::thread_life(end, io),
        chain::Walk::Children { target, .. } => chain::processes_life(chain::Procs::Children(target), dir, io),
        chain::Walk::Holder { pid, .. } => chain::processes_life(chain::Procs::One(pid), dir, io),
        _ => None,
    };
    (walk, life)
}

/// Notes, halfway through `w`'s quiet window, where the thread's wait chain
/// ends and that end's evidence of life (see [`decide`]).
fn note_chain(w: &Progress, tid: libc::pid_t, io: &mut [u8], dir: &mut [u8]) {
    let (walk, life) = chain_end(tid, io, dir);
    let (kind, end) = match (walk, life) {
        (chain::Walk::Thread { end }, Some(_)) => (CHAIN_THREAD, end),
        (chain::Walk::Children { target, .. }, Some(_)) => (CHAIN_CHILDREN, target),
        (chain::Walk::Holder { pid, .. }, Some(_)) => (CHAIN_HOLDER, pid),
        (chain::Walk::Cycle { member, .. }, _) => (CHAIN_CYCLE, member),
        _ => (CHAIN_NONE, 0),
    };
    let life = life.unwrap_or_default();
    w.chain_end.store(end, Relaxed);
    w.chain_cpu.store(life.cpu, Relaxed);
    w.chain_moves.store(life.moves, Relaxed);
    w.chain_kind.store(kind, Relaxed);
}

/// A watched thread (`s`, `w`, slot `idx`, `tid`) has been quiet for
/// `stall_budget` (`cycle_only`: only in wall time, counting time the
/// process was held back, which only a deadlock may use): the blocked rule
/// follows its wait chain before it convicts.
///
/// - A deadlock (a cycle of lock waits) is convicted: the thread when it
///   is in the cycle, else the cycle's first member it reached.
/// - A chain that ends at another thread, or at processes (children, a
///   file lock's holder): the end is compared with the reading noted
///   halfway through the window ([`note_chain`]; a window that has none
///   yet notes it now and is looked at again at the next sample). An end
///   that ran since (its CPU time or its count of runs moved, or it is
///   runnable now), or a thread that waits inside a harmless scope, spares
///   the waiter: its window starts again, as slow is not hung. An end that
///   did not run is the culprit: a watched thread outside scopes is left
///   to its own window (it is convicted, with its own figure, once quiet
///   for the whole budget, and its verdict names the waiters); any other
///   thread is convicted now, the waiters named in its verdict; for
///   processes, the waiter is. (Without the chain the waiter would be
///   convicted now: following it moves the blame, and delays a verdict at
///   most until the culprit's own budget is up.)
/// - Nothing followable, or a chain that changed (the lock went to another
///   owner: someone ran), is judged as before: the thread is convicted,
///   respectively spared.
///
/// Allocation-free; at most [`chain::MAX_DEPTH`] hops of `/proc` reads,
/// and a listing of `/proc` for children.
#[allow(clippy::too_many_arguments)]
fn decide(
    s: &Slot,
    w: &Progress,
    idx: usize,
    tid: libc::pid_t,
    now: u64,
    cycle_only: bool,
    io: &mut [u8],
    dir: &mut [u8],
) {
    let figure = now.saturating_sub(w.progress_at.load(Relaxed));
    let (walk, life) = chain_end(tid, io, dir);
    if cycle_only && !matches!(walk, chain::Walk::Cycle { .. }) {
        // Quiet for the stall budget only counting the time the process
        // was held back: a cycle would have been certain, this is not one.
        restart_quiet(w, now);
        return;
    }
    let (kind, end) = match walk {
        chain::Walk::Nothing => {
            w.convicted.store(true, Relaxed);
            note_still(w, now);
            return on_verdict(VerdictKind::Blocked, s, idx, tid, figure);
        }
        chain::Walk::Cycle { member, through_first } => {
            w.convicted.store(true, Relaxed);
            let culprit = if through_first { tid } else { member };
            return convict_other(s, w, idx, tid, culprit, figure, now);
        }
        chain::Walk::Thread { end } => (CHAIN_THREAD, end),
        chain::Walk::Children { target, .. } => (CHAIN_CHILDREN, target),
        chain::Walk::Holder { pid, .. } => (CHAIN_HOLDER, pid),
    };
    if w.chain_kind.load(Relaxed) == CHAIN_UNSEEN {
        // No reading to compare with yet (a sample was missed): note one.
        return note_chain(w, tid, io, dir);
    }
    let Some(life) = life else {
        // The end cannot be read (an owner that exited holding its lock,
        // children gone, or failstop's own thread): the waiter is blocked.
        w.convicted.store(true, Relaxed);
        note_still(w, now);
        return on_verdict(VerdictKind::Blocked, s, idx, tid, figure);
    };
    let noted = Life { cpu: w.chain_cpu.load(Relaxed), moves: w.chain_moves.load(Relaxed), runnable: false };
    let same_end = w.chain_kind.load(Relaxed) == kind && w.chain_end.load(Relaxed) == end;
    if !same_end || life.ran_since(&noted) || (kind == CHAIN_THREAD && in_harmless_scope(end)) {
        // Slow is not hung: the waiter's window starts again.
        restart_quiet(w, now);
        return;
    }
    if kind == CHAIN_THREAD && judged_on_its_own(end) {
        // The still end is watched: its own window convicts it, with its
        // own figure, once it is quiet for the whole budget; the waiter
        // waits for that.
        return;
    }
    w.convicted.store(true, Relaxed);
    match walk {
        chain::Walk::Thread { end } => convict_other(s, w, idx, tid, end, figure, now),
        _ => {
            note_still(w, now);
            on_verdict(VerdictKind::Blocked, s, idx, tid, figure)
        }
    }
}

/// Whether the blocked rule judges `tid` itself: a watched thread outside
/// any scope that has made its first progress.
fn judged_on_its_own(tid: libc::pid_t) -> bool {
    slots::find_tid(tid).and_then(slots::slot).is_some_and(|e| {
        e.state.load(Acquire) == ACTIVE
            && e.departed.load(Acquire) == 0
            && !e.scoped()
            && e.touches().wrapping_add(e.tick_seq.load(Relaxed)) != 0
    })
}

/// Convicts `culprit` as blocked, found from the waiter `tid` (slot `s`,
/// `idx`) whose window measured `figure`: the culprit's own slot and figure
/// where it is watched, else the waiter's figure. Allocation-free.
fn convict_other(s: &Slot, w: &Progress, idx: usize, tid: libc::pid_t, culprit: libc::pid_t, figure: u64, now: u64) {
    if culprit == tid {
        note_still(w, now);
        return on_verdict(VerdictKind::Blocked, s, idx, tid, figure);
    }
    let (cidx, cfigure) = match slots::find_tid(culprit) {
        Some(ci) => {
            let f = progress::wall_since_progress(ci).unwrap_or(figure);
            match progress::progress(ci) {
                Some(cw) => {
                    cw.convicted.store(true, Relaxed);
                    note_still(cw, now);
                }
                None => note_still_unknown(),
            }
            (ci, f)
        }
        None => {
            note_still_unknown();
            (NO_SLOT, figure)
        }
    };
    if end::latch(VerdictKind::Blocked, cidx, culprit, cfigure) {
        BELL.ring();
    } else if !LIVE.fatal() {
        end::note_late_verdict(slots::slot(cidx).unwrap_or(s), VerdictKind::Blocked, cfigure);
    }
}

/// Notes, for the verdict line, how long `w`'s thread has been seen not to
/// run (since its still window began; nothing if its CPU clock was never
/// read), unless a verdict is latched already.
fn note_still(w: &Progress, now: u64) {
    if latch::latched().is_none() {
        let still = if w.cpu.load(Relaxed) == NO_READING { 0 } else { now.saturating_sub(w.quiet_since.load(Relaxed)) };
        latch::CULPRIT_STILL.store(still, Relaxed);
    }
}

/// Notes that the culprit's stillness is not known (see [`note_still`]).
fn note_still_unknown() {
    if latch::latched().is_none() {
        latch::CULPRIT_STILL.store(0, Relaxed);
    }
}

/// Whether `tid` is a watched thread inside a harmless scope: its wait was
/// declared legitimate however long it takes (a long `fsync`), and so is
/// the wait of a thread that waits for it.
fn in_harmless_scope(tid: libc::pid_t) -> bool {
    slots::find_tid(tid).and_then(slots::slot).is_some_and(|e| e.harmless_depth.load(Relaxed) > 0)
}

/// Whether `tid` is one of failstop's own threads (never the end of an
/// application's wait chain).
fn is_own_thread(tid: libc::pid_t) -> bool {
    tid == MONITOR_TID.load(Relaxed) || tid == reporter::tid() || tid == fuse::tid()
}

/// The deadlock part of the blocked rule for a thread inside an idle or
/// harmless scope (waiting for others is what those scopes are for, so
/// only a deadlock convicts it), with the same looks as outside scopes:
/// its CPU clock (`cpu` now) is read a quarter of the stall budget after
/// its last progress, and again when its still window could end (in wall
/// time: a cycle cannot go on, throttled or not). Unchanged: its wait chain
/// is followed once, and a cycle through it is convicted. Anything else
/// starts the window again. Allocation-free: a clock read per look, the
/// chain's `/proc` reads once per window of stillness.
fn judge_scoped(s: &Slot, w: &Progress, idx: usize, tid: libc::pid_t, cpu: u64, pass: &mut Pass<'_>) -> u64 {
    let now = pass.now;
    if w.cpu.load(Relaxed) != cpu {
        start_still(w, now, cpu);
        return still_end(w, pass.stall).1;
    }
    let wall_end = still_end(w, pass.stall).1;
    if now < wall_end || w.convicted.load(Relaxed) {
        return if w.convicted.load(Relaxed) { u64::MAX } else { wall_end };
    }
    match chain::walk(tid, pass.io) {
        chain::Walk::Cycle { member, through_first } => {
            w.convicted.store(true, Relaxed);
            let culprit = if through_first { tid } else { member };
            convict_other(s, w, idx, tid, culprit, now.saturating_sub(w.progress_at.load(Relaxed)), now);
            now.saturating_add(REAP_EVERY.as_nanos() as u64)
        }
        _ => {
            restart_quiet(w, now);
            still_end(w, pass.stall).1
        }
    }
}

/// The disposition rule (see the module doc). Allocation-free: a
/// `sigaction` query, and when it changed, one `timer_settime` per watched
/// thread and a line on stderr.
fn check_disposition() {
    let ours = sigval::OUR_HANDLER.load(Acquire);
    if ours == 0 {
        return;
    }
    let signo = LIVE.signo.load(Relaxed);
    let Some(cur) = signals::disposition(signo) else { return };
    let period = LIVE.period_ns.load(Relaxed);
    let off = cpu_timer::TICKS_OFF.load(Acquire);
    if cur.sa_sigaction == ours {
        if cur.sa_flags & libc::SA_SIGINFO == 0 {
            let _ = signals::set_handler(signo, ours, sigval::OUR_FLAGS.load(Relaxed));
        }
        if off {
            cpu_timer::set_ticks(true, period);
            say_disposition(signo, "is back: its CPU-time ticks are on again");
        }
        return;
    }
    // Off already: disarmed again, for a timer armed by a thread that
    // registered as they went off.
    cpu_timer::set_ticks(false, period);
    if !off {
        say_disposition(
            signo,
            "was replaced by the application: its CPU-time ticks are off until it is back (spinning threads are \
             still caught, as deaf); choose a signal the application does not use (FAILSTOP_SIGNAL)",
        );
    }
}

/// One line on stderr about failstop's handler of `signo`.
fn say_disposition(signo: libc::c_int, what: &str) {
    if !sys::stderr_usable() {
        return;
    }
    let mut b = FixedBuf::<512>::new();
    b.push_str("failstop: failstop's handler of ");
    match crate::config::Signal::new(signo) {
        Ok(sig) => {
            let _ = write!(b, "{sig}");
        }
        Err(_) => {
            b.push_str("signal ");
            b.push_i64(i64::from(signo));
        }
    }
    b.push_str(" (the watchdog signal) ");
    b.push_str(what);
    b.push_str("\n");
    let _ = sys::write_all(2, b.as_bytes());
}

/// The polling rule (see the module doc), at a look that found the thread
/// moved (it woke, or used a little CPU) without progress: sleeping now
/// (`state` S), no byte read or written and no progress for
/// `poll_budget`. A thread that uses real CPU is the `stuck` rule's; one
/// that moves data (a trickle) or that sleeps between touches shorter than
/// the budget is living. Its bytes are read only here, so a window opens
/// at the first such look. Returns when to look again for it.
/// Allocation-free: two `/proc` reads.
fn judge_polling(s: &Slot, w: &Progress, idx: usize, tid: libc::pid_t, pass: &mut Pass<'_>) -> u64 {
    let eff = pass.eff;
    if let Ok(tio) = procfs::read_io(tid, pass.io) {
        let bytes = tio.rchar.wrapping_add(tio.wchar);
        if !w.io_known.swap(true, Relaxed) || bytes != w.io_bytes.load(Relaxed) {
            w.io_bytes.store(bytes, Relaxed);
            w.io_since.store(eff, Relaxed);
        }
    }
    if !w.io_known.load(Relaxed) {
        return u64::MAX;
    }
    let poll = LIVE.poll_budget_ns.load(Relaxed);
    let still = eff.saturating_sub(w.io_since.load(Relaxed));
    if still < poll {
        return pass.now.saturating_add(poll - still);
    }
    if procfs::read_stat(tid, pass.io).is_ok_and(|st| st.state == b'S') && !w.convicted.swap(true, Relaxed) {
        on_verdict(VerdictKind::Polling, s, idx, tid, pass.now.saturating_sub(w.progress_at.load(Relaxed)));
    }
    pass.now.saturating_add(retry_after(pass.stall))
}

/// CPU time a deaf thread may use beyond `cpu_budget` before the monitor
/// convicts it: two timer periods (the handler would have run twice), and
/// at least 50 ms (several scheduler ticks, at which CPU timers expire).
fn deaf_margin(period_ns: u64) -> u64 {
    period_ns.saturating_mul(2).max(50_000_000)
}

/// CPU time without progress and without a handled signal at which the
/// deaf rule convicts.
fn deaf_threshold() -> u64 {
    LIVE.cpu_budget_ns.load(Relaxed).saturating_add(deaf_margin(LIVE.period_ns.load(Relaxed)))
}

/// The deaf rule (see the module doc), for a watched thread outside any
/// scope that made no progress since the monitor last looked. `cpu` is its
/// CPU clock now. Returns when to look again for it: when its CPU clock
/// could reach the threshold at the earliest (a thread runs at most one
/// CPU-second per second). Allocation-free.
fn judge_deaf(s: &Slot, w: &Progress, idx: usize, tid: libc::pid_t, cpu: u64, now: u64) -> u64 {
    let signals = s.own_signals.load(Relaxed);
    let start = w.deaf_cpu.load(Relaxed);
    let threshold = deaf_threshold();
    if start == NO_WINDOW || signals != w.deaf_signals.load(Relaxed) {
        // First look, or the handler ran: it judges the thread itself.
        w.deaf_cpu.store(cpu, Relaxed);
        w.deaf_signals.store(signals, Relaxed);
        return now.saturating_add(threshold);
    }
    let used = cpu.saturating_sub(start);
    if used < threshold {
        return now.saturating_add(threshold - used);
    }
    if !w.convicted.swap(true, Relaxed) {
        on_verdict(VerdictKind::Deaf, s, idx, tid, used);
    }
    u64::MAX
}

/// How often the monitor frees the slots of detached threads that are gone,
/// and looks again at a convicted vanished slot to free it once the dump
/// is written.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// A look could not read the thread's CPU clock: if the thread is gone
/// (`tgkill(tid, 0)` finds no such thread), it vanished; otherwise the
/// look is tried again later. A thread that makes progress is never looked
/// at this way, so a vanished one is found at its first look after its last
/// progress ([`first_look`]).
fn gone(idx: usize, s: &Slot, w: &Progress, tid: libc::pid_t, pass: &mut Pass<'_>) -> u64 {
    match sys::tgkill(tid, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            s.departed.store(DEPARTED_GONE, Release);
            vanished(idx, s, w, pass)
        }
        _ => pass.now.saturating_add(retry_after(pass.stall)),
    }
}

/// Whether the main thread `tid` is a zombie (it ended by `SYS_exit` while
/// the other threads run on: its CPU clock still reads).
fn main_thread_is_zombie(tid: libc::pid_t, io: &mut [u8]) -> bool {
    procfs::read_stat(tid, io).is_ok_and(|st| matches!(st.state, b'Z' | b'X'))
}

/// The vanished rule (see the module doc), for an `ACTIVE` slot whose
/// owner is known to be gone (`Slot::departed`). A slot it convicted is
/// freed once its dump is written or when it was not the dump's culprit;
/// until then it is looked at every [`REAP_EVERY`]. Allocation-free.
fn vanished(idx: usize, s: &Slot, w: &Progress, pass: &mut Pass<'_>) -> u64 {
    let generation = s.generation.load(Relaxed);
    if w.generation.load(Relaxed) != generation {
        w.generation.store(generation, Relaxed);
        w.progress_at.store(pass.now, Relaxed);
        w.convicted.store(false, Relaxed);
    }
    if !w.convicted.swap(true, Relaxed) {
        let since = pass.now.saturating_sub(w.progress_at.load(Relaxed));
        on_verdict(VerdictKind::Vanished, s, idx, s.tid.load(Relaxed), since);
    } else if pass.dumped || CULPRIT_SLOT.load(Relaxed) != idx {
        registry::reap(idx);
        return u64::MAX;
    }
    pass.now.saturating_add(REAP_EVERY.as_nanos() as u64)
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
/// The longest the dump waits for a stuck culprit to capture its own
/// frames (it latched the verdict in its handler and captures right after).
const CULPRIT_FRAMES_WAIT: Duration = Duration::from_millis(100);

/// A stuck verdict is latched by the culprit's handler, which then walks its
/// own stack into `CULPRIT_FRAMES` and rings the monitor; a monitor that
/// noticed the latch on its own in between would find the culprit inside
/// that handler, with the signal masked, and write it without frames. Waits
/// for them, at most [`CULPRIT_FRAMES_WAIT`], looking every 100 µs (the
/// capture takes microseconds once the handler runs); not at all when the
/// culprit is gone (nothing can come then). Allocation-free.
fn await_culprit_frames() {
    if latch::latched() != Some(VerdictKind::Stuck) {
        return;
    }
    let culprit = CULPRIT_TID.load(Relaxed);
    let until = sys::monotonic_ns() + CULPRIT_FRAMES_WAIT.as_nanos() as u64;
    while CULPRIT_FRAMES.state.get() != CapState::Ready && sys::monotonic_ns() < until {
        // Signal 0: whether the thread still exists, without a signal.
        if sys::tgkill(culprit, 0).is_err_and(|e| e.raw_os_error() == Some(libc::ESRCH)) {
            return;
        }
        sys::sleep(Duration::from_micros(100));
    }
}

fn write_dump(scratch: &mut Scratch, path: Option<&DumpPath>, mut notifier: Option<&mut Notifier>) {
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
    await_culprit_frames();
    let stderr_open = sys::stderr_usable();
    // The raw part goes to memory first (and on to stderr as far as it takes
    // it without waiting); the file is opened after it, so that an open
    // that hangs (a hung NFS server) finds the raw part on its way to
    // stderr already.
    let mut sink = Sink::new(stderr_open, deadline);
    let own = OwnThreads { monitor: sys::gettid(), reporter: reporter::tid(), fuse: fuse::tid() };
    dump::write_raw(&mut sink, scratch, &own, spared_by.map(|t| (t, end::TRACER_POLL)));
    let file = dump::open_file(path, &mut sink);
    let raw_done = sys::monotonic_ns();
    // Leave a little of the deadline for the trailer and fsync.
    let sym_deadline = deadline.saturating_sub(100_000_000).max(raw_done);
    // In `warn` mode the gate stays open: keep pinging systemd while the
    // reporter symbolizes (this can take most of `dump_timeout`); and keep
    // the destinations fed.
    sink.unseal();
    let symbolized = {
        let mut between = |now| {
            sink.pump(false);
            let ping = notifier.as_deref_mut().map_or(Duration::MAX, |n| n.ping_if_due(now));
            if sink.stderr_behind() { ping.min(Duration::from_millis(10)) } else { ping }
        };
        reporter::symbolize_dump(sym_deadline, &mut between)
    };
    sink.seal();
    sink.closing();
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
    sink.push_outcome();
    sink.eol();
    dump::close_out(&mut sink, file);
    if LIVE.closes_gate()
        && !SPARED_FOR_DEBUGGER.load(Acquire)
        && let Some(n) = notifier
    {
        n.trigger();
    }
    DUMP_DONE.store(1, Release);
    sys::futex_wake_all(&DUMP_DONE);
    // The monitor's part of the end: it acts on the verdicts it reached
    // itself (their culprit cannot: it sleeps in a system call, failstop's
    // handler cannot run on it, or it is gone), waits out a tracer that
    // spares the process, and stands by while a stuck culprit acts.
    if LIVE.fatal()
        && let Some(kind) = latch::latched()
    {
        end::follow_through(kind);
    }
}
