//! The slot table of watched threads: up to [`MAX_THREADS`] slots, in
//! segments of [`SEGMENT_SLOTS`] allocated as registrations first reach
//! them (see `segmented`), each slot aligned to its own cache lines.
//!
//! # Signal-safety contract
//!
//! A segment, once allocated, is never moved or freed, and every field of a
//! slot is an atomic, so the signal handler can look a slot up ([`slot`])
//! at any time. A slot goes `FREE → CLAIMED → ACTIVE` when a thread
//! registers (fields are filled while `CLAIMED`, then published with a
//! release store), `ACTIVE → DETACHED` when the watchdog stops (the timer is
//! gone, the owner still holds its handle), and back to `FREE` only when its
//! owner unregisters or is found dead. The handler acts on a slot only when
//! it is `ACTIVE` and its tid is the handler's own thread. Registering and
//! releasing are in `watch::registry`; this file hands out indices:
//! [`claim`] takes a freed slot from a lock-free list or the next fresh one
//! (O(1) either way), [`free`] gives it back, and [`high_water`] bounds
//! every walk of the table by the slots ever handed out.
//!
//! # The hot path
//!
//! [`Slot::touch`] and [`Slot::tick`] are a relaxed load and a relaxed store
//! to a counter that only the owning thread writes, and a relaxed store of
//! the progress epoch ([`EPOCH`]) beside it, in a cache line no other
//! thread writes: no clock read, no system call, no TLS lookup. The epoch
//! tells the monitor when the last progress was, to within one of its
//! loops, without looking at the thread in between.

pub(crate) use super::limits::MAX_THREADS;
use super::segmented::{Segmented, Zeroed};
use crate::os::stackwalk::{StackBounds, read_mem};
use crate::verdict::Tracker;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};

/// The progress epoch: a count the monitor advances at every loop. Each
/// progress mark stores it in its slot ([`Slot::stamp`]), so that the
/// monitor knows which of its loops a thread's last progress came after.
/// Read on every touch: in a cache line of its own, written only by the
/// monitor.
pub(crate) static EPOCH: CachePadded<AtomicU32> = CachePadded::new(AtomicU32::new(0));

/// Bytes of a thread name kept (longer names are cut).
pub(crate) const NAME_LEN: usize = 48;

/// Bytes of a thread's context text shown (longer texts are cut).
pub(crate) const CONTEXT_LEN: usize = 64;
/// The context word: the text's address in the low 48 bits (every user
/// address of x86_64 and aarch64 Linux fits, without 5-level paging hints),
/// its length in the high 16.
const CONTEXT_ADDR_BITS: u32 = 48;
const CONTEXT_ADDR_MASK: u64 = (1 << CONTEXT_ADDR_BITS) - 1;
/// The length field of a NUL-terminated C string.
const CONTEXT_C_STRING: usize = 0xffff;

/// Packs a context text at `addr` for [`Slot::set_context`]: `len` bytes,
/// or with `None` a NUL-terminated C string. An empty text or a null
/// address is "nothing said" (0); so is an address that does not fit in 48
/// bits (the context is then not shown: it costs a branch, never a wrong
/// text). A text longer than 65534 bytes is kept as that long (only
/// [`CONTEXT_LEN`] bytes are ever shown).
#[inline(always)]
pub(crate) fn pack_context(addr: usize, len: Option<usize>) -> u64 {
    let addr = addr as u64;
    let len = match len {
        Some(0) => return 0,
        Some(n) => n.min(CONTEXT_C_STRING - 1),
        None => CONTEXT_C_STRING,
    };
    if addr == 0 || addr > CONTEXT_ADDR_MASK {
        return 0;
    }
    addr | (len as u64) << CONTEXT_ADDR_BITS
}

/// [`Slot::departed`]: the owner unwound from a panic with its handle alive.
pub(crate) const DEPARTED_PANICKED: u32 = 1;
/// [`Slot::departed`]: the owner no longer exists (it ended without running
/// its thread-exit path: `SYS_exit`, a kernel bug).
pub(crate) const DEPARTED_GONE: u32 = 2;
/// [`Slot::departed`]: the owner is the main thread and a zombie (it ended
/// by `SYS_exit` while the other threads run on).
pub(crate) const DEPARTED_ZOMBIE: u32 = 3;

/// A slot index that names no slot (a culprit that is not watched: the
/// unregistered holder of a lock a watched thread waits for).
pub(crate) const NO_SLOT: usize = usize::MAX;

/// Slot states (see the module doc).
pub(crate) const FREE: u32 = 0;
pub(crate) const CLAIMED: u32 = 1;
pub(crate) const ACTIVE: u32 = 2;
pub(crate) const DETACHED: u32 = 3;

/// One registered thread. The first cache line holds what the owner writes
/// on its hot path; everything else is written rarely. All-zero is a free
/// slot (see [`Zeroed`]).
#[repr(C)]
pub(crate) struct Slot {
    // --- hot: written only by the owner thread ---
    pub touch_seq: AtomicU64,
    pub tick_seq: AtomicU64,
    /// What the thread says it is doing: a `'static` text packed in one
    /// word (see [`pack_context`]); 0 = nothing said.
    pub context: AtomicU64,
    /// [`EPOCH`] at the last progress mark, scope left, or suspension.
    pub stamp: AtomicU32,
    pub idle_depth: AtomicU32,
    pub harmless_depth: AtomicU32,
    /// failstop's own signals (timer ticks, capture requests) handled on
    /// the owner thread; written only by the owner's handler (wrapping).
    pub own_signals: AtomicU32,
    /// The hot line ends here: what follows is in other cache lines.
    _hot_end: CachePadded<()>,
    // --- what a look of the monitor reads, in the first cold line ---
    pub state: AtomicU32,
    pub generation: AtomicU32,
    pub tid: AtomicI32,
    /// Why the owner is gone while its slot is still `ACTIVE` (one of the
    /// `DEPARTED_*` values; 0 = it is not known to be gone). Set by the
    /// owner when it unwinds from a panic with its handle alive, or by the
    /// monitor when it finds the thread gone.
    pub departed: AtomicU32,
    pub cpu_clock: AtomicI32,
    /// The next free slot's index + 1 while this one is on the free list.
    pub next_free: AtomicU32,
    /// Progress observed from another thread: `failstop::tokio`'s sampler
    /// saw the worker's scheduler loop come around. Counts as a touch.
    /// Any thread, `fetch_add`.
    pub remote_seq: AtomicU64,
    /// Set by another thread: the thread does no watched work for now (a
    /// tokio worker that handed its core to another thread). Counts as a
    /// scope: never judged while set. Written through
    /// [`Slot::set_suspended`].
    pub suspended: AtomicBool,
    pub has_timer: AtomicBool,
    /// The name registered was the thread's `comm` at the time (as the
    /// preload registers every thread): the dump then names the thread by
    /// its current `comm`, which the program may have changed since, and
    /// adds the registered name when they differ. A name of the program's
    /// own choosing is printed as registered.
    pub named_by_comm: AtomicBool,
    /// The POSIX timer (a `timer_t`), valid while `has_timer`.
    pub timer: AtomicUsize,
    pub stack_lo: AtomicUsize,
    pub stack_hi: AtomicUsize,
    // --- written rarely ---
    pub name_len: AtomicUsize,
    pub name: [AtomicU8; NAME_LEN],
    // --- the stuck rule's state: written only by the owner's handler ---
    pub seen_touch: AtomicU64,
    pub seen_tick: AtomicU64,
    pub progress_cpu: AtomicU64,
    pub touch_cpu: AtomicU64,
    pub warn_next: AtomicU64,
    pub armed: AtomicBool,
    pub convicted: AtomicBool,
    /// A verdict reached on this thread after the dump was already written
    /// (non-fatal modes): the figure, for the reporter to print; 0 = none.
    pub late_verdict: AtomicU64,
    /// The kind of that late verdict ([`VerdictKind::code`](crate::verdict::VerdictKind::code)).
    pub late_kind: AtomicU32,
}

// SAFETY: every field is an atomic (or an array of them, or the zero-sized
// padding), valid as zero bytes: an all-zero slot is FREE, generation 0.
unsafe impl Zeroed for Slot {}

impl Slot {
    /// The thread's name as registered (copied out; async-signal-safe).
    pub(crate) fn name_into(&self, out: &mut [u8; NAME_LEN]) -> usize {
        let n = self.name_len.load(Relaxed).min(NAME_LEN);
        for (o, c) in out.iter_mut().zip(&self.name[..n]) {
            *o = c.load(Relaxed);
        }
        n
    }

    /// Says what the thread is doing (see [`pack_context`]): one relaxed
    /// store by the owner.
    #[inline(always)]
    pub(crate) fn set_context(&self, packed: u64) {
        self.context.store(packed, Relaxed);
    }

    /// The thread's context text, copied out with validated reads (a text
    /// that is not readable any more yields nothing, never a fault), cut to
    /// [`CONTEXT_LEN`] bytes. Async-signal-safe.
    pub(crate) fn context_into(&self, out: &mut [u8; CONTEXT_LEN]) -> usize {
        let word = self.context.load(Relaxed);
        let addr = (word & CONTEXT_ADDR_MASK) as usize;
        let len = (word >> CONTEXT_ADDR_BITS) as usize;
        if addr == 0 {
            return 0;
        }
        if len != CONTEXT_C_STRING {
            let n = len.min(CONTEXT_LEN);
            return if read_mem(addr, &mut out[..n]) { n } else { 0 };
        }
        // A C string: read it in small steps (the bytes after its NUL may
        // be unmapped), up to its NUL.
        let mut n = 0;
        while n < CONTEXT_LEN {
            let step = (CONTEXT_LEN - n).min(16 - (addr + n) % 16);
            if !read_mem(addr + n, &mut out[n..n + step]) {
                return 0;
            }
            if let Some(nul) = out[n..n + step].iter().position(|&c| c == 0) {
                return n + nul;
            }
            n += step;
        }
        n
    }

    /// The loop came around (progress; the warning clock restarts). Only the
    /// owner thread writes these counters, so a relaxed load and store (no
    /// locked read-modify-write) are enough. Shared by `ThreadHandle` and
    /// the C ABI.
    #[inline(always)]
    pub(crate) fn touch(&self) {
        self.touch_seq.store(self.touch_seq.load(Relaxed).wrapping_add(1), Relaxed);
        self.stamp();
    }

    /// One unit of work done (progress for the verdict only).
    #[inline(always)]
    pub(crate) fn tick(&self) {
        self.tick_seq.store(self.tick_seq.load(Relaxed).wrapping_add(1), Relaxed);
        self.stamp();
    }

    /// Notes the current [`EPOCH`]: something the monitor must see happened
    /// (progress, a scope left). A relaxed load of a line that
    /// changes once per monitor loop, and a relaxed store.
    #[inline(always)]
    fn stamp(&self) {
        self.stamp.store(EPOCH.load(Relaxed), Relaxed);
    }

    /// Enters an idle or harmless scope (`depth` is this slot's
    /// `idle_depth` or `harmless_depth`); scopes nest. Not stamped: inside a
    /// scope only a deadlock is judged, which is certain whenever its
    /// window began; leaving is stamped.
    #[inline(always)]
    pub(crate) fn enter(&self, depth: &AtomicU32) {
        depth.store(depth.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Leaves a scope; an unmatched leave (a C caller's mistake) stays at 0.
    /// Stamped: a thread's windows start again when it leaves a scope.
    #[inline(always)]
    pub(crate) fn leave(&self, depth: &AtomicU32) {
        let v = depth.load(Relaxed);
        depth.store(v.saturating_sub(1), Relaxed);
        self.stamp();
    }

    /// Leaves an idle scope with a touch (what leaving an idle scope
    /// counts as), stamped once.
    #[inline(always)]
    pub(crate) fn leave_idle(&self) {
        self.touch_seq.store(self.touch_seq.load(Relaxed).wrapping_add(1), Relaxed);
        self.leave(&self.idle_depth);
    }

    /// Progress observed by another thread (see `remote_seq`): a touch.
    #[inline]
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn touch_remote(&self) {
        self.remote_seq.fetch_add(1, Relaxed);
        self.stamp();
    }

    /// Suspends the thread's watch or resumes it (see `suspended`); any
    /// thread. Resuming starts its windows again, as leaving a scope does.
    #[inline]
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn set_suspended(&self, on: bool) {
        self.suspended.store(on, Relaxed);
        self.stamp();
    }

    /// The touch count the rules see: the owner's touches plus the remote
    /// ones. Both only grow, so the sum moves whenever either does.
    #[inline]
    pub(crate) fn touches(&self) -> u64 {
        self.touch_seq.load(Relaxed).wrapping_add(self.remote_seq.load(Relaxed))
    }

    /// Counts one of failstop's own signals handled on the owner thread.
    /// Only the owner's handler writes the counter. Async-signal-safe.
    pub(crate) fn note_own_signal(&self) {
        self.own_signals.store(self.own_signals.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Whether the thread is inside an idle or harmless scope, or suspended.
    pub(crate) fn scoped(&self) -> bool {
        self.idle_depth.load(Relaxed) > 0 || self.harmless_depth.load(Relaxed) > 0 || self.suspended.load(Relaxed)
    }

    pub(crate) fn load_tracker(&self) -> Tracker {
        Tracker {
            seen_touch: self.seen_touch.load(Relaxed),
            seen_tick: self.seen_tick.load(Relaxed),
            progress_cpu: self.progress_cpu.load(Relaxed),
            touch_cpu: self.touch_cpu.load(Relaxed),
            warn_next: self.warn_next.load(Relaxed),
            armed: self.armed.load(Relaxed),
            convicted: self.convicted.load(Relaxed),
        }
    }

    pub(crate) fn store_tracker(&self, t: &Tracker) {
        self.seen_touch.store(t.seen_touch, Relaxed);
        self.seen_tick.store(t.seen_tick, Relaxed);
        self.progress_cpu.store(t.progress_cpu, Relaxed);
        self.touch_cpu.store(t.touch_cpu, Relaxed);
        self.warn_next.store(t.warn_next, Relaxed);
        self.armed.store(t.armed, Relaxed);
        self.convicted.store(t.convicted, Relaxed);
    }

    /// The owner's stack, as recorded when it registered. Async-signal-safe.
    pub(crate) fn stack_bounds(&self) -> StackBounds {
        StackBounds::new(self.stack_lo.load(Relaxed), self.stack_hi.load(Relaxed))
    }

    /// Whether the slot is watched and belongs to thread `tid`.
    pub(crate) fn is_active_for(&self, tid: libc::pid_t) -> bool {
        self.state.load(Acquire) == ACTIVE && self.tid.load(Relaxed) == tid
    }
}

/// Slots per segment of the table: the memory a registration pays for at
/// most, beyond its own slot, when it opens a new segment.
pub(crate) const SEGMENT_SLOTS: usize = 256;

/// The slots (see the module doc).
static SLOTS: Segmented<Slot, SEGMENT_SLOTS, { MAX_THREADS / SEGMENT_SLOTS }> = Segmented::new();
/// Indices below this have been handed out at least once.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
/// The next index never handed out.
static FRESH: AtomicUsize = AtomicUsize::new(0);
/// The free list's head: a change count in the high 32 bits (against ABA),
/// the first free slot's index + 1 in the low 32 (0: empty).
static FREE_HEAD: AtomicU64 = AtomicU64::new(0);

/// The slot at `idx`, if it exists (async-signal-safe).
#[inline]
pub(crate) fn slot(idx: usize) -> Option<&'static Slot> {
    SLOTS.get(idx)
}

/// How many slots have ever been handed out: every slot in use has an
/// index below it. Async-signal-safe.
#[inline]
pub(crate) fn high_water() -> usize {
    HIGH_WATER.load(Acquire)
}

/// The slots that have ever been handed out, with their indices (some may
/// be free again). Async-signal-safe.
pub(crate) fn iter() -> impl Iterator<Item = (usize, &'static Slot)> {
    (0..high_water()).filter_map(|i| slot(i).map(|s| (i, s)))
}

/// [`claim`]'s error when every slot is in use.
pub(crate) const ALL_IN_USE: &str = "all slots are in use";

/// Claims a free slot (`FREE → CLAIMED`): a freed one from the free list,
/// else the next fresh index, whose segment is allocated if it is the
/// first of its segment. Returns its index and new generation. O(1);
/// normal context. Fails when all [`MAX_THREADS`] slots are in use or a
/// new segment cannot be allocated.
pub(crate) fn claim() -> Result<(usize, u32), &'static str> {
    let idx = loop {
        if let Some(idx) = pop_free() {
            break idx;
        }
        let fresh = FRESH.load(Relaxed);
        if fresh >= MAX_THREADS {
            // Every index is handed out; one may be on its way back.
            match pop_free() {
                Some(idx) => break idx,
                None => return Err(ALL_IN_USE),
            }
        }
        // The segment first: an index is taken only once its slot exists.
        SLOTS.ensure(fresh)?;
        if FRESH.compare_exchange(fresh, fresh + 1, Relaxed, Relaxed).is_ok() {
            HIGH_WATER.fetch_max(fresh + 1, Release);
            break fresh;
        }
    };
    let Some(s) = slot(idx) else { return Err("a slot without its segment") };
    if s.state.compare_exchange(FREE, CLAIMED, Acquire, Relaxed).is_err() {
        return Err("a slot on the free list is in use");
    }
    Ok((idx, s.generation.fetch_add(1, Relaxed).wrapping_add(1)))
}

/// Gives slot `idx` back (`→ FREE`, onto the free list). The caller owns
/// the slot (it moved it to `CLAIMED`). Lock-free, async-signal-safe.
pub(crate) fn free(idx: usize) {
    let Some(s) = slot(idx) else { return };
    s.state.store(FREE, Release);
    push_free(idx);
}

fn push_free(idx: usize) {
    let Some(s) = slot(idx) else { return };
    let mut head = FREE_HEAD.load(Acquire);
    loop {
        s.next_free.store(head as u32, Relaxed);
        let new = ((head >> 32).wrapping_add(1) << 32) | (idx as u64 + 1);
        match FREE_HEAD.compare_exchange_weak(head, new, AcqRel, Acquire) {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

fn pop_free() -> Option<usize> {
    let mut head = FREE_HEAD.load(Acquire);
    loop {
        let first = (head & 0xffff_ffff) as usize;
        if first == 0 {
            return None;
        }
        // A slot is never freed from memory: reading the next link of one
        // that another thread popped meanwhile is harmless (the exchange
        // below then fails on the change count).
        let next = slot(first - 1).map_or(0, |s| u64::from(s.next_free.load(Relaxed)));
        let new = ((head >> 32).wrapping_add(1) << 32) | next;
        match FREE_HEAD.compare_exchange_weak(head, new, AcqRel, Acquire) {
            Ok(_) => return Some(first - 1),
            Err(h) => head = h,
        }
    }
}

/// Number of slots in the ACTIVE state.
pub(crate) fn watched_count() -> usize {
    iter().filter(|(_, s)| s.state.load(Relaxed) == ACTIVE).count()
}

/// Finds the slot watching `tid` (async-signal-safe, linear scan).
pub(crate) fn find_tid(tid: libc::pid_t) -> Option<usize> {
    iter().position(|(_, s)| {
        let st = s.state.load(Acquire);
        (st == ACTIVE || st == DETACHED) && s.tid.load(Relaxed) == tid
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registered thread pays for its slot (a page becomes resident only
    /// once a slot on it is used); one must stay small, and its hot line
    /// must be its own.
    #[test]
    fn a_slot_stays_small() {
        let bytes = std::mem::size_of::<Slot>();
        println!("slot: {bytes} bytes, a segment of {SEGMENT_SLOTS}: {} KiB", bytes * SEGMENT_SLOTS / 1024);
        assert!(bytes <= 512, "a slot takes {bytes} bytes");
        assert_eq!(std::mem::offset_of!(Slot, state) % 64, 0, "the hot line is the owner's alone");
        let look = [std::mem::offset_of!(Slot, suspended), std::mem::offset_of!(Slot, remote_seq)];
        assert!(
            look.iter().all(|&o| o < std::mem::offset_of!(Slot, state) + 64),
            "what the monitor's look reads is in one cold line"
        );
        assert_eq!(std::mem::align_of::<Slot>() % 64, 0, "slots do not share cache lines");
    }

    #[test]
    fn freed_slots_are_claimed_again_before_fresh_ones() {
        let (a, ga) = claim().expect("a slot");
        let (b, _) = claim().expect("another");
        assert_ne!(a, b);
        assert!(high_water() > a.max(b));
        free(a);
        let (c, gc) = claim().expect("the freed one");
        assert_eq!(c, a, "the free list comes first");
        assert_ne!(gc, ga, "a new generation");
        free(b);
        free(c);
    }
}
