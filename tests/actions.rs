//! The actions (unhealthy, warn, exit:N, abort), the dump file and the
//! pre-abort hook.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, Stderr, gettid, say_stats, small_config, spawn_spinner};
use failstop::Action;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP_SPINNING: AtomicBool = AtomicBool::new(false);

/// A registered thread that spins until [`STOP_SPINNING`].
#[inline(never)]
fn spin_until_stopped() {
    let h = failstop::register("spinner").expect("register");
    say!("tid spinner {}", gettid());
    h.touch();
    say!("spin-start");
    let mut x = 0u64;
    while !STOP_SPINNING.load(Ordering::Relaxed) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    h.touch();
}

/// A deaf spinner (every signal blocked) in the `unhealthy` mode: the
/// monitor's verdict closes the gate and writes the dump (which does not
/// wait for the deaf thread), nothing ends the process, and the thread,
/// once it unblocks its signals and makes progress, runs on.
#[test]
fn unhealthy_action_with_a_deaf_spinner_keeps_running() {
    if common::scenario().is_some() {
        let path = common::temp_path("unhealthy-deaf");
        let _wd = failstop::start(small_config().action(Action::Unhealthy).dump_path(&path)).expect("start");
        let t = std::thread::spawn(|| {
            let h = failstop::register("deaf").expect("register");
            say!("tid deaf {}", gettid());
            h.touch();
            let old = common::block_every_signal();
            let mut x = 0u64;
            while !STOP_SPINNING.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            // SAFETY: giving the thread back the mask it had.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            h.touch();
            common::spin_for_cpu(Duration::from_millis(50));
            h.touch();
        });
        unhealthy_then_stop_spinning(&path, t);
    }
    let o = Spec::scenario("unhealthy_action_with_a_deaf_spinner_keeps_running", "unhealthy-deaf").run();
    o.assert_exit(0);
    assert_eq!(o.value("dump-done"), "true", "{}", o.describe());
    assert_eq!(o.value("healthy"), "false", "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 1, "{}", o.describe());
    let first = o.stderr.lines().find(|l| l.starts_with("failstop: stuck: ")).unwrap_or_default();
    let tid = o.tid("deaf");
    assert!(first.starts_with(&format!("failstop: stuck: thread \"deaf\" (tid {tid}) used ")), "{}", o.describe());
    assert!(first.contains("without running failstop's signal handler"), "{}", o.describe());
    let first = common::without_process(first);
    assert!(first.ends_with("action: unhealthy"), "{}", o.describe());
    // The whole line, with every figure in place (a missing number once
    // read "seen by the monitor ms").
    let used = first.split(" used ").nth(1).and_then(|r| r.split(" ms of CPU").next()).unwrap_or_default();
    assert!(used.parse::<f64>().is_ok_and(|ms| ms > 0.0), "the CPU figure {used:?}\n{}", o.describe());
    let budget = common::BUDGET.as_millis();
    assert_eq!(
        first,
        format!(
            "failstop: stuck: thread \"deaf\" (tid {tid}) used {used} ms of CPU without progress and without running \
             failstop's signal handler (cpu_budget {budget} ms, seen by the monitor, which looks every 100 ms); \
             action: unhealthy"
        ),
        "{}",
        o.describe()
    );
    // It runs, so even outside a fatal verdict the ptrace helper may stop
    // it for a moment and read its frames (a running thread has no system
    // call to cut short).
    assert!(
        o.stderr.contains("(not asked: it blocks the watchdog signal: frames read by a ptrace helper process instead)"),
        "{}",
        o.describe()
    );
}

/// In an `unhealthy` child whose spinner `t` runs until [`STOP_SPINNING`]:
/// waits for the gate to close (says `unhealthy`) and for the dump file at
/// `path`, stops the spinner and ends the child with the counters.
fn unhealthy_then_stop_spinning(path: &std::path::Path, t: std::thread::JoinHandle<()>) -> ! {
    let until = Instant::now() + Duration::from_secs(30);
    while failstop::healthy() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !failstop::healthy() {
        say!("unhealthy");
    }
    // Keep running: nothing ends the process. Nothing waits for the dump
    // either in this mode: wait for it (its file copy tells when it is done).
    std::thread::sleep(Duration::from_secs(1));
    say!("dump-done {}", common::wait_for_dump_file(path));
    let _ = std::fs::remove_file(path);
    STOP_SPINNING.store(true, Ordering::Relaxed);
    t.join().unwrap();
    say_stats();
    common::child_exit(0)
}

#[test]
fn unhealthy_action_closes_the_gate_and_keeps_running() {
    if common::scenario().is_some() {
        let path = common::temp_path("unhealthy");
        let _wd = failstop::start(small_config().action(Action::Unhealthy).dump_path(&path)).expect("start");
        assert!(failstop::healthy());
        let t = std::thread::spawn(spin_until_stopped);
        unhealthy_then_stop_spinning(&path, t);
    }
    let o = Spec::scenario("unhealthy_action_closes_the_gate_and_keeps_running", "unhealthy").run();
    o.assert_exit(0);
    assert!(o.has("unhealthy"), "{}", o.describe());
    assert_eq!(o.value("dump-done"), "true", "{}", o.describe());
    let took = o.time_of("unhealthy") - o.time_of("spin-start");
    assert!(took < CATCH_BOUND, "gate closed {took:?} after the spin started\n{}", o.describe());
    assert_eq!(o.value("healthy"), "false", "{}", o.describe());
    assert!(o.stat("verdicts") >= 1, "{}", o.describe());
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", o.tid("spinner"), "unhealthy", "spin_until_stopped");
}

#[test]
fn warn_action_reports_and_changes_nothing() {
    if common::scenario().is_some() {
        let path = common::temp_path("warn");
        let _wd = failstop::start(small_config().action(Action::Warn).dump_path(&path)).expect("start");
        let t = std::thread::spawn(|| {
            let h = failstop::register("spinner").expect("register");
            say!("tid spinner {}", gettid());
            h.touch();
            say!("spin-start");
            common::spin_for_cpu(Duration::from_secs(2));
            h.touch();
            say!("spin-end");
        });
        t.join().unwrap();
        // Nothing waits for the dump in this mode: wait for its file copy.
        say!("dump-done {}", common::wait_for_dump_file(&path));
        let _ = std::fs::remove_file(&path);
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("warn_action_reports_and_changes_nothing", "warn").run();
    o.assert_exit(0);
    assert!(o.has("spin-end"), "{}", o.describe());
    assert_eq!(o.value("dump-done"), "true", "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "warn mode never closes the gate\n{}", o.describe());
    assert!(o.stat("verdicts") >= 1, "{}", o.describe());
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", o.tid("spinner"), "warn", "spin_for_cpu");
    assert_eq!(o.stderr.matches("failstop: dump written").count(), 1, "one dump per process\n{}", o.describe());
}

#[test]
fn exit_action_exits_with_the_status() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().action(Action::Exit(7))).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("exit_action_exits_with_the_status", "exit7").run();
    o.assert_exit(7);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", o.tid("spinner"), "exit:7", "spin_here_forever");
}

/// Scenario: abort with a dump file; `how` says what to do with fd 2 first.
fn scenario_dump_file(how: &str) {
    let path = std::env::var("FSTEST_DUMP_PATH").expect("FSTEST_DUMP_PATH");
    if how == "close-fd2" {
        // SAFETY: nothing else uses fd 2 in this child; the dump file may get it.
        unsafe { libc::close(2) };
    }
    let _wd = failstop::start(small_config().dump_path(path)).expect("start");
    spawn_spinner("spinner").join().ok();
}

fn check_dump_file(test: &str, how: &str, stderr: Stderr) {
    let path = common::temp_path(how);
    let o = Spec::scenario(test, how).env("FSTEST_DUMP_PATH", path.to_str().unwrap()).stderr(stderr).run();
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("dump file {path:?}: {e}\n{}", o.describe()));
    assert!(text.starts_with("failstop: stuck: thread \"spinner\""), "file starts with:\n{text}");
    let dump = Dump::parse(&text);
    dump.assert_stuck("spinner", o.tid("spinner"), "abort", "spin_here_forever");
    assert!(text.ends_with('\n') && text.lines().last().unwrap().starts_with("failstop: dump written in "), "{text}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn dump_file_with_stderr_open() {
    if let Some(s) = common::scenario() {
        scenario_dump_file(&s);
        common::child_exit(0);
    }
    check_dump_file("dump_file_with_stderr_open", "stderr-pipe", Stderr::Pipe);
}

#[test]
fn dump_file_with_stderr_null() {
    if let Some(s) = common::scenario() {
        scenario_dump_file(&s);
        common::child_exit(0);
    }
    check_dump_file("dump_file_with_stderr_null", "stderr-null", Stderr::Null);
}

#[test]
fn dump_file_with_stderr_closed() {
    if let Some(s) = common::scenario() {
        scenario_dump_file(&s);
        common::child_exit(0);
    }
    check_dump_file("dump_file_with_stderr_closed", "close-fd2", Stderr::Null);
}

#[test]
fn dump_file_with_stderr_broken_pipe() {
    if let Some(s) = common::scenario() {
        scenario_dump_file(&s);
        common::child_exit(0);
    }
    check_dump_file("dump_file_with_stderr_broken_pipe", "stderr-epipe", Stderr::ClosedPipe);
}

/// Async-signal-safe: raw writes only.
fn hook() {
    let msg: &[u8] =
        if failstop::healthy() { b"SCENARIO hook-ran healthy=1\n" } else { b"SCENARIO hook-ran healthy=0\n" };
    // SAFETY: write(2) on the standard descriptors, async-signal-safe.
    unsafe {
        libc::write(1, msg.as_ptr().cast(), msg.len());
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

#[test]
fn pre_abort_hook_runs_before_the_abort() {
    if common::scenario().is_some() {
        // SAFETY: `hook` only reads an atomic and makes one write(2).
        let _wd = failstop::start(unsafe { small_config().pre_abort_hook(hook) }).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("pre_abort_hook_runs_before_the_abort", "hook").run();
    o.assert_signal(libc::SIGABRT);
    assert_eq!(o.value("hook-ran"), "healthy=0", "the hook runs once, after the gate closed\n{}", o.describe());
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", o.tid("spinner"), "abort", "spin_here_forever");
    // On stderr the hook's marker comes after the whole dump.
    let written = o.stderr.find("failstop: dump written").unwrap();
    let marker = o.stderr.find("SCENARIO hook-ran").expect("marker on stderr");
    assert!(marker > written, "the hook ran before the dump was written\n{}", o.describe());
}

/// A dump deadline too short for symbols: the raw dump is still complete
/// and the action still happens (symbols are what a slow dump costs).
#[test]
fn short_dump_deadline_costs_symbols_not_the_action() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().dump_timeout(Duration::from_millis(500))).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("short_dump_deadline_costs_symbols_not_the_action", "short-deadline").run();
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    let dump = Dump::parse(&o.stderr);
    let v = dump.verdict();
    assert_eq!((v.name.as_str(), v.tid, v.action.as_str()), ("spinner", o.tid("spinner"), "abort"), "{}", o.describe());
    assert!(dump.threads()[0].0, "{}", o.describe());
    assert!(o.stderr.contains("failstop: modules (path, load base, bias, build-id):"), "{}", o.describe());
}

/// One application line: `APP <writer> <seq> <payload>`, whose payload's
/// length and letter follow from `seq`, so that a line cut or filled by
/// someone else's bytes is told from a whole one.
fn app_line(writer: usize, seq: u64) -> String {
    let len = 40 + (seq as usize * 37) % 360;
    let c = (b'a' + (seq % 26) as u8) as char;
    format!("APP {writer} {seq} {}\n", c.to_string().repeat(len))
}

fn is_whole_app_line(line: &str) -> bool {
    let mut it = line.splitn(4, ' ');
    let (Some("APP"), Some(w), Some(seq), Some(_)) = (it.next(), it.next(), it.next(), it.next()) else {
        return false;
    };
    match (w.parse::<usize>(), seq.parse::<u64>()) {
        (Ok(w), Ok(seq)) => format!("{line}\n") == app_line(w, seq),
        _ => false,
    }
}

/// Four application threads write whole lines to stderr (one write(2)
/// each, as a logger does) as fast as they can while a spinner is caught:
/// the dump, on stderr and in the dump file, never cuts one of their lines
/// and is never cut by them.
#[test]
fn dump_never_interleaves_mid_line_with_the_applications_output() {
    if common::scenario().is_some() {
        let path = std::env::var("FSTEST_DUMP_PATH").expect("FSTEST_DUMP_PATH");
        let _wd = failstop::start(small_config().dump_path(path)).expect("start");
        for w in 0..4 {
            std::thread::spawn(move || {
                for seq in 0.. {
                    let l = app_line(w, seq);
                    // SAFETY: one write(2) of a valid buffer to stderr.
                    unsafe { libc::write(2, l.as_ptr().cast(), l.len()) };
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
        }
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let path = common::temp_path("interleave");
    let o = Spec::scenario("dump_never_interleaves_mid_line_with_the_applications_output", "interleave")
        .env("FSTEST_DUMP_PATH", path.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("dump file {path:?}: {e}\n{}", o.describe()));
    let _ = std::fs::remove_file(&path);
    Dump::parse(&file).assert_stuck("spinner", o.tid("spinner"), "abort", "spin_here_forever");
    let lines: Vec<&str> = o.stderr.lines().collect();
    // The application's lines are whole: a line that mentions APP anywhere
    // is one of them, from its first byte.
    for l in lines.iter().filter(|l| l.contains("APP ")) {
        assert!(is_whole_app_line(l), "an application line was cut or mixed: {l:?}");
    }
    // The dump's lines are whole on stderr too, and in order.
    let mut at = 0;
    for want in file.lines() {
        let found = lines[at..].iter().position(|l| *l == want);
        assert!(found.is_some(), "dump line missing or cut on stderr: {want:?}");
        at += found.unwrap() + 1;
    }
    // And the two really were written at the same time.
    let first = lines.iter().position(|l| l.starts_with("failstop: stuck:")).unwrap();
    let last = lines.iter().position(|l| l.starts_with("failstop: dump written in ")).unwrap();
    let during = lines[first..last].iter().filter(|l| l.starts_with("APP ")).count();
    assert!(during > 0, "no application line was written while the dump was\n{}", o.describe());
    println!("{during} application lines were written between the dump's first and last lines");
}
