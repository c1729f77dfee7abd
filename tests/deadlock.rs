//! The dump names the deadlock: for threads asleep on
//! locks that record their owner (glibc's `pthread_mutex_t`, a
//! priority-inheritance mutex, `failstop::sync::Mutex`) it prints the
//! wait-for cycle near the top, and it groups the waiters of every futex
//! word, so that the threads waiting on one lock that records no owner
//! (`std::sync::Mutex`) are seen together. Each test runs a real child that deadlocks and asserts its
//! exit and its dump.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Dump, Outcome, Spec, c, deadlock_cycle, small_config};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

/// The C program of `tests/c/deadlock.c`, linked with the shared library.
fn deadlock_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("deadlock-{}", std::process::id()));
        c::build_static("tests/c/deadlock.c", &out, &["-pthread"])
    })
}

fn run_c(mode: &str) -> Outcome {
    Spec::program(deadlock_program().to_path_buf(), &[mode])
        .env("FAILSTOP_STALL_BUDGET_MS", "1000")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "5000")
        .run()
}

/// Asserts a blocked fatal verdict on one of `names` whose deadlock line is
/// the cycle of exactly `names` (in the order each waits for the next).
fn assert_cycle(o: &Outcome, names: &[&str]) {
    o.assert_signal(libc::SIGABRT);
    let dump = Dump::parse(&o.stderr);
    assert!(dump.raw[0].starts_with("failstop: blocked: thread \"worker-"), "{}", o.describe());
    let cycle = deadlock_cycle(&o.stderr);
    assert_eq!(cycle.len(), names.len(), "{cycle:?}\n{}", o.stderr);
    // The cycle starts at the culprit; rotate the expected order to it.
    let start = names.iter().position(|n| *n == cycle[0].0).unwrap_or_else(|| panic!("{cycle:?}"));
    for (i, (name, tid)) in cycle.iter().enumerate() {
        let want = names[(start + i) % names.len()];
        assert_eq!((name.as_str(), *tid), (want, o.tid(want)), "{cycle:?}\n{}", o.stderr);
    }
    let at = o.stderr.find("failstop: deadlock: ").unwrap();
    let threads = o.stderr.find("> thread ").expect("a culprit entry");
    assert!(at < threads, "the deadlock line comes before the thread entries\n{}", o.stderr);
    assert!(dump.written(), "{}", o.stderr);
    let took = o.ended - o.time_of("deadlocking");
    println!("{names:?}: ended by SIGABRT {took:?} after the deadlock began");
    assert!(took < Duration::from_secs(20), "{took:?}\n{}", o.describe());
}

/// Two `pthread_mutex_t` taken in opposite order: the cycle of both.
#[test]
fn two_pthread_mutexes_in_opposite_order_are_named_as_a_cycle() {
    let o = run_c("mutex");
    assert_cycle(&o, &["worker-1", "worker-2"]);
    // Each lock's line names its holder and its waiter.
    for (holder, waiter) in [("worker-1", "worker-2"), ("worker-2", "worker-1")] {
        let want = format!(
            "pthread_mutex_t, held by \"{holder}\" (tid {}): waited on by \"{waiter}\" (tid {})",
            o.tid(holder),
            o.tid(waiter)
        );
        assert!(o.stderr.contains(&want), "{want:?} not in\n{}", o.stderr);
    }
    // failstop_set_context: each worker's entry says what it was doing.
    for w in ["worker-1", "worker-2"] {
        let entry = o.stderr.split(&format!("thread {} \"{w}\" state", o.tid(w))).nth(1).unwrap();
        assert_eq!(entry.lines().nth(1), Some("    context: \"taking the next worker's lock\""), "{}", o.stderr);
    }
}

/// Two `failstop::sync::Mutex` taken in opposite order by two registered
/// threads: the lock records its owner where glibc's does, so the dump
/// names the cycle and each lock's holder, as for `pthread_mutex_t`, and
/// says which kind of lock it is.
#[test]
fn two_failstop_mutexes_in_opposite_order_are_named_as_a_cycle() {
    if common::scenario().is_some() {
        let config = small_config().stall_budget(Duration::from_secs(1)).dump_timeout(Duration::from_secs(5));
        let _wd = failstop::start(config).expect("start");
        let a = Arc::new(failstop::sync::Mutex::new(()));
        let b = Arc::new(failstop::sync::Mutex::new(()));
        let both = Arc::new(Barrier::new(2));
        let mut threads = vec![];
        for (name, first, second) in [("worker-1", a.clone(), b.clone()), ("worker-2", b.clone(), a.clone())] {
            let both = both.clone();
            threads.push(std::thread::spawn(move || {
                let h = failstop::register(name).expect("register");
                h.touch();
                say!("tid {name} {}", common::gettid());
                let _one = first.lock().unwrap();
                both.wait();
                let _two = second.lock().unwrap(); // never returns
                drop(h);
            }));
        }
        say!("deadlocking");
        for t in threads {
            let _ = t.join();
        }
        common::child_exit(0);
    }
    let o = Spec::scenario("two_failstop_mutexes_in_opposite_order_are_named_as_a_cycle", "failstop-mutex").run();
    assert_cycle(&o, &["worker-1", "worker-2"]);
    for (holder, waiter) in [("worker-1", "worker-2"), ("worker-2", "worker-1")] {
        let want = format!(
            "failstop::sync::Mutex, held by \"{holder}\" (tid {}): waited on by \"{waiter}\" (tid {})",
            o.tid(holder),
            o.tid(waiter)
        );
        assert!(o.stderr.contains(&want), "{want:?} not in\n{}", o.stderr);
    }
}

/// A priority-inheritance mutex (the futex word is its owner's tid): held
/// by "worker-1", blocked reading a pipe, and waited for by "worker-2".
#[test]
fn a_priority_inheritance_mutex_names_its_holder() {
    let o = run_c("pi");
    o.assert_signal(libc::SIGABRT);
    let want = format!(
        "priority-inheritance mutex, held by \"worker-1\" (tid {}): waited on by \"worker-2\" (tid {})",
        o.tid("worker-1"),
        o.tid("worker-2")
    );
    assert!(o.stderr.contains(&want), "{want:?} not in\n{}", o.stderr);
    assert!(!o.stderr.contains("failstop: deadlock:"), "no cycle here\n{}", o.stderr);
}

/// Three threads, each waiting for the next one's mutex.
#[test]
fn a_cycle_of_three_is_named_in_order() {
    let o = run_c("three");
    assert_cycle(&o, &["worker-1", "worker-2", "worker-3"]);
}

/// A `pthread_rwlock_t` held for writing by "worker-1", which waits for a
/// mutex that "worker-2" holds while it waits to read the rwlock: a cycle
/// through both kinds of lock; "worker-3", waiting to write, is listed on
/// the rwlock's line with "worker-2".
#[test]
fn a_rwlock_held_for_writing_is_followed_to_its_writer() {
    let o = run_c("rwlock");
    assert_cycle(&o, &["worker-1", "worker-2"]);
    let named = |n: &str| format!("\"{n}\" (tid {})", o.tid(n));
    let want = format!(
        "pthread_rwlock_t held for writing, held by {}: waited on by {}, {}",
        named("worker-1"),
        named("worker-2"),
        named("worker-3")
    );
    assert!(o.stderr.contains(&want), "{want:?} not in\n{}", o.stderr);
}

/// Rust's `std::sync::Mutex` records no owner: no cycle can be named, but
/// the dump lists each lock's word with every thread that waits on it.
/// "first" holds A and waits for B; "second" holds B and waits for A;
/// "third" waits for A too: A's line has "second" and "third".
#[test]
fn std_mutex_waiters_are_grouped_by_lock() {
    if common::scenario().is_some() {
        let config = small_config().stall_budget(Duration::from_secs(1)).dump_timeout(Duration::from_secs(5));
        let _wd = failstop::start(config).expect("start");
        let a = std::sync::Arc::new(std::sync::Mutex::new(()));
        let b = std::sync::Arc::new(std::sync::Mutex::new(()));
        let both = std::sync::Arc::new(std::sync::Barrier::new(3));
        let mut threads = vec![];
        for (name, first, second) in
            [("first", Some(a.clone()), b.clone()), ("second", Some(b.clone()), a.clone()), ("third", None, a.clone())]
        {
            let both = both.clone();
            threads.push(std::thread::spawn(move || {
                let h = failstop::register(name).expect("register");
                h.touch();
                say!("tid {name} {}", common::gettid());
                let _one = first.as_ref().map(|m| m.lock().unwrap());
                both.wait();
                if first.is_none() {
                    std::thread::sleep(Duration::from_millis(100)); // after the others hold theirs
                }
                let _two = second.lock().unwrap(); // never returns
                drop(h);
            }));
        }
        say!("deadlocking");
        for t in threads {
            let _ = t.join();
        }
        common::child_exit(0);
    }
    let o = Spec::scenario("std_mutex_waiters_are_grouped_by_lock", "std-mutex").run();
    o.assert_signal(libc::SIGABRT);
    let lines: Vec<&str> = o.stderr.lines().collect();
    let section = lines
        .iter()
        .position(|l| l.starts_with("failstop: locks waited on"))
        .unwrap_or_else(|| panic!("no lock section\n{}", o.stderr));
    let locks: Vec<&str> = lines[section + 1..].iter().take_while(|l| l.starts_with("    0x")).copied().collect();
    let named = |n: &str| format!("\"{n}\" (tid {})", o.tid(n));
    let a_line = locks
        .iter()
        .find(|l| l.contains(&named("second")) && l.contains(&named("third")))
        .unwrap_or_else(|| panic!("no line with both waiters of A: {locks:#?}\n{}", o.stderr));
    assert!(a_line.contains("no owner recorded"), "{a_line}");
    assert!(!a_line.contains(&named("first")), "{a_line}");
    let b_line = locks
        .iter()
        .find(|l| l.contains(&named("first")))
        .unwrap_or_else(|| panic!("no line for B's waiter: {locks:#?}\n{}", o.stderr));
    assert!(!b_line.contains(&named("second")) && !b_line.contains(&named("third")), "{b_line}");
    assert!(
        !o.stderr.contains("failstop: deadlock:"),
        "no owner is recorded, so no cycle can be claimed\n{}",
        o.stderr
    );
}
