//! Result codes, the per-thread last error, and the panic guard every entry
//! point runs in.

use failstop::{Error, ErrorKind};
use libc::{c_char, c_int};
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call of the C ABI returns: `FAILSTOP_OK` (0), or a negative
/// `FAILSTOP_E_*` code with a message for `failstop_last_error()` on the
/// calling thread. The functions return it as an `int`, so that a caller
/// may compare with the names or keep an `int`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum failstop_result {
    /// Success.
    FAILSTOP_OK = 0,
    /// A configuration value (from the `failstop_config` or a `FAILSTOP_*`
    /// variable) is invalid; `failstop_last_error` names it.
    FAILSTOP_E_INVALID_CONFIG = -1,
    /// A watchdog is already running in this process (or, for
    /// `failstop_set_pre_abort_hook`, the hook must be set before start).
    FAILSTOP_E_ALREADY_RUNNING = -2,
    /// The call needs a running watchdog and none is running.
    FAILSTOP_E_NOT_RUNNING = -3,
    /// The calling thread is already registered.
    FAILSTOP_E_ALREADY_REGISTERED = -4,
    /// A limit was reached (thread slots, POSIX timers, memory).
    FAILSTOP_E_RESOURCE_LIMIT = -5,
    /// This platform is not supported (failstop needs Linux with glibc).
    FAILSTOP_E_UNSUPPORTED = -6,
    /// An operating-system call failed.
    FAILSTOP_E_OS = -7,
    /// A required pointer argument was NULL.
    FAILSTOP_E_NULL = -8,
    /// failstop itself panicked (a bug); the call had no effect or a partial one.
    FAILSTOP_E_PANIC = -9,
    /// Called from a signal handler that interrupted `failstop_start`,
    /// `failstop_start_with`, `failstop_stop` or `failstop_set_pre_abort_hook`
    /// on the same thread: the call did nothing (going on would deadlock on
    /// the call it interrupted). These four are not async-signal-safe.
    FAILSTOP_E_REENTERED = -10,
}

// The codes as the functions return them (an `int`), for Rust code; the
// header has them once, as the enum above (cbindgen.toml leaves these out).
/// [`failstop_result::FAILSTOP_OK`] as an `int`.
pub const FAILSTOP_OK: c_int = failstop_result::FAILSTOP_OK as c_int;
/// [`failstop_result::FAILSTOP_E_INVALID_CONFIG`] as an `int`.
pub const FAILSTOP_E_INVALID_CONFIG: c_int = failstop_result::FAILSTOP_E_INVALID_CONFIG as c_int;
/// [`failstop_result::FAILSTOP_E_ALREADY_RUNNING`] as an `int`.
pub const FAILSTOP_E_ALREADY_RUNNING: c_int = failstop_result::FAILSTOP_E_ALREADY_RUNNING as c_int;
/// [`failstop_result::FAILSTOP_E_NOT_RUNNING`] as an `int`.
pub const FAILSTOP_E_NOT_RUNNING: c_int = failstop_result::FAILSTOP_E_NOT_RUNNING as c_int;
/// [`failstop_result::FAILSTOP_E_ALREADY_REGISTERED`] as an `int`.
pub const FAILSTOP_E_ALREADY_REGISTERED: c_int = failstop_result::FAILSTOP_E_ALREADY_REGISTERED as c_int;
/// [`failstop_result::FAILSTOP_E_RESOURCE_LIMIT`] as an `int`.
pub const FAILSTOP_E_RESOURCE_LIMIT: c_int = failstop_result::FAILSTOP_E_RESOURCE_LIMIT as c_int;
/// [`failstop_result::FAILSTOP_E_UNSUPPORTED`] as an `int`.
pub const FAILSTOP_E_UNSUPPORTED: c_int = failstop_result::FAILSTOP_E_UNSUPPORTED as c_int;
/// [`failstop_result::FAILSTOP_E_OS`] as an `int`.
pub const FAILSTOP_E_OS: c_int = failstop_result::FAILSTOP_E_OS as c_int;
/// [`failstop_result::FAILSTOP_E_NULL`] as an `int`.
pub const FAILSTOP_E_NULL: c_int = failstop_result::FAILSTOP_E_NULL as c_int;
/// [`failstop_result::FAILSTOP_E_PANIC`] as an `int`.
pub const FAILSTOP_E_PANIC: c_int = failstop_result::FAILSTOP_E_PANIC as c_int;
/// [`failstop_result::FAILSTOP_E_REENTERED`] as an `int`.
pub const FAILSTOP_E_REENTERED: c_int = failstop_result::FAILSTOP_E_REENTERED as c_int;

thread_local! {
    /// The calling thread's last error message.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: impl Into<String>) {
    let message = message.into();
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = message;
        }
    });
}

/// The `FAILSTOP_E_*` code of an error kind: `-(kind_number)`, numbered by
/// failstop itself with an exhaustive match, so that a new kind cannot fall
/// silently into another's code (the test below checks the constants).
pub(crate) fn code_of(kind: ErrorKind) -> c_int {
    -c_int::from(failstop::ffi_support::kind_number(kind))
}

/// Records `err` for `failstop_last_error` and returns its code.
pub(crate) fn fail(err: &Error) -> c_int {
    set_last_error(err.to_string());
    code_of(err.kind())
}

/// Runs `f`, turning a panic into `FAILSTOP_E_PANIC`.
pub(crate) fn guarded(what: &str, f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(_) => {
            set_last_error(format!("failstop: {what}: internal panic (a bug in failstop)"));
            FAILSTOP_E_PANIC
        }
    }
}

/// Runs `f` for a function without a result: a panic is swallowed. Inlined,
/// so that around the hot path's atomics (which cannot panic) it costs nothing.
#[inline(always)]
pub(crate) fn guarded_void(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// Copies the calling thread's last error message (from its most recent
/// failed `failstop_*` call; successful calls leave it) into `buf`: at most
/// `len - 1` bytes, then a NUL. Returns the message's full length in bytes
/// (without the NUL), like `snprintf`: the message was cut if the result is
/// `>= len`. With `buf` NULL or `len` 0 nothing is written. The message is
/// empty (0) if no call failed on this thread.
///
/// # Safety
///
/// `buf` is NULL or points to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn failstop_last_error(buf: *mut c_char, len: usize) -> usize {
    catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR
            .try_with(|e| {
                let e = e.borrow();
                let msg = e.as_bytes();
                if !buf.is_null() && len > 0 {
                    let n = msg.len().min(len - 1);
                    // SAFETY: `buf` has `len` writable bytes (caller
                    // contract) and `n + 1 <= len`; `msg` is a distinct allocation.
                    unsafe {
                        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                        buf.add(n).write(0);
                    }
                }
                msg.len()
            })
            .unwrap_or(0)
    }))
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_negative() {
        let codes = [
            FAILSTOP_E_INVALID_CONFIG,
            FAILSTOP_E_ALREADY_RUNNING,
            FAILSTOP_E_NOT_RUNNING,
            FAILSTOP_E_ALREADY_REGISTERED,
            FAILSTOP_E_RESOURCE_LIMIT,
            FAILSTOP_E_UNSUPPORTED,
            FAILSTOP_E_OS,
            FAILSTOP_E_NULL,
            FAILSTOP_E_PANIC,
            FAILSTOP_E_REENTERED,
        ];
        for (i, c) in codes.iter().enumerate() {
            assert_eq!(*c, -(i as c_int) - 1);
        }
        let kinds = [
            (ErrorKind::InvalidConfig, FAILSTOP_E_INVALID_CONFIG),
            (ErrorKind::AlreadyRunning, FAILSTOP_E_ALREADY_RUNNING),
            (ErrorKind::NotRunning, FAILSTOP_E_NOT_RUNNING),
            (ErrorKind::AlreadyRegistered, FAILSTOP_E_ALREADY_REGISTERED),
            (ErrorKind::ResourceLimit, FAILSTOP_E_RESOURCE_LIMIT),
            (ErrorKind::Unsupported, FAILSTOP_E_UNSUPPORTED),
            (ErrorKind::Os, FAILSTOP_E_OS),
        ];
        for (kind, code) in kinds {
            assert_eq!(code_of(kind), code, "{kind:?}");
        }
    }

    #[test]
    fn last_error_truncates() {
        set_last_error("abcdef");
        let mut buf = [0x55 as c_char; 4];
        // SAFETY: 4 writable bytes.
        let n = unsafe { failstop_last_error(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(n, 6);
        assert_eq!(buf.map(|c| c as u8), *b"abc\0");
        // SAFETY: NULL buffer writes nothing.
        assert_eq!(unsafe { failstop_last_error(std::ptr::null_mut(), 0) }, 6);
    }
}
