//! Fail-stop, always: a fatal verdict ends the
//! process wherever services really run.
//!
//! - **PID 1** of a PID namespace (`unshare --pid --fork --mount-proc`, how
//!   a service runs in a container without an init), where the kernel
//!   ignores every signal whose action is the default, SIGKILL included: a
//!   stuck and a blocked verdict end the process with 134 (128+SIGABRT), and
//!   the last-deadline fuse works there too (134 for `abort`, N for
//!   `exit:N`).
//! - **A crash reporter whose `SIGABRT` handler never returns**: the
//!   process still ends, by `SIGABRT`, within the deadlines.
//! - **A tracer that comes and goes** (`strace -f -p PID`): the verdict is
//!   reported and the process spared while traced, also past the fuse's
//!   first deadline; once the tracer detaches the action goes ahead within
//!   the poll period, and the fuse is armed again.
//!
//! Each test runs a real child process and asserts how it ended, when, and
//! the dump's first line. `unshare` (util-linux) and `strace` (strace) must
//! be installed, and the PID 1 tests need root (CI runs as root): a test
//! that lacks one fails and says what to install.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{BUDGET, SCENARIO_VAR, Spec, WARN, gettid, spawn_spinner};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The children's dump deadline. These tests check the raw part of the dump
/// only, so a short deadline (which may cost a debug build its symbols)
/// keeps them quick and their bounds tight.
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
/// failstop's fuse grace beyond `dump_timeout` (documented: "dump_timeout
/// plus 3 s"), and the time an armed-again fuse gives the hook and the abort.
const HOOK_GRACE: Duration = Duration::from_secs(3);
/// The time failstop gives an application's `SIGABRT` handler.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// How often a spared process looks for its tracer (documented: 100 ms).
const TRACER_POLL: Duration = Duration::from_millis(100);
const STALL: Duration = Duration::from_millis(1000);
/// Slack on every bound: two noisy cores.
const SLACK: Duration = Duration::from_secs(3);
/// A verdict comes by the budget plus one timer period (stuck), or by the
/// stall budget plus its sampling period and the monitor's (blocked).
const STUCK_VERDICT: Duration = Duration::from_millis(300 + 75);
const BLOCKED_VERDICT: Duration = Duration::from_millis(1000 + 125 + 100);

/// 128 + SIGABRT: what a shell, a supervisor or a container runtime reports
/// for a process that died by SIGABRT, and what a PID 1 exits with instead.
const ABORT_STATUS: i32 = 128 + libc::SIGABRT;

fn config() -> failstop::Config {
    failstop::Config::new().cpu_budget(BUDGET).warn_after(WARN).dump_timeout(DUMP_TIMEOUT).stall_budget(STALL)
}

/// The path of `tool`, or a failure that names the Debian package to install.
fn need(tool: &str, package: &str) -> std::path::PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .map(|d| std::path::Path::new(d).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` not found: this test needs it; install the Debian package `{package}` \
                 (apt-get install {package}; .ci/run does)"
            )
        })
}

/// This test binary, re-run as `test` with `FSTEST_SCENARIO=scenario`, as
/// PID 1 of a new PID namespace with its own /proc.
fn as_pid1(test: &str, scenario: &str) -> Spec {
    let unshare = need("unshare", "util-linux");
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the PID 1 tests need root for `unshare --pid --mount-proc` (CI runs as root)");
    let exe = std::env::current_exe().expect("current_exe");
    let exe = exe.to_str().expect("exe path");
    Spec::program(
        unshare,
        &["--pid", "--fork", "--mount-proc", exe, test, "--exact", "--nocapture", "--test-threads=1"],
    )
    .env(SCENARIO_VAR, scenario)
    .timeout(Duration::from_secs(40))
}

/// In a child: says its pid (1 under `as_pid1`).
fn say_pid() {
    say!("pid {}", std::process::id());
}

/// The dump's first line (its verdict line) in `stderr`.
fn first_line(stderr: &str) -> &str {
    stderr.lines().find(|l| l.starts_with("failstop: stuck:") || l.starts_with("failstop: blocked:")).unwrap_or("")
}

fn assert_first_line(o: &common::Outcome, kind: &str, name: &str, action: &str) {
    let line = first_line(&o.stderr);
    let head = format!("failstop: {kind}: thread \"{name}\" (tid {}) ", o.tid(name));
    assert!(line.starts_with(&head), "the dump's first line should start with {head:?}\n{}", o.describe());
    assert!(common::without_process(line).ends_with(&format!("; action: {action}")), "{}", o.describe());
    // Which process: the child's pid (its main thread's tid) and the
    // main thread's comm, the test binary's name cut to 15 bytes.
    let exe = std::env::current_exe().unwrap();
    let comm: String = exe.file_name().unwrap().to_string_lossy().chars().take(15).collect();
    // (As PID 1 of a namespace, the child says its pid.)
    let pid = o.lines.iter().any(|(_, l)| l.contains("SCENARIO pid ")).then(|| o.value("pid").parse().unwrap());
    let pid = pid.unwrap_or(o.pid);
    assert_eq!(common::process_of(line), Some((pid, comm)), "the first line names the process\n{}", o.describe());
}

/// A pre-abort hook that never returns. Async-signal-safe: sleep(3) only.
fn hang_forever() {
    loop {
        // SAFETY: sleep is async-signal-safe.
        unsafe { libc::sleep(1000) };
    }
}

/// A crash reporter's `SIGABRT` handler that never returns (an upload that
/// hangs, a handler that deadlocks). Async-signal-safe: write(2), sleep(3).
extern "C" fn reporter_that_hangs(_: libc::c_int) {
    let msg = b"SCENARIO abort-handler-entered\n";
    // SAFETY: write and sleep are async-signal-safe; a valid buffer.
    unsafe {
        libc::write(1, msg.as_ptr().cast(), msg.len());
        loop {
            libc::sleep(1000);
        }
    }
}

/// A crash reporter's `SIGABRT` handler that returns.
extern "C" fn reporter_that_returns(_: libc::c_int) {
    let msg = b"SCENARIO abort-handler-returned\n";
    // SAFETY: write is async-signal-safe; a valid buffer.
    unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
}

/// Registers the calling thread as `reader`, touches, says `block-start`
/// and blocks in a read(2) that nobody answers.
fn block_forever() -> ! {
    let mut fds = [0; 2];
    // SAFETY: a valid out-array for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let h = failstop::register("reader").expect("register");
    say!("tid reader {}", gettid());
    h.touch();
    say!("block-start");
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reading into a valid buffer; the write end stays open.
        unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
    }
}

/// How long after its `key` line the child ended; printed for the figures.
fn took(o: &common::Outcome, key: &str, case: &str) -> Duration {
    let t = o.ended.saturating_duration_since(o.time_of(key));
    eprintln!("fail_stop figure: {case}: the process ended {:.0} ms after `{key}`", t.as_secs_f64() * 1000.0);
    t
}

fn assert_within(t: Duration, bound: Duration, o: &common::Outcome) {
    assert!(t <= bound, "ended {t:?} after the fault, bound {bound:?}\n{}", o.describe());
}

// ---------------------------------------------------------------------------
// 1. PID 1 of a PID namespace
// ---------------------------------------------------------------------------

#[test]
fn pid1_stuck_ends_with_134() {
    if common::scenario().is_some() {
        say_pid();
        let _wd = failstop::start(config()).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = as_pid1("pid1_stuck_ends_with_134", "pid1-stuck").run();
    assert_eq!(o.value("pid"), "1", "not PID 1\n{}", o.describe());
    o.assert_exit(ABORT_STATUS);
    assert_within(took(&o, "spin-start", "PID 1, stuck"), STUCK_VERDICT + DUMP_TIMEOUT + SLACK, &o);
    assert_first_line(&o, "stuck", "spinner", "abort");
    let last = o.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("failstop: PID 1 of its PID namespace") && last.contains("_exit(134)"),
        "the last line says how it ended\n{}",
        o.describe()
    );
}

#[test]
fn pid1_blocked_ends_with_134() {
    if common::scenario().is_some() {
        say_pid();
        let _wd = failstop::start(config()).expect("start");
        block_forever();
    }
    let o = as_pid1("pid1_blocked_ends_with_134", "pid1-blocked").run();
    assert_eq!(o.value("pid"), "1", "not PID 1\n{}", o.describe());
    o.assert_exit(ABORT_STATUS);
    assert_within(took(&o, "block-start", "PID 1, blocked"), BLOCKED_VERDICT + DUMP_TIMEOUT + SLACK, &o);
    assert_first_line(&o, "blocked", "reader", "abort");
    assert!(o.stderr.contains("_exit(134)"), "{}", o.describe());
}

/// A pre-abort hook that hangs, as PID 1: only the fuse can end the process
/// (`dump_timeout` + 3 s after the verdict), and it must not rely on a
/// signal's default action; it exits with the action's status.
fn pid1_fuse(test: &str, action: failstop::Action, status: i32) {
    if common::scenario().is_some() {
        say_pid();
        // SAFETY: hang_forever only calls sleep(3), async-signal-safe (it is
        // not bounded: that is the point of the test).
        let _wd = failstop::start(unsafe { config().action(action).pre_abort_hook(hang_forever) }).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = as_pid1(test, "pid1-fuse").run();
    assert_eq!(o.value("pid"), "1", "not PID 1\n{}", o.describe());
    o.assert_exit(status);
    let t = took(&o, "spin-start", &format!("PID 1, fuse ({action})"));
    assert_within(t, STUCK_VERDICT + DUMP_TIMEOUT + HOOK_GRACE + SLACK, &o);
    assert!(t >= DUMP_TIMEOUT + HOOK_GRACE, "the fuse blew before its deadline\n{}", o.describe());
    assert_first_line(&o, "stuck", "spinner", &action.to_string());
    assert!(o.stderr.contains("failstop: the fuse blew"), "{}", o.describe());
}

#[test]
fn pid1_fuse_ends_an_abort_with_134() {
    pid1_fuse("pid1_fuse_ends_an_abort_with_134", failstop::Action::Abort, ABORT_STATUS);
}

#[test]
fn pid1_fuse_ends_an_exit_with_its_status() {
    pid1_fuse("pid1_fuse_ends_an_exit_with_its_status", failstop::Action::Exit(9), 9);
}

/// As PID 1, a crash reporter's handler runs (a handler, unlike the default
/// action, is not ignored there), and when it never returns the process
/// ends with 134 all the same.
#[test]
fn pid1_sigabrt_handler_that_never_returns() {
    if common::scenario().is_some() {
        say_pid();
        common::set_handler(libc::SIGABRT, reporter_that_hangs, 0, false);
        let _wd = failstop::start(config()).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = as_pid1("pid1_sigabrt_handler_that_never_returns", "pid1-reporter-hangs").run();
    assert_eq!(o.value("pid"), "1", "not PID 1\n{}", o.describe());
    o.assert_exit(ABORT_STATUS);
    assert!(o.has("abort-handler-entered"), "the crash reporter did not run\n{}", o.describe());
    let t = took(&o, "spin-start", "PID 1, SIGABRT handler that never returns");
    assert_within(t, STUCK_VERDICT + DUMP_TIMEOUT + HOOK_GRACE + SLACK, &o);
    assert_first_line(&o, "stuck", "spinner", "abort");
    assert!(o.stderr.contains("did not return within 1000 ms"), "{}", o.describe());
}

// ---------------------------------------------------------------------------
// 2. A crash reporter whose SIGABRT handler never returns
// ---------------------------------------------------------------------------

#[test]
fn sigabrt_handler_that_never_returns() {
    if common::scenario().is_some() {
        common::set_handler(libc::SIGABRT, reporter_that_hangs, 0, false);
        let _wd = failstop::start(config()).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o =
        Spec::scenario("sigabrt_handler_that_never_returns", "reporter-hangs").timeout(Duration::from_secs(40)).run();
    o.assert_signal(libc::SIGABRT);
    assert!(o.has("abort-handler-entered"), "the crash reporter did not run\n{}", o.describe());
    let t = took(&o, "spin-start", "SIGABRT handler that never returns");
    assert_within(t, STUCK_VERDICT + DUMP_TIMEOUT + HOOK_GRACE + SLACK, &o);
    assert!(t >= ABORT_GRACE, "the handler was not given its grace\n{}", o.describe());
    assert_first_line(&o, "stuck", "spinner", "abort");
    assert!(o.stderr.contains("did not return within 1000 ms"), "{}", o.describe());
}

/// The same with a blocked culprit (the monitor acts): the handler runs on
/// the culprit and never returns; the monitor ends the process.
#[test]
fn sigabrt_handler_that_never_returns_blocked() {
    if common::scenario().is_some() {
        common::set_handler(libc::SIGABRT, reporter_that_hangs, 0, false);
        let _wd = failstop::start(config()).expect("start");
        block_forever();
    }
    let o = Spec::scenario("sigabrt_handler_that_never_returns_blocked", "reporter-hangs-blocked")
        .timeout(Duration::from_secs(40))
        .run();
    o.assert_signal(libc::SIGABRT);
    assert!(o.has("abort-handler-entered"), "the crash reporter did not run\n{}", o.describe());
    let t = took(&o, "block-start", "SIGABRT handler that never returns, blocked culprit");
    assert_within(t, BLOCKED_VERDICT + DUMP_TIMEOUT + HOOK_GRACE + SLACK, &o);
    assert_first_line(&o, "blocked", "reader", "abort");
}

/// A crash reporter that returns: it runs once, then the default action is
/// restored and the process ends by SIGABRT (abort(3)'s behaviour).
#[test]
fn sigabrt_handler_that_returns() {
    if common::scenario().is_some() {
        common::set_handler(libc::SIGABRT, reporter_that_returns, 0, false);
        let _wd = failstop::start(config()).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("sigabrt_handler_that_returns", "reporter-returns").timeout(Duration::from_secs(40)).run();
    o.assert_signal(libc::SIGABRT);
    assert_eq!(o.values("abort-handler-returned").len(), 1, "the crash reporter runs once\n{}", o.describe());
    let t = took(&o, "spin-start", "SIGABRT handler that returns");
    assert_within(t, STUCK_VERDICT + DUMP_TIMEOUT + SLACK, &o);
    assert_first_line(&o, "stuck", "spinner", "abort");
}

// ---------------------------------------------------------------------------
// 3. A tracer that comes and goes
// ---------------------------------------------------------------------------

/// `strace`, killed and reaped when dropped (a failed test leaves none).
struct Tracer(Child);

impl Tracer {
    fn attach(pid: i32) -> Tracer {
        let strace = need("strace", "strace");
        let child = Command::new(strace)
            .args(["-f", "-p", &pid.to_string(), "-o", "/dev/null"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strace");
        Tracer(child)
    }

    /// Ends strace (SIGTERM: it detaches from every thread, as on Ctrl-C)
    /// and returns when it is gone.
    fn detach(mut self) -> Instant {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let st = self.0.wait().expect("wait for strace");
        let at = Instant::now();
        assert!(st.code().is_some() || st.signal() == Some(libc::SIGTERM), "strace: {st:?}");
        at
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// TracerPid of this process's main thread.
fn tracer_pid() -> i32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status.lines().find_map(|l| l.strip_prefix("TracerPid:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The child: waits until the parent's strace is attached, spins, says
/// `gate-closed` when the verdict closes the gate, and lives on.
fn traced_scenario(hang_in_hook: bool) -> ! {
    let config = if hang_in_hook {
        // SAFETY: hang_forever only calls sleep(3), async-signal-safe.
        unsafe { config().pre_abort_hook(hang_forever) }
    } else {
        config()
    };
    let _wd = failstop::start(config).expect("start");
    say!("ready");
    let until = Instant::now() + Duration::from_secs(30);
    while tracer_pid() == 0 {
        if Instant::now() > until {
            say!("no-tracer");
            common::child_exit(3);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    say!("traced {}", tracer_pid());
    let _spinner = spawn_spinner("spinner");
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if !failstop::healthy() {
            say!("gate-closed");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Runs the traced child: attaches strace, waits for the verdict, checks the
/// child lives past the fuse's first deadline, detaches. Returns the outcome
/// and when strace was gone.
fn run_traced(test: &str, scenario: &str) -> (common::Outcome, Instant) {
    let mut child = Spec::scenario(test, scenario).timeout(Duration::from_secs(60)).spawn();
    child.wait_for("ready", Duration::from_secs(30));
    let tracer = Tracer::attach(child.pid());
    child.wait_for("traced", Duration::from_secs(30));
    let closed = child.wait_for("gate-closed", Duration::from_secs(30));
    // Spared while traced, and past the deadline the fuse was first armed
    // for (the verdict + dump_timeout + 3 s): the fuse must not end it.
    let spared_until = closed + DUMP_TIMEOUT + HOOK_GRACE + Duration::from_secs(1);
    std::thread::sleep(spared_until.saturating_duration_since(Instant::now()));
    let alive = child.child.try_wait().expect("try_wait");
    assert!(alive.is_none(), "the child ended while traced: {alive:?}");
    let detached = tracer.detach();
    eprintln!(
        "fail_stop figure: traced for {:.0} ms after the gate closed",
        (detached - closed).as_secs_f64() * 1000.0
    );
    (child.finish(), detached)
}

fn after_detach(o: &common::Outcome, detached: Instant, case: &str) -> Duration {
    let t = o.ended.saturating_duration_since(detached);
    eprintln!("fail_stop figure: {case}: the process ended {:.0} ms after strace was gone", t.as_secs_f64() * 1000.0);
    t
}

#[test]
fn tracer_that_detaches() {
    if common::scenario().is_some() {
        traced_scenario(false);
    }
    let (o, detached) = run_traced("tracer_that_detaches", "traced");
    o.assert_signal(libc::SIGABRT);
    let t = after_detach(&o, detached, "tracer detached");
    assert_within(t, TRACER_POLL + SLACK, &o);
    assert_first_line(&o, "stuck", "spinner", "abort");
    assert!(o.stderr.contains("failstop: a debugger is attached (TracerPid "), "{}", o.describe());
    assert!(o.stderr.contains("failstop: no tracer is attached any more"), "{}", o.describe());
}

/// After the tracer detaches the fuse is armed again: a pre-abort hook that
/// hangs then costs at most the fuse's grace (SIGKILL).
#[test]
fn tracer_that_detaches_fuse_armed_again() {
    if common::scenario().is_some() {
        traced_scenario(true);
    }
    let (o, detached) = run_traced("tracer_that_detaches_fuse_armed_again", "traced-hook-hangs");
    o.assert_signal(libc::SIGKILL);
    let t = after_detach(&o, detached, "tracer detached, hook hangs (fuse)");
    assert_within(t, TRACER_POLL + HOOK_GRACE + SLACK, &o);
    assert!(t >= HOOK_GRACE, "the fuse blew before its deadline\n{}", o.describe());
    assert_first_line(&o, "stuck", "spinner", "abort");
    assert!(o.stderr.contains("failstop: no tracer is attached any more"), "{}", o.describe());
}
