//! The reporter thread: warnings and symbolization, in normal context.
//!
//! Warnings are captured by the spinning thread's own handler into its
//! slot (`engine::handler`, async-signal-safe) and reported here: one
//! stderr block and one `tracing` event at WARN, rate-limited to
//! [`WARN_BURST`] per [`WARN_WINDOW`] across the process (the rest are
//! counted in [`Stats::suppressed_warnings`](crate::Stats)). This thread also
//! symbolizes the dump's frames for the monitor. It may allocate and take
//! locks: when the culprit holds one of them, the monitor's deadline wins.
//!
//! # The `tracing` events
//!
//! Every warning and every verdict is one event (target
//! `failstop::reporter`) with these fields, documented for users in the
//! docs/dump.md ("tracing events"):
//!
//! | field | meaning |
//! |---|---|
//! | `thread` | the name the thread was registered under |
//! | `tid` | its kernel thread id |
//! | `kind` | `warning`, `stuck` or `blocked` |
//! | `cpu_ms` | CPU time since the last touch (warning) or progress (verdicts) |
//! | `wall_ms` | wall time since the last progress, as the monitor saw it |
//! | `frames` | the symbolized backtrace captured in the thread's own context, one frame a line (empty when none was captured) |
//! | `action` | verdicts only: `abort`, `exit:N`, `unhealthy` or `warn` |
//!
//! Warnings are at WARN level; verdicts at ERROR, emitted after the dump's
//! symbolized part and before the monitor lets the action go on, so that on
//! a fatal verdict the event is out before the process ends (unless the
//! subscriber blocks past the dump deadline). A verdict reached after the
//! dump was written (non-fatal actions) has no frames.

use super::dump::{self, DumpPath};
use super::overseer::Overseer;
use crate::error::Error;
use crate::os::procfs;
use crate::os::signals;
use crate::os::sys;
use crate::os::unwind;
use crate::state::bells::REPORTER as BELL;
use crate::state::captures::{CAPTURE_COUNT, CAPTURES};
use crate::state::enum_cell::state_enum;
use crate::state::frames::{CapState, MAX_FRAMES};
use crate::state::gate::{SUPPRESSED, WARNINGS};
use crate::state::latch::{self, CULPRIT_FIGURE, CULPRIT_FRAMES, CULPRIT_SLOT, CULPRIT_TID};
use crate::state::limits::{WARN_BURST, WARN_WINDOW};
use crate::state::progress::wall_since_progress;
use crate::state::settings::LIVE;
use crate::state::slots::{self, ACTIVE, CONTEXT_LEN, DETACHED, NAME_LEN, Slot};
use crate::state::warnings::{self, Warning};
use crate::verdict::VerdictKind;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

static TID: AtomicI32 = AtomicI32::new(0);

state_enum! {
    /// Where a dump's symbolization request stands.
    enum SymState in SymCell {
        /// No request.
        Idle = 0,
        /// The monitor asked; the reporter has not finished.
        Asked = 1,
        /// The reporter appended the symbolized part.
        Done = 2,
    }
}

/// The monitor's request to symbolize a dump, and the reporter's answer.
struct SymRequest {
    /// The futex word the monitor waits on.
    state: SymCell,
    /// Set by the monitor when its deadline passed: the reporter emits no
    /// more (the action goes on without it).
    cancel: AtomicBool,
    /// The dump deadline, monotonic ns: nothing is emitted after it.
    deadline: AtomicU64,
}

static SYM: SymRequest =
    SymRequest { state: SymCell::new(SymState::Idle), cancel: AtomicBool::new(false), deadline: AtomicU64::new(0) };

/// Asks the reporter to finish its loop (the watchdog stops).
pub(crate) fn request_stop() {
    BELL.request_stop();
}

/// The reporter's thread id, 0 when none runs.
pub(crate) fn tid() -> libc::pid_t {
    TID.load(Relaxed)
}

/// Starts the reporter thread, and warms the symbolizer in it.
pub(crate) fn spawn(dump_path: Option<DumpPath>) -> Result<std::thread::JoinHandle<()>, Error> {
    BELL.reset();
    SYM.state.set(SymState::Idle);
    FULL_WARNINGS.store(std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v == "full"), Relaxed);
    let mut overseer = Overseer::new(dump_path);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("failstop-reporter".into())
        .spawn(move || {
            signals::block_all_in_this_thread();
            TID.store(sys::gettid(), Relaxed);
            let _ = tx.send(());
            // Load the symbol tables now, not on the fatal path: the
            // program's own, and libc's, in which most threads of a dump
            // wait (with its debug file installed, decompressing its DWARF
            // takes tens of ms that a verdict would otherwise wait for).
            let _ = symbolize(spawn as *const () as usize, true);
            let _ = symbolize(libc::read as *const () as usize, true);
            reporter_loop(&mut overseer);
            TID.store(0, Relaxed);
        })
        .map_err(|e| Error::os("spawning the reporter thread", e))?;
    let _ = rx.recv();
    Ok(handle)
}

fn reporter_loop(overseer: &mut Overseer) {
    let mut recent: VecDeque<Instant> = VecDeque::new();
    loop {
        let seen = BELL.seen();
        if BELL.stopping() {
            return;
        }
        overseer.check();
        if SYM.state.get() == SymState::Asked {
            write_symbolized();
            SYM.state.set(SymState::Done);
            sys::futex_wake_all(SYM.state.word());
        }
        // While a dump is being written, warnings wait: they must not
        // interleave with it.
        let dumping = latch::dumping();
        if !dumping {
            for w in &warnings::WARNINGS {
                if w.frames.state.get() == CapState::Ready {
                    report_warning(w, &mut recent);
                    w.frames.state.set(CapState::Empty);
                }
            }
        }
        if !dumping && warnings::LATE_PENDING.swap(false, AcqRel) {
            for (_, s) in slots::iter() {
                let late = s.late_verdict.swap(0, Relaxed);
                if late != 0 {
                    report_late_verdict(s, late);
                }
            }
        }
        if !dumping {
            // Libraries loaded or unloaded since: a new DWARF unwinder.
            unwind::refresh();
        }
        BELL.wait(seen, Duration::from_secs(1));
    }
}

fn allowed(recent: &mut VecDeque<Instant>) -> bool {
    let now = Instant::now();
    while recent.front().is_some_and(|t| now.duration_since(*t) > WARN_WINDOW) {
        recent.pop_front();
    }
    if recent.len() >= WARN_BURST {
        return false;
    }
    recent.push_back(now);
    true
}

fn name_of(s: &Slot) -> String {
    let mut name = [0u8; NAME_LEN];
    let n = s.name_into(&mut name);
    crate::os::fmt::escaped_string(&name[..n])
}

/// The thread's context text (`ThreadHandle::set_context`), escaped as
/// names are (quotes, backslashes, control characters); empty when nothing
/// is said.
fn context_of(s: &Slot) -> String {
    let mut text = [0u8; CONTEXT_LEN];
    let n = s.context_into(&mut text);
    crate::os::fmt::escaped_string(&text[..n])
}

/// How many of a warning's `frames` to print: up to the first return
/// address in no executable mapping, as in the dump
/// ([`ModuleMap::plausible_frames`](crate::os::modules::ModuleMap::plausible_frames)).
/// Reporter thread (its own map, refreshed per warning).
fn plausible_frames(frames: &[usize]) -> usize {
    thread_local! {
        static MAP: std::cell::RefCell<Option<Box<crate::os::modules::ModuleMap>>> = const { std::cell::RefCell::new(None) };
    }
    MAP.with(|m| {
        let mut m = m.borrow_mut();
        let map = m.get_or_insert_with(crate::os::modules::ModuleMap::new_boxed);
        match map.refresh() {
            Ok(()) => map.plausible_frames(frames),
            Err(_) => frames.len(),
        }
    })
}

/// The thread's name as the dump prints it, quoted (see
/// [`dump::push_thread_name`]).
fn shown_name(s: &Slot, tid: libc::pid_t) -> String {
    let mut b = crate::os::fmt::FixedBuf::<96>::new();
    let mut io = [0u8; 64];
    dump::push_thread_name(&mut b, Some(s), tid, &mut io);
    String::from_utf8_lossy(b.as_bytes()).into_owned()
}

fn report_warning(w: &Warning, recent: &mut VecDeque<Instant>) {
    let idx = w.slot.load(Relaxed);
    let Some(s) = slots::slot(idx).filter(|s| s.generation.load(Relaxed) == w.generation.load(Relaxed)) else {
        return; // the thread unregistered meanwhile
    };
    if !allowed(recent) {
        SUPPRESSED.fetch_add(1, Relaxed);
        return;
    }
    WARNINGS.fetch_add(1, Relaxed);
    let mut frames = [0usize; MAX_FRAMES];
    let n = w.frames.load(&mut frames);
    let n = plausible_frames(&frames[..n]);
    let cpu_ns = w.frames.figure.load(Relaxed);
    let name = name_of(s);
    let tid = s.tid.load(Relaxed);
    let wall_ms = wall_since_progress(idx).map_or(0, |w| w / 1_000_000);
    let lines = symbolized_lines(&frames[..n]);
    let context = context_of(s);
    let said = if context.is_empty() { String::new() } else { format!(" (context \"{context}\")") };
    let shown = shown_name(s, tid);
    let mut block = format!(
        "failstop: warning: thread {shown} (tid {tid}) has used {:.1} ms of CPU since its loop last came around{said}; \
         its backtrace, captured in its own context:\n",
        cpu_ns as f64 / 1e6
    );
    let shown_lines = if FULL_WARNINGS.load(Relaxed) { lines.len() } else { short_backtrace(&lines) };
    for l in &lines[..shown_lines] {
        let _ = writeln!(block, "    {l}");
    }
    if shown_lines < lines.len() {
        let _ = writeln!(
            block,
            "    ({} more lines of the thread's start; the dump has every frame, RUST_BACKTRACE=full shows them here)",
            lines.len() - shown_lines
        );
    }
    // A verdict may have come while this warning was symbolized: the dump
    // has the floor, and this warning is counted instead of interleaved.
    if latch::dumping() {
        WARNINGS.fetch_sub(1, Relaxed);
        SUPPRESSED.fetch_add(1, Relaxed);
        return;
    }
    write_warning(block.as_bytes());
    tracing::warn!(
        thread = %name,
        tid,
        kind = "warning",
        cpu_ms = cpu_ns / 1_000_000,
        wall_ms,
        context = %context,
        frames = %lines.join("\n"),
        "failstop: thread has used {} ms of CPU since its last touch",
        cpu_ns / 1_000_000
    );
}

/// Warnings print every frame (`RUST_BACKTRACE=full` when the reporter
/// started), not only the thread's own code.
static FULL_WARNINGS: AtomicBool = AtomicBool::new(false);

/// How many of a warning's symbolized `lines` to print, as Rust's short
/// backtraces do: up to the frame that started the thread's own code
/// (`__rust_begin_short_backtrace`), or the C library's thread and
/// process start (`start_thread`, `clone3`, `__libc_start_main`, `_start`)
/// that ends every stack; all of them when no such frame is found.
fn short_backtrace(lines: &[String]) -> usize {
    const STARTS: [&str; 6] =
        ["start_thread", "clone3", "clone", "__libc_start_call_main", "__libc_start_main", "_start"];
    let function = |l: &str| -> Option<String> {
        // "#N 0xADDR function at file:line (inlined)" or "#N 0xADDR function"
        let mut parts = l.splitn(3, ' ');
        let _ = parts.next()?;
        let _ = parts.next()?;
        let rest = parts.next()?;
        Some(rest.split(" at ").next().unwrap_or(rest).trim().to_string())
    };
    if let Some(i) = lines.iter().position(|l| function(l).is_some_and(|f| f.ends_with("__rust_begin_short_backtrace")))
    {
        return i;
    }
    let mut cut = lines.len();
    while cut > 0 && function(&lines[cut - 1]).is_some_and(|f| STARTS.contains(&f.as_str())) {
        cut -= 1;
    }
    cut
}

/// The longest a warning waits for a slow stderr.
const WARNING_WRITE_MAX: Duration = Duration::from_secs(1);

/// Writes a warning to stderr, waiting for a slow one at most
/// [`WARNING_WRITE_MAX`] and not at all once a dump is under way (the
/// reporter must symbolize it): a full pipe nobody reads costs the
/// warning, never the reporter. Whole lines of at most 4 KiB per write.
fn write_warning(mut text: &[u8]) {
    if !sys::stderr_usable() {
        return;
    }
    let until = sys::monotonic_ns() + WARNING_WRITE_MAX.as_nanos() as u64;
    while !text.is_empty() {
        let take = sys::whole_lines(text);
        let (n, short) = loop {
            // In steps of 50 ms, so that a verdict cuts the wait short.
            let step = (sys::monotonic_ns() + 50_000_000).min(until);
            match sys::write_until(2, &text[..take], step) {
                (0, Some(sys::WriteShort::Deadline)) if step < until && !latch::dumping() => continue,
                r => break r,
            }
        };
        text = &text[n..];
        if short.is_some() {
            return;
        }
    }
}

fn report_late_verdict(s: &Slot, figure_ns: u64) {
    let name = name_of(s);
    let tid = s.tid.load(Relaxed);
    let ms = figure_ns as f64 / 1e6;
    let kind = VerdictKind::from_code(s.late_kind.load(Relaxed)).unwrap_or(VerdictKind::Stuck);
    // Blocked and vanished verdicts come with a wall-clock figure.
    let blocked = matches!(kind, VerdictKind::Blocked | VerdictKind::Vanished | VerdictKind::Polling);
    let what = match kind {
        VerdictKind::Blocked => format!("made no progress for {ms:.1} ms, and did not run at the end of it"),
        VerdictKind::Vanished => format!("is gone without unregistering (last progress {ms:.1} ms ago)"),
        VerdictKind::Stalled => format!("has not come around for {ms:.1} ms"),
        VerdictKind::Polling => {
            format!("made no progress for {ms:.1} ms and read or wrote no byte while it only slept and woke")
        }
        VerdictKind::Stuck | VerdictKind::Deaf => format!("used {ms:.1} ms of CPU without progress"),
    };
    let line = format!("failstop: {kind}: thread \"{name}\" (tid {tid}) {what} (the dump was already written)\n");
    write_warning(line.as_bytes());
    let (cpu_ns, wall_ns) = verdict_figures(s, slots::find_tid(tid), blocked, figure_ns);
    verdict_event(&name, tid, kind, cpu_ns, wall_ns, &[], "failstop: verdict (the dump was already written)");
}

/// CPU and wall ns since the last progress of a convicted thread: the
/// verdict's own figure for its kind, the slot's counters for the other.
fn verdict_figures(s: &Slot, idx: Option<usize>, blocked: bool, figure_ns: u64) -> (u64, u64) {
    let cpu = || sys::clock_ns(s.cpu_clock.load(Relaxed)).saturating_sub(s.progress_cpu.load(Relaxed));
    let wall = || idx.and_then(wall_since_progress).unwrap_or(0);
    if blocked { (cpu(), figure_ns) } else { (figure_ns, wall()) }
}

/// The `tracing` event of a verdict (fields: see the module doc).
fn verdict_event(
    name: &str,
    tid: libc::pid_t,
    kind: VerdictKind,
    cpu_ns: u64,
    wall_ns: u64,
    frames: &[String],
    msg: &str,
) {
    let action = LIVE.action().to_string();
    // A culprit in uninterruptible sleep keeps the process from ending:
    // the event says so, for a log collector's alert to ask for fencing.
    let mut io = [0u8; 4096];
    let unkillable = procfs::read_status(tid, &mut io).is_ok_and(|s| s.state == b'D');
    tracing::error!(
        thread = %name,
        tid,
        kind = kind.as_str(),
        unkillable,
        cpu_ms = cpu_ns / 1_000_000,
        wall_ms = wall_ns / 1_000_000,
        frames = %frames.join("\n"),
        action = action.as_str(),
        "{msg}"
    );
}

/// Resolves one address to "function at file:line" strings (several when
/// inlined). `exact` is for the interrupted PC; return addresses are looked
/// up one byte back, inside the call.
///
/// `backtrace::resolve` takes an instruction pointer that follows a call
/// and looks up the byte before it itself; so a return address is passed
/// as it is, and the exact PC one byte on (else a PC on a function's first
/// byte would resolve to the function before it, or to nothing).
/// 1 while the reporter is inside the `backtrace` crate, which holds a
/// process-wide lock and fills a cache meanwhile (a futex word).
static IN_SYMBOLIZER: AtomicU32 = AtomicU32::new(0);
/// Set in a forked child whose parent was inside the symbolizer when it
/// forked: the lock is held there by a thread the child does not have, and
/// the cache may be half-built, so the child (and its children) never
/// symbolize; their dumps keep the raw frames and the module table.
static SYMBOLIZER_LOST: AtomicBool = AtomicBool::new(false);
/// The longest a `fork` waits for the symbolizer to finish (the first
/// symbolization loads the symbol tables, which a server that forks at
/// start, to daemonize or for its workers, would otherwise interrupt).
const FORK_WAITS_FOR_SYMBOLIZER: Duration = Duration::from_secs(2);

/// In the parent, before `fork`: waits (bounded) until the reporter is out
/// of the symbolizer. Called by the atfork prepare handler.
pub(crate) fn before_fork() {
    if TID.load(Relaxed) == sys::gettid() {
        return; // the reporter itself forks (it does not): never wait on ourselves
    }
    let deadline = sys::monotonic_ns() + FORK_WAITS_FOR_SYMBOLIZER.as_nanos() as u64;
    while IN_SYMBOLIZER.load(Acquire) == 1 {
        let now = sys::monotonic_ns();
        if now >= deadline {
            return;
        }
        sys::futex_wait(&IN_SYMBOLIZER, 1, Some(Duration::from_nanos(deadline - now)));
    }
}

/// In a forked child: see [`SYMBOLIZER_LOST`]. Async-signal-safe.
pub(crate) fn after_fork_in_child() {
    if IN_SYMBOLIZER.load(Relaxed) == 1 {
        SYMBOLIZER_LOST.store(true, Relaxed);
        IN_SYMBOLIZER.store(0, Relaxed);
    }
}

fn symbolize(addr: usize, exact: bool) -> Vec<String> {
    if SYMBOLIZER_LOST.load(Relaxed) {
        return Vec::new();
    }
    IN_SYMBOLIZER.store(1, Release);
    let out = symbolize_locked(addr, exact);
    IN_SYMBOLIZER.store(0, Release);
    sys::futex_wake_all(&IN_SYMBOLIZER);
    out
}

fn symbolize_locked(addr: usize, exact: bool) -> Vec<String> {
    let lookup = if exact { addr.saturating_add(1) } else { addr };
    let mut out = Vec::new();
    backtrace::resolve(lookup as *mut libc::c_void, |sym| {
        let mut s = match sym.name() {
            Some(n) => format!("{n:#}"),
            None => "??".to_string(),
        };
        if let (Some(f), Some(l)) = (sym.filename(), sym.lineno()) {
            let _ = write!(s, " at {}:{l}", f.display());
        }
        out.push(s);
    });
    out
}

/// "#i 0xaddr function at file:line" for each frame.
fn symbolized_lines(frames: &[usize]) -> Vec<String> {
    symbolized_lines_cached(frames, &mut HashMap::new())
}

/// [`symbolized_lines`], with the symbols of each address looked up once
/// in `cache` (keyed by address and exactness): the threads of a dump
/// share most of their frames (a pool's workers, their runtime's), and a
/// lookup takes the symbolizer's lock and formats its names again.
fn symbolized_lines_cached(frames: &[usize], cache: &mut HashMap<(usize, bool), Vec<String>>) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, &a) in frames.iter().enumerate() {
        let syms = cache.entry((a, i == 0)).or_insert_with(|| symbolize(a, i == 0));
        if syms.is_empty() {
            lines.push(format!("#{i} {a:#x} ??"));
        }
        for (k, s) in syms.iter().enumerate() {
            let inl = if k + 1 < syms.len() { " (inlined)" } else { "" };
            lines.push(format!("#{i} {a:#x} {s}{inl}"));
        }
    }
    lines
}

/// Asks the reporter to append the symbolized backtraces to the dump and
/// waits until it did or `deadline` (monotonic ns) passed. Monitor thread;
/// allocation-free. Returns whether it finished.
pub(crate) fn symbolize_dump(deadline: u64, between: &mut dyn FnMut(u64) -> Duration) -> bool {
    if TID.load(Relaxed) == 0 {
        return false;
    }
    SYM.cancel.store(false, Relaxed);
    SYM.deadline.store(deadline, Relaxed);
    SYM.state.set(SymState::Asked);
    BELL.ring();
    loop {
        let v = SYM.state.word().load(Acquire);
        if v == SymState::Done as u32 {
            return true;
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            SYM.cancel.store(true, Release);
            return false;
        }
        // `between` keeps the monitor's other duties (systemd pings) going
        // while it waits; it returns when it wants to be called again.
        let wait = Duration::from_nanos(deadline - now).min(between(now));
        sys::futex_wait(SYM.state.word(), v, Some(wait));
    }
}

fn emit(text: &str) {
    if SYM.cancel.load(Acquire) || sys::monotonic_ns() >= SYM.deadline.load(Relaxed) {
        return;
    }
    // Into the dump's copy: the monitor writes it on to the file and stderr.
    dump::append_symbolized(text.as_bytes());
}

/// Appends the symbolized backtraces to the dump, then emits the verdict's
/// `tracing` event (with the culprit's symbolized frames).
fn write_symbolized() {
    emit("failstop: symbolized backtraces:\n");
    if SYMBOLIZER_LOST.load(Relaxed) {
        emit(
            "failstop: no symbols in this process: it was forked while its parent's reporter was symbolizing \
             (the symbolizer's lock stays held here); symbolize the raw frames with the module table above\n",
        );
    }
    let culprit = CULPRIT_TID.load(Relaxed);
    let mut frames = [0usize; MAX_FRAMES];
    let mut culprit_lines = Vec::new();
    let mut cache = HashMap::new();
    if CULPRIT_FRAMES.state.get() == CapState::Ready {
        let n = CULPRIT_FRAMES.load(&mut frames);
        let slot = CULPRIT_SLOT.load(Relaxed);
        culprit_lines = emit_thread(culprit, slot, true, &frames[..n], &mut cache);
    }
    let count = CAPTURE_COUNT.load(Acquire).min(CAPTURES.len());
    for c in &CAPTURES[..count] {
        if c.frames.state.get() != CapState::Ready {
            continue;
        }
        let tid = c.tid.load(Relaxed);
        let n = c.frames.load(&mut frames);
        let slot = c.slot.load(Relaxed);
        let lines = emit_thread(tid, slot, tid == culprit, &frames[..n], &mut cache);
        if tid == culprit {
            culprit_lines = lines;
        }
    }
    if SYM.cancel.load(Acquire) {
        return; // past the dump deadline: the action goes on without us
    }
    let idx = CULPRIT_SLOT.load(Relaxed);
    let kind = latch::latched().unwrap_or(VerdictKind::Stuck);
    let blocked = matches!(kind, VerdictKind::Blocked | VerdictKind::Vanished | VerdictKind::Polling);
    let figure = CULPRIT_FIGURE.load(Relaxed);
    let (name, (cpu_ns, wall_ns)) = match slots::slot(idx) {
        Some(s) => (name_of(s), verdict_figures(s, Some(idx), blocked, figure)),
        None => (String::new(), if blocked { (0, figure) } else { (figure, 0) }),
    };
    verdict_event(&name, culprit, kind, cpu_ns, wall_ns, &culprit_lines, "failstop: verdict");
}

/// Writes one thread's symbolized block; returns its frame lines. `slot`:
/// the registry slot the dump found for `tid` (checked to still be its).
fn emit_thread(
    tid: libc::pid_t,
    slot: usize,
    culprit: bool,
    frames: &[usize],
    cache: &mut HashMap<(usize, bool), Vec<String>>,
) -> Vec<String> {
    let watched = slots::slot(slot).filter(|s| {
        let st = s.state.load(Acquire);
        (st == ACTIVE || st == DETACHED) && s.tid.load(Relaxed) == tid
    });
    let name = match watched {
        Some(s) => shown_name(s, tid),
        None => {
            let mut buf = [0u8; 64];
            let comm = procfs::read_comm(tid, &mut buf).map(crate::os::fmt::escaped_string);
            format!("\"{}\"", comm.unwrap_or_default())
        }
    };
    let mut block = format!("{} thread {tid} {name}:\n", if culprit { ">" } else { " " });
    let lines = symbolized_lines_cached(frames, cache);
    for l in &lines {
        let _ = writeln!(block, "    {l}");
    }
    // Whole lines, at most 4 KiB per write.
    let mut start = 0;
    while start < block.len() {
        let mut end = (start + 4000).min(block.len());
        if end < block.len() {
            end = block[..end].rfind('\n').map_or(end, |i| i + 1).max(start + 1);
        }
        while !block.is_char_boundary(end) {
            end += 1;
        }
        emit(&block[start..end]);
        start = end;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn first_byte_target() -> u32 {
        std::hint::black_box(7)
    }

    /// An interrupted PC on a function's very first byte names that
    /// function (it used to be looked up one byte early).
    #[test]
    fn an_exact_pc_on_a_functions_first_byte_names_it() {
        let addr = first_byte_target as fn() -> u32 as usize;
        let names = symbolize(addr, true);
        assert!(names.iter().any(|n| n.contains("first_byte_target")), "{addr:#x}: {names:?}");
    }

    /// A return address names the function that made the call, even when
    /// the call is the last instruction of that function.
    #[test]
    fn a_return_address_names_the_caller() {
        // One byte past the start of the function: as a return address,
        // the byte before it (its first byte) is inside the function.
        let addr = first_byte_target as fn() -> u32 as usize + 1;
        let names = symbolize(addr, false);
        assert!(names.iter().any(|n| n.contains("first_byte_target")), "{addr:#x}: {names:?}");
    }

    fn lines(functions: &[&str]) -> Vec<String> {
        functions.iter().enumerate().map(|(i, f)| format!("#{i} 0x1000 {f} at /src/x.rs:1")).collect()
    }

    #[test]
    fn short_backtraces_end_where_the_threads_own_code_began() {
        let rust = lines(&[
            "demo::work",
            "demo::worker",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "std::thread::lifecycle::spawn_unchecked::{{closure}}",
            "start_thread",
            "clone3",
        ]);
        assert_eq!(short_backtrace(&rust), 2);
        let c = lines(&["spin", "worker", "start_thread", "clone3"]);
        assert_eq!(short_backtrace(&c), 2);
        let main = lines(&["spin", "main", "__libc_start_call_main", "__libc_start_main_impl", "_start"]);
        assert_eq!(short_backtrace(&main), 4, "only known names are cut");
        let raw = vec!["#0 0x7f00 libc.so.6+0x1234".to_string()];
        assert_eq!(short_backtrace(&raw), 1, "nothing to cut");
    }
}
