//! The vanished verdict: a registered thread that ends
//! without its thread-exit path (simulated with `syscall(SYS_exit, 0)`, as
//! after a kernel bug), on a worker and on the main thread (which then stays
//! a zombie while the others run), and one that unwinds from a panic with
//! its handle alive. Threads that end normally stay quiet.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, c, gettid, small_config};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The vanished rule looks every 500 ms; then the dump. Generous for 2
/// noisy cores.
const BOUND: Duration = Duration::from_secs(4);

/// The first line of stderr that starts a verdict.
fn verdict_line(stderr: &str) -> &str {
    // A warning may come first: a thread that panics uses CPU without
    // touching while the panic is printed (a debug build's backtrace takes
    // longer than `warn_after`).
    stderr
        .lines()
        .find(|l| l.starts_with("failstop: ") && !l.starts_with("failstop: warning: ") && l.contains(": thread \""))
        .unwrap_or("")
}

/// Asserts a fatal vanished verdict on `name` (tid `tid`) for `why`, with a
/// whole dump, the process ended by SIGABRT within [`BOUND`] of `since`.
fn assert_vanished(o: &common::Outcome, name: &str, tid: i32, why: &str, since: Instant) {
    let d = o.describe();
    o.assert_signal(libc::SIGABRT);
    let took = o.ended.saturating_duration_since(since);
    eprintln!("FIGURE vanished {name} ({why}): fault to end {} ms", took.as_millis());
    assert!(took < BOUND, "ended {took:?} after the thread vanished\n{d}");
    let first = verdict_line(&o.stderr);
    let head = format!("failstop: vanished: thread \"{name}\" (tid {tid}) is gone without unregistering ({why}");
    assert!(first.starts_with(&head), "verdict line {first:?}, want {head:?}...\n{d}");
    assert!(common::without_process(first).ends_with("action: abort"), "{d}");
    assert_eq!(o.stderr.matches("failstop: dump written in ").count(), 1, "one whole dump\n{d}");
    assert!(o.stderr.contains(&format!("> thread {tid} \"{name}\"")), "the culprit is listed first\n{d}");
}

#[test]
fn a_worker_that_exits_by_sys_exit_is_vanished() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        std::thread::spawn(|| {
            let h = failstop::register("worker").expect("register");
            say!("tid worker {}", gettid());
            h.touch();
            say!("vanishing");
            // SAFETY: ends this thread only, without unwinding or running
            // its destructors: what a kernel bug can leave behind.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
        });
        // The heartbeat: healthy until the verdict.
        for _ in 0..100 {
            say!("beat {}", failstop::healthy());
            std::thread::sleep(Duration::from_millis(100));
        }
        common::child_exit(0);
    }
    let o = Spec::scenario("a_worker_that_exits_by_sys_exit_is_vanished", "worker-exit").run();
    let why = "it ended without running its thread-exit path: SYS_exit, or killed in the kernel";
    assert_vanished(&o, "worker", o.tid("worker"), why, o.time_of("vanishing"));
}

/// The C program of `tests/c/vanish.c`, linked with the shared library.
fn vanish_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("vanish-{}", std::process::id()));
        c::build_static("tests/c/vanish.c", &out, &["-pthread"])
    })
}

fn c_run(mode: &str) -> common::Outcome {
    Spec::program(vanish_program().to_path_buf(), &[mode])
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", &common::DUMP_TIMEOUT.as_millis().to_string())
        .run()
}

#[test]
fn a_main_thread_that_exits_by_sys_exit_is_vanished() {
    let o = c_run("main");
    assert!(o.stdout().contains("BEAT 1"), "the heartbeat ran\n{}", o.describe());
    let why = "the main thread ended by SYS_exit and is a zombie while the other threads run";
    assert_vanished(&o, "main-loop", o.tid("main-loop"), why, o.time_of("vanishing"));
}

#[test]
fn a_c_worker_that_exits_by_sys_exit_is_vanished() {
    let o = c_run("worker");
    let why = "it ended without running its thread-exit path";
    assert_vanished(&o, "worker", o.tid("worker"), why, o.time_of("vanishing"));
}

#[test]
fn a_c_worker_that_returns_without_unregistering_is_quiet() {
    let o = c_run("return");
    o.assert_exit(0);
    assert!(o.has("returning"), "{}", o.describe());
    assert!(!o.stderr.contains("failstop: vanished"), "{}", o.describe());
    assert!(!o.stdout().contains("BEAT 0"), "the gate closed\n{}", o.describe());
}

#[test]
fn threads_that_end_normally_are_quiet() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        // Drops its handle; exits with its handle alive (the thread-exit
        // destructor releases it); forgets its handle (same).
        let a = std::thread::spawn(|| drop(failstop::register("dropped").expect("register")));
        let b = std::thread::spawn(|| {
            let h = failstop::register("alive-at-exit").expect("register");
            h.touch();
        });
        let c = std::thread::spawn(|| std::mem::forget(failstop::register("forgotten").expect("register")));
        for t in [a, b, c] {
            t.join().expect("join");
        }
        std::thread::sleep(Duration::from_secs(2));
        common::say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("threads_that_end_normally_are_quiet", "quiet").run();
    o.assert_exit(0);
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.stat("registered"), 0, "every slot was released\n{}", o.describe());
    o.assert_no_verdict();
}

/// A registered thread that panics (its handle dropped while unwinding):
/// by default a vanished verdict; with `FAILSTOP_PANIC_IS_VERDICT=0` an
/// ordinary unregistration.
fn panicking_thread_child() -> ! {
    let _wd = failstop::start(small_config().with_env().expect("env")).expect("start");
    let t = std::thread::spawn(|| {
        let h = failstop::register("panicker").expect("register");
        say!("tid panicker {}", gettid());
        h.touch();
        say!("vanishing");
        panic!("the loop's invariant broke");
    });
    let _ = t.join();
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
    }
    say!("healthy {}", failstop::healthy());
    common::child_exit(0);
}

#[test]
fn a_registered_thread_that_panics_is_vanished() {
    if common::scenario().is_some() {
        panicking_thread_child();
    }
    let o = Spec::scenario("a_registered_thread_that_panics_is_vanished", "panic").run();
    let why = "it unwound from a panic with its handle alive";
    assert_vanished(&o, "panicker", o.tid("panicker"), why, o.time_of("vanishing"));
}

#[test]
fn a_panic_is_an_unregistration_when_configured() {
    if common::scenario().is_some() {
        panicking_thread_child();
    }
    let o = Spec::scenario("a_panic_is_an_unregistration_when_configured", "panic-release")
        .env("FAILSTOP_PANIC_IS_VERDICT", "0")
        .run();
    o.assert_exit(0);
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
    o.assert_no_verdict();
}
