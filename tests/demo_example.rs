//! The demo example, run as a real process.

use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, demo_path};

fn demo(args: &[&str]) -> Spec {
    Spec::program(demo_path(), args)
}

/// The worker-0 tid, from the dump (the demo does not print tids).
fn culprit_tid(dump: &Dump) -> i32 {
    dump.verdict().tid
}

#[test]
fn demo_spin_is_caught() {
    let o = demo(&["--fault", "spin", "--after", "300", "--seconds", "30"])
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
        .run();
    o.assert_signal(libc::SIGABRT);
    let started = o.lines.iter().find(|(_, l)| l.contains("FAULT spin")).map(|(t, _)| *t);
    let started = started.unwrap_or_else(|| panic!("no fault line\n{}", o.describe()));
    assert!(o.ended - started < CATCH_BOUND, "{}", o.describe());
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("worker-0", culprit_tid(&dump), "abort", "spin_forever");
}

#[test]
fn demo_spin_holding_lock_blames_worker_0() {
    let o = demo(&["--fault", "spin-holding-lock", "--after", "300", "--seconds", "30"])
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
        .run();
    o.assert_signal(libc::SIGABRT);
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("worker-0", culprit_tid(&dump), "abort", "spin_forever_holding");
    assert_eq!(o.stderr.matches("failstop: stuck:").count(), 1, "{}", o.describe());
}

fn assert_runs_clean(o: &common::Outcome, seconds: u64) {
    o.assert_exit(0);
    o.assert_no_verdict();
    let done = o.lines.iter().find(|(_, l)| l.contains(&format!("done after {seconds} s"))).map(|(_, l)| l.clone());
    let done = done.unwrap_or_else(|| panic!("no summary line\n{}", o.describe()));
    assert!(done.contains("healthy true") && done.contains("verdicts 0"), "{done}\n{}", o.describe());
}

#[test]
fn demo_slow_work_is_not_flagged() {
    let o = demo(&["--fault", "slow", "--seconds", "6", "--after", "500"]).env("FAILSTOP_CPU_BUDGET_MS", "300").run();
    assert_runs_clean(&o, 6);
    assert!(o.stdout().contains("worker-0: slow work done"), "the slow work did not finish\n{}", o.describe());
}

#[test]
fn demo_without_fault_runs_clean() {
    let o = demo(&["--fault", "none", "--seconds", "3"]).run();
    assert_runs_clean(&o, 3);
}

#[test]
fn demo_rejects_a_bad_variable() {
    let o = demo(&["--fault", "none", "--seconds", "1"]).env("FAILSTOP_ACTION", "kill").run();
    o.assert_exit(2);
    assert!(o.stderr.contains("FAILSTOP_ACTION=\"kill\""), "{}", o.describe());
}
