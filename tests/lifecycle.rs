//! start / stop / register errors, restarts, and many short-lived threads.
//! Global state: each scenario runs in its own child process.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, small_config, spawn_spinner, task_tids, timer_count, vm_rss_kib};
use failstop::ErrorKind;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[test]
fn start_and_register_errors() {
    if common::scenario().is_some() {
        let e = failstop::register("early").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotRunning, "{e}");
        let wd = failstop::start(small_config()).expect("start");
        let e = failstop::start(small_config()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyRunning, "{e}");
        let e = failstop::start_from_env().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyRunning, "{e}");

        let h = failstop::register("first").expect("register");
        assert!(h.tid() == common::gettid());
        assert_eq!(failstop::stats().registered, 1);
        let e = failstop::register("second").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyRegistered, "{e}");
        drop(h);
        assert_eq!(failstop::stats().registered, 0);
        // Registering again after dropping the handle works.
        let h = failstop::register("again").expect("register after drop");
        assert_eq!(failstop::stats().registered, 1);

        drop(wd);
        assert_eq!(failstop::stats().registered, 0, "a stopped watchdog watches nothing");
        let e = failstop::register("late").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotRunning, "{e}");
        // A handle that outlives its watchdog still works and drops cleanly.
        h.touch();
        h.tick();
        h.with_idle(|| ());
        drop(h);
        say!("ok");
        common::child_exit(0);
    }
    let o = Spec::scenario("start_and_register_errors", "errors").run();
    o.assert_exit(0);
    assert!(o.has("ok"), "{}", o.describe());
}

#[test]
fn stop_and_start_100_times_then_catch_a_spin() {
    if common::scenario().is_some() {
        let timers0 = timer_count();
        let tasks0 = task_tids().len();
        for i in 0..100 {
            let wd = failstop::start(small_config()).unwrap_or_else(|e| panic!("start #{i}: {e}"));
            let barrier = Arc::new(Barrier::new(2));
            let t = {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let h = failstop::register(&format!("round-{i}")).unwrap_or_else(|e| panic!("register #{i}: {e}"));
                    h.touch();
                    barrier.wait();
                    barrier.wait();
                    h.tick();
                })
            };
            barrier.wait();
            assert_eq!(failstop::stats().registered, 1, "round {i}");
            barrier.wait();
            t.join().unwrap();
            assert_eq!(failstop::stats().registered, 0, "round {i}");
            wd.stop();
            assert_eq!(failstop::register("between").unwrap_err().kind(), ErrorKind::NotRunning, "round {i}");
        }
        say!("restarts-done 100");
        say!("timers {timers0} {}", timer_count());
        // pthread_join returns when the kernel clears the thread's tid, a
        // moment before the task leaves /proc/self/task: let exits settle
        // (a leaked thread never does).
        let settle = std::time::Instant::now();
        while task_tids().len() > tasks0 && settle.elapsed() < std::time::Duration::from_secs(2) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        say!("tasks {tasks0} {}", task_tids().len());
        // The 101st watchdog still works.
        let _wd = failstop::start(small_config()).expect("final start");
        spawn_spinner("final-spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("stop_and_start_100_times_then_catch_a_spin", "restart").run();
    assert!(o.has("restarts-done"), "{}", o.describe());
    let timers: Vec<usize> = o.value("timers").split(' ').map(|v| v.parse().unwrap()).collect();
    assert!(timers[1] <= timers[0], "POSIX timers leaked: {timers:?}\n{}", o.describe());
    let tasks: Vec<usize> = o.value("tasks").split(' ').map(|v| v.parse().unwrap()).collect();
    assert!(tasks[1] <= tasks[0], "threads leaked: {tasks:?}\n{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    Dump::parse(&o.stderr).assert_stuck("final-spinner", o.tid("final-spinner"), "abort", "spin_here_forever");
}

/// Memory mappings of this process (lines of `/proc/self/maps`): each
/// alternate signal stack failstop leaked would leave two.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps").lines().count()
}

/// Runs `n` threads, `batch` at a time, each running `f`.
fn threads(n: usize, batch: usize, f: fn(usize)) {
    for b in (0..n).step_by(batch) {
        let ts: Vec<_> = (b..(b + batch).min(n)).map(|i| std::thread::spawn(move || f(i))).collect();
        for t in ts {
            t.join().unwrap();
        }
    }
}

#[test]
fn many_short_lived_threads_leak_nothing() {
    if common::scenario().is_some() {
        // One malloc arena: glibc gives new threads arenas of their own (up
        // to 8 per core), and how many of them the warm-up creates depends
        // on how the threads happen to overlap; each holds megabytes, which
        // would hide or fake a leak of failstop's.
        // SAFETY: mallopt has no preconditions (glibc serialises it).
        assert_eq!(unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) }, 1, "mallopt(M_ARENA_MAX)");
        let _wd = failstop::start(small_config()).expect("start");
        // Warm up at scale: first-use allocations of the runtime and the
        // allocator, and glibc's cache of exited threads' stacks (up to
        // 40 MiB of them), which fills over the first thousands of threads.
        threads(3_000, 16, |i| drop(failstop::register(&format!("warm-{i}")).expect("register")));
        let timers0 = timer_count();
        let registered0 = failstop::stats().registered;
        let rss0 = vm_rss_kib();
        let maps0 = mappings();
        let t0 = Instant::now();
        threads(10_000, 16, |i| {
            let h = failstop::register(&format!("short-{i}")).unwrap_or_else(|e| panic!("register #{i}: {e}"));
            h.touch();
            h.tick();
            drop(h);
        });
        say!("dropped-in-ms {}", t0.elapsed().as_millis());
        threads(1_000, 16, |i| {
            let h = failstop::register(&format!("forgot-{i}")).unwrap_or_else(|e| panic!("register forgot #{i}: {e}"));
            h.touch();
            std::mem::forget(h);
        });
        // A thread that exits without dropping its handle is freed "anyway":
        // allow the monitor's reaping (once a second) a few rounds.
        let until = Instant::now() + Duration::from_secs(5);
        while failstop::stats().registered > registered0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        say!("registered {registered0} {}", failstop::stats().registered);
        say!("timers {timers0} {}", timer_count());
        say!("rss-kib {rss0} {}", vm_rss_kib());
        say!("mappings {maps0} {}", mappings());
        // Still works afterwards.
        let h = failstop::register("after").expect("register after");
        h.touch();
        drop(h);
        say!("ok");
        common::child_exit(0);
    }
    let o = Spec::scenario("many_short_lived_threads_leak_nothing", "many").run();
    o.assert_exit(0);
    assert!(o.has("ok"), "{}", o.describe());
    let pair = |k: &str| -> (u64, u64) {
        let v: Vec<u64> = o.value(k).split(' ').map(|v| v.parse().unwrap()).collect();
        (v[0], v[1])
    };
    let (r0, r1) = pair("registered");
    assert_eq!(r1, r0, "slots not freed\n{}", o.describe());
    let (t0, t1) = pair("timers");
    assert!(t1 <= t0, "POSIX timers leaked: {t0} -> {t1}\n{}", o.describe());
    let (m0, m1) = pair("rss-kib");
    assert!(m1 < m0 + 20 * 1024, "VmRSS grew from {m0} KiB to {m1} KiB\n{}", o.describe());
    // A few cached thread stacks more or less; 11,000 leaked altstacks would be 22,000.
    let (p0, p1) = pair("mappings");
    assert!(p1 < p0 + 50, "mappings grew from {p0} to {p1}: alternate signal stacks leaked?\n{}", o.describe());
}

/// The calling thread's alternate signal stack: its base, or 0 when it has
/// none (disabled).
fn altstack() -> usize {
    let mut cur = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: 0, ss_size: 0 };
    // SAFETY: queries the calling thread's alternate stack into `cur`.
    assert_eq!(unsafe { libc::sigaltstack(std::ptr::null(), &mut cur) }, 0);
    if cur.ss_flags & libc::SS_DISABLE != 0 { 0 } else { cur.ss_sp as usize }
}

/// Registering leaves a thread's alternate signal stack as it was and maps
/// no memory: failstop's handler runs on the thread's own stack. A Rust
/// thread keeps the stack its runtime installed for the stack-overflow
/// report; a thread without one is given none.
#[test]
fn registering_keeps_the_threads_alternate_stack_and_maps_nothing() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        // The first registration of a watchdog starts failstop's threads and
        // prepares the unwinder (it maps their stacks): done here, so that
        // what is measured is one registration's own.
        drop(failstop::register("first").expect("first register"));
        for (kind, disable) in [("rust", false), ("none", true)] {
            std::thread::spawn(move || {
                if disable {
                    let off = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
                    // SAFETY: turns the calling thread's alternate stack off.
                    assert_eq!(unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) }, 0);
                }
                let (before, maps_before) = (altstack(), mappings());
                let h = failstop::register("altstack").expect("register");
                h.touch();
                let (during, maps_during) = (altstack(), mappings());
                drop(h);
                say!("{kind} {before} {during} {} {maps_before} {maps_during}", altstack());
            })
            .join()
            .unwrap();
        }
        common::child_exit(0);
    }
    let o = Spec::scenario("registering_keeps_the_threads_alternate_stack_and_maps_nothing", "altstack").run();
    o.assert_exit(0);
    for kind in ["rust", "none"] {
        let v: Vec<usize> = o.value(kind).split(' ').map(|x| x.parse().unwrap()).collect();
        let [before, during, after, maps_before, maps_during] = v[..] else { panic!("{}", o.describe()) };
        assert_eq!((during, after), (before, before), "{kind}: the alternate stack changed\n{}", o.describe());
        assert_eq!(maps_during, maps_before, "{kind}: registering mapped memory\n{}", o.describe());
        if kind == "rust" {
            assert_ne!(before, 0, "a Rust thread has its runtime's alternate stack\n{}", o.describe());
        }
    }
}
