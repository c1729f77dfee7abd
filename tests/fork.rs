//! fork(): the forked child of a watched process is never judged.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, gettid, say_stats, small_config, work_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn fork_and_wait(from: &str) {
    // SAFETY: the child calls only async-signal-safe functions, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Busy for 2 s of wall-clock time (well over the 300 ms budget of
        // CPU), touching nothing.
        common::busy_in_forked_child(libc::CLOCK_MONOTONIC, 2_000_000_000);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    let how = if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    };
    say!("forked-from-{from} {how}");
}

#[test]
fn forked_child_is_never_judged() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config()).expect("start");
        let stop = Arc::new(AtomicBool::new(false));
        // A registered thread that keeps working throughout.
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let h = failstop::register("worker").expect("register");
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    h.touch();
                    work_for(Duration::from_millis(1));
                    n += 1;
                }
                n
            })
        };
        // Fork from a registered thread, in the middle of its loop...
        let forker = std::thread::spawn(|| {
            let h = failstop::register("forker").expect("register");
            say!("tid forker {}", gettid());
            h.touch();
            work_for(Duration::from_millis(50));
            fork_and_wait("registered");
            h.touch();
        });
        forker.join().unwrap();
        // ...and from the unregistered main thread.
        fork_and_wait("main");
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        say!("worker-iterations {}", worker.join().unwrap());
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("forked_child_is_never_judged", "fork").run();
    o.assert_exit(0);
    assert_eq!(o.value("forked-from-registered"), "exit 0", "{}", o.describe());
    assert_eq!(o.value("forked-from-main"), "exit 0", "{}", o.describe());
    o.assert_no_verdict();
    assert!(!o.stderr.contains("failstop: warning"), "the forked child was watched\n{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
    assert!(o.value("worker-iterations").parse::<u64>().unwrap() > 100, "{}", o.describe());
}
