//! FAILSTOP_* variables through `start_from_env()` in child processes (the
//! environment is global).

#[macro_use]
mod common;

use common::{CATCH_BOUND, Dump, Spec, gettid, say_stats, spawn_spinner};
use std::time::Duration;

/// The child: start from the environment, report the error if any.
fn scenario_start_from_env() {
    match failstop::start_from_env() {
        Ok(_wd) => say!("started"),
        Err(e) => {
            say!("kind {:?}", e.kind());
            say!("message {e}");
        }
    }
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    if common::scenario().is_some() {
        scenario_start_from_env();
        common::child_exit(0);
    }
    let cases: &[(&str, &str)] = &[
        ("FAILSTOP_DISABLE", "yes"),
        ("FAILSTOP_DISABLE", "2"),
        ("FAILSTOP_CPU_BUDGET_MS", "0"),
        ("FAILSTOP_CPU_BUDGET_MS", "soon"),
        ("FAILSTOP_CPU_BUDGET_MS", "86400001"),
        ("FAILSTOP_WARN_MS", "-5"),
        ("FAILSTOP_WARN_MS", "1.5"),
        ("FAILSTOP_STALL_BUDGET_MS", "0"),
        ("FAILSTOP_STALL_BUDGET_MS", " 100"),
        ("FAILSTOP_ACTION", "kill"),
        ("FAILSTOP_ACTION", "exit:256"),
        // A fail-stop must not look like a clean exit to a supervisor.
        ("FAILSTOP_ACTION", "exit:0"),
        ("FAILSTOP_SIGNAL", "SIGKILL"),
        ("FAILSTOP_SIGNAL", "SIGSEGV"),
        ("FAILSTOP_DUMP_PATH", ""),
        ("FAILSTOP_DUMP_TIMEOUT_MS", "0"),
        ("FAILSTOP_DUMP_TIMEOUT_MS", "abc"),
        ("FAILSTOP_ABORT_UNDER_DEBUGGER", "maybe"),
        ("FAILSTOP_ABORT_UNDER_DEBUGGER", ""),
        ("FAILSTOP_SYSTEMD", "on"),
        ("FAILSTOP_SYSTEMD", "x"),
        // Unknown names are errors too (a typo must not be ignored).
        ("FAILSTOP_CPU_BUDGET", "500"),
    ];
    let mut failures = Vec::new();
    for &(name, value) in cases {
        let o = Spec::scenario("bad_values_name_the_variable_and_the_value", "env").env(name, value).run();
        o.assert_exit(0);
        if o.has("started") {
            failures.push(format!("{name}={value:?}: start_from_env succeeded"));
            continue;
        }
        let kind = o.value("kind");
        let msg = o.value("message");
        let shown = format!("{name}={value:?}");
        if kind != "InvalidConfig" || !msg.starts_with("failstop: ") || !msg.contains(&shown) {
            failures.push(format!("{name}={value:?}: kind {kind}, message {msg:?} (expected it to contain {shown})"));
        }
    }
    assert!(failures.is_empty(), "bad messages:\n{}", failures.join("\n"));
}

#[test]
fn warn_not_below_budget_names_both_variables() {
    if common::scenario().is_some() {
        scenario_start_from_env();
        common::child_exit(0);
    }
    let o = Spec::scenario("warn_not_below_budget_names_both_variables", "env")
        .env("FAILSTOP_CPU_BUDGET_MS", "50")
        .env("FAILSTOP_WARN_MS", "100")
        .run();
    o.assert_exit(0);
    let msg = o.value("message");
    assert!(msg.contains("FAILSTOP_WARN_MS=\"100\"") && msg.contains("FAILSTOP_CPU_BUDGET_MS=\"50\""), "{msg}");
}

#[test]
fn good_values_apply() {
    if common::scenario().is_some() {
        let _wd = failstop::start_from_env().expect("start_from_env");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("good_values_apply", "env-good")
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_ACTION", "exit:9")
        .env("FAILSTOP_SIGNAL", "SIGRTMIN+2")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
        .run();
    o.assert_exit(9);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    Dump::parse(&o.stderr).assert_stuck("spinner", o.tid("spinner"), "exit:9", "spin_here_forever");
}

#[test]
fn disable_watches_nothing() {
    if common::scenario().is_some() {
        let _wd = failstop::start_from_env().expect("start_from_env with FAILSTOP_DISABLE=1");
        let t = std::thread::spawn(|| {
            let h = failstop::register("spinner").expect("register while disabled");
            say!("tid spinner {}", gettid());
            h.touch();
            say!("spin-start");
            common::spin_for_cpu(Duration::from_secs(2));
            h.touch();
            say!("spin-end");
        });
        t.join().unwrap();
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("disable_watches_nothing", "disabled")
        .env("FAILSTOP_DISABLE", "1")
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .run();
    o.assert_exit(0);
    assert!(o.has("spin-end"), "{}", o.describe());
    o.assert_no_verdict();
    assert!(!o.stderr.contains("failstop: warning"), "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.stat("warnings"), 0, "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
}
