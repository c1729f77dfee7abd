//! DWARF call-frame unwinding in signal context: full stacks through code
//! built without frame pointers (glibc and most distribution libraries,
//! Rust built with cargo's defaults), from the `.eh_frame` every such
//! module carries. The unwinding itself is [framehop]'s.
//!
//! Files: `image` copies a module's `.eh_frame_hdr` and `.eh_frame` out of
//! its mapped image (normal context); `walk` holds the published unwinder,
//! the pool of caches and the in-handler unwind.
//!
//! # Async-signal-safety contract
//!
//! [`unwind_ucontext`] runs in signal handlers. It never allocates, locks or
//! initialises anything lazily:
//!
//! * the unwinder (the module list with each module's unwind sections, in
//!   buffers owned by the unwinder) is built in normal context by
//!   [`prepare`] (when the first thread registers, before its timer is
//!   armed: no handler captures before that) and
//!   [`refresh`] (the reporter thread, when `/proc/self/maps` changed:
//!   libraries loaded or unloaded), and published through an `AtomicPtr`.
//!   The handler never reads a module's mapped image, so a library
//!   unloaded meanwhile cannot fault it;
//! * a replaced unwinder is freed only once no handler is inside one (a
//!   counter of handlers in the unwinder, seen at zero after the swap); if
//!   that is not seen within [`RETIRE_WAIT`], the old one is leaked
//!   (counted by `leaked`, for the tests) rather than freed under a handler;
//! * framehop's caches with `MustNotAllocateDuringUnwind` hold fixed-size
//!   evaluation storage; a pool of [`POOL_LEN`](walk::POOL_LEN) of them is allocated by
//!   [`prepare`], and each handler claims one with an atomic swap. A handler
//!   that finds none free (more than [`POOL_LEN`](walk::POOL_LEN) threads capturing at
//!   once) gets [`Unwound::Unavailable`] and walks frame pointers instead;
//! * stack words are read like the frame-pointer walk's: a plain load
//!   inside the thread's known stack bounds, a validated
//!   [`read_mem`](crate::os::stackwalk::read_mem) anywhere else, so a
//!   corrupt stack ends the unwind instead of faulting.
//!
//! It may clobber `errno` (through `read_mem`): the handler saves it.
//!
//! [framehop]: https://docs.rs/framehop

mod image;
mod walk;

use crate::os::loader;
use crate::os::modules::ModuleMap;
use framehop::{ExplicitModuleSectionInfo, Module as FhModule, Unwinder};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::time::{Duration, Instant};
use walk::{CURRENT, INSIDE, Native, Published};

pub(crate) use walk::{Unwound, unwind_ucontext};

/// How long [`refresh`] waits for the handlers to leave a replaced unwinder
/// before it leaks it instead.
pub(crate) const RETIRE_WAIT: Duration = Duration::from_millis(200);
/// Least time between two looks by [`refresh`] at the loader's module list.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Longest time between two reads of `/proc/self/maps` by [`refresh`]
/// while the loader's list stays the same (code mapped without the loader
/// is found then).
pub(crate) const REREAD_EVERY: Duration = Duration::from_secs(30);

/// Replaced unwinders that were leaked because a handler stayed inside.
static LEAKED: AtomicUsize = AtomicUsize::new(0);

/// The refresher's state: its module map, when it last looked, when it
/// last read `/proc/self/maps`, and the loader's list then.
struct Refresher {
    map: Box<ModuleMap>,
    last: Option<Instant>,
    read: Option<Instant>,
    loader: Option<u64>,
}

static REFRESHER: Mutex<Option<Refresher>> = Mutex::new(None);

/// What [`prepare`] and [`refresh`] built (for the figures and the tests).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Built {
    /// Modules with unwind information.
    pub modules: usize,
    /// Bytes of `.eh_frame_hdr` and `.eh_frame` copied.
    pub section_bytes: usize,
}

/// Builds the pool of caches (once per process) and the first unwinder
/// from the modules loaded now, and publishes it. **Normal context only**;
/// call before installing a handler that unwinds. Needs
/// [`stackwalk::init`](crate::os::stackwalk::init) where `process_vm_readv`
/// is unavailable.
pub(crate) fn prepare() -> std::io::Result<Built> {
    walk::make_pool();
    let mut g = REFRESHER.lock().unwrap_or_else(|p| p.into_inner());
    let r = g.get_or_insert_with(|| Refresher { map: ModuleMap::new_boxed(), last: None, read: None, loader: None });
    r.last = None;
    rebuild(r, true)
}

/// Rebuilds and republishes the unwinder when the module list changed
/// (libraries loaded or unloaded since the last look), looking at most once
/// per [`REFRESH_EVERY`]: at the loader's list ([`loader::fingerprint`],
/// a few reads), and only when it changed, or every [`REREAD_EVERY`], at
/// `/proc/self/maps` (a file that grows with the threads: two lines per
/// thread stack). **Normal context only**: it reads `/proc/self/maps`,
/// allocates, and may wait up to [`RETIRE_WAIT`] for handlers to leave the
/// old unwinder. Does nothing before [`prepare`].
pub(crate) fn refresh() {
    let mut g = REFRESHER.lock().unwrap_or_else(|p| p.into_inner());
    let Some(r) = g.as_mut() else { return };
    if r.last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
        return;
    }
    r.last = Some(Instant::now());
    let loader = loader::fingerprint();
    if loader.is_some() && loader == r.loader && r.read.is_some_and(|t| t.elapsed() < REREAD_EVERY) {
        return;
    }
    r.loader = loader;
    let _ = rebuild(r, false);
}

/// Re-reads the module map; builds, publishes and retires when it changed
/// (or `force`).
fn rebuild(r: &mut Refresher, force: bool) -> std::io::Result<Built> {
    r.last = Some(Instant::now());
    r.read = r.last;
    r.map.refresh()?;
    let fp = fingerprint(&r.map);
    let cur = CURRENT.load(Acquire);
    // SAFETY: only the refresher (holding REFRESHER) frees published
    // unwinders, and we hold it.
    if !force && !cur.is_null() && unsafe { (*cur).fingerprint } == fp {
        return Ok(Built::default());
    }
    let (published, built) = build(&r.map, fp);
    let old = CURRENT.swap(Box::into_raw(Box::new(published)), SeqCst);
    retire(old);
    Ok(built)
}

/// Frees `old` once no handler is inside an unwinder, or leaks it.
fn retire(old: *mut Published) {
    if old.is_null() {
        return;
    }
    let t0 = Instant::now();
    loop {
        // A handler that loaded `old` entered (SeqCst) before our swap;
        // one that enters now loads the new unwinder.
        if INSIDE.load(SeqCst) == 0 {
            // SAFETY: `old` came from Box::into_raw in `rebuild`, is no
            // longer published, and no handler holds it (INSIDE was zero
            // after the swap).
            drop(unsafe { Box::from_raw(old) });
            return;
        }
        if t0.elapsed() >= RETIRE_WAIT {
            LEAKED.fetch_add(1, Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Replaced unwinders leaked so far (a handler stayed inside one for
/// longer than [`RETIRE_WAIT`]).
#[cfg(test)]
pub(crate) fn leaked() -> usize {
    LEAKED.load(Relaxed)
}

/// A hash of what the unwinder depends on: each module's path, bias,
/// code ranges and build-id.
fn fingerprint(map: &ModuleMap) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &c in b {
            h ^= c as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for m in map.modules() {
        eat(m.path());
        eat(&m.bias().to_ne_bytes());
        for &(s, e) in m.exec_ranges() {
            eat(&s.to_ne_bytes());
            eat(&e.to_ne_bytes());
        }
        eat(m.build_id().unwrap_or(&[]));
    }
    h
}

/// An unwinder over every module of `map` that has unwind information.
fn build(map: &ModuleMap, fingerprint: u64) -> (Published, Built) {
    let mut unwinder = Native::new();
    let mut ranges = Vec::new();
    let mut built = Built::default();
    for m in map.modules() {
        let Some(s) = image::read_sections(m) else { continue };
        built.modules += 1;
        built.section_bytes += s.eh_frame.len() + s.eh_frame_hdr.len();
        ranges.push((s.avma.start, s.avma.end));
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: s.text_svma,
            eh_frame_svma: Some(s.eh_frame_svma),
            eh_frame: Some(s.eh_frame),
            eh_frame_hdr_svma: Some(s.eh_frame_hdr_svma),
            eh_frame_hdr: Some(s.eh_frame_hdr),
            ..Default::default()
        };
        let name = String::from_utf8_lossy(m.basename()).into_owned();
        unwinder.add_module(FhModule::new(name, s.avma, s.bias, info));
    }
    ranges.sort_unstable();
    let published = Published { unwinder, ranges: ranges.into_boxed_slice(), fingerprint };
    (published, built)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rebuild publishes a new unwinder and frees the old one (no handler
    /// is inside), and an unchanged module list builds nothing.
    #[test]
    fn rebuilds_publish_and_retire() {
        crate::os::stackwalk::init().unwrap();
        walk::make_pool();
        let leaked_before = leaked();
        // All under the refresher's lock: other tests prepare too.
        let mut g = REFRESHER.lock().unwrap_or_else(|p| p.into_inner());
        let r =
            g.get_or_insert_with(|| Refresher { map: ModuleMap::new_boxed(), last: None, read: None, loader: None });
        let b = rebuild(r, true).unwrap();
        assert!(b.modules >= 2 && b.section_bytes > 10_000, "{b:?}");
        let before = CURRENT.load(SeqCst);
        // Unchanged: nothing built, nothing swapped.
        assert_eq!(rebuild(r, false).unwrap().modules, 0);
        assert_eq!(CURRENT.load(SeqCst), before);
        // Forced: a new one, the old one retired.
        assert!(rebuild(r, true).unwrap().modules >= 2);
        drop(g);
        assert_ne!(CURRENT.load(SeqCst), before);
        assert_eq!(leaked(), leaked_before, "retired with no handler inside: freed, not leaked");
    }
}
