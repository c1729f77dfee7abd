//! Many threads: 10,000 registered threads are watched, and a spin among
//! them is caught, named and ends the process.
//! Global state: the scenario runs in a child process of its own.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{BUDGET, Dump, Spec, small_config, spawn_spinner};
use std::os::unix::process::ExitStatusExt as _;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// The quiet threads registered before the spinner (which is one more).
const MANY: usize = 10_000;
/// Their stacks: small, 10,000 of them.
const STACK: usize = 64 << 10;
/// How often each quiet thread shows progress.
const PERIOD: Duration = Duration::from_secs(1);
/// The dump's deadline in the child. Listing 10,000 threads takes the
/// dump's raw part 6 to 8 s in a debug build on a loaded two-core machine,
/// against the tests' usual 10 s (`common::DUMP_TIMEOUT`): a dump cut short
/// by its deadline is another matter than the one tested here.
const MANY_DUMP_TIMEOUT: Duration = Duration::from_secs(30);
/// From the spin's start to the end of the process: the budget, the
/// monitor's sweep over 10,001 slots and a dump that lists 10,001 threads
/// (at most MANY_DUMP_TIMEOUT), on a noisy two-core machine.
const CATCH_BOUND: Duration = Duration::from_secs(45);
/// The whole child: spawning and registering 10,000 threads, a few
/// periods of quiet, the catch and the dump.
const TOTAL_BOUND: Duration = Duration::from_secs(60);

/// Raises RLIMIT_SIGPENDING to at least `need`: each watched thread's POSIX
/// timer reserves one queued signal of the user's allowance, and the usual
/// default (the RAM-derived figure, or 4,096 in containers) can be below
/// 10,000. Raising the hard limit needs root or CAP_SYS_RESOURCE.
fn raise_sigpending(need: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) }, 0, "getrlimit");
    if lim.rlim_cur == libc::RLIM_INFINITY || lim.rlim_cur >= need {
        return;
    }
    let want = libc::rlimit { rlim_cur: need, rlim_max: lim.rlim_max.max(need) };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &want) } != 0 {
        let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: a valid rlimit; the soft limit up to the hard one needs no
        // privilege.
        unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &soft) };
        say!("limit RLIMIT_SIGPENDING hard limit {} < {need}: raise it (ulimit -i) or run as root", lim.rlim_max);
    }
}

/// The child's outcome without the whole dump (10,000 thread lines): the
/// status, stdout and the first and last lines of stderr.
fn brief(o: &common::Outcome) -> String {
    let lines: Vec<&str> = o.stderr.lines().collect();
    let head = lines.iter().take(30).copied().collect::<Vec<_>>().join("\n");
    let tail = lines[lines.len().saturating_sub(20).max(30.min(lines.len()))..].join("\n");
    format!(
        "status {:?}, elapsed {:?}\n--- stdout\n{}\n--- stderr ({} lines; first 30 and last 20)\n{head}\n...\n{tail}\n---",
        o.status,
        o.elapsed(),
        o.stdout(),
        lines.len()
    )
}

#[test]
fn ten_thousand_threads_are_watched_and_a_spin_among_them_is_caught() {
    if common::scenario().is_some() {
        raise_sigpending(MANY as u64 + 1024);
        let _wd = failstop::start(small_config().dump_timeout(MANY_DUMP_TIMEOUT)).expect("start");
        let go = Arc::new(Barrier::new(MANY + 1));
        let registered = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let first_error: Arc<Mutex<Option<String>>> = Arc::default();
        let t0 = Instant::now();
        for i in 0..MANY {
            let (go, registered, failed, first_error) =
                (go.clone(), registered.clone(), failed.clone(), first_error.clone());
            std::thread::Builder::new()
                .name(format!("pool-{i}"))
                .stack_size(STACK)
                .spawn(move || {
                    go.wait();
                    let h = match failstop::register(&format!("pool-{i}")) {
                        Ok(h) => h,
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert_with(|| e.to_string());
                            failed.fetch_add(1, SeqCst);
                            return;
                        }
                    };
                    registered.fetch_add(1, SeqCst);
                    // Phases spread over the period; half the threads show
                    // progress outside any scope, half wait in idle scopes.
                    let offset = PERIOD.mul_f64(i as f64 / MANY as f64);
                    if i % 2 == 0 {
                        std::thread::sleep(offset);
                        loop {
                            h.touch();
                            std::thread::sleep(PERIOD);
                        }
                    } else {
                        h.with_idle(|| std::thread::sleep(offset));
                        loop {
                            h.touch();
                            h.with_idle(|| std::thread::sleep(PERIOD));
                        }
                    }
                })
                .unwrap_or_else(|e| panic!("spawn thread {i} of {MANY}: {e}"));
        }
        say!("spawned-in-ms {}", t0.elapsed().as_millis());
        go.wait();
        while registered.load(SeqCst) + failed.load(SeqCst) < MANY {
            std::thread::sleep(Duration::from_millis(5));
        }
        say!("registered-in-ms {}", t0.elapsed().as_millis());
        if let Some(e) = first_error.lock().unwrap().take() {
            say!("register-failed {} of {MANY}: {e}", failed.load(SeqCst));
            common::child_exit(3);
        }
        say!("registered {}", failstop::stats().registered);
        // A few periods of quiet: nothing is judged stuck or blocked.
        std::thread::sleep(3 * PERIOD);
        say!("verdicts {}", failstop::stats().verdicts);
        // The spinner is the 10,001st registered thread: its slot lies beyond
        // all the others'.
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("ten_thousand_threads_are_watched_and_a_spin_among_them_is_caught", "many")
        .timeout(TOTAL_BOUND + Duration::from_secs(30))
        .run();
    assert!(!o.has("limit"), "a resource limit stops the test: {}\n{}", o.value("limit"), brief(&o));
    assert!(!o.has("register-failed"), "register() failed: {}\n{}", o.value("register-failed"), brief(&o));
    assert_eq!(o.value("registered"), MANY.to_string(), "{}", brief(&o));
    assert_eq!(o.value("verdicts"), "0", "a verdict among quiet threads\n{}", brief(&o));
    assert_eq!(o.status.signal(), Some(libc::SIGABRT), "expected SIGABRT\n{}", brief(&o));
    let took = o.ended.saturating_duration_since(o.time_of("spin-start"));
    eprintln!(
        "many_threads: {MANY} threads registered {} ms after the first spawn; the spin was caught and the process \
         ended {took:?} after it started; the child took {:?}",
        o.value("registered-in-ms"),
        o.elapsed()
    );
    assert!(took <= CATCH_BOUND, "ended {took:?} after the spin started (bound {CATCH_BOUND:?})\n{}", brief(&o));
    assert!(o.elapsed() <= TOTAL_BOUND, "the child took {:?} (bound {TOTAL_BOUND:?})\n{}", o.elapsed(), brief(&o));
    // The budget and the dump deadline are the ones the bounds assume.
    assert!(BUDGET + MANY_DUMP_TIMEOUT < CATCH_BOUND);

    // The dump: the verdict names the spinner, which is listed first and
    // marked. Not asserted: the other threads' lines and the symbolized
    // backtraces (`Dump::assert_stuck`). With 10,000 threads they do not all
    // fit in the dump's fixed memory (the dump says how many bytes are
    // missing), and which ones are lost is the dump's business, not this
    // test's.
    let dump = Dump::parse(&o.stderr);
    let v = dump.verdict();
    let tid = o.tid("spinner");
    assert_eq!((v.name.as_str(), v.tid, v.action.as_str()), ("spinner", tid, "abort"), "{}", brief(&o));
    assert_eq!(v.budget_ms, BUDGET.as_millis() as u64, "{}", brief(&o));
    assert!(v.not_before_budget(), "verdict before the budget: {v:?}");
    let listed = dump.threads();
    assert!(
        listed.first().is_some_and(|t| t.0 && t.1 == tid && t.2 == "spinner"),
        "the spinner is not listed first and marked '>'\n{}",
        brief(&o)
    );
    assert_eq!(listed.iter().filter(|t| t.0).count(), 1, "one culprit line\n{}", brief(&o));
    // `failstop: pid P, N threads; ...`: every thread of the process, the
    // 10,000 quiet ones and the spinner among them. (The dump gives no
    // count of registered threads: `registered` above is failstop's.)
    let threads: usize = dump
        .raw
        .iter()
        .find_map(|l| l.strip_prefix("failstop: pid ")?.split_once(", ")?.1.split_once(" threads;")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no `failstop: pid P, N threads` line\n{}", brief(&o)));
    assert!(threads > MANY, "the dump counts {threads} threads\n{}", brief(&o));
    assert!(listed.iter().any(|t| t.2.starts_with("pool-") && t.3.contains(" registered")), "{}", brief(&o));
    // The closing `dump written` line is there even when the dump outgrew
    // its memory (room is kept for it), and then says how much is missing.
    let closing = o.stderr.lines().find(|l| l.starts_with("failstop: dump written in "));
    let closing = closing.unwrap_or_else(|| panic!("no closing `dump written` line\n{}", brief(&o)));
    println!("many_threads: {closing}");
}
