//! **Not part of failstop's API.** What the C library (`failstop-ffi`, the
//! `ffi/` crate of this workspace, which builds `libfailstop.so`) needs
//! beyond the public Rust API: a registration that is not tied to a
//! [`ThreadHandle`](crate::ThreadHandle)'s lifetime, and the slot it lives
//! in, so that `failstop_touch` stays a load, a compare and a store.
//!
//! Hidden from the docs and exempt from semver: only `failstop-ffi` of the
//! same version may use it.

use crate::error::Error;
use crate::os::sys;
use crate::state::settings::LIVE;
use crate::state::slots::{self, ACTIVE, DETACHED, Slot};
use crate::watch::registry;
use std::sync::atomic::Ordering::*;

/// Watches the calling thread under `name`, as [`crate::register`], and
/// hands the registration over: it ends with [`unregister`] on this thread
/// or when the thread exits. Returns the slot index and generation.
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new())?;
/// let (idx, generation) = failstop::ffi_support::register("c-thread")?;
/// failstop::ffi_support::live(idx, generation).unwrap().touch();
/// failstop::ffi_support::unregister(idx, generation).unwrap();
/// # Ok::<(), failstop::Error>(())
/// ```
pub fn register(name: &str) -> Result<(usize, u32), Error> {
    let handle = crate::engine::watchdog::register(name)?;
    let id = handle.slot_id();
    // The registration now belongs to the caller: released by `unregister`,
    // or by the thread-exit destructor.
    std::mem::forget(handle);
    Ok(id)
}

/// Why [`unregister`] did nothing.
///
/// ```
/// assert_ne!(failstop::ffi_support::Unregister::Stale, failstop::ffi_support::Unregister::OtherThread);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregister {
    /// The registration was already released (or its thread exited).
    Stale,
    /// Called from another thread than the registering one, which is still
    /// registered: nothing changed.
    OtherThread,
}

/// Ends registration `generation` of slot `idx`, on its own thread.
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new())?;
/// let (idx, generation) = failstop::ffi_support::register("c-thread")?;
/// assert_eq!(failstop::ffi_support::unregister(idx, generation), Ok(()));
/// assert_eq!(failstop::ffi_support::unregister(idx, generation), Err(failstop::ffi_support::Unregister::Stale));
/// # Ok::<(), failstop::Error>(())
/// ```
pub fn unregister(idx: usize, generation: u32) -> Result<(), Unregister> {
    let slot = slots::slot(idx).ok_or(Unregister::Stale)?;
    let st = slot.state.load(Acquire);
    if slot.generation.load(Relaxed) != generation || (st != ACTIVE && st != DETACHED) {
        return Err(Unregister::Stale);
    }
    if sys::gettid() != slot.tid.load(Relaxed) {
        return Err(Unregister::OtherThread);
    }
    registry::release(idx, generation);
    Ok(())
}

/// A live registration's slot: the hot path of the C ABI.
///
/// ```no_run
/// let _wd = failstop::start(failstop::Config::new())?;
/// let (idx, generation) = failstop::ffi_support::register("c-thread")?;
/// let s = failstop::ffi_support::live(idx, generation).expect("live");
/// s.idle_begin();
/// s.idle_end();
/// s.tick();
/// # Ok::<(), failstop::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct RawSlot(&'static Slot);

impl std::fmt::Debug for RawSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSlot").field("tid", &self.0.tid.load(Relaxed)).finish()
    }
}

/// The slot of registration `generation` of slot `idx` while it is that
/// slot's current registration; `None` for an index out of range or a
/// stale generation. A bounds check and one load.
///
/// ```
/// assert!(failstop::ffi_support::live(usize::MAX, 1).is_none());
/// ```
#[inline(always)]
pub fn live(idx: usize, generation: u32) -> Option<RawSlot> {
    let slot = slots::slot(idx)?;
    (slot.generation.load(Relaxed) == generation).then_some(RawSlot(slot))
}

impl RawSlot {
    /// [`ThreadHandle::touch`](crate::ThreadHandle::touch).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().touch();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn touch(self) {
        self.0.touch();
    }

    /// [`ThreadHandle::set_context`](crate::ThreadHandle::set_context) for
    /// a NUL-terminated C string (NULL says nothing).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().set_c_context(c"parsing".as_ptr());
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn set_c_context(self, context: *const std::ffi::c_char) {
        self.0.set_context(slots::pack_context(context as usize, None));
    }

    /// [`ThreadHandle::tick`](crate::ThreadHandle::tick).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().tick();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn tick(self) {
        self.0.tick();
    }

    /// Enters an idle scope (see [`ThreadHandle::idle`](crate::ThreadHandle::idle)).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().idle_begin();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn idle_begin(self) {
        self.0.enter(&self.0.idle_depth);
    }

    /// Leaves an idle scope, which counts as a touch; an unmatched end is
    /// ignored.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().idle_end();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn idle_end(self) {
        self.0.leave_idle();
    }

    /// Enters a harmless scope (see [`ThreadHandle::harmless`](crate::ThreadHandle::harmless)).
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().harmless_begin();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn harmless_begin(self) {
        self.0.enter(&self.0.harmless_depth);
    }

    /// Leaves a harmless scope; an unmatched end is ignored.
    ///
    /// ```no_run
    /// # let _wd = failstop::start(failstop::Config::new())?;
    /// # let (i, g) = failstop::ffi_support::register("t")?;
    /// failstop::ffi_support::live(i, g).unwrap().harmless_end();
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[inline(always)]
    pub fn harmless_end(self) {
        self.0.leave(&self.0.harmless_depth);
    }
}

/// Whether a watchdog runs in this process, however it was started.
///
/// ```
/// assert!(!failstop::ffi_support::running());
/// ```
pub fn running() -> bool {
    LIVE.running()
}

/// An [`Error`] of `kind` with a full message, for failures the C library
/// finds itself (a bad `struct_size`, a second start).
///
/// ```
/// let e = failstop::ffi_support::error(failstop::ErrorKind::InvalidConfig, "failstop_config.action=7: unknown");
/// assert_eq!(e.kind(), failstop::ErrorKind::InvalidConfig);
/// ```
pub fn error(kind: crate::ErrorKind, message: impl Into<String>) -> Error {
    Error::new(kind, message)
}

/// The number of an error kind in the C ABI (its `FAILSTOP_E_*` code is the
/// negated number). An exhaustive match: a new kind must be given one.
///
/// ```
/// assert_eq!(failstop::ffi_support::kind_number(failstop::ErrorKind::InvalidConfig), 1);
/// ```
pub fn kind_number(kind: crate::ErrorKind) -> u8 {
    use crate::ErrorKind::*;
    match kind {
        InvalidConfig => 1,
        AlreadyRunning => 2,
        NotRunning => 3,
        AlreadyRegistered => 4,
        ResourceLimit => 5,
        Unsupported => 6,
        Os => 7,
    }
}
