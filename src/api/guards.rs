//! The scope guards of a [`ThreadHandle`](crate::ThreadHandle): idle and
//! harmless.

use super::imp;

/// Returned by [`ThreadHandle::idle`](crate::ThreadHandle::idle); leaving
/// the scope touches.
///
/// ```no_run
/// # let _wd = failstop::start(failstop::Config::new())?;
/// let h = failstop::register("poller")?;
/// let idle: failstop::IdleGuard<'_> = h.idle();
/// // ... epoll_wait(...) ...
/// drop(idle); // counts as a touch
/// # Ok::<(), failstop::Error>(())
/// ```
#[must_use = "the thread is idle only while the guard lives"]
#[derive(Debug)]
pub struct IdleGuard<'a> {
    _imp: imp::IdleGuard<'a>,
}

impl<'a> IdleGuard<'a> {
    #[inline]
    pub(super) fn from_imp(imp: imp::IdleGuard<'a>) -> Self {
        IdleGuard { _imp: imp }
    }
}

/// Returned by [`ThreadHandle::harmless`](crate::ThreadHandle::harmless).
///
/// ```no_run
/// # let _wd = failstop::start(failstop::Config::new())?;
/// let h = failstop::register("worker")?;
/// let lock = std::sync::Mutex::new(());
/// let waiting: failstop::HarmlessGuard<'_> = h.harmless();
/// let guard = lock.lock().unwrap(); // the holder is to blame, not us
/// drop(waiting);
/// # drop(guard);
/// # Ok::<(), failstop::Error>(())
/// ```
#[must_use = "the thread is harmless only while the guard lives"]
#[derive(Debug)]
pub struct HarmlessGuard<'a> {
    _imp: imp::HarmlessGuard<'a>,
}

impl<'a> HarmlessGuard<'a> {
    #[inline]
    pub(super) fn from_imp(imp: imp::HarmlessGuard<'a>) -> Self {
        HarmlessGuard { _imp: imp }
    }
}
