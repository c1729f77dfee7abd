//! `failstop_thread`: a registered thread's handle, and the calls made
//! with it (the hot path: touch, tick, the idle and harmless scopes).

use crate::error::{FAILSTOP_E_NULL, FAILSTOP_OK, fail, guarded, guarded_void, set_last_error};
use failstop::ffi_support::{self, RawSlot, Unregister};
use failstop::limits::MAX_THREADS;
use libc::c_char;
use std::ffi::CStr;

/// A registered thread, returned by `failstop_register`. Opaque: use it only
/// through the `failstop_*` functions, on the thread that registered it.
///
/// The pointer is not an address: it encodes the registry slot, the
/// registration's generation and an odd tag that no aligned pointer has.
/// Nothing is allocated per registration, and a handle that is stale
/// (unregistered, its thread gone) or is not a handle at all is recognised
/// and ignored instead of being dereferenced.
pub struct failstop_thread {
    _opaque: [u8; 0],
}

/// Low 16 bits of every handle.
const HANDLE_TAG: usize = 0xFA57;

const _: () = assert!(usize::BITS == 64, "handles encode a 32-bit generation and a slot index in a pointer");

const _: () = assert!(MAX_THREADS <= 1 << 16, "a slot index must fit in 16 bits of a handle");

/// The handle of registration `generation` of slot `idx`:
/// `generation << 32 | idx << 16 | HANDLE_TAG`, never NULL.
fn handle_for(idx: usize, generation: u32) -> *mut failstop_thread {
    (((generation as usize) << 32) | (idx << 16) | HANDLE_TAG) as *mut failstop_thread
}

/// The slot index a handle names and the generation it was given for, if
/// `t` is a handle at all (NULL and other values are not). Pure arithmetic.
#[inline(always)]
fn decode(t: *mut failstop_thread) -> Option<(usize, u32)> {
    let v = t as usize;
    if v & 0xffff != HANDLE_TAG {
        return None;
    }
    Some(((v >> 16) & 0xffff, (v >> 32) as u32))
}

/// The slot of a handle whose registration is still the slot's current
/// one; `None` for NULL, a stale handle or a value that is not a handle.
/// A mask, a shift, a bounds check and one load: the hot path's cost.
#[inline(always)]
fn live(t: *mut failstop_thread) -> Option<RawSlot> {
    let (idx, generation) = decode(t)?;
    ffi_support::live(idx, generation)
}

/// Watches the calling thread under `name` (cut to 48 bytes; invalid UTF-8
/// is replaced). Judged from its first `failstop_touch` or `failstop_tick` on.
///
/// Returns a handle for the calling thread only, or NULL with a message for
/// `failstop_last_error`: `name` NULL, no watchdog running (also before
/// start and after stop), the thread already registered, or no slot left.
/// Release it with `failstop_unregister` on the same thread; a thread that
/// exits without doing so is released anyway (its handle then goes stale:
/// every call with it is a no-op). Nothing is allocated per handle.
///
/// Not async-signal-safe (it creates a POSIX timer, maps memory and may
/// allocate): never call it from a signal handler.
///
/// # Safety
///
/// `name` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn failstop_register(name: *const c_char) -> *mut failstop_thread {
    let mut out = std::ptr::null_mut();
    guarded("failstop_register", || {
        if name.is_null() {
            set_last_error("failstop: failstop_register: name is NULL");
            return FAILSTOP_E_NULL;
        }
        // SAFETY: the caller guarantees a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
        match ffi_support::register(&name) {
            Ok((idx, generation)) => {
                // The registration belongs to the C handle: released by
                // failstop_unregister, or when the thread exits.
                out = handle_for(idx, generation);
                FAILSTOP_OK
            }
            Err(e) => fail(&e),
        }
    });
    out
}

/// Stops watching the handle's thread. Must be called on the registering
/// thread.
///
/// A documented no-op, with a message for `failstop_last_error`, for:
/// NULL; a value that is not a handle; a handle already unregistered (or
/// whose thread exited: unregistering twice is harmless); a call from
/// another thread than the registering one while that one is still
/// registered (the handle stays registered).
///
/// Not async-signal-safe: never from a signal handler.
#[unsafe(no_mangle)]
pub extern "C" fn failstop_unregister(t: *mut failstop_thread) {
    guarded_void(|| {
        if t.is_null() {
            return;
        }
        let Some((idx, generation)) = decode(t) else {
            set_last_error("failstop: failstop_unregister: not a handle returned by failstop_register; ignored");
            return;
        };
        match ffi_support::unregister(idx, generation) {
            Ok(()) => {}
            Err(Unregister::Stale) => set_last_error(
                "failstop: failstop_unregister: the handle was already unregistered (or its thread exited); ignored",
            ),
            Err(Unregister::OtherThread) => set_last_error(
                "failstop: failstop_unregister: called from another thread than the registering one; \
                 the handle was left registered",
            ),
        }
    })
}

/// Says what the thread is doing now, for its entry in a dump and in
/// warnings (`context "..."`): the request being served, a phase. One
/// relaxed store of the pointer (after the handle's check): cheap enough
/// for every iteration of a loop. The string is not copied: it must stay
/// valid and unchanged while it is set (a literal, a `static`); NULL says
/// nothing. At most 64 bytes of it are shown. NULL or a stale handle is a
/// no-op. Async-signal-safe.
///
/// Call it from the thread that registered `t`.
#[unsafe(no_mangle)]
pub extern "C" fn failstop_set_context(t: *mut failstop_thread, static_string: *const c_char) {
    if let Some(slot) = live(t) {
        guarded_void(|| slot.set_c_context(static_string));
    }
}

/// The loop came around: progress, and the warning clock restarts. The
/// handle is decoded (a mask, a shift and a bounds check), its registration
/// checked (one load) and the counter bumped (a load and a store): no TLS
/// lookup, no system call. NULL or a stale handle is a no-op.
///
/// Not checked for the calling thread (that would cost the hot path a
/// thread-id lookup): from another thread it is memory-safe but credits the
/// owner with progress it did not make. Don't.
///
/// Any value of `t` is accepted (see `failstop_unregister`).
///
/// Async-signal-safe (atomics only).
#[unsafe(no_mangle)]
pub extern "C" fn failstop_touch(t: *mut failstop_thread) {
    if let Some(slot) = live(t) {
        // Atomics only, so this cannot panic and the guard compiles away.
        guarded_void(|| slot.touch());
    }
}

/// One unit of work done: progress for the `stuck` verdict; the warning
/// clock keeps running. Same rules as `failstop_touch`.
///
/// Any value of `t` is accepted (see `failstop_unregister`).
///
/// Async-signal-safe (atomics only).
#[unsafe(no_mangle)]
pub extern "C" fn failstop_tick(t: *mut failstop_thread) {
    if let Some(slot) = live(t) {
        guarded_void(|| slot.tick());
    }
}

/// Marks the thread idle (waiting for work, e.g. around `epoll_wait`) until
/// the matching `failstop_idle_end`. Scopes nest. NULL is a no-op; call on
/// the owning thread only (not checked, as for `failstop_touch`).
///
/// Any value of `t` is accepted (see `failstop_unregister`).
///
/// Async-signal-safe (atomics only).
#[unsafe(no_mangle)]
pub extern "C" fn failstop_idle_begin(t: *mut failstop_thread) {
    if let Some(slot) = live(t) {
        guarded_void(|| slot.idle_begin());
    }
}

/// Ends an idle scope; leaving counts as a touch. Without a matching
/// `failstop_idle_begin` it only touches. NULL is a no-op.
///
/// Any value of `t` is accepted (see `failstop_unregister`).
///
/// Async-signal-safe (atomics only).
#[unsafe(no_mangle)]
pub extern "C" fn failstop_idle_end(t: *mut failstop_thread) {
    if let Some(slot) = live(t) {
        guarded_void(|| {
            slot.idle_end();
        });
    }
}

/// Marks the thread harmless (waiting on others: a lock, a rendezvous) until
/// the matching `failstop_harmless_end`: it is never blamed, the thread
/// holding the others up is. Scopes nest. NULL is a no-op.
///
/// Any value of `t` is accepted (see `failstop_unregister`).
///
/// Async-signal-safe (atomics only).
#[unsafe(no_mangle)]
pub extern "C" fn failstop_harmless_begin(t: *mut failstop_thread) {
    if let Some(slot) = live(t) {
        guarded_void(|| slot.harmless_begin());
    }
}

/// Ends a harmless scope. Without a matching `failstop_harmless_begin` it is
/// a no-op, as is NULL.
///
/// Any value of `t` is accepted (see `failstop_unregister`).
///
/// Async-signal-safe (atomics only).
#[unsafe(no_mangle)]
pub extern "C" fn failstop_harmless_end(t: *mut failstop_thread) {
    if let Some(slot) = live(t) {
        guarded_void(|| slot.harmless_end());
    }
}
