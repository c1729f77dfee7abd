//! The monitor thread: writes the dump on a verdict, tracks each watched
//! thread's wall-clock progress, frees the slots of threads that died, and
//! feeds systemd's watchdog while the gate is open (see `systemd`).
//!
//! The monitor never allocates after it has started (its buffers are made
//! before the loop), so it can write the dump while another thread holds
//! the allocator's lock. It blocks every asynchronous signal, so writing to
//! a closed stderr returns EPIPE instead of killing the process.

use crate::action;
use crate::dump::{self, Own, Scratch, Sink};
use crate::error::Error;
use crate::registry::{self, MAX_THREADS};
use crate::sys;
use crate::systemd::Notifier;
use crate::watchdog::RT;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

static WAKE: AtomicU32 = AtomicU32::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// Per slot: the progress counters last seen and when they last changed.
struct Seen {
    generation: AtomicU32,
    progress: AtomicU64,
    changed_at: AtomicU64,
}
static SEEN: [Seen; MAX_THREADS] = [const {
    Seen { generation: AtomicU32::new(u32::MAX), progress: AtomicU64::new(0), changed_at: AtomicU64::new(0) }
}; MAX_THREADS];

/// How often the monitor looks at the threads.
const PERIOD: Duration = Duration::from_millis(100);

/// Wakes the monitor now. Async-signal-safe.
pub(crate) fn wake() {
    WAKE.fetch_add(1, Release);
    sys::futex_wake_all(&WAKE);
}

/// Asks the monitor to finish its loop (the watchdog stops).
pub(crate) fn request_stop() {
    STOP.store(true, Release);
    wake();
}

/// Wall-clock ns since slot `idx` last made progress, as the monitor saw it.
pub(crate) fn wall_since_progress(idx: usize) -> Option<u64> {
    let s = registry::slot(idx)?;
    let seen = SEEN.get(idx)?;
    if seen.generation.load(Relaxed) != s.generation.load(Relaxed) {
        return None;
    }
    Some(sys::monotonic_ns().saturating_sub(seen.changed_at.load(Relaxed)))
}

/// Starts the monitor thread. It owns `notifier` (closed when the monitor
/// stops).
pub(crate) fn spawn(
    dump_path: Option<PathBuf>,
    notifier: Option<Notifier>,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let path = match dump_path {
        Some(p) => Some(CString::new(p.as_os_str().as_bytes()).map_err(|_| {
            Error::new(crate::ErrorKind::InvalidConfig, format!("dump_path {p:?}: contains a NUL byte"))
        })?),
        None => None,
    };
    STOP.store(false, Release);
    let mut scratch = Scratch::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("failstop-monitor".into())
        .spawn(move || {
            crate::signal::block_all_in_this_thread();
            let _ = tx.send(());
            let mut notifier = notifier;
            run(&mut scratch, path.as_deref(), notifier.as_mut());
        })
        .map_err(|e| Error::os("spawning the monitor thread", e))?;
    let _ = rx.recv();
    Ok(handle)
}

fn run(scratch: &mut Scratch, path: Option<&std::ffi::CStr>, mut notifier: Option<&mut Notifier>) {
    let mut dumped = false;
    let mut last_reap = sys::monotonic_ns();
    loop {
        let seen = WAKE.load(Acquire);
        if STOP.load(Acquire) {
            return;
        }
        if !dumped && action::LATCH.load(Acquire) != 0 {
            dumped = true;
            write_dump(scratch, path, notifier.as_deref_mut());
        }
        track_progress();
        let now = sys::monotonic_ns();
        if now.saturating_sub(last_reap) >= 1_000_000_000 {
            registry::reap_dead();
            last_reap = now;
        }
        // A ping due before the next period is not skipped: wait only until it.
        let wait = notifier.as_deref_mut().map_or(PERIOD, |n| n.ping_if_due(sys::monotonic_ns()).min(PERIOD));
        sys::futex_wait(&WAKE, seen, Some(wait));
    }
}

/// Records, for every watched slot, when its progress counters last moved.
fn track_progress() {
    let now = sys::monotonic_ns();
    for (s, seen) in registry::SLOTS.iter().zip(SEEN.iter()) {
        if s.state.load(Acquire) != registry::ACTIVE {
            continue;
        }
        let generation = s.generation.load(Relaxed);
        let progress = s.touch_seq.load(Relaxed).wrapping_add(s.tick_seq.load(Relaxed));
        if seen.generation.load(Relaxed) != generation || seen.progress.load(Relaxed) != progress || s.scoped() {
            seen.generation.store(generation, Relaxed);
            seen.progress.store(progress, Relaxed);
            seen.changed_at.store(now, Relaxed);
        }
    }
}

/// Writes the dump (raw, then symbolized under the deadline), fsyncs it and
/// lets the acting thread go. Under systemd's watchdog, when the action
/// closes the gate: `STATUS=` first, `WATCHDOG=trigger` once the dump is
/// written (not before: systemd's signal would cut it short).
fn write_dump(scratch: &mut Scratch, path: Option<&std::ffi::CStr>, mut notifier: Option<&mut Notifier>) {
    let started = sys::monotonic_ns();
    if RT.closes_gate()
        && let Some(n) = notifier.as_deref_mut()
    {
        n.announce_verdict();
    }
    let deadline = action::VERDICT_AT.load(Acquire) + RT.dump_timeout_ns.load(Relaxed);
    let file = path.and_then(|p| sys::Fd::open(p, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644).ok());
    // If stderr was closed, the file may have been given fd 2: write it once.
    // SAFETY: F_GETFD on a descriptor number only queries it.
    let stderr_open = unsafe { libc::fcntl(2, libc::F_GETFD) } != -1;
    let file_fd = file.as_ref().map(|f| f.raw());
    let mut sink = Sink::new(stderr_open && file_fd != Some(2), file_fd);
    let own = Own { monitor: sys::gettid(), reporter: crate::reporter::tid() };
    dump::write_raw(&mut sink, scratch, &own);
    let raw_done = sys::monotonic_ns();
    // Leave a little of the deadline for the trailer and fsync.
    let sym_deadline = deadline.saturating_sub(100_000_000).max(raw_done);
    // In `warn` mode the gate stays open: keep pinging systemd while the
    // reporter symbolizes (this can take most of `dump_timeout`).
    let mut ping = |now| notifier.as_deref_mut().map_or(Duration::MAX, |n| n.ping_if_due(now));
    let symbolized = crate::reporter::symbolize_dump(sink.fds(), sym_deadline, &mut ping);
    let b = sink.b();
    if !symbolized {
        b.push_str(
            "failstop: symbolization did not finish before the dump deadline; the raw frames above are complete",
        );
        sink.eol();
    }
    let b = sink.b();
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
    if RT.closes_gate()
        && !action::SPARED_FOR_DEBUGGER.load(Acquire)
        && let Some(n) = notifier
    {
        n.trigger();
    }
    action::DUMP_DONE.store(1, Release);
    sys::futex_wake_all(&action::DUMP_DONE);
    if action::LATCH.load(Acquire) == action::BLOCKED && RT.fatal() {
        action::act_from_monitor(action::CULPRIT_TID.load(Relaxed));
    }
}
