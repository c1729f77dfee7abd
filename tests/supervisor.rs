//! A real supervisor from Debian restarts the service after each
//! fail-stop: runit's `runsv` (Debian package `runit`, installed by
//! `.ci/run`; this test installs nothing and fails, naming the package, if
//! `runsv` or `sv` is missing) supervises, in a directory of the test's own,
//!
//! - the C echo server (`examples/c/echo_server.c`): a client's `FAULT spin`
//!   and `FAULT block`, three of each in turn; after each the old run ended by
//!   SIGABRT (as runsv's `./finish` is told), left its own dump naming the
//!   event loop, and runsv started a new pid that answers `HEALTH` with
//!   `HEALTHY`;
//! - the demo (`examples/demo.rs`, `--fault spin`): every run spins after
//!   its start, so under a supervisor it is a crash loop of healthy starts
//!   and fail-stops, each with its own dump naming `worker-0`.
//!
//! Each fault's times are printed: from the fault to the end of the old run
//! (failstop's detection and dump), from there to runsv's new pid, and to the
//! new run serving.
//!
//! The echo server's faults are a spin, a block and a vanished loop thread
//! (`FAULT vanish`: its main thread ends by `syscall(SYS_exit, 0)`).

use failstop_test_support as common;
#[path = "supervisor/runsv.rs"]
mod runsv;

use common::{Dump, c};
use runsv::{Ending, Service, exists};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The stall budget of the blocked case.
const STALL_BUDGET_MS: u64 = 1000;
/// From the fault to the end of the old run: detection plus the dump
/// (generous: two noisy cores; the dump alone may take DUMP_TIMEOUT).
const END_BOUND: Duration = common::CATCH_BOUND;
/// From the end of a run to runsv's next (runsv restarts at once, or one
/// second later when the run lasted less than a second).
const RESTART_BOUND: Duration = Duration::from_secs(10);
/// From a new pid to the service serving.
const SERVE_BOUND: Duration = Duration::from_secs(20);
/// How old a run is, at least, when its fault comes: runsv waits a second
/// before it restarts a run that lasted less than a second (crash-loop
/// throttling); the figures here are for services that were up longer.
const UP_BEFORE_FAULT: Duration = Duration::from_millis(1500);
/// A reply slower than this fails the test.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// One supervised service at a time: two spinning services on two cores
/// starve each other's dump.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The failstop variables every service here runs with.
fn failstop_env() -> Vec<(&'static str, String)> {
    vec![
        ("FAILSTOP_CPU_BUDGET_MS", common::BUDGET.as_millis().to_string()),
        ("FAILSTOP_WARN_MS", common::WARN.as_millis().to_string()),
        ("FAILSTOP_STALL_BUDGET_MS", STALL_BUDGET_MS.to_string()),
        ("FAILSTOP_DUMP_TIMEOUT_MS", common::DUMP_TIMEOUT.as_millis().to_string()),
    ]
}

fn start(root: &Path, name: &str, argv: &[&str]) -> Service {
    let env = failstop_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Service::start(root, name, argv, &env)
}

/// Times of one fail-stop and restart.
struct Cycle {
    fault: &'static str,
    /// From the fault to the verdict (the dump's `verdict at CLOCK_MONOTONIC`).
    verdict: Duration,
    /// From the fault to the end of the old run.
    ended: Duration,
    /// From the end of the old run to runsv's new pid.
    restarted: Duration,
    /// From the new pid to the new run serving.
    serving: Duration,
}

impl Cycle {
    fn total(&self) -> Duration {
        self.ended + self.restarted
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CLOCK_MONOTONIC now, in ms (the clock of the dump's verdict time).
fn monotonic_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// From `fault_ms` (CLOCK_MONOTONIC) to the verdict of `dump`; with
/// `strict` (the fault's time is exact), a verdict before it fails.
fn fault_to_verdict(svc: &mut Service, dump: &str, fault_ms: f64, strict: bool) -> Duration {
    let at = dump.lines().nth(1).and_then(|l| l.split_once("; verdict at CLOCK_MONOTONIC ")).map(|(_, r)| r);
    let at: Option<f64> = at.and_then(|r| r.split_once(" ms;")).and_then(|(v, _)| v.parse().ok());
    let at = at.unwrap_or_else(|| panic!("no `verdict at CLOCK_MONOTONIC` in the dump's second line:\n{dump}"));
    svc.check(!strict || at >= fault_ms, &format!("a verdict at {at} ms, before the fault at {fault_ms:.1} ms"));
    Duration::from_secs_f64((at - fault_ms).max(0.0) / 1e3)
}

/// Waits for the old run `old` to end and runsv to start a new one; returns
/// the new pid, when the old run was gone, and when the new pid was seen.
fn fail_stop_and_restart(svc: &mut Service, old: i32, fault: Instant) -> (i32, Instant, Instant) {
    let until = fault + END_BOUND;
    let ended = loop {
        if !exists(old) {
            break Instant::now();
        }
        let now = Instant::now();
        svc.check(now < until, &format!("run {old} still alive {END_BOUND:?} after its fault"));
        std::thread::sleep(Duration::from_millis(2));
    };
    let (new, restarted) = svc.wait_running(Some(old), RESTART_BOUND);
    let status = svc.status();
    let want = format!("run: {}: (pid {new})", svc.dir.display());
    svc.check(status.starts_with(&want), &format!("sv status {status:?}, expected {want:?}"));
    (new, ended, restarted)
}

/// Checks that run number `n` (from 1) ended by SIGABRT, as runsv saw it.
fn assert_aborted(svc: &mut Service, n: usize) {
    let endings = svc.wait_endings(n, RESTART_BOUND);
    let e = endings[n - 1];
    svc.check(e == Ending { code: -1, signal: libc::SIGABRT }, &format!("run #{n} ended {e:?}, not by SIGABRT"));
}

/// The dump file of run `pid`, which must exist and be the only new one.
fn dump_of(svc: &mut Service, pid: i32, dumps_before: usize) -> String {
    let path = svc.dump_of(pid);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    svc.check(!text.is_empty(), &format!("no dump in {path:?}"));
    let n = svc.dumps().len();
    svc.check(n == dumps_before + 1, &format!("{n} dump files after {dumps_before} (one per run expected)"));
    text
}

fn print_figures(what: &str, cycles: &[Cycle]) {
    for c in cycles {
        eprintln!(
            "supervisor: {what} {}: verdict {:.0} ms after the fault, ended {:.0} ms after it, runsv's new pid \
             {:.0} ms later (fault to restart {:.0} ms), serving {:.0} ms after that",
            c.fault,
            ms(c.verdict),
            ms(c.ended),
            ms(c.restarted),
            ms(c.total()),
            ms(c.serving)
        );
    }
    let mut kinds: Vec<&str> = cycles.iter().map(|c| c.fault).collect();
    kinds.dedup();
    kinds.sort();
    kinds.dedup();
    for k in kinds {
        let mut t: Vec<f64> = cycles.iter().filter(|c| c.fault == k).map(|c| ms(c.total())).collect();
        t.sort_by(f64::total_cmp);
        eprintln!(
            "supervisor: {what} {k}: fault to restart over {} runs: min {:.0} ms, median {:.0} ms, max {:.0} ms",
            t.len(),
            t[0],
            t[t.len() / 2],
            t[t.len() - 1]
        );
    }
}

// ---------------------------------------------------------------------------
// The C echo server
// ---------------------------------------------------------------------------

fn echo_server() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = tmp.join(format!("echo_server-supervisor-{}", std::process::id()));
    c::build_static("examples/c/echo_server.c", &out, &["-O2"])
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("set_read_timeout");
        s.set_nodelay(true).expect("set_nodelay");
        Client { reader: BufReader::new(s.try_clone().expect("clone stream")), writer: s }
    }

    /// Sends `line` and returns the reply line, without its '\n'.
    fn ask(&mut self, line: &str) -> Result<String, String> {
        self.writer.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("send {line:?}: {e}"))?;
        let mut reply = String::new();
        let n = self.reader.read_line(&mut reply).map_err(|e| format!("reply to {line:?}: {e}"))?;
        if n == 0 || !reply.ends_with('\n') {
            return Err(format!("connection closed before the reply to {line:?} (got {reply:?})"));
        }
        reply.pop();
        Ok(reply)
    }
}

/// Waits for run `pid` to listen, then checks that it echoes and is healthy;
/// returns its port.
fn serving(svc: &mut Service, pid: i32) -> u16 {
    let (line, _) = svc.wait_stdout(pid, "echo_server: listening on 127.0.0.1:", SERVE_BOUND);
    let port = line.rsplit(':').next().and_then(|p| p.split_whitespace().next()).and_then(|p| p.parse().ok());
    let port = port.unwrap_or_else(|| panic!("no port in {line:?}"));
    let mut client = Client::connect(port);
    let hello = format!("hello, run {pid}");
    let answers = (client.ask(&hello), client.ask("HEALTH"));
    let ok = answers == (Ok(hello.clone()), Ok("HEALTHY".to_string()));
    svc.check(ok, &format!("run {pid} on port {port} answered {answers:?}"));
    port
}

/// Checks run `pid`'s dump (file and stderr) for `FAULT kind`.
fn assert_echo_dump(svc: &mut Service, kind: &str, pid: i32, dumps_before: usize) {
    let dump = dump_of(svc, pid, dumps_before);
    let stderr = std::fs::read_to_string(svc.stderr_of(pid)).unwrap_or_default();
    // The echo server's loop runs on its main thread: the culprit's tid is the pid.
    let verdict = match kind {
        "spin" => format!("failstop: stuck: thread \"echo-loop\" (tid {pid}) "),
        "vanish" => format!(
            "failstop: vanished: thread \"echo-loop\" (tid {pid}) is gone without unregistering (the main thread \
             ended by SYS_exit and is a zombie while the other threads run"
        ),
        _ => format!("failstop: blocked: thread \"echo-loop\" (tid {pid}) "),
    };
    let first = dump.lines().next().unwrap_or_default();
    svc.check(
        first.starts_with(&verdict),
        &format!("run {pid}: the dump's first line {first:?}, expected {verdict:?}"),
    );
    svc.check(common::without_process(first).ends_with("; action: abort"), &format!("run {pid}: {first:?}"));
    svc.check(stderr.contains(first), &format!("run {pid}: the verdict line is not in its stderr"));
    svc.check(stderr.contains("failstop: dump written in "), &format!("run {pid}: no `dump written` in its stderr"));
    if kind == "spin" {
        Dump::parse(&stderr).assert_stuck("echo-loop", pid, "abort", "fault_spin");
    } else if kind == "vanish" {
        let culprit = format!("> thread {pid} \"echo-loop\" state Z");
        svc.check(
            dump.contains(&culprit),
            &format!("run {pid}: the zombie culprit is not listed first as {culprit:?}"),
        );
    } else {
        let budget = format!("(stall_budget {STALL_BUDGET_MS} ms); action: abort");
        svc.check(first.contains(&budget), &format!("run {pid}: {first:?} does not name {budget:?}"));
        let culprit = format!("> thread {pid} \"echo-loop\" state ");
        let at = dump.find(&culprit);
        let block: Vec<&str> = at.map(|at| dump[at..].lines().take(4).collect()).unwrap_or_default();
        let in_read = block.iter().any(|l| l.trim_start().starts_with("syscall: read (nr "));
        svc.check(in_read, &format!("run {pid}: the culprit is not shown in read(): {block:?}"));
    }
}

#[test]
fn runsv_restarts_the_echo_server_after_each_fail_stop() {
    let _serial = serial();
    let server = echo_server();
    let root = c::temp_dir("supervisor-echo");
    let mut svc = start(&root, "echo", &[server.to_str().unwrap(), "--allow-faults", "0"]);
    let (mut pid, mut up) = svc.wait_running(None, SERVE_BOUND);
    let mut port = serving(&mut svc, pid);
    let faults = ["spin", "block", "vanish", "spin", "block", "vanish"];
    let mut cycles = Vec::new();
    for (i, &kind) in faults.iter().enumerate() {
        let dumps_before = svc.dumps().len();
        std::thread::sleep(UP_BEFORE_FAULT.saturating_sub(up.elapsed()));
        let mut client = Client::connect(port);
        let ack = client.ask(&format!("FAULT {kind}"));
        let (fault, fault_ms) = (Instant::now(), monotonic_ms());
        let want = match kind {
            "vanish" => "FAULT vanish: the loop vanishes now".to_string(),
            _ => format!("FAULT {kind}: the loop {kind}s now"),
        };
        svc.check(ack.as_deref() == Ok(want.as_str()), &format!("run {pid}: FAULT {kind} answered {ack:?}"));
        let (new, ended, restarted) = fail_stop_and_restart(&mut svc, pid, fault);
        let new_port = serving(&mut svc, new);
        let served = Instant::now();
        assert_aborted(&mut svc, i + 1);
        assert_echo_dump(&mut svc, kind, pid, dumps_before);
        let dump = std::fs::read_to_string(svc.dump_of(pid)).unwrap_or_default();
        let cycle = Cycle {
            fault: kind,
            // The ack comes after the loop started its fault: exact.
            verdict: fault_to_verdict(&mut svc, &dump, fault_ms, true),
            ended: ended - fault,
            restarted: restarted - ended,
            serving: served - restarted,
        };
        if kind == "block" {
            let early = cycle.ended < Duration::from_millis(STALL_BUDGET_MS);
            svc.check(!early, &format!("run {pid}: blocked, ended {:?} after the fault", cycle.ended));
        }
        // The old run's client sees its connection closed, not an answer.
        svc.check(client.ask("HEALTH").is_err(), &format!("run {pid}: its connection outlived it"));
        cycles.push(cycle);
        (pid, port, up) = (new, new_port, restarted);
    }
    // The supervisor's stop: SIGTERM, which the server handles (exit 0).
    svc.exit(Duration::from_secs(20));
    let endings = svc.endings();
    let last = endings.last().copied();
    let clean = endings.len() == faults.len() + 1 && last == Some(Ending { code: 0, signal: 0 });
    svc.check(clean, &format!("after `sv exit`: endings {endings:?}, the last run should exit 0"));
    svc.check(!exists(pid), &format!("run {pid} outlived runsv"));
    svc.check(svc.dumps().len() == faults.len(), "a dump from the clean stop");
    print_figures("echo server", &cycles);
}

// ---------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------

#[test]
fn runsv_restarts_the_demo_after_each_spin() {
    let _serial = serial();
    let demo = common::demo_path();
    let root = c::temp_dir("supervisor-demo");
    // Every run spins 1.5 s after its start (see UP_BEFORE_FAULT), after
    // healthy heartbeats.
    let after = UP_BEFORE_FAULT.as_millis().to_string();
    let argv = [demo.to_str().unwrap(), "--fault", "spin", "--after", &after, "--seconds", "120"];
    let mut svc = start(&root, "demo", &argv);
    let (mut pid, _) = svc.wait_running(None, SERVE_BOUND);
    let runs = 3;
    let mut cycles = Vec::new();
    for n in 1..=runs {
        let dumps_before = svc.dumps().len();
        svc.wait_stdout(pid, "heartbeat #1: healthy", SERVE_BOUND);
        let (_, fault) = svc.wait_stdout(pid, "worker-0: FAULT spin", SERVE_BOUND);
        let fault_ms = monotonic_ms();
        let (new, ended, restarted) = fail_stop_and_restart(&mut svc, pid, fault);
        let (_, healthy) = svc.wait_stdout(new, "heartbeat #1: healthy", SERVE_BOUND);
        let dump = std::fs::read_to_string(svc.dump_of(pid)).unwrap_or_default();
        cycles.push(Cycle {
            fault: "spin",
            // The FAULT line is seen a little after it was printed.
            verdict: fault_to_verdict(&mut svc, &dump, fault_ms, false),
            ended: ended - fault,
            restarted: restarted - ended,
            serving: healthy - restarted,
        });
        assert_aborted(&mut svc, n);
        let dump = dump_of(&mut svc, pid, dumps_before);
        let first = dump.lines().next().unwrap_or_default().to_string();
        let verdict = "failstop: stuck: thread \"worker-0\" (tid ";
        svc.check(first.starts_with(verdict), &format!("run {pid}: the dump's first line {first:?}"));
        let stderr = std::fs::read_to_string(svc.stderr_of(pid)).unwrap_or_default();
        svc.check(stderr.contains(&first), &format!("run {pid}: the verdict line is not in its stderr"));
        let parsed = Dump::parse(&stderr);
        parsed.assert_stuck("worker-0", parsed.verdict().tid, "abort", "spin_forever");
        pid = new;
    }
    // The run now going has no handler for the supervisor's SIGTERM.
    svc.exit(Duration::from_secs(20));
    let endings = svc.endings();
    svc.check(endings.len() == runs + 1, &format!("after `sv exit`: endings {endings:?}"));
    svc.check(!exists(pid), &format!("run {pid} outlived runsv"));
    print_figures("demo", &cycles);
}
