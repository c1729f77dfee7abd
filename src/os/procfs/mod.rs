//! Allocation-free readers for the per-thread files under `/proc/self/task`.
//!
//! # Async-signal-safety contract
//!
//! Everything here runs on the fatal path, possibly while another thread holds
//! the malloc lock or is stopped in the middle of anything. So every function
//! in this module is async-signal-safe: it issues raw system calls (`open`,
//! `read`, `getdents64`, `close`) through [`crate::os::sys`], writes only into
//! buffers the caller hands in or onto its own stack, and never allocates,
//! locks, formats through `format!`, or touches `std::fs`. Errors are
//! `io::Error`s built from an errno or an [`io::ErrorKind`], which does not
//! allocate either. The one exception is [`clk_tck`], whose *first* call uses
//! `sysconf`: call it once in normal context (at start-up) so later calls are
//! a single atomic load.
//!
//! The parsers (`parse_*`) are pure functions on bytes. They never panic:
//! malformed or truncated text yields `None`.
//!
//! # Buffer sizes
//!
//! A 4 KiB scratch buffer ([`SCRATCH_LEN`]) holds `stat` (~300 bytes),
//! `status` (~1.5 KiB; more only with thousands of CPUs or NUMA nodes, in
//! which case `read_status` fails with [`io::ErrorKind::FileTooLarge`]),
//! `schedstat`, `syscall`, `wchan` and `comm`. `stack` needs up to
//! 64 frames × a symbol line each: give it [`STACK_LEN`] (16 KiB); a shorter
//! buffer just truncates the text. [`for_each_task`] works with any buffer
//! of at least 512 bytes; larger buffers mean fewer `getdents64` calls.

mod syscall_names;

use std::ffi::CStr;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use libc::pid_t;

use crate::os::fmt::FixedBuf;
use crate::os::sys::{self, Fd};

#[allow(unused_imports)] // Until the dump is wired to it.
pub(crate) use syscall_names::syscall_name;

/// Scratch size that suffices for every reader here except [`read_stack`].
pub(crate) const SCRATCH_LEN: usize = 4096;
/// Scratch size for [`read_stack`].
pub(crate) const STACK_LEN: usize = 16384;

// ---------------------------------------------------------------------------
// Paths

/// `/proc/self/task/<tid>/<leaf>` as a NUL-terminated string on the stack.
pub(crate) struct TaskPath {
    buf: FixedBuf<64>,
}

impl TaskPath {
    /// Builds the path. Fails with `InvalidInput` if `tid` is not positive,
    /// `leaf` contains a NUL byte or the path does not fit in 64 bytes.
    /// Async-signal-safe.
    pub(crate) fn new(tid: pid_t, leaf: &str) -> io::Result<TaskPath> {
        Self::build("/proc/self/task/", tid, leaf)
    }

    /// `/proc/<pid>/<leaf>`: a file of another process (a child), with the
    /// same checks as [`TaskPath::new`]. Async-signal-safe.
    pub(crate) fn process(pid: pid_t, leaf: &str) -> io::Result<TaskPath> {
        Self::build("/proc/", pid, leaf)
    }

    /// `<dir><id>/<leaf>`, NUL-terminated.
    fn build(dir: &str, id: pid_t, leaf: &str) -> io::Result<TaskPath> {
        if id <= 0 || leaf.as_bytes().contains(&0) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let mut buf = FixedBuf::new();
        buf.push_str(dir);
        buf.push_i64(id.into());
        buf.push_str("/");
        buf.push_str(leaf);
        buf.push_bytes(b"\0");
        if buf.truncated() != 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        Ok(TaskPath { buf })
    }

    /// The path. Async-signal-safe.
    pub(crate) fn as_cstr(&self) -> &CStr {
        // `new` guaranteed exactly one NUL, at the end; the fallback is
        // unreachable and only keeps this free of panics.
        CStr::from_bytes_with_nul(self.buf.as_bytes()).unwrap_or_default()
    }
}

/// `/proc/self/task`, held open for a series of reads of its threads'
/// files (a dump's, which reads several files of every thread): each read
/// opens `<tid>/<leaf>` relative to it, which spares the kernel the walk
/// through `/proc`, `self` (a link to resolve) and `task` on every open.
/// When the directory cannot be opened (no descriptor left), every read
/// goes by the full path, as the `read_*` functions do. Async-signal-safe.
pub(crate) struct TaskDir(Option<Fd>);

impl TaskDir {
    /// Opens the directory (one descriptor, closed on drop).
    pub(crate) fn open() -> TaskDir {
        TaskDir(Fd::open(c"/proc/self/task", libc::O_PATH | libc::O_DIRECTORY, 0).ok())
    }

    /// The text of `<tid>/<leaf>` in `buf`, relative to `dir`.
    fn read<'a>(dir: &Fd, tid: pid_t, leaf: &str, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        // `<tid>/<leaf>`: the same checks as TaskPath, relative.
        let rel = TaskPath::build("", tid, leaf)?;
        let fd = Fd::openat(dir.raw(), rel.as_cstr(), libc::O_RDONLY, 0)?;
        let n = fd.read_to(buf)?;
        Ok(&buf[..n])
    }

    /// `<tid>/<leaf>` parsed, as [`read_parsed`] does.
    fn parsed<T>(dir: &Fd, tid: pid_t, leaf: &str, buf: &mut [u8], parse: fn(&[u8]) -> Option<T>) -> io::Result<T> {
        let len = buf.len();
        let text = Self::read(dir, tid, leaf, buf)?;
        let full = text.len() == len;
        parse(text).ok_or_else(|| if full { io::ErrorKind::FileTooLarge } else { io::ErrorKind::InvalidData }.into())
    }

    /// [`read_stat`], relative to this directory.
    pub(crate) fn stat(&self, tid: pid_t, buf: &mut [u8]) -> io::Result<TaskStat> {
        match &self.0 {
            Some(dir) => Self::parsed(dir, tid, "stat", buf, parse_stat),
            None => read_stat(tid, buf),
        }
    }

    /// [`read_status`], relative to this directory.
    pub(crate) fn status(&self, tid: pid_t, buf: &mut [u8]) -> io::Result<TaskStatus> {
        match &self.0 {
            Some(dir) => Self::parsed(dir, tid, "status", buf, parse_status),
            None => read_status(tid, buf),
        }
    }

    /// [`read_schedstat`], relative to this directory.
    pub(crate) fn schedstat(&self, tid: pid_t, buf: &mut [u8]) -> io::Result<SchedStat> {
        match &self.0 {
            Some(dir) => Self::parsed(dir, tid, "schedstat", buf, parse_schedstat),
            None => read_schedstat(tid, buf),
        }
    }

    /// [`read_syscall`], relative to this directory.
    pub(crate) fn syscall(&self, tid: pid_t, buf: &mut [u8]) -> io::Result<SyscallState> {
        match &self.0 {
            Some(dir) => Self::parsed(dir, tid, "syscall", buf, parse_syscall),
            None => read_syscall(tid, buf),
        }
    }

    /// [`read_wchan`], relative to this directory.
    pub(crate) fn wchan<'a>(&self, tid: pid_t, buf: &'a mut [u8]) -> io::Result<Option<&'a [u8]>> {
        match &self.0 {
            Some(dir) => Ok(parse_wchan(Self::read(dir, tid, "wchan", buf)?)),
            None => read_wchan(tid, buf),
        }
    }

    /// [`read_stack`], relative to this directory.
    pub(crate) fn stack<'a>(&self, tid: pid_t, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
        match &self.0 {
            Some(dir) => Self::read(dir, tid, "stack", buf),
            None => read_stack(tid, buf),
        }
    }
}

// ---------------------------------------------------------------------------
// Listing threads

/// Calls `f` with the tid of every thread of this process, listing
/// `/proc/self/task` with raw `getdents64` into `buf` (no `opendir`, which
/// allocates). Threads that start or exit during the walk may or may not be
/// seen. Async-signal-safe.
pub(crate) fn for_each_task(buf: &mut [u8], f: impl FnMut(pid_t)) -> io::Result<()> {
    for_each_numbered(c"/proc/self/task", buf, f)
}

/// Calls `f` with the pid of every process in `/proc` (as
/// [`for_each_task`] does for threads). Async-signal-safe.
pub(crate) fn for_each_process(buf: &mut [u8], f: impl FnMut(pid_t)) -> io::Result<()> {
    for_each_numbered(c"/proc", buf, f)
}

/// The numbered entries of the directory `path`.
fn for_each_numbered(path: &CStr, buf: &mut [u8], mut f: impl FnMut(pid_t)) -> io::Result<()> {
    let dir = Fd::open(path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    loop {
        // SAFETY: the pointer and length describe `buf`, which the kernel
        // fills with `linux_dirent64` records; `dir` is an open directory.
        let n = crate::os::sys::retry_eintr(|| unsafe {
            libc::syscall(libc::SYS_getdents64, dir.raw(), buf.as_mut_ptr(), buf.len()) as isize
        })?;
        if n == 0 {
            return Ok(());
        }
        let filled = buf.get(..n).ok_or(io::ErrorKind::InvalidData)?;
        walk_dirents(filled, &mut f)?;
    }
}

/// Walks `linux_dirent64` records: `u64 d_ino, i64 d_off, u16 d_reclen,
/// u8 d_type, char d_name[]` (NUL-terminated). Non-numeric names ("." and
/// "..") are skipped.
fn walk_dirents(mut records: &[u8], f: &mut impl FnMut(pid_t)) -> io::Result<()> {
    const NAME_OFFSET: usize = 19;
    while !records.is_empty() {
        let reclen = match records.get(16..18) {
            Some(&[lo, hi]) => u16::from_ne_bytes([lo, hi]) as usize,
            _ => return Err(io::ErrorKind::InvalidData.into()),
        };
        let (record, rest) = match records.split_at_checked(reclen) {
            Some(split) if reclen > NAME_OFFSET => split,
            _ => return Err(io::ErrorKind::InvalidData.into()),
        };
        let name = &record[NAME_OFFSET..];
        let name = name.split(|&b| b == 0).next().unwrap_or(name);
        if let Some(tid) = parse_dec(name).and_then(|v| pid_t::try_from(v).ok()) {
            f(tid);
        }
        records = rest;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Number parsing

/// Unsigned decimal, digits only, no overflow.
fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = c.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(d.into())
    })
}

/// Signed decimal with an optional leading `-`.
fn parse_signed(s: &[u8]) -> Option<i64> {
    match s.strip_prefix(b"-") {
        Some(digits) => parse_dec(digits).and_then(|v| 0i64.checked_sub_unsigned(v)),
        None => parse_dec(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// Hexadecimal with an optional `0x` prefix, no overflow.
fn parse_hex(s: &[u8]) -> Option<u64> {
    let s = s.strip_prefix(b"0x").unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &c| {
        let d = (c as char).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(d.into())
    })
}

/// Whitespace-separated, non-empty fields.
fn fields(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(u8::is_ascii_whitespace).filter(|f| !f.is_empty())
}

// ---------------------------------------------------------------------------
// stat

/// The fields of `/proc/self/task/<tid>/stat` that failstop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskStat {
    /// Scheduler state letter (field 3): see [`state_name`].
    pub(crate) state: u8,
    /// The parent's pid (field 4).
    pub(crate) ppid: pid_t,
    /// The process group (field 5).
    pub(crate) pgrp: pid_t,
    /// User CPU time in clock ticks (field 14): see [`ticks_to_ns`].
    pub(crate) utime_ticks: u64,
    /// System CPU time in clock ticks (field 15).
    pub(crate) stime_ticks: u64,
    /// CPU the thread last ran on (field 39).
    pub(crate) processor: i32,
}

/// Parses a `stat` line. The comm field (2) is in parentheses and may itself
/// contain spaces, newlines and `)`, so the fields are counted from the last
/// `)`. Pure, async-signal-safe.
pub(crate) fn parse_stat(text: &[u8]) -> Option<TaskStat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    // Field 3 is the first after the `)`: field k is `nth(k - 3)`.
    let mut f = fields(text.get(close + 1..)?);
    let state = match f.next()? {
        &[s] => s,
        _ => return None,
    };
    let ppid = pid_t::try_from(parse_signed(f.next()?)?).ok()?;
    let pgrp = pid_t::try_from(parse_signed(f.next()?)?).ok()?;
    let utime_ticks = parse_dec(f.nth(14 - 6)?)?;
    let stime_ticks = parse_dec(f.next()?)?;
    let processor = parse_signed(f.nth(39 - 16)?)?;
    Some(TaskStat { state, ppid, pgrp, utime_ticks, stime_ticks, processor: i32::try_from(processor).ok()? })
}

/// Reads and parses `/proc/self/task/<tid>/stat`. Async-signal-safe.
pub(crate) fn read_stat(tid: pid_t, buf: &mut [u8]) -> io::Result<TaskStat> {
    read_parsed(&TaskPath::new(tid, "stat")?, buf, parse_stat)
}

/// Reads and parses `/proc/<pid>/stat` of any process: its CPU times are
/// those of all its threads. Async-signal-safe.
pub(crate) fn read_process_stat(pid: pid_t, buf: &mut [u8]) -> io::Result<TaskStat> {
    read_parsed(&TaskPath::process(pid, "stat")?, buf, parse_stat)
}

/// Reads and parses `/proc/<pid>/io` of any process (all its threads;
/// needs the rights over it that a parent has over its child).
/// Async-signal-safe.
pub(crate) fn read_process_io(pid: pid_t, buf: &mut [u8]) -> io::Result<TaskIo> {
    read_parsed(&TaskPath::process(pid, "io")?, buf, parse_io)
}

// ---------------------------------------------------------------------------
// status

/// The fields of `/proc/self/task/<tid>/status` (or `/proc/self/status`)
/// that failstop uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskStatus {
    /// `Name:` as the kernel prints it: escaped (`\n`, `\\`, ...), so up to
    /// twice the 15-byte comm; longer text (old kernels' octal escapes) is
    /// cut at the capacity. See [`TaskStatus::name`].
    name: [u8; 32],
    name_len: u8,
    /// Scheduler state letter from `State:`.
    pub(crate) state: u8,
    /// `TracerPid:`, non-zero while a debugger or tracer is attached.
    pub(crate) tracer_pid: i32,
    /// `SigPnd:` signals pending for this thread (bit `n - 1` is signal `n`).
    pub(crate) sig_pnd: u64,
    /// `ShdPnd:` signals pending for the whole process.
    pub(crate) shd_pnd: u64,
    /// `SigBlk:` blocked signals.
    pub(crate) sig_blk: u64,
    /// `voluntary_ctxt_switches:`.
    pub(crate) voluntary_ctxt_switches: u64,
    /// `nonvoluntary_ctxt_switches:`.
    pub(crate) nonvoluntary_ctxt_switches: u64,
}

impl TaskStatus {
    /// Whether the thread blocks signal `signo` (`SigBlk:`; inside a
    /// handler this includes the handler's mask).
    pub(crate) fn blocks(&self, signo: libc::c_int) -> bool {
        self.sig_blk & (1u64 << ((signo - 1) & 63)) != 0
    }

    /// The raw (escaped) `Name:` bytes.
    pub(crate) fn name(&self) -> &[u8] {
        self.name.get(..self.name_len as usize).unwrap_or(&self.name)
    }
}

/// Parses a `status` file. Every field of [`TaskStatus`] must be present
/// (they all are since Linux 2.6.23). Pure, async-signal-safe.
pub(crate) fn parse_status(text: &[u8]) -> Option<TaskStatus> {
    let mut name = None;
    let (mut state, mut tracer, mut pnd, mut shd, mut blk, mut vol, mut nonvol) =
        (None, None, None, None, None, None, None);
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        if key == b"Name" {
            // The kernel writes exactly one tab; a comm may start with a space.
            name = Some(value.strip_prefix(b"\t").unwrap_or(value));
            continue;
        }
        let value = value.trim_ascii();
        match key {
            b"State" => state = value.first().copied(),
            b"TracerPid" => tracer = parse_signed(value).and_then(|v| i32::try_from(v).ok()),
            b"SigPnd" => pnd = parse_hex(value),
            b"ShdPnd" => shd = parse_hex(value),
            b"SigBlk" => blk = parse_hex(value),
            b"voluntary_ctxt_switches" => vol = parse_dec(value),
            b"nonvoluntary_ctxt_switches" => nonvol = parse_dec(value),
            _ => {}
        }
    }
    let name = name?;
    let mut status = TaskStatus {
        name: [0; 32],
        name_len: 0,
        state: state?,
        tracer_pid: tracer?,
        sig_pnd: pnd?,
        shd_pnd: shd?,
        sig_blk: blk?,
        voluntary_ctxt_switches: vol?,
        nonvoluntary_ctxt_switches: nonvol?,
    };
    let n = name.len().min(status.name.len());
    status.name[..n].copy_from_slice(&name[..n]);
    status.name_len = n as u8;
    Some(status)
}

/// Reads and parses `/proc/self/task/<tid>/status`. Async-signal-safe.
pub(crate) fn read_status(tid: pid_t, buf: &mut [u8]) -> io::Result<TaskStatus> {
    read_parsed(&TaskPath::new(tid, "status")?, buf, parse_status)
}

/// Reads and parses `/proc/self/status`: the process (thread-group leader)
/// view, e.g. for `TracerPid`. Async-signal-safe.
pub(crate) fn read_self_status(buf: &mut [u8]) -> io::Result<TaskStatus> {
    read_parsed(c"/proc/self/status", buf, parse_status)
}

// ---------------------------------------------------------------------------
// schedstat

/// `/proc/self/task/<tid>/schedstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SchedStat {
    /// Time spent on the CPU, ns.
    pub(crate) run_ns: u64,
    /// Time spent runnable but waiting for a CPU, ns.
    pub(crate) run_delay_ns: u64,
    /// Number of times the thread was scheduled in.
    pub(crate) timeslices: u64,
}

/// Parses `sum_exec_runtime run_delay timeslices`. Pure, async-signal-safe.
pub(crate) fn parse_schedstat(text: &[u8]) -> Option<SchedStat> {
    let mut f = fields(text);
    let s = SchedStat {
        run_ns: parse_dec(f.next()?)?,
        run_delay_ns: parse_dec(f.next()?)?,
        timeslices: parse_dec(f.next()?)?,
    };
    f.next().is_none().then_some(s)
}

/// Reads and parses `/proc/self/task/<tid>/schedstat`. The file does not
/// exist without `CONFIG_SCHED_INFO`: the error is then `NotFound`.
/// Async-signal-safe.
pub(crate) fn read_schedstat(tid: pid_t, buf: &mut [u8]) -> io::Result<SchedStat> {
    read_parsed(&TaskPath::new(tid, "schedstat")?, buf, parse_schedstat)
}

// ---------------------------------------------------------------------------
// io

/// `/proc/self/task/<tid>/io`: what the thread moved through system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TaskIo {
    /// Bytes read by `read`-like calls (any file, socket or pipe).
    pub(crate) rchar: u64,
    /// Bytes written by `write`-like calls.
    pub(crate) wchar: u64,
    /// Read-like system calls made (including those that moved nothing).
    pub(crate) syscr: u64,
    /// Write-like system calls made.
    pub(crate) syscw: u64,
}

/// Parses the `key: value` lines of an `io` file. Pure, async-signal-safe.
pub(crate) fn parse_io(text: &[u8]) -> Option<TaskIo> {
    let mut io = TaskIo::default();
    let mut seen = 0;
    for line in text.split(|&c| c == b'\n') {
        let Some(colon) = line.iter().position(|&c| c == b':') else { continue };
        let value = || parse_dec(fields(&line[colon + 1..]).next()?);
        let slot = match &line[..colon] {
            b"rchar" => &mut io.rchar,
            b"wchar" => &mut io.wchar,
            b"syscr" => &mut io.syscr,
            b"syscw" => &mut io.syscw,
            _ => continue,
        };
        *slot = value()?;
        seen += 1;
    }
    (seen == 4).then_some(io)
}

/// Reads and parses `/proc/self/task/<tid>/io`. Async-signal-safe.
pub(crate) fn read_io(tid: pid_t, buf: &mut [u8]) -> io::Result<TaskIo> {
    read_parsed(&TaskPath::new(tid, "io")?, buf, parse_io)
}

// ---------------------------------------------------------------------------
// syscall

/// `/proc/self/task/<tid>/syscall`: what the thread is doing in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyscallState {
    /// `running`: on a CPU, nothing to report.
    Running,
    /// `-1 sp pc`: blocked, but not in a system call (e.g. a page fault).
    NotInSyscall { sp: u64, pc: u64 },
    /// `nr a0 .. a5 sp pc`: blocked in system call `nr` (see
    /// [`syscall_name`]).
    InSyscall { nr: i64, args: [u64; 6], sp: u64, pc: u64 },
}

/// Parses a `syscall` file. Pure, async-signal-safe.
pub(crate) fn parse_syscall(text: &[u8]) -> Option<SyscallState> {
    let mut f = fields(text);
    let first = f.next()?;
    let state = if first == b"running" {
        SyscallState::Running
    } else {
        let nr = parse_signed(first)?;
        let mut hex = [0u64; 8];
        let mut n = 0;
        for field in f.by_ref().take(8) {
            hex[n] = parse_hex(field)?;
            n += 1;
        }
        match (nr < 0, n) {
            (true, 2) => SyscallState::NotInSyscall { sp: hex[0], pc: hex[1] },
            (false, 8) => SyscallState::InSyscall {
                nr,
                args: [hex[0], hex[1], hex[2], hex[3], hex[4], hex[5]],
                sp: hex[6],
                pc: hex[7],
            },
            _ => return None,
        }
    };
    f.next().is_none().then_some(state)
}

/// Reads and parses `/proc/self/task/<tid>/syscall`. Needs
/// `PTRACE_MODE_ATTACH` over the thread: it works for our own threads unless
/// the process is non-dumpable (`PR_SET_DUMPABLE` 0) or a security module
/// (Yama, SELinux) objects; the error is then `PermissionDenied`.
/// Async-signal-safe.
pub(crate) fn read_syscall(tid: pid_t, buf: &mut [u8]) -> io::Result<SyscallState> {
    read_parsed(&TaskPath::new(tid, "syscall")?, buf, parse_syscall)
}

// ---------------------------------------------------------------------------
// Raw text files

/// Parses `wchan`: the kernel function the thread sleeps in, or `None` for
/// `0`/empty (running, or symbol hidden). Pure, async-signal-safe.
pub(crate) fn parse_wchan(text: &[u8]) -> Option<&[u8]> {
    let sym = text.trim_ascii();
    (!sym.is_empty() && sym != b"0").then_some(sym)
}

/// Reads `/proc/self/task/<tid>/wchan` (see [`parse_wchan`]).
/// Async-signal-safe.
pub(crate) fn read_wchan(tid: pid_t, buf: &mut [u8]) -> io::Result<Option<&[u8]>> {
    let text = sys::read_file(TaskPath::new(tid, "wchan")?.as_cstr(), buf)?;
    Ok(parse_wchan(text))
}

/// Reads `/proc/self/task/<tid>/comm` without its trailing newline: raw,
/// unescaped bytes, so sanitize before printing. Async-signal-safe.
pub(crate) fn read_comm(tid: pid_t, buf: &mut [u8]) -> io::Result<&[u8]> {
    let text = sys::read_file(TaskPath::new(tid, "comm")?.as_cstr(), buf)?;
    Ok(text.strip_suffix(b"\n").unwrap_or(text))
}

/// Checks that the files failstop reads exist: `/proc/self/task/<tid>/stat`
/// and `status` of the calling thread, and `/proc/self/maps`. On failure,
/// returns the path that could not be read and why (no `/proc` in a
/// sandbox or chroot, typically). Normal context, at start.
pub(crate) fn check_readable(buf: &mut [u8]) -> Result<(), (&'static str, io::Error)> {
    let tid = sys::gettid();
    read_stat(tid, buf).map_err(|e| ("/proc/self/task/<tid>/stat", e))?;
    read_status(tid, buf).map_err(|e| ("/proc/self/task/<tid>/status", e))?;
    sys::read_file(c"/proc/self/maps", buf).map_err(|e| ("/proc/self/maps", e))?;
    Ok(())
}

/// Reads `/proc/self/task/<tid>/stack`, the kernel stack as text. Needs
/// `CAP_SYS_ADMIN`; otherwise fails with `PermissionDenied`, which the
/// caller reports as "not readable". Text beyond `buf` is cut off.
/// Async-signal-safe.
pub(crate) fn read_stack(tid: pid_t, buf: &mut [u8]) -> io::Result<&[u8]> {
    sys::read_file(TaskPath::new(tid, "stack")?.as_cstr(), buf)
}

/// Reads `path` into `buf` and parses it. A parse failure is `InvalidData`,
/// or `FileTooLarge` if the text filled `buf` (it was probably cut off).
fn read_parsed<T>(path: impl AsRef<CStr>, buf: &mut [u8], parse: fn(&[u8]) -> Option<T>) -> io::Result<T> {
    let len = buf.len();
    let text = sys::read_file(path.as_ref(), buf)?;
    let full = text.len() == len;
    parse(text).ok_or_else(|| if full { io::ErrorKind::FileTooLarge } else { io::ErrorKind::InvalidData }.into())
}

impl AsRef<CStr> for TaskPath {
    fn as_ref(&self) -> &CStr {
        self.as_cstr()
    }
}

// ---------------------------------------------------------------------------
// States and clock ticks

/// A readable name for a state letter from `stat` or `status`.
pub(crate) fn state_name(state: u8) -> &'static str {
    match state {
        b'R' => "running",
        b'S' => "sleeping",
        b'D' => "disk sleep (uninterruptible)",
        b'T' => "stopped",
        b't' => "tracing stop",
        b'Z' => "zombie",
        b'X' | b'x' => "dead",
        b'I' => "idle",
        b'P' => "parked",
        b'K' => "wakekill",
        b'W' => "waking/paging",
        _ => "unknown",
    }
}

static CLK_TCK: AtomicU64 = AtomicU64::new(0);

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux), the unit
/// of `utime`/`stime`. The first call runs `sysconf`, which POSIX does not
/// list as async-signal-safe: call this once at start-up; afterwards it is a
/// relaxed atomic load.
pub(crate) fn clk_tck() -> u64 {
    let cached = CLK_TCK.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let v = if v > 0 { v as u64 } else { 100 };
    CLK_TCK.store(v, Ordering::Relaxed);
    v
}

/// Converts clock ticks to nanoseconds, saturating; 0 if `clk_tck` is 0.
pub(crate) fn ticks_to_ns(ticks: u64, clk_tck: u64) -> u64 {
    if clk_tck == 0 {
        return 0;
    }
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(clk_tck);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
