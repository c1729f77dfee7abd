//! The wall-clock timer fallback (`Config::wall_clock_timers(true)`): ticks
//! come on wall time, verdicts are still on CPU time.

use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, say_stats, small_config, spawn_spinner, work_for};
use std::time::Duration;

#[test]
fn wall_clock_timers_catch_a_spin() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().wall_clock_timers(true)).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("wall_clock_timers_catch_a_spin", "wall-spin").run();
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    Dump::parse(&o.stderr).assert_stuck("spinner", o.tid("spinner"), "abort", "spin_here_forever");
}

/// Registered threads that sleep (inside `idle()`, and outside it after a
/// touch) use no CPU: their wall-clock ticks must not convict them.
#[test]
fn wall_clock_timers_do_not_judge_sleepers() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().wall_clock_timers(true)).expect("start");
        let ts: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    let h = failstop::register(&format!("t-{i}")).expect("register");
                    h.touch();
                    match i {
                        0 => h.with_idle(|| std::thread::sleep(Duration::from_secs(2))),
                        1 => std::thread::sleep(Duration::from_secs(2)),
                        _ => {
                            for _ in 0..1000 {
                                h.touch();
                                work_for(Duration::from_millis(2));
                            }
                        }
                    }
                    h.touch();
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("wall_clock_timers_do_not_judge_sleepers", "wall-idle").run();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
}
