//! The in-handler unwind: the published unwinder, the pool of caches, and
//! the walk over a signal's `ucontext` with validated stack reads.
//! Async-signal-safe (see the contract in [`super`]).

use crate::os::stackwalk::{StackBounds, read_mem};
use framehop::{AllocationPolicy, CacheNative, Unwinder, UnwinderNative};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};

pub(super) type Native = UnwinderNative<Vec<u8>, SmallFixedStorage>;
type Cache = CacheNative<SmallFixedStorage>;

/// framehop's allocation policy with fixed-size storage, like its
/// `MustNotAllocateDuringUnwind`, but smaller: that one keeps 192 register
/// rules per row and a 64-value expression stack, and gimli copies rows
/// and evaluations through the stack, which overflows the few KiB of
/// alternate signal stack a thread may run its handler on. 32 rules cover
/// every register x86_64 and aarch64 code saves (callee-saved ones,
/// including aarch64's d8-d15); CFI that needs more fails that frame's
/// rule, and framehop falls back to the frame pointer for it.
pub(crate) struct SmallFixedStorage;

/// The storage behind [`SmallFixedStorage`].
pub(crate) struct Fixed;

impl<T: gimli::ReaderOffset> gimli::UnwindContextStorage<T> for Fixed {
    type Rules = [(gimli::Register, gimli::RegisterRule<T>); 32];
    type Stack = [gimli::UnwindTableRow<T, Self>; 4];
}

impl<R: gimli::Reader> gimli::EvaluationStorage<R> for Fixed {
    type Stack = [gimli::Value; 16];
    type ExpressionStack = [(R, R); 2];
    type Result = [gimli::Piece<R>; 1];
}

impl AllocationPolicy for SmallFixedStorage {
    type GimliUnwindContextStorage<T: gimli::ReaderOffset> = Fixed;
    type GimliEvaluationStorage<R: gimli::Reader> = Fixed;
}

/// Caches in the pool: that many handlers unwind with DWARF at once; a
/// handler that finds none free walks frame pointers instead.
pub(crate) const POOL_LEN: usize = 8;

/// An unwinder built from one module list, with the code ranges it covers.
pub(super) struct Published {
    pub unwinder: Native,
    /// The modules' code ranges `[start, end)`, sorted by start.
    pub ranges: Box<[(u64, u64)]>,
    /// What the module list looked like (see `super::fingerprint`).
    pub fingerprint: u64,
}

impl Published {
    /// True when `pc` lies in a module with unwind information.
    fn covers(&self, pc: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.0 <= pc);
        i > 0 && pc < self.ranges[i - 1].1
    }
}

/// The unwinder handlers use; null until the first one is published.
pub(super) static CURRENT: AtomicPtr<Published> = AtomicPtr::new(std::ptr::null_mut());
/// Handlers between loading [`CURRENT`] and being done with what they
/// loaded: a retired unwinder is freed only once this was seen at zero.
pub(super) static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// Stack each slot's unwind runs on (the handler switches to it): the
/// unwind needs about 20 KiB in a debug build, more than the alternate
/// signal stack of a thread that is not watched may have left (Rust's
/// runtime gives each thread about 8 KiB). Mapped with `MAP_NORESERVE`:
/// only the pages touched count.
pub(crate) const UNWIND_STACK: usize = 128 * 1024;

struct CacheSlot {
    busy: AtomicBool,
    cache: UnsafeCell<Cache>,
    /// The top (highest address, 16-aligned) of this slot's own stack.
    stack_top: usize,
}

// SAFETY: the cache is only touched by the handler that claimed the slot
// (`busy` false -> true with Acquire, back with Release).
unsafe impl Sync for CacheSlot {}

/// The pool, allocated once per process by [`make_pool`] and never freed.
static POOL: AtomicPtr<[CacheSlot; POOL_LEN]> = AtomicPtr::new(std::ptr::null_mut());

/// Allocates the pool of caches unless it exists. Normal context only.
pub(super) fn make_pool() {
    if !POOL.load(Acquire).is_null() {
        return;
    }
    let mut stacks = [0usize; POOL_LEN];
    for s in &mut stacks {
        match map_stack() {
            Some(top) => *s = top,
            // Without a stack the pool is not made: frame-pointer walks only.
            None => return,
        }
    }
    let pool: Box<[CacheSlot; POOL_LEN]> = Box::new(std::array::from_fn(|i| CacheSlot {
        busy: AtomicBool::new(false),
        cache: UnsafeCell::new(Cache::new_in()),
        stack_top: stacks[i],
    }));
    let p = Box::into_raw(pool);
    if POOL.compare_exchange(std::ptr::null_mut(), p, AcqRel, Acquire).is_err() {
        // SAFETY: `p` came from Box::into_raw just above and was never
        // published.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Maps one unwind stack with a guard page below it; returns its top.
fn map_stack() -> Option<usize> {
    let p = crate::os::sys::map_stack(UNWIND_STACK).ok()?;
    Some((p as usize + crate::os::sys::page_size() + UNWIND_STACK) & !15)
}

/// Releases [`INSIDE`] on every way out.
struct Inside;

impl Inside {
    fn enter() -> Inside {
        INSIDE.fetch_add(1, SeqCst);
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Release);
    }
}

/// Releases a claimed cache slot.
struct Claim<'a>(&'a CacheSlot);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Release);
    }
}

fn claim(pool: &[CacheSlot; POOL_LEN]) -> Option<Claim<'_>> {
    pool.iter().find(|s| s.busy.compare_exchange(false, true, Acquire, Relaxed).is_ok()).map(Claim)
}

/// How a DWARF unwind went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unwound {
    /// No unwinder, no free cache, or the pc lies in no module with unwind
    /// information: nothing was written.
    Unavailable,
    /// `n` frames written, the walk reached the stack's root (the
    /// call-frame information of `clone`/`_start` ends it).
    Complete(usize),
    /// `n` frames written, then the walk stopped early: an unreadable
    /// stack word, a broken rule, or `out` full.
    Truncated(usize),
}

/// Unwinds the interrupted context `ctx` with the DWARF call-frame
/// information into `out` (`out[0]` the pc, then return addresses, as
/// [`walk_ucontext`](crate::os::stackwalk::walk_ucontext)).
///
/// Async-signal-safe: no allocation (framehop's
/// `MustNotAllocateDuringUnwind`, section data copied in advance), no lock
/// (atomics only), stack words read like the frame-pointer walk's (a plain
/// load inside known `bounds`, [`read_mem`] elsewhere).
///
/// # Safety
/// `ctx` is the `ucontext_t` the kernel passed to the running signal
/// handler (or an equivalent readable one whose stack is live), and
/// `bounds`, when known, are the interrupted thread's stack.
pub(crate) unsafe fn unwind_ucontext(ctx: *const libc::c_void, bounds: StackBounds, out: &mut [usize]) -> Unwound {
    if ctx.is_null() || out.is_empty() {
        return Unwound::Unavailable;
    }
    let pool = POOL.load(Acquire);
    if pool.is_null() {
        return Unwound::Unavailable;
    }
    // SAFETY: the pool is never freed once published.
    let pool = unsafe { &*pool };
    let _inside = Inside::enter();
    let p = CURRENT.load(SeqCst);
    if p.is_null() {
        return Unwound::Unavailable;
    }
    // SAFETY: a published unwinder is freed only after INSIDE was seen at
    // zero after it was replaced; we entered before loading it.
    let published = unsafe { &*p };
    // SAFETY: per this function's contract.
    let (pc, regs) = unsafe { regs(ctx.cast()) };
    if !published.covers(pc) {
        return Unwound::Unavailable;
    }
    let Some(slot) = claim(pool) else { return Unwound::Unavailable };
    let mut job = Job { published, slot: slot.0, pc, regs: Some(regs), bounds, out, result: Unwound::Unavailable };
    // SAFETY: the slot's stack is ours while we hold the slot; `job` lives
    // across the call; `run_job` does not unwind (an extern "C" fn aborts
    // on panic).
    unsafe { call_on_stack(slot.0.stack_top, run_job, (&mut job as *mut Job<'_>).cast()) };
    job.result
}

/// What the unwind on the slot's stack needs and gives back.
struct Job<'a> {
    published: &'a Published,
    slot: &'a CacheSlot,
    pc: u64,
    regs: Option<framehop::UnwindRegsNative>,
    bounds: StackBounds,
    out: &'a mut [usize],
    result: Unwound,
}

/// The unwind proper, on the slot's stack. Async-signal-safe.
extern "C" fn run_job(job: *mut libc::c_void) {
    // SAFETY: `call_on_stack`'s caller passes a live, exclusive Job.
    let job = unsafe { &mut *job.cast::<Job<'_>>() };
    let Some(regs) = job.regs.take() else { return };
    // SAFETY: the slot is claimed by the handler that made this job.
    let cache = unsafe { &mut *job.slot.cache.get() };
    let bounds = job.bounds;
    let mut read = |addr: u64| read_word(addr as usize, bounds);
    let mut it = job.published.unwinder.iter_frames(job.pc, regs, cache, &mut read);
    let mut n = 0;
    while n < job.out.len() {
        match it.next() {
            Ok(Some(f)) => {
                job.out[n] = f.address() as usize;
                n += 1;
            }
            Ok(None) => {
                job.result = Unwound::Complete(n);
                return;
            }
            Err(_) => break,
        }
    }
    job.result = Unwound::Truncated(n);
}

/// Calls `f(arg)` with the stack pointer at `top`, then restores it.
///
/// # Safety
/// `top` is the 16-aligned top of mapped, writable memory nobody else
/// uses during the call, large enough for `f`; `f` must not unwind.
#[cfg(target_arch = "x86_64")]
unsafe fn call_on_stack(top: usize, f: extern "C" fn(*mut libc::c_void), arg: *mut libc::c_void) {
    // SAFETY: per the contract. r12 is callee-saved, so `f` keeps the old
    // stack pointer in it; `call` leaves rsp 8 below a 16-aligned address,
    // as the ABI wants at a function's entry.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {f}",
            "mov rsp, r12",
            top = in(reg) top,
            f = in(reg) f,
            in("rdi") arg,
            out("r12") _,
            clobber_abi("C"),
        )
    };
}

/// Calls `f(arg)` with the stack pointer at `top`, then restores it.
///
/// # Safety
/// As the x86_64 version.
#[cfg(target_arch = "aarch64")]
unsafe fn call_on_stack(top: usize, f: extern "C" fn(*mut libc::c_void), arg: *mut libc::c_void) {
    // SAFETY: per the contract. x20 is callee-saved, so `f` keeps the old
    // stack pointer in it; sp stays 16-aligned.
    unsafe {
        core::arch::asm!(
            "mov x20, sp",
            "mov sp, {top}",
            "blr {f}",
            "mov sp, x20",
            top = in(reg) top,
            f = in(reg) f,
            in("x0") arg,
            out("x20") _,
            clobber_abi("C"),
        )
    };
}

/// The deepest any slot's unwind stack was used, in bytes (fresh pages
/// read as zero until written). Test only.
#[cfg(test)]
pub(super) fn stack_peak() -> usize {
    let pool = POOL.load(Acquire);
    if pool.is_null() {
        return 0;
    }
    // SAFETY: the pool is never freed.
    let pool = unsafe { &*pool };
    pool.iter()
        .map(|s| {
            let lo = s.stack_top - UNWIND_STACK + 64;
            // SAFETY: inside the slot's mapping, below its top.
            let bytes = unsafe { std::slice::from_raw_parts(lo as *const u8, UNWIND_STACK - 64) };
            bytes.iter().position(|&b| b != 0).map_or(0, |i| UNWIND_STACK - 64 - i)
        })
        .max()
        .unwrap_or(0)
}

/// One stack word for the unwinder: a plain load inside the thread's known
/// stack, a validated read anywhere else (an alternate signal stack, or a
/// thread whose bounds we do not know). Async-signal-safe.
fn read_word(addr: usize, bounds: StackBounds) -> Result<u64, ()> {
    const W: usize = std::mem::size_of::<u64>();
    if addr.is_multiple_of(W) && bounds.contains(addr) && addr.checked_add(W).is_some_and(|e| e <= bounds.hi()) {
        // SAFETY: an aligned word inside the interrupted thread's stack,
        // which is mapped (StackBounds).
        return Ok(unsafe { std::ptr::read_volatile(addr as *const u64) });
    }
    let mut w = [0u8; W];
    if read_mem(addr, &mut w) { Ok(u64::from_ne_bytes(w)) } else { Err(()) }
}

/// The pc and the unwind registers of the interrupted context.
///
/// # Safety
/// `uc` points to a readable `ucontext_t`.
#[cfg(target_arch = "x86_64")]
unsafe fn regs(uc: *const libc::ucontext_t) -> (u64, framehop::UnwindRegsNative) {
    // SAFETY: per the contract; the REG_* indices are within gregs.
    let g = unsafe { &(*uc).uc_mcontext.gregs };
    let (ip, sp, bp) =
        (g[libc::REG_RIP as usize] as u64, g[libc::REG_RSP as usize] as u64, g[libc::REG_RBP as usize] as u64);
    (ip, framehop::UnwindRegsNative::new(ip, sp, bp))
}

/// The pc and the unwind registers of the interrupted context.
///
/// # Safety
/// `uc` points to a readable `ucontext_t`.
#[cfg(target_arch = "aarch64")]
unsafe fn regs(uc: *const libc::ucontext_t) -> (u64, framehop::UnwindRegsNative) {
    // SAFETY: per the contract.
    let m = unsafe { &(*uc).uc_mcontext };
    (m.pc, framehop::UnwindRegsNative::new(m.regs[30], m.sp, m.regs[29]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// About what Rust's runtime gives a thread (SIGSTKSZ-sized).
    const ALT: usize = 12 * 1024;
    static FRAMES: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];
    static N: AtomicUsize = AtomicUsize::new(0);
    static KIND: AtomicUsize = AtomicUsize::new(0);
    static DONE: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigusr2(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let _errno = crate::os::sys::ErrnoGuard::save();
        let mut out = [0usize; 64];
        // SAFETY: `ctx` is this handler's ucontext.
        let r = unsafe { unwind_ucontext(ctx, StackBounds::UNKNOWN, &mut out) };
        let (kind, n) = match r {
            Unwound::Unavailable => (0, 0),
            Unwound::Complete(n) => (1, n),
            Unwound::Truncated(n) => (2, n),
        };
        for (d, &a) in FRAMES.iter().zip(&out[..n]) {
            d.store(a, Relaxed);
        }
        N.store(n, Relaxed);
        KIND.store(kind, Relaxed);
        DONE.store(true, Release);
    }

    #[inline(never)]
    fn deep_b() {
        // SAFETY: signalling our own live thread.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
        std::hint::black_box(());
    }

    #[inline(never)]
    fn deep_a() {
        deep_b();
        std::hint::black_box(());
    }

    /// The DWARF unwind in a real handler on an alternate stack: it goes
    /// through the handler's frame to `deep_b` and `deep_a`, reaches the
    /// thread's root, and uses little of the alternate stack (measured by
    /// painting it). Prints the figure.
    #[test]
    fn unwinds_in_a_handler_within_a_small_alternate_stack() {
        crate::os::stackwalk::init().unwrap();
        super::super::prepare().unwrap();
        let used = std::thread::spawn(|| {
            let mut alt = vec![0xa5u8; ALT];
            let ss = libc::stack_t { ss_sp: alt.as_mut_ptr().cast(), ss_flags: 0, ss_size: ALT };
            // SAFETY: plain data; our own handler and buffer, which outlive
            // the signal (the alternate stack is disabled before `alt` drops).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigusr2 as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut sa.sa_mask);
                assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
                assert_eq!(libc::sigaltstack(&ss, std::ptr::null_mut()), 0);
            }
            deep_a();
            assert!(DONE.load(Acquire));
            let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            // SAFETY: disabling this thread's alternate stack.
            unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
            ALT - alt.iter().position(|&b| b != 0xa5).unwrap_or(ALT)
        })
        .join()
        .unwrap();
        let n = N.load(Relaxed);
        let names: Vec<String> = (0..n)
            .flat_map(|i| {
                let a = FRAMES[i].load(Relaxed);
                let mut v = Vec::new();
                backtrace::resolve((if i == 0 { a + 1 } else { a }) as *mut _, |s| {
                    v.push(s.name().map(|n| n.to_string()).unwrap_or_default())
                });
                v
            })
            .collect();
        let peak = stack_peak();
        eprintln!(
            "DWARF unwind in a handler: {n} frames, {used} bytes of alternate stack (signal frame included), \
             {peak} bytes of the unwind stack"
        );
        assert_eq!(KIND.load(Relaxed), 1, "the unwind did not reach the root: {names:#?}");
        let b = names.iter().position(|s| s.contains("deep_b")).unwrap_or_else(|| panic!("{names:#?}"));
        assert!(names[b + 1..].iter().any(|s| s.contains("deep_a")), "{names:#?}");
        assert!(peak > 0 && peak < UNWIND_STACK / 2, "{peak} bytes of the unwind stack");
    }
}
