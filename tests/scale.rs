//! Scale: 1,024 registered threads, and what happens when a resource runs
//! out (the error names the limit and how to raise it).
//! Global state: each scenario runs in its own child process.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, small_config, spawn_spinner, timer_count};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

const THOUSAND: usize = 1024;

/// Spawns `n` threads (small stacks) that register, then until `stop` show
/// progress in a loop (touch and tick, idle while waiting) if `busy`, or
/// just wait, then leave.
fn pool(n: usize, busy: bool, stop: Arc<AtomicBool>, registered: Arc<AtomicUsize>) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let (stop, registered) = (stop.clone(), registered.clone());
            std::thread::Builder::new()
                .name(format!("pool-{i}"))
                .stack_size(128 << 10)
                .spawn(move || {
                    let h = failstop::register(&format!("pool-{i}")).unwrap_or_else(|e| panic!("register #{i}: {e}"));
                    registered.fetch_add(1, SeqCst);
                    while !busy && !stop.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    while !stop.load(SeqCst) {
                        h.touch();
                        common::spin_for_cpu(Duration::from_micros(20));
                        h.tick();
                        h.with_idle(|| std::thread::sleep(Duration::from_millis(50)));
                    }
                })
                .expect("spawn")
        })
        .collect()
}

#[test]
fn a_thousand_threads_are_watched_and_a_spin_among_them_is_caught() {
    if common::scenario().is_some() {
        let timers0 = timer_count();
        let _wd = failstop::start(small_config()).expect("start");
        let stop = Arc::new(AtomicBool::new(false));
        let registered = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let threads = pool(THOUSAND, true, stop.clone(), registered.clone());
        while registered.load(SeqCst) < THOUSAND {
            std::thread::sleep(Duration::from_millis(5));
        }
        say!("registered-in-ms {}", t0.elapsed().as_millis());
        say!("registered {}", failstop::stats().registered);
        say!("timers {}", timer_count() - timers0);
        // Several budgets of working and waiting: no verdict.
        std::thread::sleep(Duration::from_secs(3));
        say!("verdicts {}", failstop::stats().verdicts);
        stop.store(true, SeqCst);
        for t in threads {
            t.join().expect("pool thread");
        }
        say!("after-leaving {}", failstop::stats().registered);
        // A second pool stays registered while one thread spins.
        let stop = Arc::new(AtomicBool::new(false));
        let registered = Arc::new(AtomicUsize::new(0));
        let _pool = pool(THOUSAND, true, stop, registered.clone());
        while registered.load(SeqCst) < THOUSAND {
            std::thread::sleep(Duration::from_millis(5));
        }
        spawn_spinner("the-spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("a_thousand_threads_are_watched_and_a_spin_among_them_is_caught", "thousand").run();
    assert_eq!(o.value("registered"), THOUSAND.to_string(), "{}", o.describe());
    assert!(o.value("timers").parse::<usize>().unwrap() >= THOUSAND, "one timer per thread\n{}", o.describe());
    assert_eq!(o.value("verdicts"), "0", "{}", o.describe());
    assert_eq!(o.value("after-leaving"), "0", "slots freed\n{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("the-spinner", o.tid("the-spinner"), "abort", "spin_here_forever");
    let pool_threads = dump.threads().iter().filter(|t| t.2.starts_with("pool-")).count();
    assert!(pool_threads >= THOUSAND, "the dump lists {pool_threads} pool threads\n{}", o.describe());
}

/// The number of queued signals (and preallocated timer signals) counted
/// against the real user's RLIMIT_SIGPENDING: `SigQ: used/limit`.
fn sigq_used() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let l = status.lines().find(|l| l.starts_with("SigQ:")).expect("SigQ");
    l[5..].trim().split('/').next().unwrap().parse().expect("SigQ used")
}

#[test]
fn the_sigpending_limit_is_named_with_how_to_raise_it() {
    const ROOM: u64 = 16;
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        // The limit counts the whole user's queued signals: leave ROOM more
        // than are in use now. Only this process's limit is lowered.
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid out-pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) }, 0, "getrlimit");
        lim.rlim_cur = sigq_used() + ROOM;
        // SAFETY: a valid rlimit; lowering the soft limit needs no privilege.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &lim) }, 0, "setrlimit");
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), failstop::Error>>();
        let release = Arc::new(AtomicBool::new(false));
        let mut threads = vec![];
        // Register threads one by one (each keeps its handle) until one fails.
        let err = loop {
            let (tx, release) = (tx.clone(), release.clone());
            let i = threads.len();
            threads.push(std::thread::spawn(move || {
                let r = failstop::register(&format!("many-{i}"));
                let held = r.as_ref().map(|_| ()).map_err(Clone::clone);
                tx.send(held).unwrap();
                while r.is_ok() && !release.load(SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
            if let Err(e) = rx.recv().unwrap() {
                break e;
            }
            assert!(
                threads.len() <= ROOM as usize,
                "registered {} threads under a limit {ROOM} above use",
                threads.len()
            );
        };
        say!("registered-before-limit {}", threads.len() - 1);
        say!("kind {:?}", err.kind());
        say!("error {err}");
        // Freeing one slot makes room again.
        release.store(true, SeqCst);
        for t in threads {
            t.join().unwrap();
        }
        let after = std::thread::spawn(|| failstop::register("after").map(drop)).join().unwrap();
        say!("after {}", after.is_ok());
        common::child_exit(0);
    }
    let o = Spec::scenario("the_sigpending_limit_is_named_with_how_to_raise_it", "sigpending").run();
    o.assert_exit(0);
    assert_eq!(o.value("kind"), "ResourceLimit", "{}", o.describe());
    let e = o.value("error");
    for needle in ["register(\"many-", "RLIMIT_SIGPENDING", "ulimit -i", "LimitSIGPENDING="] {
        assert!(e.contains(needle), "the error does not say {needle:?}: {e}");
    }
    assert_eq!(o.value("after"), "true", "registering works again once timers are freed\n{}", o.describe());
}

/// Reads a number from a file of /proc/sys.
fn sysctl(path: &str) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn all_slots_in_use_is_a_clear_error() {
    if common::scenario().is_some() {
        // Every slot is taken by a thread of its own (with failstop
        // disabled: no timers), each parked on a lock until the end.
        let _wd = failstop::start(small_config().disabled(true)).expect("start");
        let gate = Arc::new(std::sync::RwLock::new(()));
        let closed = gate.write().unwrap();
        let registered = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        let threads: Vec<_> = (0..failstop::limits::MAX_THREADS)
            .map(|i| {
                let (gate, registered) = (gate.clone(), registered.clone());
                std::thread::Builder::new()
                    .stack_size(32 << 10)
                    .spawn(move || {
                        let h = failstop::register("slot").unwrap_or_else(|e| panic!("register #{i}: {e}"));
                        registered.fetch_add(1, SeqCst);
                        drop(gate.read());
                        drop(h);
                    })
                    .unwrap_or_else(|e| panic!("spawning thread #{i}: {e}"))
            })
            .collect();
        while registered.load(SeqCst) < failstop::limits::MAX_THREADS {
            std::thread::sleep(Duration::from_millis(5));
        }
        say!("registered {} in {:.1} s", registered.load(SeqCst), t.elapsed().as_secs_f64());
        let e = failstop::register("one-too-many").unwrap_err();
        say!("kind {:?}", e.kind());
        say!("error {e}");
        drop(closed);
        for t in threads {
            t.join().unwrap();
        }
        let after = failstop::register("after").map(drop);
        say!("after {}", after.is_ok());
        common::child_exit(0);
    }
    // A thread per slot: the kernel must allow that many threads and maps
    // (four per Rust thread: its stack, its signal stack and their guard
    // pages; scripts/test.sh raises both).
    let want = failstop::limits::MAX_THREADS as u64 + 5000;
    let pid_max = sysctl("/proc/sys/kernel/pid_max");
    let maps = sysctl("/proc/sys/vm/max_map_count");
    assert!(
        pid_max >= want && maps >= 4 * want,
        "this test runs {} threads: it needs kernel.pid_max >= {want} (it is {pid_max}) and vm.max_map_count >= {} \
         (it is {maps}); scripts/test.sh raises them as root (sysctl -w kernel.pid_max=4194304 \
         vm.max_map_count=1048576)",
        failstop::limits::MAX_THREADS,
        4 * want
    );
    let o = Spec::scenario("all_slots_in_use_is_a_clear_error", "slots").timeout(Duration::from_secs(240)).run();
    o.assert_exit(0);
    assert_eq!(o.value("kind"), "ResourceLimit", "{}", o.describe());
    let e = o.value("error");
    for needle in ["one-too-many", "65536", "MAX_THREADS", "drop the handles"] {
        assert!(e.contains(needle), "the error does not say {needle:?}: {e}");
    }
    assert_eq!(o.value("after"), "true", "a slot is free again once its thread left\n{}", o.describe());
}
