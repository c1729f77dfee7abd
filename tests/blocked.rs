//! The blocked-thread detector, in real child processes: SIGSTOP of the
//! whole process, slow trickling I/O, short sleeps and idle waits are not
//! blocked; in the `unhealthy` mode a blocked thread is never signalled.
//! (The faults it catches are in `tests/fault_matrix.rs`.)
//!
//! Each test re-runs this test binary with `FSTEST_SCENARIO` set; the child
//! plays the scenario, the parent asserts how it ended and what it wrote.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, scenario};
use std::time::{Duration, Instant};

const STALL_MS: u64 = 1000;

fn start(action: failstop::Action) -> failstop::Watchdog {
    let c = failstop::Config::new().stall_budget(Duration::from_millis(STALL_MS)).action(action).with_env();
    failstop::start(c.expect("config")).expect("start")
}

fn first_line(stderr: &str) -> &str {
    stderr.lines().find(|l| l.starts_with("failstop: stuck") || l.starts_with("failstop: blocked")).unwrap_or("")
}

#[test]
fn sigstop_longer_than_the_stall_budget_is_not_blocked() {
    if scenario().is_some() {
        let _wd = start(failstop::Action::Abort);
        let h = failstop::register("looper").expect("register");
        let t0 = Instant::now();
        say!("looping");
        while t0.elapsed() < Duration::from_secs(7) {
            h.touch();
            std::thread::sleep(Duration::from_millis(5));
        }
        say!("verdicts {}", failstop::stats().verdicts);
        std::process::exit(0);
    }
    let name = "sigstop_longer_than_the_stall_budget_is_not_blocked";
    let mut child = Spec::scenario(name, name).spawn();
    child.wait_for("looping", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.pid(), libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(3 * STALL_MS));
    // SAFETY: as above.
    unsafe { libc::kill(child.pid(), libc::SIGCONT) };
    let o = child.finish();
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", o.stderr);
    assert!(o.stdout().contains("SCENARIO verdicts 0"), "{}", o.stdout());
    assert!(!o.stderr.contains("failstop: blocked"), "{}", o.stderr);
}

#[test]
fn trickling_io_and_short_sleeps_are_not_blocked() {
    if scenario().is_some() {
        let _wd = start(failstop::Action::Abort);
        let mut fds = [0; 2];
        // SAFETY: valid out-array.
        unsafe { libc::pipe(fds.as_mut_ptr()) };
        let w = fds[1];
        std::thread::spawn(move || {
            for _ in 0..30 {
                std::thread::sleep(Duration::from_millis(200));
                // SAFETY: writing one byte from a valid buffer.
                unsafe { libc::write(w, b"x".as_ptr().cast(), 1) };
            }
        });
        let h = failstop::register("slow-io").expect("register");
        h.touch();
        say!("trickle");
        // One long "operation": 30 reads of one byte, 200 ms apart, with no
        // progress mark in between, then many short sleeps, also unmarked.
        let mut b = [0u8; 1];
        for _ in 0..30 {
            // SAFETY: reading into a valid buffer.
            unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
        }
        for _ in 0..300 {
            std::thread::sleep(Duration::from_millis(10));
        }
        h.touch();
        say!("verdicts {}", failstop::stats().verdicts);
        std::process::exit(0);
    }
    let o = Spec::scenario(
        "trickling_io_and_short_sleeps_are_not_blocked",
        "trickling_io_and_short_sleeps_are_not_blocked",
    )
    .run();
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", o.stderr);
    assert!(o.stdout().contains("SCENARIO verdicts 0"), "{}", o.stdout());
}

#[test]
fn idle_and_harmless_waits_are_never_blocked() {
    if scenario().is_some() {
        let _wd = start(failstop::Action::Abort);
        let h = failstop::register("idler").expect("register");
        h.touch();
        h.with_idle(|| std::thread::sleep(Duration::from_millis(3 * STALL_MS)));
        h.with_harmless(|| std::thread::sleep(Duration::from_millis(3 * STALL_MS)));
        say!("verdicts {}", failstop::stats().verdicts);
        std::process::exit(0);
    }
    let o =
        Spec::scenario("idle_and_harmless_waits_are_never_blocked", "idle_and_harmless_waits_are_never_blocked").run();
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", o.stderr);
    assert!(o.stdout().contains("SCENARIO verdicts 0"), "{}", o.stdout());
}

#[test]
fn unhealthy_mode_never_signals_the_blocked_thread() {
    if scenario().is_some() {
        let _wd = start(failstop::Action::Unhealthy);
        let mut fds = [0; 2];
        // SAFETY: valid out-array.
        unsafe { libc::pipe(fds.as_mut_ptr()) };
        let w = fds[1];
        let reader = std::thread::spawn(move || {
            let h = failstop::register("reader").expect("register");
            h.touch();
            let mut b = [0u8; 1];
            // SAFETY: reading into a valid buffer.
            let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
            let e = std::io::Error::last_os_error();
            say!("read returned {n} {}", if n < 0 { e.to_string() } else { String::new() });
        });
        let t0 = Instant::now();
        while failstop::healthy() && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        say!("healthy {}", failstop::healthy());
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: writing one byte from a valid buffer.
        unsafe { libc::write(w, b"x".as_ptr().cast(), 1) };
        let _ = reader.join();
        std::process::exit(0);
    }
    let o = Spec::scenario(
        "unhealthy_mode_never_signals_the_blocked_thread",
        "unhealthy_mode_never_signals_the_blocked_thread",
    )
    .run();
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", o.stderr);
    assert!(o.stdout().contains("SCENARIO healthy false"), "{}", o.stdout());
    // The read was never interrupted: it returned the byte, not EINTR.
    assert!(o.stdout().contains("SCENARIO read returned 1"), "{}", o.stdout());
    assert!(first_line(&o.stderr).starts_with("failstop: blocked: thread \"reader\""), "{}", o.stderr);
}
