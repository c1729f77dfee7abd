//! The false-positive soak: slow but living work of every kind, all at once
//! in one watched process, must never get a verdict, and must leak no
//! timers, file descriptors or threads.
//!
//! One child process (action `abort`, `cpu_budget` 300 ms, `stall_budget`
//! 1 s: any verdict ends it) first starts and stops the watchdog 100 times,
//! then runs for the soak's length, together:
//!
//! - 16 registered threads doing bursts of CPU of up to 0.8 of the budget
//!   between touches, under two CPU hogs per core;
//! - a registered reader of a pipe that trickles a byte every 200 ms, with
//!   no progress mark for 30 reads, and a registered thread doing 10 ms
//!   sleeps, 300 between marks (both far over the stall budget unmarked);
//! - short-lived threads registering and leaving, without end;
//! - a registered thread that forks and execs `true`, and forks children
//!   that keep running (1 s of CPU each, untouched) without exec;
//! - the application's own `SIGALRM` handler and `alarm()`, with the
//!   watchdog signal set to `SIGALRM` too (not the default `SIGRTMAX-3`:
//!   the shared signal is the harder case, where failstop chains to it);
//!
//! while the parent stops the whole process with `SIGSTOP` for twice the
//! stall budget and continues it, every 10 s. Then every load ends and the
//! child counts what is left.
//!
//! `quick_soak` (CI) runs 30 s; `long_soak` is `#[ignore]`d: `cargo test
//! --test soak -- --ignored` runs it for `FSTEST_SOAK_SECS` (default 600).

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, gettid, small_config, spin_for_cpu, task_tids, thread_cpu, timer_count};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const STALL: Duration = Duration::from_secs(1);
/// The soak's length in the child, in ms.
const LENGTH_VAR: &str = "FSTEST_SOAK_MS";
/// How often the parent stops the child, and for how long.
const STOP_EVERY: Duration = Duration::from_secs(10);
const STOP_FOR: Duration = Duration::from_secs(2);
const BURSTERS: usize = 16;

/// Open descriptors: the fewest of five looks 20 ms apart. failstop's own
/// threads open small files for a moment (the monitor two every loop, for
/// the cgroup's throttling and its own run-queue wait; the reporter
/// `/proc/self/maps` every second): one caught open is no leak, while a
/// leaked descriptor is there at every look.
fn fd_count() -> usize {
    (0..5)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd").count()
        })
        .min()
        .unwrap_or(0)
}

/// What the child has left: (timers, fds, threads), threads after letting
/// exits settle (a joined thread leaves /proc/self/task a moment later).
fn resources(threads_at_most: usize) -> (usize, usize, usize) {
    let until = Instant::now() + Duration::from_secs(3);
    while task_tids().len() > threads_at_most && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    (timer_count(), fd_count(), task_tids().len())
}

static ALARMS_HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    ALARMS_HANDLED.fetch_add(1, Relaxed);
}

/// A small xorshift generator: reproducible bursts without a dependency.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Spawns a named thread running `f` until `stop`; returns its handle.
fn load<T: Send + 'static>(
    name: &str,
    stop: &Arc<AtomicBool>,
    f: impl FnOnce(&AtomicBool) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let stop = stop.clone();
    std::thread::Builder::new().name(name.into()).spawn(move || f(&stop)).expect("spawn load")
}

/// The child: see the module doc. Prints `SCENARIO` lines with the counts.
fn soak_child(length: Duration) {
    let config = || small_config().stall_budget(STALL).signal(failstop::Signal::SIGALRM);
    // 1. 100 starts and stops, a registered thread in each. The baseline is
    // taken after the first: a first start makes what failstop keeps for
    // the life of the process (the stack walker's probe pipe).
    let round = |i: usize| {
        let wd = failstop::start(config()).unwrap_or_else(|e| panic!("start #{i}: {e}"));
        std::thread::spawn(move || {
            let h = failstop::register(&format!("round-{i}")).expect("register");
            h.touch();
            h.tick();
        })
        .join()
        .unwrap();
        wd.stop();
    };
    let threads0 = task_tids().len();
    round(0);
    let baseline = resources(threads0);
    say!("baseline {} {} {}", baseline.0, baseline.1, baseline.2);
    for i in 1..100 {
        round(i);
    }
    let after = resources(baseline.2);
    say!("after-restarts {} {} {}", after.0, after.1, after.2);

    // 2. The application's SIGALRM handler, then the watchdog (which chains to it).
    common::set_handler(libc::SIGALRM, on_alarm, libc::SA_RESTART, false);
    let wd = failstop::start(config()).expect("start");
    // failstop's threads start with the first registration: one first, so
    // that `running` counts them.
    std::thread::spawn(|| drop(failstop::register("first").expect("register"))).join().unwrap();
    let running = resources(baseline.2 + 2);
    say!("running {} {} {}", running.0, running.1, running.2);
    say!("soak-start");
    let stop = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();

    // 3. Two CPU hogs per core.
    for i in 0..4 {
        loads.push(load(&format!("hog-{i}"), &stop, |stop| {
            let mut x = 0u64;
            while !stop.load(Relaxed) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            0
        }));
    }
    // 4. Bursts of up to 0.8 of the budget between touches.
    let max_burst = Arc::new(AtomicU64::new(0));
    for i in 0..BURSTERS {
        let max_burst = max_burst.clone();
        loads.push(load(&format!("burst-{i}"), &stop, move |stop| {
            let h = failstop::register(&format!("burst-{i}")).expect("register");
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1);
            let most = common::BUDGET.as_nanos() as u64 * 8 / 10;
            let mut bursts = 0;
            while !stop.load(Relaxed) {
                h.touch();
                let want = Duration::from_nanos(1_000_000 + next(&mut seed) % (most - 1_000_000));
                let t0 = thread_cpu();
                spin_for_cpu(want);
                max_burst.fetch_max((thread_cpu() - t0).as_nanos() as u64, Relaxed);
                bursts += 1;
            }
            bursts
        }));
    }
    // 5. Trickling reads and short sleeps, far over the stall budget between marks.
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    loads.push(load("trickle-writer", &stop, move |stop| {
        let mut n = 0;
        while !stop.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: writing one byte from a valid buffer.
            assert_eq!(unsafe { libc::write(wr, b"x".as_ptr().cast(), 1) }, 1);
            n += 1;
        }
        // Enough for the reader to finish the round it is in and see the
        // stop: the forked children hold the write end too (they were
        // forked while it was open), so closing it is no end of file for
        // the reader until the last of them exits, and a reader left
        // waiting for that would be blocked, rightly.
        // SAFETY: writing from a valid buffer into our own pipe (30 bytes
        // fit in its buffer).
        assert_eq!(unsafe { libc::write(wr, [b'x'; 30].as_ptr().cast(), 30) }, 30);
        // SAFETY: our own descriptor.
        unsafe { libc::close(wr) };
        n
    }));
    loads.push(load("trickle-reader", &stop, move |stop| {
        let h = failstop::register("trickle-reader").expect("register");
        let mut b = [0u8; 1];
        let mut ops = 0;
        'outer: loop {
            h.touch();
            if stop.load(Relaxed) {
                break;
            }
            for _ in 0..30 {
                // SAFETY: reading into a valid buffer.
                if unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) } != 1 {
                    break 'outer;
                }
            }
            ops += 1;
        }
        // SAFETY: our own descriptor.
        unsafe { libc::close(rd) };
        ops
    }));
    loads.push(load("sleeper", &stop, |stop| {
        let h = failstop::register("sleeper").expect("register");
        let mut rounds = 0;
        while !stop.load(Relaxed) {
            h.touch();
            for _ in 0..300 {
                std::thread::sleep(Duration::from_millis(10));
            }
            rounds += 1;
        }
        rounds
    }));
    // 6. Short-lived registered threads, four at a time, without end.
    loads.push(load("churn", &stop, |stop| {
        let mut n = 0u64;
        while !stop.load(Relaxed) {
            let batch: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(|| {
                        let h = failstop::register("short").expect("register short-lived");
                        h.touch();
                        h.tick();
                    })
                })
                .collect();
            for t in batch {
                t.join().unwrap();
            }
            n += 4;
        }
        n
    }));
    // 7. fork + exec, and fork children that keep running, from a registered thread.
    loads.push(load("forker", &stop, |stop| {
        let h = failstop::register("forker").expect("register");
        say!("tid forker {}", gettid());
        let (mut execs, mut forks) = (0u64, 0u64);
        let mut running: Vec<libc::pid_t> = Vec::new();
        while !stop.load(Relaxed) {
            h.touch();
            // Waiting for another process: harmless (it may take long on a
            // loaded machine, and that is not this thread's fault).
            let st = h.with_harmless(|| std::process::Command::new("true").status()).expect("spawn true");
            assert!(st.success(), "true: {st:?}");
            execs += 1;
            if running.len() < 2 {
                // SAFETY: the child only spins and calls _exit (async-signal-safe).
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
                if pid == 0 {
                    // 1 s of CPU, untouched.
                    common::busy_in_forked_child(libc::CLOCK_PROCESS_CPUTIME_ID, 1_000_000_000);
                }
                running.push(pid);
                forks += 1;
            }
            running.retain(|&pid| !reaped(pid, libc::WNOHANG));
            h.with_idle(|| std::thread::sleep(Duration::from_millis(100)));
        }
        for pid in running {
            h.with_harmless(|| assert!(reaped(pid, 0)));
        }
        (execs << 32) | forks
    }));
    // 8. The application's alarm(): one a second.
    let alarms = load("alarmer", &stop, |stop| {
        let mut set = 0;
        while !stop.load(Relaxed) {
            // SAFETY: alarm has no preconditions.
            unsafe { libc::alarm(1) };
            set += 1;
            std::thread::sleep(Duration::from_millis(1200));
        }
        set
    });

    let t0 = Instant::now();
    while t0.elapsed() < length {
        std::thread::sleep(Duration::from_millis(100));
        if !failstop::healthy() {
            break;
        }
    }
    stop.store(true, Relaxed);
    let counts: Vec<u64> = loads.into_iter().map(|t| t.join().unwrap()).collect();
    let alarms_set = alarms.join().unwrap();
    std::thread::sleep(Duration::from_millis(1200)); // the last alarm fires
    say!("soak-ms {}", t0.elapsed().as_millis());
    let bursts: u64 = counts[4..4 + BURSTERS].iter().sum();
    let i = 4 + BURSTERS;
    say!("bursts {bursts} max-burst-ms {}", max_burst.load(Relaxed) / 1_000_000);
    say!("trickle bytes {} reads-of-30 {} sleeper-rounds {}", counts[i], counts[i + 1], counts[i + 2]);
    say!("short-lived {}", counts[i + 3]);
    say!("execs {} forks {}", counts[i + 4] >> 32, counts[i + 4] & 0xffff_ffff);
    say!("alarms set {alarms_set} handled {}", ALARMS_HANDLED.load(Relaxed));
    let s = failstop::stats();
    say!(
        "stats verdicts {} warnings {} suppressed {} registered {}",
        s.verdicts,
        s.warnings,
        s.suppressed_warnings,
        s.registered
    );
    say!("healthy {}", failstop::healthy());
    let left = resources(running.2);
    say!("left-running {} {} {}", left.0, left.1, left.2);
    drop(wd);
    let end = resources(baseline.2);
    say!("left-stopped {} {} {}", end.0, end.1, end.2);
}

/// Whether child `pid` was reaped (and exited 0).
fn reaped(pid: libc::pid_t, flags: libc::c_int) -> bool {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    if r == pid {
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "forked child: status {status:#x}");
    }
    r == pid
}

/// Runs the soak for `length` and checks it (see the module doc).
fn soak(test: &str, length: Duration) {
    let mut spec = Spec::scenario(test, "soak")
        .env(LENGTH_VAR, &length.as_millis().to_string())
        .timeout(length + Duration::from_secs(120));
    spec.args.push("--include-ignored".into()); // the child of `long_soak` too
    let mut child = spec.spawn();
    let started = child.wait_for("soak-start", Duration::from_secs(60));
    let mut stops = 0;
    loop {
        let next = started + STOP_EVERY * (stops + 1);
        if next + STOP_FOR + Duration::from_secs(2) > started + length {
            break;
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.pid(), libc::SIGSTOP) }, 0);
        std::thread::sleep(STOP_FOR);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(child.pid(), libc::SIGCONT) }, 0);
        stops += 1;
    }
    let o = child.finish();
    let d = o.describe();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.stat("verdicts"), 0, "{d}");
    assert_eq!(o.value("healthy"), "true", "{d}");
    let triple = |k: &str| -> Vec<usize> { o.value(k).split(' ').map(|v| v.parse().unwrap()).collect() };
    let (base, restarts, running, left, end) = (
        triple("baseline"),
        triple("after-restarts"),
        triple("running"),
        triple("left-running"),
        triple("left-stopped"),
    );
    // Timers, fds, threads: nothing left by the restarts or by the loads;
    // a running watchdog holds one timer (the fuse), two threads and no fd
    // of its own beyond what it had once started.
    assert_eq!(restarts, base, "the 100 restarts leaked (timers, fds, threads)\n{d}");
    assert_eq!(running[0], base[0] + 1, "a running watchdog has one timer (the fuse)\n{d}");
    assert_eq!(running[2], base[2] + 2, "a running watchdog has two threads\n{d}");
    assert_eq!(left, running, "the loads leaked (timers, fds, threads)\n{d}");
    assert_eq!(end, base, "stopping the watchdog left something (timers, fds, threads)\n{d}");
    // Every load really ran.
    let words = |k: &str| -> Vec<u64> { o.value(k).split(' ').filter_map(|w| w.parse().ok()).collect() };
    let bursts = words("bursts");
    assert!(bursts[0] >= 100, "{d}");
    assert!(bursts[1] >= 200, "bursts reached 0.8 of the budget (max {} ms)\n{d}", bursts[1]);
    let trickle = words("trickle");
    assert!(trickle[1] >= 1 && trickle[2] >= 1, "{d}");
    let short: u64 = o.value("short-lived").parse().unwrap();
    assert!(short >= 10_000, "{d}");
    let fork = words("execs");
    assert!(fork[0] >= 5 && fork[1] >= 2, "{d}");
    let alarms = words("alarms");
    assert!(
        alarms[0] >= 3 && alarms[1] + 1 >= alarms[0] && alarms[1] <= alarms[0],
        "the app's alarms: {alarms:?}\n{d}"
    );
    let ms: u64 = o.value("soak-ms").parse().unwrap();
    println!(
        "SOAK {test}: {:.0} s, stopped {stops} times for {} s, no verdict; {} bursts (max {} ms of CPU, budget {} ms) \
         under 4 hogs, {short} short-lived threads, {} execs and {} running fork children, {} alarms handled, \
         {} warnings; left: timers {}, fds {}, threads {} as before",
        ms as f64 / 1e3,
        STOP_FOR.as_secs(),
        bursts[0],
        bursts[1],
        common::BUDGET.as_millis(),
        fork[0],
        fork[1],
        alarms[1],
        o.stat("warnings"),
        end[0],
        end[1],
        end[2],
    );
}

#[test]
fn quick_soak() {
    if common::scenario().is_some() {
        let ms: u64 = std::env::var(LENGTH_VAR).expect(LENGTH_VAR).parse().expect("soak length");
        soak_child(Duration::from_millis(ms));
        common::child_exit(0);
    }
    soak("quick_soak", Duration::from_secs(30));
}

#[test]
#[ignore = "the long soak: 10 minutes (FSTEST_SOAK_SECS); run with --ignored"]
fn long_soak() {
    if common::scenario().is_some() {
        let ms: u64 = std::env::var(LENGTH_VAR).expect(LENGTH_VAR).parse().expect("soak length");
        soak_child(Duration::from_millis(ms));
        common::child_exit(0);
    }
    let secs = std::env::var("FSTEST_SOAK_SECS").map_or(600, |s| s.parse().expect("FSTEST_SOAK_SECS: seconds"));
    soak("long_soak", Duration::from_secs(secs));
}
