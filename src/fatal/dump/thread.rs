//! One thread's entry in the dump: its line, its `/proc` evidence, its
//! system call and its frames; and the module table.

use super::capture::{by_ptrace, captured};
use super::scratch::{OwnThreads, Scratch};
use super::sink::Sink;
use crate::os::fmt::FixedBuf;
use crate::os::modules::ModuleMap;
use crate::os::procfs::{self, TaskDir};
use crate::os::sys;
use crate::state::frames::{CapState, MAX_FRAMES};
use crate::state::latch::{self, CULPRIT_FRAMES};
use crate::state::progress::wall_since_progress;
use crate::state::settings::LIVE;
use crate::state::slots::{self, CONTEXT_LEN, NAME_LEN, NO_SLOT};
use crate::verdict::VerdictKind;
use std::sync::atomic::Ordering::*;

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

/// Writes the line of thread `tids[i]` and its `/proc` evidence (state,
/// counters and system call as [`Facts::read`] found them; wchan and kernel
/// stack read now); returns its state letter, or `None` if it exited (one
/// line says so).
pub(super) fn write_thread_state(
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
pub(super) fn write_thread_frames(
    out: &mut Sink,
    scratch: &mut Scratch,
    ci: usize,
    tid: libc::pid_t,
    is_culprit: bool,
    state: u8,
) {
    let mut frames = [0usize; MAX_FRAMES];
    let (n, source) = if is_culprit && CULPRIT_FRAMES.state.get() == CapState::Ready {
        (CULPRIT_FRAMES.load(&mut frames), Some(&CULPRIT_FRAMES))
    } else {
        match captured(ci, tid, &mut frames) {
            Ok((found, source)) => (found, Some(source)),
            Err(why) if why.ptrace_may_help(state) => match by_ptrace(ci, tid, &mut frames) {
                Ok((found, source)) => {
                    let b = out.line();
                    b.push_str("    (");
                    b.push_str(why.text());
                    b.push_str(": frames read by a ptrace helper process instead)");
                    out.eol();
                    (found, source)
                }
                Err(also) => {
                    let b = out.line();
                    b.push_str("    (no backtrace: ");
                    b.push_str(why.text());
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
                b.push_str(why.text());
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

pub(super) fn write_modules(out: &mut Sink, modules: &ModuleMap) {
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
