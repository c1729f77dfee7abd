//! Frames of a thread that cannot run a signal handler (it blocks every
//! signal: a daemon's signal thread, haproxy's second thread, a deaf
//! culprit): a short-lived helper process reads the thread's registers with
//! `ptrace` and walks its stack from them.
//!
//! A thread cannot trace a thread of its own process, so the helper is a
//! process of its own, made with `clone(CLONE_VM)`: it shares our memory
//! (the frames go straight into [`Capture`], the walk reads our stack with
//! the validated reads of the frame-pointer walk) but not our thread group.
//! Its exit signal is none, so only a `waitpid` with `__WALL` reaps it: an
//! application that reaps its children with `waitpid(-1)` never sees it.
//! Where Yama restricts `ptrace` to ancestors (`ptrace_scope` 1), the
//! process names the helper with `PR_SET_PTRACER` for the length of the
//! capture, and clears it afterwards: the kernel offers no way to read an
//! exception the application set itself (a crash reporter naming its
//! handler process), so under scope 1 a capture replaces it. Elsewhere
//! (scope 0, no Yama) `PR_SET_PTRACER` is not needed and never called,
//! and the application's own setting stays as it was. The helper seizes the thread (`PTRACE_SEIZE`), stops it
//! (`PTRACE_INTERRUPT`), reads its registers, walks, and detaches, which
//! lets the thread run on; a stop may make a few system calls (`epoll_wait`,
//! `sigtimedwait`) of a sleeping thread return `EINTR`, as a `SIGSTOP` and
//! `SIGCONT` would. Everything is bounded by the caller's deadline: a helper
//! still at work then is killed (its tracee is then detached by the kernel).
//!
//! # Contract
//!
//! [`prepare`] runs in normal context at start (it maps the helper's
//! stack). [`capture`] allocates nothing and takes no lock; it runs on the
//! monitor, one capture at a time. The helper runs on its own stack with
//! the monitor's thread-local storage (the monitor waits meanwhile) and
//! makes raw system calls only.

use super::sys;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};
use std::time::Duration;

/// The helper's stack.
const HELPER_STACK: usize = 64 * 1024;
/// Frames kept.
pub(crate) const MAX_FRAMES: usize = 64;

static STACK: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// How a stopped thread's stack is walked from its registers
/// `(pc, fp, sp, lr, out)` (`lr`: aarch64's link register, 0 elsewhere).
pub(crate) type Walk = fn(usize, usize, usize, usize, &mut [usize; MAX_FRAMES]) -> usize;
/// The [`Walk`] of the capture under way.
static WALK: AtomicUsize = AtomicUsize::new(0);

/// Job states (the futex word the two sides wait on).
const WAITING: u32 = 0;
const GO: u32 = 1;
const DONE: u32 = 2;

/// The one capture under way: written by the helper, read by the monitor
/// once it is `DONE`.
struct Capture {
    state: AtomicU32,
    tid: AtomicI32,
    deadline_ns: AtomicUsize,
    len: AtomicUsize,
    frames: [AtomicUsize; MAX_FRAMES],
    /// Why there are no frames (a `&'static str` as pointer and length).
    why_ptr: AtomicUsize,
    why_len: AtomicUsize,
    busy: AtomicBool,
}

static JOB: Capture = Capture {
    state: AtomicU32::new(WAITING),
    tid: AtomicI32::new(0),
    deadline_ns: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
    why_ptr: AtomicUsize::new(0),
    why_len: AtomicUsize::new(0),
    busy: AtomicBool::new(false),
};

/// Yama's `ptrace_scope` is 1 here (read by [`prepare`]): the helper
/// must be named with `PR_SET_PTRACER` to trace its parent.
static NEEDS_PTRACER: AtomicBool = AtomicBool::new(false);

/// Maps the helper's stack (once per process) and reads Yama's
/// `ptrace_scope`. Normal context, at start.
pub(crate) fn prepare() -> std::io::Result<()> {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
    NEEDS_PTRACER.store(scope.trim() == "1", Relaxed);
    if !STACK.load(Acquire).is_null() {
        return Ok(());
    }
    let p = sys::map_stack(HELPER_STACK)?;
    // The stack proper starts above the guard page.
    // SAFETY: inside the mapping just made.
    let stack = unsafe { p.add(sys::page_size()) };
    if STACK.compare_exchange(std::ptr::null_mut(), stack, AcqRel, Acquire).is_err() {
        // SAFETY: our own mapping, never published.
        unsafe { libc::munmap(p.cast(), HELPER_STACK + sys::page_size()) };
    }
    Ok(())
}

/// Captures the frames of thread `tid` of this process (frame 0 its
/// program counter) into `out` from a helper process, within `budget`.
/// Returns how many, or why there are none. Monitor thread; allocation-free.
/// `walk(pc, fp, sp, lr, out)` walks the stopped thread's stack (in the
/// helper, while the thread is stopped) and returns how many frames it
/// wrote; it must be async-signal-safe and use validated reads only.
pub(crate) fn capture(
    tid: libc::pid_t,
    out: &mut [usize; MAX_FRAMES],
    budget: Duration,
    walk: Walk,
) -> Result<usize, &'static str> {
    let stack = STACK.load(Acquire);
    if stack.is_null() {
        return Err("the ptrace helper was not prepared");
    }
    if JOB.busy.swap(true, AcqRel) {
        return Err("another ptrace capture is under way");
    }
    WALK.store(walk as usize, Relaxed);
    let result = run(stack, tid, out, budget);
    JOB.busy.store(false, Release);
    result
}

fn run(
    stack: *mut u8,
    tid: libc::pid_t,
    out: &mut [usize; MAX_FRAMES],
    budget: Duration,
) -> Result<usize, &'static str> {
    let deadline = sys::monotonic_ns().saturating_add(budget.as_nanos() as u64);
    JOB.state.store(WAITING, Relaxed);
    JOB.tid.store(tid, Relaxed);
    JOB.deadline_ns.store(deadline as usize, Relaxed);
    JOB.len.store(0, Relaxed);
    set_why("the ptrace helper did not finish in time");
    // SAFETY: `stack` is HELPER_STACK bytes mapped by `prepare` and used by
    // one helper at a time (`busy`); the stack grows down from its end,
    // kept 16-byte aligned. CLONE_VM shares our memory; exit signal 0.
    let child =
        unsafe { libc::clone(helper, stack.add(HELPER_STACK - 64).cast(), libc::CLONE_VM, std::ptr::null_mut()) };
    if child <= 0 {
        return Err("the ptrace helper could not be made (clone failed)");
    }
    // Yama's ptrace_scope 1: let the helper (not our ancestor) trace us.
    let ptracer = NEEDS_PTRACER.load(Relaxed);
    if ptracer {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, child as libc::c_ulong, 0, 0, 0) };
    }
    JOB.state.store(GO, Release);
    sys::futex_wake_all(&JOB.state);
    loop {
        let s = JOB.state.load(Acquire);
        let now = sys::monotonic_ns();
        if s == DONE || now >= deadline {
            break;
        }
        sys::futex_wait(&JOB.state, s, Some(Duration::from_nanos(deadline - now)));
    }
    let done = JOB.state.load(Acquire) == DONE;
    // SAFETY: signalling and reaping our own helper; __WALL reaps a child
    // whose exit signal is none.
    unsafe {
        if !done {
            libc::kill(child, libc::SIGKILL);
        }
        let mut status = 0;
        while libc::waitpid(child, &mut status, libc::__WALL) < 0 && *libc::__errno_location() == libc::EINTR {}
        if ptracer {
            libc::prctl(libc::PR_SET_PTRACER, 0 as libc::c_ulong, 0, 0, 0);
        }
    }
    let n = JOB.len.load(Acquire).min(MAX_FRAMES);
    if done && n > 0 {
        for (o, f) in out.iter_mut().zip(&JOB.frames[..n]) {
            *o = f.load(Relaxed);
        }
        return Ok(n);
    }
    Err(why())
}

fn set_why(why: &'static str) {
    JOB.why_ptr.store(why.as_ptr() as usize, Relaxed);
    JOB.why_len.store(why.len(), Release);
}

fn why() -> &'static str {
    let len = JOB.why_len.load(Acquire);
    let ptr = JOB.why_ptr.load(Relaxed) as *const u8;
    // SAFETY: ptr and len were taken together from a `&'static str` by
    // `set_why` (the helper is done or dead: no concurrent store).
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) }
}

/// The helper process: raw system calls only, on its own stack.
extern "C" fn helper(_arg: *mut libc::c_void) -> libc::c_int {
    // Wait for the monitor's go (PR_SET_PTRACER is set by then).
    while JOB.state.load(Acquire) == WAITING {
        let now = sys::monotonic_ns();
        let deadline = JOB.deadline_ns.load(Relaxed) as u64;
        if now >= deadline {
            exit();
        }
        sys::futex_wait(&JOB.state, WAITING, Some(Duration::from_nanos(deadline - now)));
    }
    let tid = JOB.tid.load(Relaxed);
    let n = match stop_and_walk(tid) {
        Ok(n) => n,
        Err(why) => {
            set_why(why);
            0
        }
    };
    JOB.len.store(n, Release);
    JOB.state.store(DONE, Release);
    sys::futex_wake_all(&JOB.state);
    exit()
}

fn exit() -> ! {
    // SAFETY: ends the helper only (SYS_exit, not exit_group: CLONE_VM
    // without CLONE_THREAD makes it a process of its own anyway).
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    loop {
        std::hint::spin_loop();
    }
}

/// Raw `ptrace(2)`.
fn ptrace(req: libc::c_uint, tid: libc::pid_t, addr: usize, data: usize) -> libc::c_long {
    // SAFETY: a raw system call; the caller passes valid addresses where
    // the request reads or writes them.
    unsafe { libc::syscall(libc::SYS_ptrace, req as libc::c_long, tid as libc::c_long, addr, data) }
}

fn stop_and_walk(tid: libc::pid_t) -> Result<usize, &'static str> {
    if ptrace(libc::PTRACE_SEIZE, tid, 0, 0) != 0 {
        return Err(
            "ptrace refused (Yama ptrace_scope 3, a seccomp filter, a non-dumpable process, or a tracer already attached)",
        );
    }
    let walked = interrupt_and_walk(tid);
    ptrace(libc::PTRACE_DETACH, tid, 0, 0);
    walked
}

fn interrupt_and_walk(tid: libc::pid_t) -> Result<usize, &'static str> {
    if ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) != 0 {
        return Err("PTRACE_INTERRUPT failed");
    }
    // Wait for the stop, polling, so that the deadline holds.
    loop {
        let mut status = 0;
        // SAFETY: a raw wait4 for our tracee, into a valid status word.
        let r = unsafe {
            libc::syscall(
                libc::SYS_wait4,
                tid,
                &mut status as *mut libc::c_int,
                libc::__WALL | libc::WNOHANG,
                std::ptr::null_mut::<libc::rusage>(),
            )
        };
        if r == tid as libc::c_long && libc::WIFSTOPPED(status) {
            break;
        }
        if r < 0 {
            return Err("the thread could not be waited for after PTRACE_INTERRUPT");
        }
        if sys::monotonic_ns() >= JOB.deadline_ns.load(Relaxed) as u64 {
            return Err("the thread did not stop in time (uninterruptible sleep?)");
        }
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 200_000 };
        // SAFETY: a raw nanosleep with a valid timespec.
        unsafe {
            libc::syscall(libc::SYS_nanosleep, &ts as *const libc::timespec, std::ptr::null_mut::<libc::timespec>())
        };
    }
    let (pc, fp, sp, lr) = registers(tid)?;
    let mut frames = [0usize; MAX_FRAMES];
    // SAFETY: `capture` stored a `Walk` in WALK before it made the helper.
    let walk: Walk = unsafe { std::mem::transmute::<usize, Walk>(WALK.load(Relaxed)) };
    let n = walk(pc, fp, sp, lr, &mut frames);
    for (dst, &f) in JOB.frames.iter().zip(&frames[..n]) {
        dst.store(f, Relaxed);
    }
    Ok(n)
}

/// (pc, fp, sp, lr) of the stopped tracee.
#[cfg(target_arch = "x86_64")]
fn registers(tid: libc::pid_t) -> Result<(usize, usize, usize, usize), &'static str> {
    // SAFETY: plain data, filled by the kernel.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    if ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut _ as usize) != 0 {
        return Err("PTRACE_GETREGS failed");
    }
    Ok((regs.rip as usize, regs.rbp as usize, regs.rsp as usize, 0))
}

/// (pc, fp, sp, lr) of the stopped tracee.
#[cfg(target_arch = "aarch64")]
fn registers(tid: libc::pid_t) -> Result<(usize, usize, usize, usize), &'static str> {
    // SAFETY: plain data, filled by the kernel.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: (&mut regs as *mut libc::user_regs_struct).cast(),
        iov_len: std::mem::size_of::<libc::user_regs_struct>(),
    };
    if ptrace(libc::PTRACE_GETREGSET, tid, libc::NT_PRSTATUS as usize, &mut iov as *mut _ as usize) != 0 {
        return Err("PTRACE_GETREGSET failed");
    }
    Ok((regs.pc as usize, regs.regs[29] as usize, regs.sp as usize, regs.regs[30] as usize))
}
