//! Two rows of the fault matrix (`tests/fault_matrix.rs`, checked by
//! `common/matrix.rs`) that need this binary's own global allocator: the
//! dump and the action complete even when the stuck thread holds the
//! allocator's lock or the dynamic loader's lock. The raw part of the dump
//! never allocates and never asks the loader; only the symbols, which need
//! both, are lost to the deadline.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::matrix::{self, Kind};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The system allocator behind one global lock; while `WEDGE` is set, the
/// next allocation takes the lock and spins forever holding it.
struct WedgeableAlloc;
static LOCK: AtomicBool = AtomicBool::new(false);
static WEDGE: AtomicBool = AtomicBool::new(false);

// SAFETY: delegates to System; the lock only serialises calls.
unsafe impl GlobalAlloc for WedgeableAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        while LOCK.swap(true, Ordering::Acquire) {
            std::hint::spin_loop();
        }
        if WEDGE.load(Ordering::Relaxed) {
            spin_holding_the_allocator_lock();
        }
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        LOCK.store(false, Ordering::Release);
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        while LOCK.swap(true, Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        LOCK.store(false, Ordering::Release);
    }
}

#[global_allocator]
static GLOBAL: WedgeableAlloc = WedgeableAlloc;

#[inline(never)]
fn spin_holding_the_allocator_lock() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

#[inline(never)]
fn spin_holding_the_loader_lock() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

unsafe extern "C" fn wedge_loader(_: *mut libc::dl_phdr_info, _: libc::size_t, _: *mut libc::c_void) -> libc::c_int {
    spin_holding_the_loader_lock()
}

fn start() -> failstop::Watchdog {
    let c = common::small_config().stall_budget(matrix::STALL).dump_timeout(Duration::from_millis(1500));
    failstop::start(c).expect("start")
}

/// Checks the fault, and that the raw part of the dump is whole: the
/// culprit's frames and the module table.
fn assert_ended_with_a_raw_dump(name: &str, culprit: &str) -> String {
    let (o, _) = matrix::run(name, Kind::Stuck, &[culprit]);
    let stderr = o.stderr;
    assert!(stderr.lines().any(|l| l.starts_with("    #0 0x")), "{stderr}");
    assert!(stderr.contains("failstop: modules"), "{stderr}");
    stderr
}

#[test]
fn stuck_holding_the_allocator_lock() {
    if common::scenario().is_some() {
        let _wd = start();
        let h = failstop::register("alloc-holder").expect("register");
        say!("tid alloc-holder {}", common::gettid());
        h.touch();
        matrix::fault_start();
        WEDGE.store(true, Ordering::Relaxed);
        let v: Vec<u8> = Vec::with_capacity(64); // takes the lock and spins
        std::hint::black_box(v);
        std::process::exit(0);
    }
    let stderr = assert_ended_with_a_raw_dump("stuck_holding_the_allocator_lock", "alloc-holder");
    // The symbolizer allocates, so it waits on the very lock the culprit
    // holds: its part is lost to the deadline (which also shows the lock
    // was really held during the dump), the raw part and the action are not.
    assert!(stderr.contains("symbolization did not finish before the dump deadline"), "{stderr}");
}

#[test]
fn stuck_holding_the_loader_lock() {
    if common::scenario().is_some() {
        let _wd = start();
        let h = failstop::register("loader-holder").expect("register");
        say!("tid loader-holder {}", common::gettid());
        h.touch();
        matrix::fault_start();
        // SAFETY: the callback never returns; dl_iterate_phdr holds the
        // loader's lock while it runs.
        unsafe { libc::dl_iterate_phdr(Some(wedge_loader), std::ptr::null_mut()) };
        std::process::exit(0);
    }
    let stderr = assert_ended_with_a_raw_dump("stuck_holding_the_loader_lock", "loader-holder");
    // The symbolizer listed the libraries at warm-up and does not need the
    // loader's lock: the culprit is named inside dl_iterate_phdr's callback.
    let sym = stderr.split("failstop: symbolized backtraces:").nth(1).unwrap_or("");
    let culprit = sym.split("\n  thread ").next().unwrap_or("");
    assert!(culprit.contains("spin_holding_the_loader_lock"), "{stderr}");
}
