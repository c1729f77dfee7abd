//! The scope guards of a [`ThreadHandle`](crate::ThreadHandle): idle and
//! harmless, each one relaxed store on entry and on exit.

use crate::state::slots::Slot;
use std::marker::PhantomData;

/// The engine's idle scope (see [`crate::IdleGuard`]); leaving it touches.
#[must_use = "the thread is idle only while the guard lives"]
pub(crate) struct IdleGuard<'a> {
    slot: &'static Slot,
    /// Borrows the handle: the guard cannot outlive it.
    _handle: PhantomData<&'a ()>,
}

impl IdleGuard<'_> {
    /// Enters the idle scope of `slot` (the handle's own slot). Inlined
    /// into callers in other crates too (the preload's waits).
    #[inline]
    pub(crate) fn new(slot: &'static Slot) -> Self {
        slot.enter(&slot.idle_depth);
        IdleGuard { slot, _handle: PhantomData }
    }
}

impl Drop for IdleGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.leave_idle();
    }
}

/// The engine's harmless scope (see [`crate::HarmlessGuard`]).
#[must_use = "the thread is harmless only while the guard lives"]
pub(crate) struct HarmlessGuard<'a> {
    slot: &'static Slot,
    /// Borrows the handle: the guard cannot outlive it.
    _handle: PhantomData<&'a ()>,
}

impl HarmlessGuard<'_> {
    /// Enters the harmless scope of `slot` (the handle's own slot).
    #[inline]
    pub(crate) fn new(slot: &'static Slot) -> Self {
        slot.enter(&slot.harmless_depth);
        HarmlessGuard { slot, _handle: PhantomData }
    }
}

impl Drop for HarmlessGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.leave(&self.slot.harmless_depth);
    }
}

impl std::fmt::Debug for IdleGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleGuard").field("tid", &self.slot.tid.load(std::sync::atomic::Ordering::Relaxed)).finish()
    }
}

impl std::fmt::Debug for HarmlessGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarmlessGuard").field("tid", &self.slot.tid.load(std::sync::atomic::Ordering::Relaxed)).finish()
    }
}
