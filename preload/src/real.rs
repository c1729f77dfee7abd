//! The real functions behind the interposed ones, from
//! `dlsym(RTLD_NEXT, name)`: the next definition after this library in the
//! lookup order (glibc's, or another preloaded library's).
//!
//! All are resolved by the constructor. A call that arrives earlier (from
//! another library's constructor that ran before ours) resolves its own
//! function on the spot; `dlsym` is safe there (normal context, and the
//! loader's lock is recursive).

use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering::*};

/// One real function: its name and, once resolved, its address.
pub(crate) struct Real {
    name: &'static CStr,
    addr: AtomicUsize,
}

/// Marks a symbol that `dlsym` did not find (an older glibc without
/// `epoll_pwait2`, say).
const MISSING: usize = 1;

impl Real {
    const fn new(name: &'static CStr) -> Self {
        Real { name, addr: AtomicUsize::new(0) }
    }

    /// The function's address, or `None` if the C library has no such
    /// function (the caller then fails with `ENOSYS`).
    #[inline]
    pub(crate) fn get(&self) -> Option<usize> {
        match self.addr.load(Acquire) {
            0 => self.resolve(),
            MISSING => None,
            a => Some(a),
        }
    }

    fn resolve(&self) -> Option<usize> {
        // SAFETY: a NUL-terminated name; RTLD_NEXT is valid from a shared object.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) } as usize;
        self.addr.store(if a == 0 { MISSING } else { a }, Release);
        (a != 0).then_some(a)
    }
}

pub(crate) static EPOLL_WAIT: Real = Real::new(c"epoll_wait");
pub(crate) static EPOLL_PWAIT: Real = Real::new(c"epoll_pwait");
pub(crate) static EPOLL_PWAIT2: Real = Real::new(c"epoll_pwait2");
pub(crate) static POLL: Real = Real::new(c"poll");
pub(crate) static PPOLL: Real = Real::new(c"ppoll");
pub(crate) static SELECT: Real = Real::new(c"select");
pub(crate) static PSELECT: Real = Real::new(c"pselect");
pub(crate) static POLL_CHK: Real = Real::new(c"__poll_chk");
pub(crate) static PPOLL_CHK: Real = Real::new(c"__ppoll_chk");

/// Resolves every real function (the constructor calls it first).
pub(crate) fn resolve_all() {
    for r in [&EPOLL_WAIT, &EPOLL_PWAIT, &EPOLL_PWAIT2, &POLL, &PPOLL, &SELECT, &PSELECT, &POLL_CHK, &PPOLL_CHK] {
        r.get();
    }
}
