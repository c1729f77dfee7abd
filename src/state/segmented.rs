//! [`Segmented`]: a table of up to `SEGMENTS × SEG` entries whose memory is
//! allocated a segment at a time, when an index in it is first handed out,
//! and never freed.
//!
//! # Signal-safety contract
//!
//! [`Segmented::get`] is one acquire load of a segment pointer and an index:
//! async-signal-safe, and safe on any thread at any time, because a segment,
//! once published, is never moved or freed. A segment is allocated zeroed
//! (fresh pages from the allocator, resident only once written), so every
//! entry type must be valid as all-zero bytes ([`Zeroed`]). Only
//! [`Segmented::ensure`] allocates; it runs in normal context (registering a
//! thread), never in a signal handler.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::sync::atomic::{AtomicPtr, Ordering::*};

/// A type whose all-zero bit pattern is a valid value (atomics, arrays and
/// structs of them).
///
/// # Safety
///
/// Implement only for types that are valid when every byte is zero and
/// that have no `Drop` (segments are never dropped).
pub(crate) unsafe trait Zeroed: Sync + 'static {}

// SAFETY: an atomic integer of value 0 is all-zero bytes.
unsafe impl Zeroed for std::sync::atomic::AtomicU64 {}

/// Up to `SEGMENTS` segments of `SEG` entries of `T`.
pub(crate) struct Segmented<T: Zeroed, const SEG: usize, const SEGMENTS: usize> {
    segments: [AtomicPtr<[T; SEG]>; SEGMENTS],
}

impl<T: Zeroed, const SEG: usize, const SEGMENTS: usize> Segmented<T, SEG, SEGMENTS> {
    /// An empty table (no memory yet).
    pub(crate) const fn new() -> Self {
        Segmented { segments: [const { AtomicPtr::new(std::ptr::null_mut()) }; SEGMENTS] }
    }

    /// The entry at `idx`, if its segment exists. Async-signal-safe.
    #[inline]
    pub(crate) fn get(&self, idx: usize) -> Option<&'static T> {
        let seg = self.segments.get(idx / SEG)?.load(Acquire);
        // SAFETY: a non-null pointer is a segment published by `ensure`:
        // zeroed memory (valid for `T: Zeroed`), never moved or freed, so a
        // shared reference to it may live for 'static.
        unsafe { seg.as_ref() }.map(|s| &s[idx % SEG])
    }

    /// The entries below `end` whose segments exist, a segment at a time:
    /// `f(first index, entries)`. Async-signal-safe.
    pub(crate) fn for_each_segment(&self, end: usize, mut f: impl FnMut(usize, &'static [T])) {
        for (k, seg) in self.segments.iter().enumerate().take(end.div_ceil(SEG)) {
            // SAFETY: as in `get`: a published segment is never moved or
            // freed.
            if let Some(entries) = unsafe { seg.load(Acquire).as_ref() } {
                let base = k * SEG;
                f(base, &entries[..(end - base).min(SEG)]);
            }
        }
    }

    /// Makes sure the segment holding `idx` exists, allocating it (zeroed)
    /// if not. Normal context only. Fails when `idx` is beyond the table or
    /// the memory cannot be had.
    pub(crate) fn ensure(&self, idx: usize) -> Result<(), &'static str> {
        let Some(slot) = self.segments.get(idx / SEG) else {
            return Err("index beyond the table");
        };
        if !slot.load(Acquire).is_null() {
            return Ok(());
        }
        const { assert!(SEG > 0 && std::mem::size_of::<T>() > 0, "a segment has a size") };
        let layout = Layout::new::<[T; SEG]>();
        // SAFETY: the layout has a non-zero size (asserted at compile time).
        let fresh = unsafe { alloc_zeroed(layout) }.cast::<[T; SEG]>();
        if fresh.is_null() {
            return Err("out of memory");
        }
        if slot.compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire).is_err() {
            // Another thread published this segment first.
            // SAFETY: `fresh` came from `alloc_zeroed` with this layout and
            // was never published.
            unsafe { dealloc(fresh.cast(), layout) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn segments_appear_when_first_used_and_stay() {
        static T: Segmented<AtomicU64, 4, 3> = Segmented::new();
        assert!(T.get(5).is_none(), "no segment before it is ensured");
        T.ensure(5).expect("segment 1");
        let e = T.get(5).expect("entry 5");
        assert_eq!(e.load(Relaxed), 0, "zeroed");
        e.store(7, Relaxed);
        T.ensure(4).expect("same segment");
        assert_eq!(T.get(5).expect("entry 5").load(Relaxed), 7, "ensure again keeps the segment");
        assert!(T.get(0).is_none() && T.get(8).is_none(), "other segments stay unallocated");
        assert!(T.ensure(12).is_err() && T.get(12).is_none(), "beyond the table");
        let mut seen = vec![];
        T.for_each_segment(7, |base, entries| seen.push((base, entries.len())));
        assert_eq!(seen, [(4, 3)], "only existing segments, cut at the end");
    }
}
