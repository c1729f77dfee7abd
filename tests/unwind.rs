//! Full stacks through code without frame pointers:
//! failstop unwinds with the DWARF call-frame information (`.eh_frame`)
//! in signal context, the frame-pointer walk being the fallback.
//!
//! - a C thread blocked in glibc's `pthread_mutex_lock` (glibc as shipped,
//!   without frame pointers) is shown with the C function that called it,
//!   the culprit and another thread alike;
//! - a Rust program built without frame pointers (cargo's default) names
//!   its spinning function and its callers;
//! - the capture allocates nothing in the handler (a counting global
//!   allocator), through a glibc frame (`qsort` calling back into Rust).

use failstop_test_support as common;

use common::{Dump, Spec, c};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::*};
use std::time::Duration;

/// Index of the first frame line at or after `from` that contains `needle`.
fn find(frames: &[&str], needle: &str, from: usize) -> Option<usize> {
    frames.iter().skip(from).position(|l| l.contains(needle)).map(|i| i + from)
}

// ---------------------------------------------------------------------------
// C: blocked in pthread_mutex_lock
// ---------------------------------------------------------------------------

#[test]
fn c_threads_blocked_in_pthread_mutex_lock_show_their_callers() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // -fno-omit-frame-pointer (c::STRICT) for this file only; glibc is the
    // system's, built without frame pointers.
    let program =
        c::build_static("tests/c/mutex_blocked.c", &tmp.join(format!("mutex_blocked-{}", std::process::id())), &[]);
    let o = Spec::program(program, &[])
        .env("FAILSTOP_STALL_BUDGET_MS", "1000")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", &common::DUMP_TIMEOUT.as_millis().to_string())
        .run();
    o.assert_signal(libc::SIGABRT);
    assert!(o.stdout().contains("LOCKING"), "{}", o.describe());
    assert!(o.elapsed() < common::CATCH_BOUND + Duration::from_secs(10), "took {:?}\n{}", o.elapsed(), o.describe());
    let dump = Dump::parse(&o.stderr);
    // The main thread holds the mutex and sleeps in pthread_join: it holds
    // the registered thread up, so it is the culprit, and its verdict names
    // the thread that waits for it.
    let main = o.pid;
    let threads = dump.threads();
    let (_, locker, _, _) = threads
        .iter()
        .find(|t| !t.0 && t.2 == "c-locker")
        .unwrap_or_else(|| panic!("no thread c-locker\n{}", o.describe()));
    assert!(dump.raw[0].starts_with("failstop: blocked: thread "), "{}", o.describe());
    assert!(dump.raw[0].contains(&format!("(tid {main})")), "the holder is the culprit\n{}", o.describe());
    let waiters = dump.raw[0].split("; waited for by ").nth(1).unwrap_or_default();
    assert!(
        waiters.contains(&format!("\"c-locker\" (tid {locker})")),
        "the verdict names the waiter\n{}",
        o.describe()
    );
    assert!(threads.iter().any(|t| t.0 && t.1 == main), "{}", o.describe());
    let (culprit, frames) = dump.symbolized_frames(*locker).unwrap_or_else(|| panic!("no frames\n{}", o.describe()));
    assert!(!culprit);
    // The lock wait in glibc, then the C function that called it, then its
    // caller: the frame the frame-pointer walk loses is there.
    let lock = find(&frames, "pthread_mutex_lock", 0)
        .or_else(|| find(&frames, "lll_lock_wait", 0))
        .unwrap_or_else(|| panic!("no glibc lock frame: {frames:#?}\n{}", o.describe()));
    let caller = find(&frames, "blocked_in_lock_here", lock + 1)
        .unwrap_or_else(|| panic!("the culprit's frames lack blocked_in_lock_here: {frames:#?}\n{}", o.describe()));
    find(&frames, "locker", caller + 1).unwrap_or_else(|| panic!("no `locker` after the caller: {frames:#?}"));
    // Another thread (not registered) blocked the same way: its frames too.
    let other = threads
        .iter()
        .filter(|t| !t.0)
        .filter_map(|t| dump.symbolized_frames(t.1))
        .find(|(_, f)| find(f, "also_blocked_here", 0).is_some())
        .unwrap_or_else(|| panic!("no thread's frames name also_blocked_here\n{}", o.describe()));
    let at = find(&other.1, "also_blocked_here", 0).unwrap();
    assert!(at > 0 && find(&other.1, "other", at + 1).is_some(), "{:#?}", other.1);
}

// ---------------------------------------------------------------------------
// Rust built without frame pointers
// ---------------------------------------------------------------------------

/// `target/` of this test run (the parent of its profile directory).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().and_then(Path::parent).and_then(Path::parent).expect("target dir").to_path_buf()
}

/// Builds tests/nofp (a program that depends on failstop) the way cargo
/// builds by default: without frame pointers, overriding the repository's
/// `-C force-frame-pointers=yes`, in `target/nofp`.
fn build_nofp() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = target_dir().join("nofp");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--manifest-path"])
        .arg(Path::new(c::ROOT).join("tests/nofp/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env("RUSTFLAGS", "-C force-frame-pointers=no")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    c::run_ok(&mut cmd);
    let exe = target.join("debug/failstop-nofp-probe");
    assert!(exe.is_file(), "{exe:?} missing after the build");
    exe
}

/// The precondition, checked: `caller_of_the_spin` sets up no frame
/// pointer (no `mov %rsp,%rbp` in its prologue).
#[cfg(target_arch = "x86_64")]
fn assert_no_frame_pointer(exe: &Path) {
    let out = c::run_ok(Command::new("objdump").args(["-d", "-C", "--no-show-raw-insn"]).arg(exe));
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find("<failstop_nofp_probe::caller_of_the_spin>:")
        .unwrap_or_else(|| panic!("objdump shows no caller_of_the_spin in {exe:?}"));
    let body: Vec<&str> = text[start..].lines().skip(1).take_while(|l| !l.trim().is_empty()).collect();
    assert!(!body.is_empty(), "empty caller_of_the_spin");
    assert!(
        !body.iter().take(6).any(|l| l.contains("mov    %rsp,%rbp")),
        "the probe was built with frame pointers: {body:#?}"
    );
}

#[cfg(not(target_arch = "x86_64"))]
fn assert_no_frame_pointer(_exe: &Path) {}

#[test]
fn rust_built_without_frame_pointers_names_its_spinning_function() {
    let exe = build_nofp();
    assert_no_frame_pointer(&exe);
    let o =
        Spec::program(exe, &[]).env("FAILSTOP_DUMP_TIMEOUT_MS", &common::DUMP_TIMEOUT.as_millis().to_string()).run();
    o.assert_signal(libc::SIGABRT);
    assert!(o.stdout().contains("SPINNING"), "{}", o.describe());
    assert!(o.elapsed() < common::CATCH_BOUND, "took {:?}\n{}", o.elapsed(), o.describe());
    let dump = Dump::parse(&o.stderr);
    let v = dump.verdict();
    assert_eq!(v.name, "nofp-spinner", "{}", o.describe());
    let (culprit, frames) = dump.symbolized_frames(v.tid).unwrap_or_else(|| panic!("no frames\n{}", o.describe()));
    assert!(culprit);
    let spin = find(&frames, "spin_without_frame_pointers", 0)
        .unwrap_or_else(|| panic!("no spin_without_frame_pointers: {frames:#?}\n{}", o.describe()));
    let caller = find(&frames, "caller_of_the_spin", spin + 1)
        .unwrap_or_else(|| panic!("no caller_of_the_spin after the spin: {frames:#?}\n{}", o.describe()));
    find(&frames, "main::{{closure}}", caller + 1).unwrap_or_else(|| panic!("no main closure: {frames:#?}"));
}

// ---------------------------------------------------------------------------
// No allocation in the handler
// ---------------------------------------------------------------------------

/// Counts the allocations made on one thread (the spinner) while armed.
struct Counting;

static SPINNER: AtomicI32 = AtomicI32::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn count(&self) {
        // SAFETY: gettid is a plain system call: fine inside an allocator,
        // and inside a signal handler if the allocation came from one.
        if ARMED.load(Relaxed) && SPINNER.load(Relaxed) == unsafe { libc::gettid() } {
            ALLOCS.fetch_add(1, Relaxed);
        }
    }
}

// SAFETY: forwards to the system allocator; the counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        self.count();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        self.count();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Warnings to wait for: each is one capture in the spinner's handler.
const WARNINGS: u64 = 3;

/// qsort's comparator: the first call spins (armed) until the handler
/// captured the spinner's stack for `WARNINGS` warnings.
extern "C" fn spinning_compare(a: *const libc::c_void, b: *const libc::c_void) -> libc::c_int {
    static ONCE: AtomicBool = AtomicBool::new(false);
    if !ONCE.swap(true, Relaxed) {
        ARMED.store(true, SeqCst);
        let mut x = 0u64;
        while failstop::stats().warnings + failstop::stats().suppressed_warnings < WARNINGS {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        ARMED.store(false, SeqCst);
    }
    // SAFETY: qsort passes pointers to two elements of the i32 array.
    unsafe { (*a.cast::<i32>()).cmp(&*b.cast::<i32>()) as libc::c_int }
}

/// Calls glibc's qsort (no frame pointers), which calls back into Rust.
#[inline(never)]
fn sort_through_glibc() {
    let mut v = [3i32, 1, 2];
    // SAFETY: a valid array of three i32 and a comparator for them.
    unsafe { libc::qsort(v.as_mut_ptr().cast(), v.len(), 4, Some(spinning_compare)) };
    std::hint::black_box(&v);
}

#[test]
fn capturing_through_glibc_allocates_nothing_in_the_handler() {
    if common::scenario().is_some() {
        let c = failstop::Config::new()
            .warn_after(Duration::from_millis(50))
            .cpu_budget(Duration::from_secs(30))
            .with_env()
            .expect("config");
        let _wd = failstop::start(c).expect("start");
        let t = std::thread::spawn(|| {
            let h = failstop::register("alloc-spinner").expect("register");
            // SAFETY: gettid has no preconditions.
            SPINNER.store(unsafe { libc::gettid() }, SeqCst);
            h.touch();
            sort_through_glibc();
        });
        t.join().unwrap();
        std::thread::sleep(Duration::from_millis(500)); // the reporter's last warning
        println!("SCENARIO allocs {}", ALLOCS.load(SeqCst));
        println!("SCENARIO warnings {}", failstop::stats().warnings);
        std::process::exit(0);
    }
    let name = "capturing_through_glibc_allocates_nothing_in_the_handler";
    let o = Spec::scenario(name, name).run();
    o.assert_exit(0);
    // The captures went through glibc's qsort frame to its Rust caller: the
    // DWARF unwinder ran (a frame-pointer walk loses sort_through_glibc).
    let warning = o
        .stderr
        .split("failstop: warning: thread \"alloc-spinner\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no warning\n{}", o.describe()));
    let frames: Vec<&str> = warning.lines().skip(1).take_while(|l| l.starts_with("    #")).collect();
    let cmp = find(&frames, "spinning_compare", 0).unwrap_or_else(|| panic!("{frames:#?}\n{}", o.describe()));
    let q = find(&frames, "qsort", cmp + 1).or_else(|| find(&frames, "msort", cmp + 1));
    assert!(q.is_some(), "no glibc frame between: {frames:#?}");
    find(&frames, "sort_through_glibc", cmp + 1)
        .unwrap_or_else(|| panic!("the warning's frames lack sort_through_glibc: {frames:#?}\n{}", o.describe()));
    assert!(o.value("warnings").parse::<u64>().unwrap() >= 1, "{}", o.describe());
    assert_eq!(o.value("allocs"), "0", "the spinner allocated while only its handler ran\n{}", o.describe());
}
