//! [`WithContext`]: a future that says, while it is polled, what its worker
//! thread is doing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that sets its worker thread's context (see
/// [`ThreadHandle::set_context`](crate::ThreadHandle::set_context)) for the
/// length of each of its polls, and puts the previous one back after it
/// (also when the poll panics). Made by [`with_context`].
///
/// ```no_run
/// # async fn compact() {}
/// let task = failstop::tokio::with_context("compacting the log", compact());
/// # let _ = task;
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WithContext<F> {
    context: &'static str,
    future: F,
}

/// Wraps `future` so that a dump or a warning that catches its worker
/// inside one of its polls says `context "<context>"` for that worker.
/// tokio has no stable per-task hook, so the task names itself this way;
/// the cost is two relaxed stores and a thread-local lookup per poll. On a
/// thread that failstop does not watch as a worker it only polls `future`.
///
/// ```no_run
/// # async fn handle_request() {}
/// let _wd = failstop::start(failstop::Config::new().with_env()?)?;
/// let rt = failstop::tokio::watch(&mut tokio::runtime::Builder::new_multi_thread()).build()?;
/// rt.block_on(async {
///     tokio::spawn(failstop::tokio::with_context("GET /orders", handle_request())).await
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_context<F: Future>(context: &'static str, future: F) -> WithContext<F> {
    WithContext { context, future }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self`, and `WithContext` has no `Drop` impl and is `Unpin` only
        // when `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.future` stays where it is.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let _restore = imp::enter(this.context);
        future.poll(cx)
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use crate::state::slots::{Slot, pack_context};
    use std::sync::atomic::Ordering::Relaxed;

    /// Puts the worker's previous context back when a poll ends or unwinds.
    pub(super) struct Restore(Option<(&'static Slot, u64)>);

    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some((slot, previous)) = self.0 {
                slot.set_context(previous);
            }
        }
    }

    /// Sets `context` on the calling thread if it is a watched worker.
    pub(super) fn enter(context: &'static str) -> Restore {
        Restore(super::super::hooks::current_worker().map(|slot| {
            let previous = slot.context.load(Relaxed);
            slot.set_context(pack_context(context.as_ptr() as usize, Some(context.len())));
            (slot, previous)
        }))
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    /// Nothing is watched on this platform.
    pub(super) fn enter(_context: &'static str) {}
}
