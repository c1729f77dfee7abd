//! The capture requests: every thread asked at once for its frames, the
//! answers awaited under one deadline, the ptrace helper where a thread
//! cannot answer, and why a thread has no frames ([`NoFrames`]).

use super::scratch::{Facts, OwnThreads};
use crate::os::procfs::{self};
use crate::os::ptrace;
use crate::os::signals;
use crate::os::sys;
use crate::state::captures::{CAPTURE_ANSWERS, CAPTURE_COUNT, CAPTURES, Capture, MAX_DUMP_THREADS};
use crate::state::frames::{self, CapState, Frames, MAX_FRAMES};
use crate::state::latch::{CULPRIT_FRAMES, VERDICT_AT};
use crate::state::settings::LIVE;
use crate::state::sigval::{self, CAPTURE_TAG};
use crate::state::slots::{self};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

/// Queues a capture request to every thread that may be signalled (each
/// with its `/proc` facts, read beforehand). The requests are sent in one
/// loop, so that the threads answer in parallel.
pub(super) fn request_captures(tids: &[libc::pid_t], facts: &[Facts], culprit: libc::pid_t, own: &OwnThreads) {
    let signo = LIVE.signo.load(Relaxed);
    let fatal = LIVE.fatal();
    // A request would reach the application's handler or default action.
    let ours = signals::disposition(signo).is_some_and(|cur| cur.sa_sigaction == sigval::OUR_HANDLER.load(Acquire));
    for (i, (&tid, f)) in tids.iter().zip(facts).enumerate() {
        let c = &CAPTURES[i];
        c.frames.state.set(CapState::Empty);
        c.tid.store(0, Relaxed);
        // The slot goes with every entry: the reporter names the thread by it.
        c.slot.store(f.slot, Relaxed);
        if tid == culprit && CULPRIT_FRAMES.state.get() == CapState::Ready || own.has(tid) {
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
                c.frames.state.set(CapState::Ready);
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
            c.frames.state.set(CapState::Masked);
            continue;
        }
        // A thread in sigtimedwait (sigwait, sigwaitinfo) has the signals it
        // waits for unblocked meanwhile, and would take the request.
        let sigwait = matches!(f.syscall(),
            Some(procfs::SyscallState::InSyscall { nr, .. }) if nr == libc::SYS_rt_sigtimedwait);
        if sigwait || !ours {
            c.tid.store(tid, Relaxed);
            c.frames.state.set(if ours { CapState::Sigwait } else { CapState::NotOurs });
            continue;
        }
        let (lo, hi) = slots::slot(f.slot).map_or((0, 0), |s| (s.stack_lo.load(Relaxed), s.stack_hi.load(Relaxed)));
        c.lo.store(lo, Relaxed);
        c.hi.store(hi, Relaxed);
        c.tid.store(tid, Relaxed);
        c.frames.state.set(CapState::Requested);
        match sys::tgsigqueue(tid, signo, sigval::encode(CAPTURE_TAG, i)) {
            Ok(()) => {}
            // Real-time signals are queued with their siginfo or refused.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => c.frames.state.set(CapState::Refused),
            Err(_) => c.frames.state.set(CapState::Empty),
        }
    }
    CAPTURE_COUNT.store(tids.len(), Release);
}

/// Waits until capture entry `c` is answered, or `deadline` passed: only
/// while the request is out (or the answer being written), and not for a
/// thread in uninterruptible sleep (`state` D), which cannot answer. Every
/// answer bumps [`CAPTURE_ANSWERS`] and wakes its futex.
pub(super) fn await_capture(c: &Capture, state: u8, deadline: u64) {
    if state == b'D' {
        return;
    }
    loop {
        let seen = CAPTURE_ANSWERS.load(Acquire);
        let st = c.frames.state.get();
        if st != CapState::Requested && st != CapState::Writing {
            return;
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            return;
        }
        sys::futex_wait(&CAPTURE_ANSWERS, seen, Some(Duration::from_nanos(deadline - now)));
    }
}

/// Why a thread has no frames of its own capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NoFrames {
    /// One of failstop's own threads (a fatal verdict asks every other).
    OwnThread,
    /// Outside a fatal verdict, a sleeping thread is not asked: the signal
    /// would interrupt its system call.
    Sleeping,
    /// It blocks the watchdog signal.
    Masked,
    /// It waits for signals (`sigwait`, `sigtimedwait`) and would take the
    /// request as one of its own.
    Sigwait,
    /// The application replaced failstop's handler of the watchdog signal.
    NotOurs,
    /// The signal queue is full (`RLIMIT_SIGPENDING`).
    Refused,
    /// Asked, but no answer came in time.
    NotResponding,
    /// The request could not be sent at all.
    NotSent,
}

impl NoFrames {
    /// The dump's words for it.
    pub(super) fn text(self) -> &'static str {
        match self {
            NoFrames::OwnThread => "failstop's own thread",
            NoFrames::Sleeping => {
                "not asked: it sleeps in a system call and a signal would interrupt it (non-fatal mode)"
            }
            NoFrames::Masked => "not asked: it blocks the watchdog signal",
            NoFrames::Sigwait => {
                "not asked: it waits for signals (sigwait, sigtimedwait), which would take the request"
            }
            NoFrames::NotOurs => "not asked: the application replaced failstop's handler of the watchdog signal",
            NoFrames::Refused => {
                "the capture signal could not be queued: the queue of pending signals is used up \
                 (RLIMIT_SIGPENDING, `ulimit -i`)"
            }
            NoFrames::NotResponding => {
                "not responding to the capture signal in time (signal blocked, stopped, or uninterruptible)"
            }
            NoFrames::NotSent => "the capture signal could not be sent",
        }
    }

    /// Whether the ptrace helper is worth trying for a thread without
    /// frames in state `state`: it was not asked for a reason a ptrace
    /// stop does not share (it blocks the signal, waits for signals, the
    /// handler was replaced, the queue is full) or did not answer, and it
    /// is not in uninterruptible sleep (it would not stop). Outside a fatal
    /// verdict only a running thread is stopped (a stop can cut a sleeping
    /// system call short, as the signal would).
    pub(super) fn ptrace_may_help(self, state: u8) -> bool {
        matches!(
            self,
            NoFrames::Masked | NoFrames::Sigwait | NoFrames::NotOurs | NoFrames::Refused | NoFrames::NotResponding
        ) && state != b'D'
            && (LIVE.fatal() || state == b'R')
    }
}

/// Threads whose frames a dump reads with the ptrace helper, at most.
const PTRACE_MAX: usize = 32;
/// The longest one ptrace capture may take.
const PTRACE_EACH: Duration = Duration::from_millis(100);
/// ptrace captures made in this dump (reset by `write_raw`).
pub(super) static PTRACE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Frames of `tid` read by the ptrace helper, within the limits of a dump:
/// [`PTRACE_MAX`] threads, [`PTRACE_EACH`] each, and never in the second
/// half of the dump deadline (the rest of the dump needs it).
/// Returns their count and the capture entry they were also stored in (for
/// the symbolized part), if any.
pub(super) fn by_ptrace(
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
        let was = c.frames.state.get();
        if (was == CapState::Masked || was == CapState::Empty) && c.frames.state.change(was, CapState::Writing) {
            c.frames.store(&frames[..n]);
            c.frames.state.set(CapState::Ready);
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
pub(super) fn captured(
    ci: usize,
    tid: libc::pid_t,
    frames: &mut [usize; MAX_FRAMES],
) -> Result<(usize, &'static Frames), NoFrames> {
    let Some(c) = capture_entry(ci, tid) else {
        return Err(if LIVE.fatal() { NoFrames::OwnThread } else { NoFrames::Sleeping });
    };
    match c.frames.state.get() {
        CapState::Ready => Ok((c.frames.load(frames), &c.frames)),
        CapState::Requested => {
            // Give up on it: a late answer will find the entry abandoned.
            let _ = c.frames.state.change(CapState::Requested, CapState::Empty);
            Err(NoFrames::NotResponding)
        }
        CapState::Masked => Err(NoFrames::Masked),
        CapState::Sigwait => Err(NoFrames::Sigwait),
        CapState::NotOurs => Err(NoFrames::NotOurs),
        CapState::Refused => Err(NoFrames::Refused),
        _ => Err(NoFrames::NotSent),
    }
}
