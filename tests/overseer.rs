//! Watching the watchdog: if failstop's own monitor
//! thread stops, the reporter notices, writes the dump and the process
//! fail-stops. The test stops the monitor alone from outside, as a stuck
//! kernel call would: it ptrace-attaches to that one thread and interrupts
//! it (the other threads run on; `TracerPid` of the process stays 0).

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, small_config};
use std::time::{Duration, Instant};

/// The monitor's tid in process `pid`, found by its thread name.
fn monitor_tid(pid: i32) -> Option<i32> {
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "failstop-monito" {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}

#[test]
fn a_stalled_monitor_is_caught_and_the_process_fail_stops() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().stall_budget(Duration::from_millis(1000))).expect("start");
        // failstop's threads start with the first registration: one thread
        // is watched, idle (never judged) for the whole test.
        let h = failstop::register("idle-main").expect("register");
        let _idle = h.idle();
        say!("started");
        // Healthy, idle work: nothing for the monitor's rules to convict.
        for _ in 0..300 {
            say!("beat {}", failstop::healthy());
            std::thread::sleep(Duration::from_millis(100));
        }
        common::child_exit(0);
    }
    let mut child = Spec::scenario("a_stalled_monitor_is_caught_and_the_process_fail_stops", "stall").spawn();
    child.wait_for("started", Duration::from_secs(20));
    let pid = child.pid();
    let tid = monitor_tid(pid).expect("the monitor thread");
    // SAFETY: plain ptrace requests on a thread of our own child.
    unsafe {
        assert_eq!(libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0), 0, "{}", std::io::Error::last_os_error());
        assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0), 0, "{}", std::io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waiting for our tracee's stop; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(tid, &mut status, libc::__WALL) }, tid);
    let stopped = Instant::now();
    eprintln!("monitor {tid} stopped (status {status:#x})");
    // Until it dies with the process, the tracee stays stopped; its exit
    // must be reaped here (we are its tracer) before the process can be.
    // SAFETY: as above.
    let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
    let gone = stopped.elapsed();
    let o = child.finish();
    let d = o.describe();
    assert_eq!(r, tid, "{d}");
    o.assert_signal(libc::SIGABRT);
    eprintln!("FIGURE stalled monitor: stop to end {} ms", gone.as_millis());
    // The limit is max(2 x stall_budget, 5 s); then the dump.
    assert!(gone >= Duration::from_secs(5), "convicted too early: {gone:?}\n{d}");
    assert!(gone < Duration::from_secs(9), "{gone:?}\n{d}");
    let first = o.stderr.lines().find(|l| l.starts_with("failstop: stalled: ")).unwrap_or_default();
    let head = format!("failstop: stalled: thread \"failstop-monitor\" (tid {tid}) is failstop's own monitor");
    assert!(first.starts_with(&head), "{d}");
    assert!(common::without_process(first).ends_with("action: abort"), "{d}");
    assert!(o.stderr.contains("ms by the reporter (the monitor is stalled; no symbols)"), "{d}");
    assert!(o.stdout().contains("beat true"), "{d}");
}
