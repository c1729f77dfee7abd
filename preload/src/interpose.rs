//! The interposed waits and the one wrapper they share.
//!
//! Each exported function has the C library's signature and calls the real
//! function through [`wait`], which
//!
//! - registers the calling thread on its first wait (after the constructor;
//!   earlier waits pass straight through),
//! - marks the thread idle for the duration of the wait (an idle thread is
//!   never judged) and touches when the wait returns (progress),
//! - hides the `EINTR`s that failstop's own signals cause, and only those.
//!
//! # EINTR
//!
//! The kernel never restarts `epoll_wait`, `poll` or `select` after a signal
//! handler ran, `SA_RESTART` or not: they fail with `EINTR`. failstop's
//! signals can land there: a CPU-clock tick generated while the thread runs
//! in the kernel on its way into the wait (kernels without
//! `POSIX_CPU_TIMERS_TASK_WORK`), a capture request during a dump, and above
//! all every tick of the wall-clock timers failstop falls back to where CPU
//! clocks cannot arm timers. A program that never saw `EINTR` without us
//! must not see it with us. failstop's handler counts the signals it handled
//! as its own on each registered thread ([`ThreadHandle::signal_count`](failstop::ThreadHandle::signal_count));
//! when a wait fails with `EINTR` and that count moved, the wait is made
//! again for the time left to the caller's deadline (`select` gets the
//! remaining time the kernel wrote back into its `timeval`). When the count
//! did not move, the application's own signal interrupted the wait and its
//! `EINTR` is returned untouched, as are every result and every other
//! `errno`. `errno` is restored around our own work, so a successful wait
//! leaves it as the caller had it.
//!
//! One case cannot be told apart: an application signal handled by another
//! handler in the same interruption as one of ours. Its handler runs, but
//! the wait goes on instead of failing with `EINTR`, until an event or the
//! timeout.

use crate::real::{self, Real};
use crate::timeout::{elapsed, ms_left, start_if, timespec_left};
use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, size_t, timespec, timeval};
use std::time::Duration;

fn errno() -> c_int {
    // SAFETY: __errno_location always returns the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// The wrapper. `may_block`: the timeout is not zero (only such a wait
/// registers a thread). `finite`: the timeout is finite, so a retry needs
/// the time elapsed since the start. `call(None)` makes the caller's call as it was
/// made; `call(Some(elapsed))` makes it again with what is left of the
/// timeout after `elapsed`.
#[inline]
fn wait(may_block: bool, finite: bool, mut call: impl FnMut(Option<Duration>) -> c_int) -> c_int {
    if !crate::init::started() {
        return call(None);
    }
    let saved = errno();
    crate::thread::with_handle(may_block, |h| {
        // (A registration in this call kept `errno` as it was.)
        let Some(h) = h else { return call(None) };
        let _idle = h.idle(); // leaving touches
        let start = start_if(finite);
        let mut before = h.signal_count();
        let mut r = call(None);
        while r == -1 && errno() == libc::EINTR && h.signal_count() != before {
            before = h.signal_count();
            set_errno(saved);
            r = call(Some(elapsed(start)));
        }
        r
    })
}

/// The real function as a typed pointer, or `-1` with `ENOSYS` if the C
/// library has none.
macro_rules! real_fn {
    ($real:expr, $ty:ty) => {
        match Real::get(&$real) {
            // SAFETY: dlsym returned the address of the C library's function
            // of that name, whose signature `$ty` spells.
            Some(a) => unsafe { std::mem::transmute::<usize, $ty>(a) },
            None => {
                set_errno(libc::ENOSYS);
                return -1;
            }
        }
    };
}

/// The time left of a `timespec` timeout, for a retry.
///
/// # Safety
/// `ts` is NULL or valid: a retry happens only after the kernel read it.
unsafe fn ts_left(ts: *const timespec, e: Duration) -> timespec {
    // SAFETY: per the contract; NULL is never retried with a start time.
    timespec_left(unsafe { &*ts }, e)
}

/// Whether a `timespec` timeout may block: NULL (forever) or not zero.
/// Only for `ppoll`, whose glibc wrapper copies `*ts` in user space anyway
/// (a bad pointer faults there just the same). `epoll_pwait2` and `pselect`
/// hand the pointer to the kernel unread, which answers a bad one with
/// EFAULT: for them a non-NULL timeout is taken as "may block", unread.
///
/// # Safety
/// `ts` is NULL or readable.
unsafe fn ts_may_block(ts: *const timespec) -> bool {
    // SAFETY: per the contract.
    ts.is_null() || unsafe { (*ts).tv_sec != 0 || (*ts).tv_nsec != 0 }
}

type EpollWait = unsafe extern "C" fn(c_int, *mut epoll_event, c_int, c_int) -> c_int;
type EpollPwait = unsafe extern "C" fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int;
type EpollPwait2 = unsafe extern "C" fn(c_int, *mut epoll_event, c_int, *const timespec, *const sigset_t) -> c_int;
type Poll = unsafe extern "C" fn(*mut pollfd, nfds_t, c_int) -> c_int;
type Ppoll = unsafe extern "C" fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int;
type Select = unsafe extern "C" fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *mut timeval) -> c_int;
type Pselect =
    unsafe extern "C" fn(c_int, *mut fd_set, *mut fd_set, *mut fd_set, *const timespec, *const sigset_t) -> c_int;
type PollChk = unsafe extern "C" fn(*mut pollfd, nfds_t, c_int, size_t) -> c_int;
type PpollChk = unsafe extern "C" fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t, size_t) -> c_int;

/// `epoll_wait(2)`, watched.
///
/// # Safety
/// The C library's contract for `epoll_wait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(epfd: c_int, events: *mut epoll_event, maxevents: c_int, timeout: c_int) -> c_int {
    let f = real_fn!(real::EPOLL_WAIT, EpollWait);
    // SAFETY: the caller's arguments, passed on.
    wait(timeout != 0, timeout > 0, |e| unsafe {
        f(epfd, events, maxevents, e.map_or(timeout, |e| ms_left(timeout, e)))
    })
}

/// `epoll_pwait(2)`, watched.
///
/// # Safety
/// The C library's contract for `epoll_pwait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: c_int,
    sigmask: *const sigset_t,
) -> c_int {
    let f = real_fn!(real::EPOLL_PWAIT, EpollPwait);
    // SAFETY: the caller's arguments, passed on.
    wait(timeout != 0, timeout > 0, |e| unsafe {
        f(epfd, events, maxevents, e.map_or(timeout, |e| ms_left(timeout, e)), sigmask)
    })
}

/// `epoll_pwait2(2)`, watched.
///
/// # Safety
/// The C library's contract for `epoll_pwait2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut epoll_event,
    maxevents: c_int,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    let f = real_fn!(real::EPOLL_PWAIT2, EpollPwait2);
    wait(true, !timeout.is_null(), |e| match e {
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { f(epfd, events, maxevents, timeout, sigmask) },
        Some(e) => {
            // SAFETY: a retry: the kernel accepted `timeout` already.
            let left = unsafe { ts_left(timeout, e) };
            // SAFETY: the caller's arguments, with our own timeout.
            unsafe { f(epfd, events, maxevents, &left, sigmask) }
        }
    })
}

/// `poll(2)`, watched.
///
/// # Safety
/// The C library's contract for `poll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    let f = real_fn!(real::POLL, Poll);
    // SAFETY: the caller's arguments, passed on.
    wait(timeout != 0, timeout > 0, |e| unsafe { f(fds, nfds, e.map_or(timeout, |e| ms_left(timeout, e))) })
}

/// glibc's fortified `poll` (`_FORTIFY_SOURCE` builds call it), watched.
///
/// # Safety
/// The C library's contract for `__poll_chk`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __poll_chk(fds: *mut pollfd, nfds: nfds_t, timeout: c_int, fdslen: size_t) -> c_int {
    let f = real_fn!(real::POLL_CHK, PollChk);
    // SAFETY: the caller's arguments, passed on (the real one checks `fdslen`).
    wait(timeout != 0, timeout > 0, |e| unsafe { f(fds, nfds, e.map_or(timeout, |e| ms_left(timeout, e)), fdslen) })
}

/// `ppoll(2)`, watched.
///
/// # Safety
/// The C library's contract for `ppoll`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    let f = real_fn!(real::PPOLL, Ppoll);
    // SAFETY: glibc reads `*timeout` in user space too.
    wait(unsafe { ts_may_block(timeout) }, !timeout.is_null(), |e| match e {
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { f(fds, nfds, timeout, sigmask) },
        Some(e) => {
            // SAFETY: a retry: the kernel accepted `timeout` already.
            let left = unsafe { ts_left(timeout, e) };
            // SAFETY: the caller's arguments, with our own timeout.
            unsafe { f(fds, nfds, &left, sigmask) }
        }
    })
}

/// glibc's fortified `ppoll`, watched.
///
/// # Safety
/// The C library's contract for `__ppoll_chk`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const timespec,
    sigmask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    let f = real_fn!(real::PPOLL_CHK, PpollChk);
    // SAFETY: glibc reads `*timeout` in user space too.
    wait(unsafe { ts_may_block(timeout) }, !timeout.is_null(), |e| match e {
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { f(fds, nfds, timeout, sigmask, fdslen) },
        Some(e) => {
            // SAFETY: a retry: the kernel accepted `timeout` already.
            let left = unsafe { ts_left(timeout, e) };
            // SAFETY: the caller's arguments, with our own timeout.
            unsafe { f(fds, nfds, &left, sigmask, fdslen) }
        }
    })
}

/// `select(2)`, watched. Linux writes the time left back into `timeout`,
/// also when the call fails with `EINTR`, so a retry passes it on as is.
///
/// # Safety
/// The C library's contract for `select`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *mut timeval,
) -> c_int {
    let f = real_fn!(real::SELECT, Select);
    // SAFETY: glibc's select reads `*timeout` in user space too.
    let may_block = timeout.is_null() || unsafe { (*timeout).tv_sec != 0 || (*timeout).tv_usec != 0 };
    // SAFETY: the caller's arguments, passed on; the sets are left as they
    // were when the call fails, so a retry waits on the same ones.
    wait(may_block, false, |_| unsafe { f(nfds, readfds, writefds, exceptfds, timeout) })
}

/// `pselect(2)`, watched (its `timeout` is not written back).
///
/// # Safety
/// The C library's contract for `pselect`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    readfds: *mut fd_set,
    writefds: *mut fd_set,
    exceptfds: *mut fd_set,
    timeout: *const timespec,
    sigmask: *const sigset_t,
) -> c_int {
    let f = real_fn!(real::PSELECT, Pselect);
    wait(true, !timeout.is_null(), |e| match e {
        // SAFETY: the caller's arguments, passed on.
        None => unsafe { f(nfds, readfds, writefds, exceptfds, timeout, sigmask) },
        Some(e) => {
            // SAFETY: a retry: the kernel accepted `timeout` already.
            let left = unsafe { ts_left(timeout, e) };
            // SAFETY: the caller's arguments, with our own timeout.
            unsafe { f(nfds, readfds, writefds, exceptfds, &left, sigmask) }
        }
    })
}
