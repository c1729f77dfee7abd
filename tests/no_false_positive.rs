//! Living threads are never convicted: slow work that ticks, idle threads,
//! starved threads, a stopped process, work done with every signal blocked.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, gettid, say_stats, small_config, thread_cpu, work_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn assert_clean(o: &common::Outcome) {
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
}

/// 2 s of CPU in one go, with a tick every 50 ms of CPU (default budgets:
/// 1000 ms, warnings at 100 ms).
#[test]
fn slow_work_that_ticks_is_not_stuck() {
    if common::scenario().is_some() {
        let _wd = failstop::start(failstop::Config::new()).expect("start");
        let h = failstop::register("slow").expect("register");
        h.touch();
        let start = thread_cpu();
        let ticks = common::work_with_ticks(&h, Duration::from_secs(2));
        say!("ticks {ticks}");
        say!("cpu-ms {}", (thread_cpu() - start).as_millis());
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("slow_work_that_ticks_is_not_stuck", "slow").run();
    assert_clean(&o);
    assert!(o.value("cpu-ms").parse::<u64>().unwrap() >= 2000, "{}", o.describe());
    // Warnings are allowed (ticks do not reset the warning clock); at least one is expected.
    assert!(o.stat("warnings") >= 1, "a loop without touch for 2 s of CPU should warn\n{}", o.describe());
    assert!(o.stderr.contains("failstop: warning: thread \"slow\""), "{}", o.describe());
}

/// Registered threads sleeping inside `idle()` for 3 s (a short stall budget
/// would flag them if idle were not honoured by the wall-clock tracking).
#[test]
fn idle_threads_are_not_judged() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().stall_budget(Duration::from_millis(500))).expect("start");
        let threads: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    let h = failstop::register(&format!("idle-{i}")).expect("register");
                    h.touch();
                    match i {
                        0 => h.with_idle(|| std::thread::sleep(Duration::from_secs(3))),
                        // Idle, but waiting by polling (uses CPU).
                        1 => h.with_idle(|| work_for(Duration::from_secs(3))),
                        _ => {
                            let _g = h.idle();
                            for _ in 0..30 {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                    h.touch();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("idle_threads_are_not_judged", "idle").run();
    assert_clean(&o);
}

/// Four registered threads doing 1 ms of work per touch while two CPU hogs
/// saturate both cores for 5 s.
#[test]
fn starved_threads_are_not_stuck() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..2 {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            });
        }
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let h = failstop::register(&format!("worker-{i}")).expect("register");
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        h.touch();
                        work_for(Duration::from_millis(1));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        for (i, w) in workers.into_iter().enumerate() {
            say!("iterations worker-{i} {}", w.join().unwrap());
        }
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("starved_threads_are_not_stuck", "starved").run();
    assert_clean(&o);
    for i in 0..4 {
        let n: u64 = o.value(&format!("iterations worker-{i}")).parse().unwrap();
        assert!(n > 100, "worker-{i} barely ran ({n} iterations)\n{}", o.describe());
    }
}

/// The whole process is stopped (SIGSTOP) for 3 s while a registered thread
/// touches every millisecond, then continued: no verdict.
#[test]
fn sigstop_pause_is_not_stuck() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        let max_gap = Arc::new(AtomicU64::new(0));
        let t = {
            let max_gap = max_gap.clone();
            std::thread::spawn(move || {
                let h = failstop::register("looper").expect("register");
                say!("tid looper {}", gettid());
                let mut last = Instant::now();
                let mut said = false;
                let mut resumed_at: Option<Instant> = None;
                loop {
                    h.touch();
                    work_for(Duration::from_millis(1));
                    let now = Instant::now();
                    let gap = (now - last).as_millis() as u64;
                    last = now;
                    if gap > max_gap.load(Ordering::Relaxed) {
                        max_gap.store(gap, Ordering::Relaxed);
                    }
                    if !said {
                        say!("looping");
                        said = true;
                    }
                    if resumed_at.is_none() && gap >= 2500 {
                        say!("resumed");
                        resumed_at = Some(now);
                    }
                    if resumed_at.is_some_and(|r| now - r >= Duration::from_secs(2)) {
                        return;
                    }
                }
            })
        };
        t.join().unwrap();
        say!("max-gap-ms {}", max_gap.load(Ordering::Relaxed));
        say_stats();
        common::child_exit(0);
    }
    let mut r = Spec::scenario("sigstop_pause_is_not_stuck", "sigstop").spawn();
    r.wait_for("looping", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(r.pid(), libc::SIGSTOP) }, 0);
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(r.pid(), libc::SIGCONT) }, 0);
    let o = r.finish();
    assert_clean(&o);
    assert!(o.value("max-gap-ms").parse::<u64>().unwrap() >= 2500, "the pause was not seen\n{}", o.describe());
}

/// Work with every signal blocked (failstop's handler cannot run, so only
/// the monitor's deaf rule judges it): 2 s of CPU with a tick every 50 ms,
/// and bursts of up to 0.8 of the budget between touches. No verdict.
#[test]
fn work_with_signals_blocked_that_makes_progress_is_not_stuck() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        let h = failstop::register("masked").expect("register");
        common::block_every_signal();
        h.touch();
        let start = thread_cpu();
        common::work_with_ticks(&h, Duration::from_secs(2));
        for _ in 0..8 {
            h.touch();
            common::spin_for_cpu(common::BUDGET * 8 / 10);
        }
        h.touch();
        say!("cpu-ms {}", (thread_cpu() - start).as_millis());
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("work_with_signals_blocked_that_makes_progress_is_not_stuck", "masked").run();
    assert_clean(&o);
    assert!(o.value("cpu-ms").parse::<u64>().unwrap() >= 3900, "{}", o.describe());
}
