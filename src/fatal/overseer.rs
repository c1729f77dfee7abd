//! Watching the watchdog: the reporter thread checks that the monitor
//! comes around. A monitor that stops (blocked in the kernel, stuck on a
//! lock it should never take, stopped by a debugger that attached to it
//! alone) would leave every blocked, deaf, polling or vanished thread
//! unjudged while the heartbeat gate stays open; outside systemd nothing
//! else would notice. So when the monitor has not started a loop for
//! [`monitor_stall_limit_ns`] while no verdict is latched, the reporter latches a `stalled`
//! verdict on it, writes the raw dump itself and fail-stops the process.
//!
//! The reporter's own freeze guard: a check that comes long after the last
//! one (the whole process was stopped or starved) starts the window again,
//! so that a `SIGSTOP` of the process is nobody's fault.

use super::dump::{self, DumpPath, OwnThreads, Scratch, Sink};
use super::end;
use super::fuse;
use crate::os::sys;
use crate::state::latch::{self, DUMP_DONE};
use crate::state::progress::{MONITOR_LOOP_AT, MONITOR_TID, monitor_stall_limit_ns};
use crate::state::settings::LIVE;
use crate::verdict::VerdictKind;
use std::sync::atomic::Ordering::*;
use std::time::Duration;

/// A reporter check that comes later than this after the previous one
/// means the reporter itself did not run: the window starts again.
const SELF_SLACK: Duration = Duration::from_secs(2);

/// The reporter's watch over the monitor, with what it needs to write a
/// dump on its own (made when the reporter starts: the check never
/// allocates).
pub(crate) struct Overseer {
    scratch: Scratch,
    path: Option<DumpPath>,
    last_check: u64,
    window_from: u64,
}

impl Overseer {
    /// Normal context, when the reporter starts (allocates the dump's
    /// scratch space).
    pub(crate) fn new(path: Option<DumpPath>) -> Self {
        let now = sys::monotonic_ns();
        Overseer { scratch: Scratch::new(), path, last_check: now, window_from: now }
    }

    /// One check, from the reporter's loop (at least every second).
    /// Allocation-free.
    pub(crate) fn check(&mut self) {
        let now = sys::monotonic_ns();
        if now.saturating_sub(self.last_check) > SELF_SLACK.as_nanos() as u64 {
            self.window_from = now;
        }
        self.last_check = now;
        if !LIVE.running() || latch::latched().is_some() {
            return;
        }
        let at = MONITOR_LOOP_AT.load(Acquire);
        if at == 0 {
            return; // the monitor has not started its loop yet
        }
        let quiet = now.saturating_sub(at.max(self.window_from));
        if quiet < monitor_stall_limit_ns() {
            return;
        }
        let monitor = MONITOR_TID.load(Relaxed);
        if !end::latch(VerdictKind::Stalled, usize::MAX, monitor, now.saturating_sub(at)) {
            return;
        }
        self.write_dump(monitor);
        DUMP_DONE.store(1, Release);
        sys::futex_wake_all(&DUMP_DONE);
        if LIVE.fatal() {
            // The monitor cannot act: the reporter aborts itself.
            end::act(sys::gettid());
        }
    }

    /// The raw dump (the symbolizer is this very thread: no symbols).
    fn write_dump(&mut self, monitor: libc::pid_t) {
        let started = sys::monotonic_ns();
        let stderr_open = sys::stderr_usable();
        let deadline = crate::state::latch::VERDICT_AT.load(Acquire) + LIVE.dump_timeout_ns.load(Relaxed);
        let mut sink = Sink::new(stderr_open, deadline);
        let own = OwnThreads { monitor, reporter: sys::gettid(), fuse: fuse::tid() };
        dump::write_raw(&mut sink, &mut self.scratch, &own, None);
        let file = dump::open_file(self.path.as_ref(), &mut sink);
        sink.closing();
        let b = sink.line();
        b.push_str("failstop: dump written in ");
        b.push_ms(sys::monotonic_ns().saturating_sub(started));
        b.push_str(" ms by the reporter (the monitor is stalled; no symbols)");
        sink.eol();
        dump::close_out(&mut sink, file);
    }
}
