//! Signal masks and dispositions of the calling thread: the primitives the
//! handler and the fatal path build on. Async-signal-safe (sigaction,
//! pthread_sigmask and tgkill are).

use super::sys;

/// Blocks every asynchronous signal in the calling thread (failstop's own
/// threads: the application's signals are never delivered to them, and a
/// write to a broken pipe returns EPIPE instead of raising SIGPIPE). The
/// synchronous fault signals stay deliverable.
pub(crate) fn block_all_in_this_thread() {
    // SAFETY: building and applying a signal set for the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Unblocks `sig` in the calling thread.
pub(crate) fn unblock(sig: libc::c_int) {
    // SAFETY: building a one-signal set and applying it to the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// The current disposition of `sig`, or `None` if it cannot be read.
/// Async-signal-safe (one `sigaction` query).
pub(crate) fn disposition(sig: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: sigaction is plain data; a query with a valid out-pointer.
    unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(sig, std::ptr::null(), &mut cur) == 0).then_some(cur)
    }
}

/// Installs `handler` (an `SA_SIGINFO` handler's address) for `sig` with
/// `flags` and an empty mask. Async-signal-safe.
pub(crate) fn set_handler(sig: libc::c_int, handler: usize, flags: libc::c_int) -> std::io::Result<()> {
    // SAFETY: sigaction is plain data; sa_mask is a valid sigset_t; the
    // caller passes the address of an `SA_SIGINFO` handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
}

/// Sets the disposition of `sig` to `SIG_DFL` with no flags.
pub(crate) fn set_default(sig: libc::c_int) {
    // SAFETY: sigaction is plain data; SIG_DFL with no flags is a valid action.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
    }
}

/// Re-raises `sig` on the calling thread with its default action: the one
/// "reset to the default action, unblock, raise". Used to reproduce what
/// `SIG_DFL` does with a signal that is not ours, and to make a swallowed
/// `SIGABRT` fatal, as abort(3) does.
pub(crate) fn reraise_with_default_action(sig: libc::c_int) {
    set_default(sig);
    unblock(sig);
    let _ = sys::tgkill(sys::gettid(), sig);
}
