//! End-to-end: the `ha_pair` example's orchestrator, primary and standby run
//! as processes on loopback, once per fault. A lockup (spin, deadlock,
//! syscall-hang) must end the primary with SIGABRT and let the standby take
//! over within the relevant budget plus a few seconds; long but living work
//! (slow) and no fault (none) must never cause a takeover.
//!
//! The runs are serialized (each one times heartbeats to 100 ms) and each is
//! killed after [`HARD_TIMEOUT`].

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const HARD_TIMEOUT: Duration = Duration::from_secs(60);
/// The example's budgets (the test clears every `FAILSTOP_*` variable).
const CPU_BUDGET_MS: u64 = 500;
const STALL_BUDGET_MS: u64 = 2000;
/// Slack on top of a budget: detection period, dump, the standby's 500 ms of
/// silence, and two noisy cores.
const SLACK_MS: u64 = 5000;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `target/<profile>/examples/ha_pair`, from `target/<profile>/deps/<test>`.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = profile_dir.join("examples").join("ha_pair");
    assert!(path.exists(), "{} not found: cargo builds examples before integration tests", path.display());
    path
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn context(&self) -> String {
        format!("status {:?}\n--- stdout\n{}\n--- stderr (cut)\n{}", self.status, self.stdout, cut(&self.stderr, 4000))
    }

    /// The orchestrator's `result: ...` lines, without their timestamps.
    fn results(&self) -> Vec<&str> {
        self.stdout.lines().filter_map(|l| l.split_once("orchestrator result: ").map(|(_, r)| r)).collect()
    }

    /// N from `result: takeover after N ms`.
    fn takeover_ms(&self) -> Option<u64> {
        self.results().iter().find_map(|r| r.strip_prefix("takeover after ")?.strip_suffix(" ms")?.parse().ok())
    }
}

fn cut(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn run(args: &[&str]) -> Run {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cmd = Command::new(example());
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FAILSTOP_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd.spawn().expect("spawn ha_pair");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + HARD_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            // The primary and standby die with the orchestrator (PDEATHSIG).
            let _ = child.kill();
            let st = child.wait().expect("wait");
            let stdout = out_reader.join().unwrap_or_default();
            panic!("ha_pair {args:?} still running after {HARD_TIMEOUT:?} ({st:?}); stdout so far:\n{stdout}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Run { status, stdout, stderr }
}

/// A lockup: takeover after N ms with `min_ms <= N < budget + SLACK_MS`, the
/// primary ended by SIGABRT, and failstop's verdict line in the dump.
fn assert_takeover(fault: &str, budget_ms: u64, verdict_prefixes: &[&str]) {
    let r = run(&["--fault", fault]);
    let ctx = r.context();
    assert!(r.status.success(), "ha_pair --fault {fault} did not exit 0\n{ctx}");
    let n = r.takeover_ms().unwrap_or_else(|| panic!("no `result: takeover after N ms` line\n{ctx}"));
    // failstop cannot judge the thread before its budget has passed.
    assert!(n >= budget_ms, "takeover after {n} ms, before the budget of {budget_ms} ms\n{ctx}");
    assert!(n < budget_ms + SLACK_MS, "takeover after {n} ms, not below {budget_ms} + {SLACK_MS} ms\n{ctx}");
    assert!(r.results().contains(&"primary ended by SIGABRT"), "the primary did not end by SIGABRT\n{ctx}");
    assert!(
        r.stderr.lines().any(|l| verdict_prefixes.iter().any(|p| l.starts_with(p))),
        "no verdict line starting with one of {verdict_prefixes:?} in the primary's stderr\n{ctx}"
    );
    println!("{fault}: takeover after {n} ms");
}

/// Long work or no fault: no takeover, the primary ran to the end, exit 0.
fn assert_no_takeover(args: &[&str]) -> Run {
    let r = run(args);
    let ctx = r.context();
    assert!(r.status.success(), "ha_pair {args:?} did not exit 0\n{ctx}");
    let results = r.results();
    assert!(results.iter().any(|l| l.starts_with("no takeover")), "no `result: no takeover` line\n{ctx}");
    assert!(r.takeover_ms().is_none(), "a takeover was reported\n{ctx}");
    assert!(results.contains(&"primary exited with status 0"), "the primary did not run to its end\n{ctx}");
    assert!(
        !r.stderr.contains("failstop: stuck:") && !r.stderr.contains("failstop: blocked:"),
        "failstop reached a verdict\n{ctx}"
    );
    r
}

#[test]
fn spin_is_stuck_and_the_standby_takes_over() {
    assert_takeover("spin", CPU_BUDGET_MS, &["failstop: stuck: thread \"primary-main\""]);
}

#[test]
fn deadlock_is_blocked_and_the_standby_takes_over() {
    assert_takeover(
        "deadlock",
        STALL_BUDGET_MS,
        &["failstop: blocked: thread \"primary-main\"", "failstop: blocked: thread \"peer-worker\""],
    );
}

#[test]
fn syscall_hang_is_blocked_and_the_standby_takes_over() {
    assert_takeover("syscall-hang", STALL_BUDGET_MS, &["failstop: blocked: thread \"primary-main\""]);
}

#[test]
fn slow_but_living_work_never_causes_a_takeover() {
    let r = assert_no_takeover(&["--fault", "slow"]);
    let ctx = r.context();
    // The premise: the work really held the service up for seconds, while
    // the heartbeats went on.
    assert!(r.stdout.contains("slow: done: read 25 bytes"), "the slow work did not complete\n{ctx}");
    assert!(r.stdout.contains("the primary answers again, after"), "requests were never held up\n{ctx}");
}

#[test]
fn no_fault_no_takeover() {
    let r = assert_no_takeover(&["--fault", "none", "--seconds", "5"]);
    let ctx = r.context();
    assert!(!r.stdout.contains("no answer for"), "requests went unanswered without a fault\n{ctx}");
}
