//! Async-signal-safe frame-pointer stack walking.
//!
//! # Async-signal-safety contract
//!
//! [`walk_ucontext`] and [`read_mem`] run inside signal handlers and on the
//! fatal path. They never allocate, take locks, initialise anything lazily or
//! print; they only issue system calls (`process_vm_readv`, `write`, `read`,
//! `sched_yield`), read atomics and write into the memory they are given.
//! They may clobber `errno`: the signal handler saves and restores it
//! ([`ErrnoGuard`](crate::os::sys::ErrnoGuard)).
//!
//! Every read of an address taken from a (possibly corrupt) frame chain is
//! validated first, so a broken chain ends the walk instead of faulting:
//!
//! * with known [`StackBounds`] the bounds check is the validation: the walk
//!   only reads between the interrupted stack pointer and the top of the
//!   thread's stack, which is mapped;
//! * with [`StackBounds::UNKNOWN`] (threads that were never registered) each
//!   frame record is read with `process_vm_readv` on our own pid, which fails
//!   with `EFAULT` instead of faulting;
//! * where `process_vm_readv` is unavailable (`ENOSYS`, or `EPERM` under a
//!   seccomp filter) a pipe probe validates the address: `write(2)` from an
//!   unreadable address fails with `EFAULT`.
//!
//! The pipe is created by [`init`], which **must run in normal context before
//! any signal handler that walks** (failstop calls it from `start`). Without
//! it, and without `process_vm_readv`, reads of unknown memory simply fail and
//! walks without bounds stop after frame 0.
//!
//! The walk needs frame pointers (`-C force-frame-pointers=yes`, and
//! `-fno-omit-frame-pointer` for C code); code built without them ends the
//! chain early or, at worst, yields a few bogus frames, never a fault.

use super::sys::syscall;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The part of a thread's address space that holds its stack: `[lo, hi)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StackBounds {
    lo: usize,
    hi: usize,
}

impl StackBounds {
    /// Bounds of a thread we know nothing about: every read is validated
    /// with a system call.
    pub(crate) const UNKNOWN: StackBounds = StackBounds { lo: 0, hi: 0 };

    /// Bounds `[lo, hi)`; an empty or inverted range means unknown.
    pub(crate) fn new(lo: usize, hi: usize) -> StackBounds {
        if lo < hi { StackBounds { lo, hi } } else { StackBounds::UNKNOWN }
    }

    /// True unless these are [`StackBounds::UNKNOWN`].
    pub(crate) fn is_known(&self) -> bool {
        self.lo < self.hi
    }

    /// Lowest address of the stack.
    pub(crate) fn lo(&self) -> usize {
        self.lo
    }

    /// One past the highest address of the stack.
    pub(crate) fn hi(&self) -> usize {
        self.hi
    }

    /// True when `addr` lies in `[lo, hi)`.
    pub(crate) fn contains(&self, addr: usize) -> bool {
        self.lo <= addr && addr < self.hi
    }

    /// The calling thread's stack, from `pthread_getattr_np`.
    ///
    /// **Normal context only**: glibc allocates here (and, for the main
    /// thread, reads `/proc/self/maps`). Call it when a thread registers.
    pub(crate) fn current_thread() -> Option<StackBounds> {
        // SAFETY: pthread_attr_t is plain data that pthread_getattr_np fully
        // initialises; all-zero is a valid placeholder.
        let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
        // SAFETY: `attr` is a valid out-pointer; pthread_self is always valid.
        if unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) } != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        // SAFETY: `attr` was initialised above; the out-pointers are valid.
        let r = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) };
        // SAFETY: `attr` was initialised by pthread_getattr_np and is
        // destroyed exactly once.
        unsafe { libc::pthread_attr_destroy(&mut attr) };
        if r != 0 || addr.is_null() || size == 0 {
            return None;
        }
        let lo = addr as usize;
        Some(StackBounds::new(lo, lo.checked_add(size)?))
    }
}

/// Read end of the probe pipe (-1 until [`init`]).
static PIPE_R: AtomicI32 = AtomicI32::new(-1);
/// Write end of the probe pipe (-1 until [`init`]).
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
/// Set once `process_vm_readv` failed with ENOSYS or EPERM.
static VM_READV_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Creates the probe pipe used when `process_vm_readv` is unavailable.
///
/// Call in normal context, before installing any signal handler that walks
/// stacks or reads memory with [`read_mem`]. Idempotent and thread-safe: a
/// second call keeps the first pipe.
pub(crate) fn init() -> io::Result<()> {
    if PIPE_W.load(Ordering::Acquire) >= 0 {
        return Ok(());
    }
    let mut fds = [-1 as libc::c_int; 2];
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK))?;
    // Publish the read end first: a reader that sees the write end must see
    // the read end too.
    if PIPE_R.compare_exchange(-1, fds[0], Ordering::AcqRel, Ordering::Acquire).is_err() {
        // Lost a race with another init: keep theirs.
        // SAFETY: we own both fresh descriptors and close each once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Ok(());
    }
    PIPE_W.store(fds[1], Ordering::Release);
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Test-only: make this thread's reads skip `process_vm_readv`.
    static FORCE_PIPE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Test-only: reads this thread completed through `process_vm_readv`.
    static VM_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Test-only: reads this thread completed through the pipe probe.
    static PIPE_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Largest chunk the pipe probe writes at once (`PIPE_BUF`: atomic writes).
const PROBE_CHUNK: usize = 4096;

/// Copies `out.len()` bytes from address `addr` of our own address space into
/// `out`, returning false (and leaving `out` unspecified) when any of it is
/// unreadable or cannot be validated. Never faults on a bad address.
///
/// Async-signal-safe; see the module docs (the pipe fallback needs [`init`]).
/// Memory unmapped concurrently by another thread between the pipe probe and
/// the copy can still fault; the `process_vm_readv` path has no such window.
pub(crate) fn read_mem(addr: usize, out: &mut [u8]) -> bool {
    if out.is_empty() {
        return true;
    }
    if addr == 0 || addr.checked_add(out.len()).is_none() {
        return false;
    }
    #[cfg(test)]
    let forced = FORCE_PIPE.with(|f| f.get());
    #[cfg(not(test))]
    let forced = false;
    if !forced && !VM_READV_UNAVAILABLE.load(Ordering::Relaxed) {
        match vm_read(addr, out) {
            VmRead::Ok => {
                #[cfg(test)]
                VM_READS.with(|c| c.set(c.get() + 1));
                return true;
            }
            VmRead::Fault => return false,
            VmRead::Unavailable => VM_READV_UNAVAILABLE.store(true, Ordering::Relaxed),
        }
    }
    let mut done = 0;
    while done < out.len() {
        let n = (out.len() - done).min(PROBE_CHUNK);
        let a = addr + done;
        if !pipe_probe(a, &mut out[done..done + n]) {
            return false;
        }
        // SAFETY: the kernel just read these `n` bytes at `a` without a fault
        // (pipe_probe), so they are mapped and readable; `out` is ours and
        // cannot overlap memory we only read.
        unsafe { std::ptr::copy_nonoverlapping(a as *const u8, out[done..].as_mut_ptr(), n) };
        done += n;
    }
    #[cfg(test)]
    PIPE_READS.with(|c| c.set(c.get() + 1));
    true
}

enum VmRead {
    Ok,
    Fault,
    Unavailable,
}

/// One `process_vm_readv` on our own pid.
fn vm_read(addr: usize, out: &mut [u8]) -> VmRead {
    let local = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: out.len() };
    loop {
        // SAFETY: a raw syscall; both iovecs live across it and the local one
        // describes `out`, which we own. The remote side is checked by the
        // kernel, which reports EFAULT instead of faulting.
        let r = unsafe {
            libc::syscall(
                libc::SYS_process_vm_readv,
                crate::os::sys::getpid(),
                &local as *const libc::iovec,
                1 as libc::c_ulong,
                &remote as *const libc::iovec,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if r >= 0 {
            // A short read means the tail is unmapped.
            return if r as usize == out.len() { VmRead::Ok } else { VmRead::Fault };
        }
        // SAFETY: __errno_location returns the calling thread's errno slot.
        match unsafe { *libc::__errno_location() } {
            libc::EINTR => continue,
            libc::ENOSYS | libc::EPERM => return VmRead::Unavailable,
            _ => return VmRead::Fault,
        }
    }
}

/// Checks that `scratch.len()` (at most [`PROBE_CHUNK`]) bytes at `addr` are
/// readable by writing them into the probe pipe, then drains the pipe into
/// `scratch`. Concurrent probes may swap bytes with each other, which is why
/// the caller copies the data itself afterwards; each probe drains exactly as
/// many bytes as it wrote, so the pipe never fills up.
fn pipe_probe(addr: usize, scratch: &mut [u8]) -> bool {
    let w = PIPE_W.load(Ordering::Acquire);
    let r = PIPE_R.load(Ordering::Acquire);
    if w < 0 || r < 0 {
        return false;
    }
    let len = scratch.len();
    let mut tries = 0;
    let wrote = loop {
        // SAFETY: a raw write from an address the kernel validates: an
        // unreadable source fails with EFAULT instead of faulting.
        let n = unsafe { libc::write(w, addr as *const libc::c_void, len) };
        if n >= 0 {
            break n as usize;
        }
        // SAFETY: as in vm_read.
        match unsafe { *libc::__errno_location() } {
            libc::EINTR => continue,
            // Full pipe: many concurrent probes. Let them drain.
            libc::EAGAIN if tries < 100 => {
                tries += 1;
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            _ => return false,
        }
    };
    // Drain what we wrote (possibly another prober's identical-sized bytes).
    let mut drained = 0;
    let mut spins = 0;
    while drained < wrote {
        // SAFETY: the pointer and length describe the unfilled part of
        // `scratch` (wrote <= len).
        let n = unsafe { libc::read(r, scratch[drained..].as_mut_ptr().cast(), wrote - drained) };
        if n > 0 {
            drained += n as usize;
        } else if spins < 1000 {
            // EINTR, or EAGAIN while a concurrent prober holds the pipe.
            spins += 1;
        } else {
            break;
        }
    }
    wrote == len
}

/// Reads the frame record at `fp`: (previous frame pointer, return address).
///
/// # Safety
/// With `trusted`, `fp..fp + 16` must be mapped readable memory.
#[inline]
unsafe fn read_record(fp: usize, trusted: bool) -> Option<(usize, usize)> {
    const W: usize = std::mem::size_of::<usize>();
    if trusted {
        // SAFETY: per the contract the 16 bytes at `fp` are readable, and
        // `fp` is word-aligned (checked by the caller).
        unsafe {
            let p = fp as *const usize;
            Some((std::ptr::read_volatile(p), std::ptr::read_volatile(p.add(1))))
        }
    } else {
        let mut b = [0u8; 2 * W];
        if !read_mem(fp, &mut b) {
            return None;
        }
        let mut a = [0u8; W];
        a.copy_from_slice(&b[..W]);
        let prev = usize::from_ne_bytes(a);
        a.copy_from_slice(&b[W..]);
        Some((prev, usize::from_ne_bytes(a)))
    }
}

/// Strips pointer-authentication bits from a return address (aarch64).
#[inline]
fn strip_ra(ra: usize) -> usize {
    #[cfg(target_arch = "aarch64")]
    {
        let mut lr = ra;
        // SAFETY: `xpaclri` (hint #7) only rewrites x30; it is a NOP on
        // cores without pointer authentication.
        unsafe { core::arch::asm!("hint #7", inout("x30") lr, options(nomem, nostack, preserves_flags)) };
        lr
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        ra
    }
}

/// Follows the frame-record chain from `fp` (with the stack pointer `sp` as
/// lower limit), appending return addresses to `out[n..]`. Returns the new
/// count. Async-signal-safe.
///
/// # Safety
/// `bounds`, when known, must describe mapped stack memory of the thread
/// whose registers `fp` and `sp` are, at least from `sp` to `hi`.
unsafe fn walk_chain(mut fp: usize, sp: usize, bounds: StackBounds, out: &mut [usize], mut n: usize) -> usize {
    const W: usize = std::mem::size_of::<usize>();
    // The bounds only vouch for [sp, hi): a thread interrupted on another
    // stack (sigaltstack, coroutine) gets every read validated instead.
    let trusted = bounds.is_known() && bounds.contains(sp);
    let (lo, hi) =
        if trusted { (sp.max(bounds.lo), bounds.hi.saturating_sub(2 * W)) } else { (sp, usize::MAX - 2 * W) };
    let mut min_fp = lo;
    while n < out.len() {
        if fp == 0 || !fp.is_multiple_of(W) || fp < min_fp || fp > hi {
            break;
        }
        // SAFETY: when trusted, lo <= fp <= hi - 16 and [sp, bounds.hi) is
        // mapped per the contract; otherwise read_record validates.
        let Some((prev, ra)) = (unsafe { read_record(fp, trusted) }) else {
            break;
        };
        let ra = strip_ra(ra);
        if ra == 0 {
            break;
        }
        out[n] = ra;
        n += 1;
        // Strictly increasing: a cycle or a downward link ends the walk.
        min_fp = fp + 1;
        fp = prev;
    }
    n
}

/// Walks the stack of the thread interrupted by a signal.
///
/// Frame 0 is the interrupted program counter; the following frames are raw
/// return addresses (pointing after the call: subtract 1 when symbolizing).
/// Returns the number of frames written to `out`.
///
/// The walk stops at a null, misaligned or non-increasing frame pointer, one
/// outside the stack (with known bounds: outside `[max(sp, lo), hi - 16]`), a
/// zero return address, an unreadable frame record, or when `out` is full.
///
/// Async-signal-safe (see the module docs; [`init`] must have run for the
/// pipe fallback).
///
/// # Safety
/// `ctx` must be the `ucontext_t` pointer passed as third argument to an
/// `SA_SIGINFO` handler (or point to an equivalent, readable `ucontext_t`),
/// and `bounds`, when known, must be the interrupted thread's stack.
pub(crate) unsafe fn walk_ucontext(ctx: *const libc::c_void, bounds: StackBounds, out: &mut [usize]) -> usize {
    if ctx.is_null() || out.is_empty() {
        return 0;
    }
    let uc = ctx.cast::<libc::ucontext_t>();
    // SAFETY: per the contract `uc` points to a readable ucontext_t.
    let (pc, fp, sp) = unsafe { regs(uc) };
    out[0] = pc;
    let mut n = 1;
    // Interrupted in a prologue or epilogue, the frame pointer still (or
    // already) belongs to the caller, so the chain would skip the function
    // at `pc`'s caller. Recover its return address from the stack.
    if let Some(ret) = leaf_return_address(pc, sp, bounds)
        && n < out.len()
    {
        out[n] = ret;
        n += 1;
    }
    // SAFETY: forwarded contract on `bounds`.
    unsafe { walk_chain(fp, sp, bounds, out, n) }
}

/// The return address of the function at `pc` when `pc` sits where its
/// frame is not (or no longer) linked: x86_64 `push rbp` at entry or `ret`
/// (return address at `[sp]`), or `mov rbp, rsp` right after the push (at
/// `[sp + 8]`). Code and stack are read with validated reads.
/// Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn leaf_return_address(pc: usize, sp: usize, bounds: StackBounds) -> Option<usize> {
    // Two validated reads of the code at `pc` (a corrupt context must not
    // fault us), then the stack slot.
    let mut code = [0u8; 3];
    if !read_mem(pc, &mut code[..1]) || code[0] == 0x48 && !read_mem(pc, &mut code) {
        return None;
    }
    let slot = match code[0] {
        0x55 | 0xc3 => sp,
        0x48 if code == [0x48, 0x89, 0xe5] => sp.checked_add(8)?,
        _ => return None,
    };
    let ret = if bounds.contains(slot) && bounds.contains(slot + 7) && slot % 8 == 0 {
        // SAFETY: an aligned word inside the thread's known stack.
        unsafe { (slot as *const usize).read() }
    } else {
        let mut word = [0u8; 8];
        if !read_mem(slot, &mut word) {
            return None;
        }
        usize::from_ne_bytes(word)
    };
    (ret != 0).then_some(ret)
}

/// On aarch64 a leaf function may never link a frame record; the link
/// register is not reliable enough to use blindly, so nothing is added.
#[cfg(target_arch = "aarch64")]
fn leaf_return_address(_pc: usize, _sp: usize, _bounds: StackBounds) -> Option<usize> {
    None
}

/// (pc, fp, sp) of the interrupted context.
///
/// # Safety
/// `uc` points to a readable `ucontext_t`.
#[cfg(target_arch = "x86_64")]
unsafe fn regs(uc: *const libc::ucontext_t) -> (usize, usize, usize) {
    // SAFETY: per the contract; the REG_* indices are within gregs.
    unsafe {
        let g = &(*uc).uc_mcontext.gregs;
        (g[libc::REG_RIP as usize] as usize, g[libc::REG_RBP as usize] as usize, g[libc::REG_RSP as usize] as usize)
    }
}

/// (pc, fp, sp) of the interrupted context.
///
/// # Safety
/// `uc` points to a readable `ucontext_t`.
#[cfg(target_arch = "aarch64")]
unsafe fn regs(uc: *const libc::ucontext_t) -> (usize, usize, usize) {
    // SAFETY: per the contract.
    unsafe {
        let m = &(*uc).uc_mcontext;
        (m.pc as usize, m.regs[29] as usize, m.sp as usize)
    }
}

/// Walks the calling thread's own stack in normal context, starting with the
/// return address into the caller of `walk_here`. Returns the number of
/// frames written.
///
/// Uses the thread's stack bounds when glibc can tell them (which may
/// allocate: not for signal handlers), else validated reads.
#[cfg(test)]
#[inline(never)]
pub(crate) fn walk_here(out: &mut [usize]) -> usize {
    let fp: usize;
    let sp: usize;
    // SAFETY: only copies the frame-pointer and stack-pointer registers.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("mov {}, rbp", "mov {}, rsp", out(reg) fp, out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: only copies the frame-pointer and stack-pointer registers.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("mov {}, x29", "mov {}, sp", out(reg) fp, out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    let bounds = StackBounds::current_thread().unwrap_or(StackBounds::UNKNOWN);
    // SAFETY: `bounds` are this thread's own stack and `fp`/`sp` its live
    // registers; the frames above us stay alive during the walk.
    unsafe { walk_chain(fp, sp, bounds, out, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::{Arc, Mutex};

    /// Names of the functions the frames resolve to, outermost last.
    fn names(frames: &[usize]) -> Vec<String> {
        let mut v = Vec::new();
        for (i, &a) in frames.iter().enumerate() {
            // Frame 0 of a ucontext walk is the PC itself; the rest are
            // return addresses. `resolve` looks up the byte before what it
            // is given (the call instruction of a return address), so the
            // PC goes one byte on.
            let a = if i == 0 { a + 1 } else { a };
            backtrace::resolve(a as *mut _, |s| {
                if let Some(n) = s.name() {
                    v.push(n.to_string());
                }
            });
        }
        v
    }

    /// Index of the first name containing `needle` at or after `from`.
    fn find(names: &[String], needle: &str, from: usize) -> Option<usize> {
        names.iter().skip(from).position(|n| n.contains(needle)).map(|i| i + from)
    }

    #[inline(never)]
    fn chain_a(out: &mut [usize]) -> usize {
        std::hint::black_box(chain_b(out)) + std::hint::black_box(0)
    }
    #[inline(never)]
    fn chain_b(out: &mut [usize]) -> usize {
        std::hint::black_box(chain_c(out)) + std::hint::black_box(0)
    }
    #[inline(never)]
    fn chain_c(out: &mut [usize]) -> usize {
        std::hint::black_box(walk_here(out)) + std::hint::black_box(0)
    }

    #[test]
    fn walk_here_sees_callers_in_order() {
        let mut out = [0usize; 64];
        let n = chain_a(&mut out);
        assert!(n >= 3, "only {n} frames");
        // All of walk_here's frames are return addresses: shift by one so
        // names() subtracts 1 from each.
        let mut frames = vec![0usize];
        frames.extend_from_slice(&out[..n]);
        let names = names(&frames);
        let c = find(&names, "chain_c", 0).unwrap_or_else(|| panic!("chain_c missing: {names:#?}"));
        let b = find(&names, "chain_b", c + 1).unwrap_or_else(|| panic!("chain_b missing: {names:#?}"));
        find(&names, "chain_a", b + 1).unwrap_or_else(|| panic!("chain_a missing: {names:#?}"));
    }

    // --- real signals -------------------------------------------------------

    /// Serialises the signal tests: they share the handler and its buffer.
    static SIG_LOCK: Mutex<()> = Mutex::new(());
    /// Frames captured by the handler.
    static mut SIG_FRAMES: [usize; 128] = [0; 128];
    static SIG_COUNT: AtomicUsize = AtomicUsize::new(0);
    /// Bounds the handler walks with.
    static SIG_LO: AtomicUsize = AtomicUsize::new(0);
    static SIG_HI: AtomicUsize = AtomicUsize::new(0);
    static SIG_DONE: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigusr1(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let _errno = crate::os::sys::ErrnoGuard::save();
        let bounds = StackBounds::new(SIG_LO.load(Ordering::Relaxed), SIG_HI.load(Ordering::Relaxed));
        // SAFETY: the test serialises handler runs (SIG_LOCK, SIG_DONE), so
        // nothing else touches the buffer while we write it.
        let out = unsafe { &mut *std::ptr::addr_of_mut!(SIG_FRAMES) };
        // SAFETY: `ctx` is the handler's ucontext; the bounds, when known,
        // are those of the interrupted thread.
        let n = unsafe { walk_ucontext(ctx, bounds, out) };
        SIG_COUNT.store(n, Ordering::Relaxed);
        SIG_DONE.store(true, Ordering::Release);
    }

    fn install_handler() {
        // SAFETY: sigaction is plain data; we fill in the fields we use.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_sigusr1 as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: valid pointers; the handler is async-signal-safe.
        unsafe {
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
    }

    #[inline(never)]
    fn spin_target_fn(stop: &AtomicBool) -> u64 {
        let mut x = 0u64;
        while !stop.load(Ordering::Relaxed) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        x
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Mode {
        Bounds,
        Unknown,
        ForcePipe,
    }

    fn signal_walk(mode: Mode) {
        let _g = SIG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        init().unwrap();
        install_handler();
        SIG_DONE.store(false, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            let b = StackBounds::current_thread().expect("thread stack bounds");
            let b = if mode == Mode::Bounds { b } else { StackBounds::UNKNOWN };
            SIG_LO.store(b.lo, Ordering::Relaxed);
            SIG_HI.store(b.hi, Ordering::Relaxed);
            FORCE_PIPE.with(|f| f.set(mode == Mode::ForcePipe));
            // SAFETY: pthread_self is always valid.
            tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
            let r = spin_target_fn(&s2);
            (r, VM_READS.with(|c| c.get()), PIPE_READS.with(|c| c.get()))
        });
        let th = rx.recv().unwrap() as libc::pthread_t;
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: the thread is alive until `stop` is set.
        assert_eq!(unsafe { libc::pthread_kill(th, libc::SIGUSR1) }, 0);
        let t0 = std::time::Instant::now();
        while !SIG_DONE.load(Ordering::Acquire) {
            assert!(t0.elapsed().as_secs() < 10, "handler never ran");
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        let (_, vm_reads, pipe_reads) = t.join().unwrap();
        let n = SIG_COUNT.load(Ordering::Relaxed);
        // SAFETY: the handler finished (SIG_DONE) and the thread is joined.
        let frames: Vec<usize> = unsafe { (&*std::ptr::addr_of!(SIG_FRAMES))[..n].to_vec() };
        let names = names(&frames);
        let i = find(&names, "spin_target_fn", 0).unwrap_or_else(|| panic!("{mode:?}: {names:#?}"));
        // The thread closure called spin_target_fn: the walk went past it.
        assert!(names.len() > i + 1 && n >= 2, "{mode:?}: walk ended at the spinning frame: {names:#?}");
        match mode {
            // With known bounds the stack needs no system call; only the
            // peek at the code at `pc` (one or two validated reads) does.
            Mode::Bounds => assert!(vm_reads + pipe_reads <= 2, "bounds need no syscalls: {vm_reads} {pipe_reads}"),
            Mode::Unknown => assert!(vm_reads >= 1 || VM_READV_UNAVAILABLE.load(Ordering::Relaxed)),
            Mode::ForcePipe => assert!(pipe_reads >= 1 && vm_reads == 0, "{vm_reads} {pipe_reads}"),
        }
    }

    #[test]
    fn signal_walk_with_bounds() {
        signal_walk(Mode::Bounds);
    }

    #[test]
    fn signal_walk_unknown_bounds() {
        signal_walk(Mode::Unknown);
    }

    #[test]
    fn signal_walk_pipe_probe() {
        signal_walk(Mode::ForcePipe);
    }

    // --- validated reads and garbage chains -------------------------------------

    /// An address that is certainly unmapped: a fresh mapping, unmapped.
    fn unmapped_addr() -> usize {
        // SAFETY: plain anonymous mmap/munmap of a page we own.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            assert_eq!(libc::munmap(p, 4096), 0);
            p as usize
        }
    }

    #[test]
    fn read_mem_both_paths() {
        init().unwrap();
        let data: [u8; 5000] = std::array::from_fn(|i| i as u8);
        let bad = unmapped_addr();
        for force in [false, true] {
            FORCE_PIPE.with(|f| f.set(force));
            let mut out = [0u8; 5000];
            assert!(read_mem(data.as_ptr() as usize, &mut out));
            assert_eq!(out, data);
            assert!(!read_mem(bad, &mut out[..16]));
            assert!(!read_mem(0, &mut out[..16]));
            assert!(!read_mem(usize::MAX - 4, &mut out[..16]));
        }
        FORCE_PIPE.with(|f| f.set(false));
    }

    /// A zeroed ucontext with pc, fp and sp set.
    fn fake_ctx(pc: usize, fp: usize, sp: usize) -> Box<libc::ucontext_t> {
        // SAFETY: ucontext_t is plain data; all-zero is valid.
        let mut uc: Box<libc::ucontext_t> = Box::new(unsafe { std::mem::zeroed() });
        #[cfg(target_arch = "x86_64")]
        {
            let g = &mut uc.uc_mcontext.gregs;
            g[libc::REG_RIP as usize] = pc as i64;
            g[libc::REG_RBP as usize] = fp as i64;
            g[libc::REG_RSP as usize] = sp as i64;
        }
        #[cfg(target_arch = "aarch64")]
        {
            uc.uc_mcontext.pc = pc as u64;
            uc.uc_mcontext.regs[29] = fp as u64;
            uc.uc_mcontext.sp = sp as u64;
        }
        uc
    }

    fn walk_fake(pc: usize, fp: usize, sp: usize, bounds: StackBounds, force_pipe: bool) -> Vec<usize> {
        init().unwrap();
        let uc = fake_ctx(pc, fp, sp);
        let mut out = [0usize; 32];
        FORCE_PIPE.with(|f| f.set(force_pipe));
        // SAFETY: `uc` is a readable ucontext_t; bounds are UNKNOWN or
        // describe the fake stack array, which is mapped.
        let n = unsafe { walk_ucontext((&*uc as *const libc::ucontext_t).cast(), bounds, &mut out) };
        FORCE_PIPE.with(|f| f.set(false));
        out[..n].to_vec()
    }

    #[test]
    fn garbage_chains_end_cleanly() {
        let bad = unmapped_addr();
        for force in [false, true] {
            // Frame pointer into unmapped memory.
            assert_eq!(walk_fake(0x1234, bad, 0, StackBounds::UNKNOWN, force), [0x1234]);
            // Misaligned frame pointer.
            let stack = [0usize; 8];
            let base = stack.as_ptr() as usize;
            assert_eq!(walk_fake(0x1234, base + 3, base, StackBounds::UNKNOWN, force), [0x1234]);
            // Null frame pointer, and a frame pointer below sp.
            assert_eq!(walk_fake(0x1234, 0, 0, StackBounds::UNKNOWN, force), [0x1234]);
            assert_eq!(walk_fake(0x1234, base, base + 16, StackBounds::UNKNOWN, force), [0x1234]);
        }
        // A cycle: record 0 -> record 2 -> record 0.
        let mut stack = [0usize; 8];
        let base = stack.as_ptr() as usize;
        stack[0] = base + 16;
        stack[1] = 0xaaaa;
        stack[2] = base;
        stack[3] = 0xbbbb;
        let bounds = StackBounds::new(base, base + std::mem::size_of_val(&stack));
        for (b, force) in [(StackBounds::UNKNOWN, false), (StackBounds::UNKNOWN, true), (bounds, false)] {
            assert_eq!(walk_fake(0x1, base, base, b, force), [0x1, 0xaaaa, 0xbbbb]);
        }
        // A self-loop.
        stack[0] = base;
        assert_eq!(walk_fake(0x1, base, base, bounds, false), [0x1, 0xaaaa]);
        // A link out of the known bounds is not followed (not even read).
        stack[0] = bad;
        assert_eq!(walk_fake(0x1, base, base, bounds, false), [0x1, 0xaaaa]);
        // A zero return address ends the walk.
        stack[0] = base + 16;
        stack[3] = 0;
        assert_eq!(walk_fake(0x1, base, base, bounds, false), [0x1, 0xaaaa]);
        // A full buffer ends it too.
        stack[3] = 0xbbbb;
        stack[2] = base + 32;
        stack[4] = 0;
        stack[5] = 0xcccc;
        let uc = fake_ctx(0x1, base, base);
        let mut out = [0usize; 2];
        // SAFETY: as in walk_fake.
        let n = unsafe { walk_ucontext((&*uc as *const libc::ucontext_t).cast(), bounds, &mut out) };
        assert_eq!(&out[..n], [0x1, 0xaaaa]);
        std::hint::black_box(&mut stack);
    }
}
