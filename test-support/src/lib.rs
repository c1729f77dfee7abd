//! The harness failstop's integration tests share (the crate
//! `failstop-test-support`, not published; each test file says
//! `use failstop_test_support as common;`).
//!
//! Crash paths are tested with real child processes: a test re-runs its own
//! test binary (`current_exe()`) restricted to itself, with
//! `FSTEST_SCENARIO=<name>` in the environment. In the child the test
//! function sees the variable, runs the scenario and exits; in the parent it
//! spawns the child and asserts on its exit status, stdout, stderr and
//! timing. Scenarios print machine-readable lines `SCENARIO <key> <values>`
//! on stdout.
//!
//! Linux only (the tests run there); elsewhere the crate is empty, so that
//! the workspace still type-checks for other targets.
#![cfg(target_os = "linux")]

pub mod c;
pub mod cgroup;
pub mod matrix;
pub mod netns;
pub mod preload;

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The variable that selects the scenario in a child (not a `FAILSTOP_*`
/// name: `with_env` rejects unknown ones).
pub const SCENARIO_VAR: &str = "FSTEST_SCENARIO";
/// The hard limit for any child.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Small budgets keep crash scenarios fast.
pub const BUDGET: Duration = Duration::from_millis(300);
pub const WARN: Duration = Duration::from_millis(100);
/// The dump deadline in the children. The default (2 s) is sometimes missed
/// by the symbolizer of a debug build on a loaded two-core machine, which
/// costs the symbolized part of the dump (by design); the tests check that
/// part, so they give it more time.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(10);
/// The generous bound for "caught quickly" on a noisy two-core machine
/// (the expected time is about the 300 ms budget plus the dump, which takes
/// at most DUMP_TIMEOUT).
pub const CATCH_BOUND: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// In the child
// ---------------------------------------------------------------------------

/// The scenario to run, when this process is a child.
pub fn scenario() -> Option<String> {
    std::env::var(SCENARIO_VAR).ok()
}

/// Ends a child scenario that finished normally.
pub fn child_exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// Prints `SCENARIO <text>` on stdout, flushed.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "SCENARIO {}", format_args!($($arg)*));
        let _ = out.flush();
    }};
}

/// The calling thread's kernel id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The calling thread's CPU time.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The fault: a loop that never makes progress. Never inlined, so that it
/// shows in backtraces under this name.
#[inline(never)]
pub fn spin_here_forever() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Burns `cpu` of the calling thread's CPU time without touching anything.
#[inline(never)]
pub fn spin_for_cpu(cpu: Duration) {
    let until = thread_cpu() + cpu;
    let mut x = 0u64;
    while thread_cpu() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

/// Busy work for `wall` of wall-clock time (at most that much CPU).
pub fn work_for(wall: Duration) {
    let until = Instant::now() + wall;
    let mut x = 0u64;
    while Instant::now() < until {
        for _ in 0..100 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// Installs `handler` for `sig` with `flags`, masking every signal while
/// it runs if `mask_all`, else none but `sig` itself.
pub fn set_handler(sig: libc::c_int, handler: extern "C" fn(libc::c_int), flags: libc::c_int, mask_all: bool) {
    // SAFETY: sigaction is plain data; a plain handler with a valid mask.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = flags;
        if mask_all {
            libc::sigfillset(&mut sa.sa_mask);
        } else {
            libc::sigemptyset(&mut sa.sa_mask);
        }
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0, "sigaction({sig})");
    }
}

/// Blocks every signal for the calling thread; returns the mask it had
/// (give it back with `pthread_sigmask(SIG_SETMASK, ...)`).
pub fn block_every_signal() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; a full set applied to the calling
    // thread, the previous mask written to a valid out-pointer.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

/// Burns `cpu` of the calling thread's CPU time with a `tick` every 50 ms
/// of it (slow work that makes progress); returns the number of ticks.
pub fn work_with_ticks(h: &failstop::ThreadHandle, cpu: Duration) -> u64 {
    let start = thread_cpu();
    let mut ticks = 0;
    while thread_cpu() - start < cpu {
        spin_for_cpu(Duration::from_millis(50));
        h.tick();
        ticks += 1;
    }
    ticks
}

/// In a forked child (async-signal-safe calls only): busy until `clock`
/// (CLOCK_MONOTONIC: wall time; CLOCK_PROCESS_CPUTIME_ID: CPU time) has
/// advanced by `ns`, touching nothing; then `_exit(0)`.
pub fn busy_in_forked_child(clock: libc::clockid_t, ns: i64) -> ! {
    let now = || {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid out-pointer; clock_gettime is async-signal-safe.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let until = now() + ns;
    let mut x = 0u64;
    while now() < until {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// Every thread id of this process, from `/proc/self/task`.
pub fn task_tids() -> Vec<i32> {
    let mut tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids
}

/// POSIX timers of this process (lines `ID:` of `/proc/self/timers`).
pub fn timer_count() -> usize {
    std::fs::read_to_string("/proc/self/timers")
        .expect("read /proc/self/timers")
        .lines()
        .filter(|l| l.starts_with("ID:"))
        .count()
}

/// VmRSS of this process, in KiB.
pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

/// A config with the small test budgets and the longer dump deadline.
pub fn small_config() -> failstop::Config {
    failstop::Config::new().cpu_budget(BUDGET).warn_after(WARN).dump_timeout(DUMP_TIMEOUT)
}

/// Waits until the dump file at `path` ends with its `dump written` line
/// (non-fatal modes: nothing else waits for the dump).
pub fn wait_for_dump_file(path: &std::path::Path) -> bool {
    let until = Instant::now() + DUMP_TIMEOUT + Duration::from_secs(5);
    while Instant::now() < until {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains("failstop: dump written in ")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Spawns a thread that registers as `name`, prints its tid, touches, says
/// `spin-start` (and the matrix's `fault-start`) and spins forever. Returns
/// after `spin-start` was printed.
pub fn spawn_spinner(name: &'static str) -> JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let h = failstop::register(name).expect("register spinner");
            say!("tid {name} {}", gettid());
            h.touch();
            say!("spin-start");
            matrix::fault_start();
            let _ = tx.send(());
            spin_here_forever();
        })
        .expect("spawn spinner");
    rx.recv().expect("spinner started");
    t
}

/// Prints the counters the parents check.
pub fn say_stats() {
    let s = failstop::stats();
    say!("stats verdicts {} warnings {} registered {}", s.verdicts, s.warnings, s.registered);
    say!("healthy {}", failstop::healthy());
}

// ---------------------------------------------------------------------------
// In the parent
// ---------------------------------------------------------------------------

/// What the child's stderr is connected to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stderr {
    /// A pipe the parent reads.
    Pipe,
    /// `/dev/null`.
    Null,
    /// A pipe whose read end the parent closes right after the spawn:
    /// every write to it fails with EPIPE.
    ClosedPipe,
}

/// How to run a child.
pub struct Spec {
    pub program: Option<std::path::PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stderr: Stderr,
    pub timeout: Duration,
}

impl Spec {
    /// Re-run this test binary as `test`, with `FSTEST_SCENARIO=scenario`.
    pub fn scenario(test: &str, scenario: &str) -> Spec {
        Spec {
            program: None,
            args: vec![test.into(), "--exact".into(), "--nocapture".into(), "--test-threads=1".into()],
            env: vec![(SCENARIO_VAR.into(), scenario.into())],
            stderr: Stderr::Pipe,
            timeout: CHILD_TIMEOUT,
        }
    }

    /// Run another program.
    pub fn program(path: std::path::PathBuf, args: &[&str]) -> Spec {
        Spec {
            program: Some(path),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            stderr: Stderr::Pipe,
            timeout: CHILD_TIMEOUT,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Spec {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn stderr(mut self, s: Stderr) -> Spec {
        self.stderr = s;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Spec {
        self.timeout = t;
        self
    }

    /// Starts the child. Children of one test binary run one at a time (the
    /// lock is held until [`Running::finish`]): two spinning children on a
    /// two-core machine starve each other's dump symbolization.
    pub fn spawn(self) -> Running {
        let serial = CHILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let program = self.program.clone().unwrap_or_else(|| std::env::current_exe().expect("current_exe"));
        let mut cmd = Command::new(&program);
        cmd.args(&self.args);
        // The children see only the FAILSTOP_* variables a test sets.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FAILSTOP_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove(SCENARIO_VAR);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Its own process group, so that grandchildren it leaves behind (a
        // vfork child that never exits, say) end with it: see `end_group`.
        cmd.process_group(0);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        cmd.stderr(match self.stderr {
            Stderr::Null => Stdio::null(),
            Stderr::Pipe | Stderr::ClosedPipe => Stdio::piped(),
        });
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {program:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let stdout_thread = netns::read_lines(out, lines.clone(), "");
        let err = child.stderr.take();
        let stderr_thread = match (self.stderr, err) {
            (Stderr::Pipe, Some(mut e)) => Some(std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = e.read_to_end(&mut v);
                String::from_utf8_lossy(&v).into_owned()
            })),
            // Closed now: the child's writes to stderr fail with EPIPE.
            (_, e) => {
                drop(e);
                None
            }
        };
        Running {
            child,
            start,
            timeout: self.timeout,
            lines,
            stdout_thread: Some(stdout_thread),
            stderr_thread,
            _serial: serial,
        }
    }

    /// Runs the child to its end (or kills it at the timeout and fails).
    pub fn run(self) -> Outcome {
        self.spawn().finish()
    }
}

/// A child that runs.
pub struct Running {
    pub child: Child,
    pub start: Instant,
    timeout: Duration,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

static CHILD_LOCK: Mutex<()> = Mutex::new(());

/// A child still running when its `Running` is dropped (a test failed
/// before `finish`: a server the test drives, say) is killed with its
/// process group, so that no test leaves processes behind.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            end_group(self.pid());
        }
    }
}

/// Kills whatever is left of the child's process group.
fn end_group(pid: i32) {
    // SAFETY: signalling the process group created for our own child.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until a stdout line contains `SCENARIO <key>`; returns when it came.
    pub fn wait_for(&mut self, key: &str, timeout: Duration) -> Instant {
        self.wait_for_line(&format!("SCENARIO {key}"), timeout).0
    }

    /// Waits until a stdout line contains `needle`; returns when it came and the line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> (Instant, String) {
        let until = Instant::now() + timeout;
        loop {
            if let Some((t, l)) = self.lines.lock().unwrap().iter().find(|(_, l)| l.contains(needle)) {
                return (*t, l.clone());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("child ended ({st:?}) before printing {needle:?}");
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("child did not print {needle:?} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn finish(mut self) -> Outcome {
        let deadline = self.start + self.timeout;
        let (status, ended) = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break (st, Instant::now());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                end_group(self.pid());
                let _ = self.stdout_thread.take().map(JoinHandle::join);
                let stderr = self.stderr_thread.take().map(|t| t.join().unwrap()).unwrap_or_default();
                let stdout: Vec<String> = self.lines.lock().unwrap().iter().map(|(_, l)| l.clone()).collect();
                panic!(
                    "child still running after {:?}: killed\n--- stdout\n{}\n--- stderr\n{stderr}",
                    self.timeout,
                    stdout.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // The pipes close when every process holding them ends: end the
        // grandchildren too, or a leftover one would hold them forever.
        end_group(self.pid());
        let _ = self.stdout_thread.take().map(JoinHandle::join);
        let stderr = self.stderr_thread.take().map(|t| t.join().unwrap()).unwrap_or_default();
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let o = Outcome { status, pid: self.pid(), ended, start: self.start, lines, stderr };
        assert!(
            !o.stdout().contains("running 0 tests"),
            "the child ran no test: wrong test name passed to Spec::scenario?\n{}",
            o.describe()
        );
        o
    }
}

/// What a child did.
pub struct Outcome {
    pub status: ExitStatus,
    /// The child's pid.
    pub pid: i32,
    pub start: Instant,
    pub ended: Instant,
    /// Stdout lines with the time each arrived.
    pub lines: Vec<(Instant, String)>,
    pub stderr: String,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        self.lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    pub fn elapsed(&self) -> Duration {
        self.ended - self.start
    }

    /// Everything, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?} (signal {:?}), elapsed {:?}\n--- stdout\n{}\n--- stderr\n{}\n---",
            self.status,
            self.status.signal(),
            self.elapsed(),
            self.stdout(),
            self.stderr
        )
    }

    /// The values after `SCENARIO <key> ` of every such line.
    pub fn values(&self, key: &str) -> Vec<String> {
        let needle = format!("SCENARIO {key} ");
        let bare = format!("SCENARIO {key}");
        self.lines
            .iter()
            .filter_map(|(_, l)| {
                let i = l.find(&bare)?;
                let rest = &l[i + bare.len()..];
                if rest.is_empty() {
                    Some(String::new())
                } else if l[i..].starts_with(&needle) {
                    Some(rest[1..].to_string())
                } else {
                    None
                }
            })
            .collect()
    }

    /// The value of the single `SCENARIO <key> <value>` line.
    pub fn value(&self, key: &str) -> String {
        let v = self.values(key);
        assert_eq!(v.len(), 1, "expected exactly one `SCENARIO {key}` line\n{}", self.describe());
        v.into_iter().next().unwrap()
    }

    /// When the `SCENARIO <key>` line arrived.
    pub fn time_of(&self, key: &str) -> Instant {
        let bare = format!("SCENARIO {key}");
        self.lines
            .iter()
            .find(|(_, l)| l.contains(&bare))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no `{bare}` line\n{}", self.describe()))
    }

    pub fn has(&self, key: &str) -> bool {
        !self.values(key).is_empty()
    }

    /// A tid printed as `SCENARIO tid <name> <tid>`.
    pub fn tid(&self, name: &str) -> i32 {
        self.value(&format!("tid {name}")).parse().unwrap_or_else(|_| panic!("bad tid\n{}", self.describe()))
    }

    /// The `stats verdicts N ...` figures printed by [`say_stats`].
    pub fn stat(&self, which: &str) -> u64 {
        let v = self.value("stats");
        let mut it = v.split_whitespace();
        while let Some(k) = it.next() {
            if k == which {
                return it.next().and_then(|n| n.parse().ok()).expect("stat value");
            }
        }
        panic!("no stat {which}\n{}", self.describe())
    }

    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.status.code(), Some(code), "expected exit code {code}\n{}", self.describe());
    }

    pub fn assert_signal(&self, sig: i32) {
        assert_eq!(self.status.signal(), Some(sig), "expected the child to end by signal {sig}\n{}", self.describe());
    }

    /// Asserts the child ended within `bound` after its `SCENARIO <key>` line.
    pub fn assert_ended_within(&self, key: &str, bound: Duration) {
        let t = self.time_of(key);
        let took = self.ended.saturating_duration_since(t);
        assert!(took <= bound, "the child ended {took:?} after `{key}` (bound {bound:?})\n{}", self.describe());
    }

    pub fn assert_no_verdict(&self) {
        assert!(!self.stderr.contains("failstop: stuck"), "unexpected verdict\n{}", self.describe());
        assert!(!self.stderr.contains("failstop: blocked"), "unexpected verdict\n{}", self.describe());
        assert!(!self.stderr.contains("failstop: vanished"), "unexpected verdict\n{}", self.describe());
        assert!(!self.stderr.contains("failstop: polling"), "unexpected verdict\n{}", self.describe());
        assert!(!self.stderr.contains("dump written"), "unexpected dump\n{}", self.describe());
    }
}

// ---------------------------------------------------------------------------
// Reading a dump
// ---------------------------------------------------------------------------

/// A verdict line without its last part, `; process <pid> "<name>"` (which
/// process the dump is from; checked by `fail_stop.rs` and the preload's
/// tests).
pub fn without_process(line: &str) -> &str {
    line.rsplit_once("; process ").map_or(line, |(head, _)| head)
}

/// The `; process <pid> "<name>"` part of a verdict line: the pid and name.
pub fn process_of(line: &str) -> Option<(i32, String)> {
    let (_, p) = line.rsplit_once("; process ")?;
    let (pid, name) = p.split_once(" \"")?;
    Some((pid.parse().ok()?, name.strip_suffix('"')?.to_string()))
}

/// The verdict line of a dump.
#[derive(Debug)]
pub struct Verdict {
    pub name: String,
    pub tid: i32,
    pub cpu_ms: f64,
    pub budget_ms: u64,
    pub period_ms: f64,
    pub action: String,
}

impl Verdict {
    /// Whether the verdict came no earlier than its budget allows: the
    /// budget less the documented period/8 of slack for timer-expiry
    /// jitter (the figure is measured from the tick that saw the last
    /// progress, so it is a lower bound of the real CPU time since then).
    /// Both figures are printed to 0.1 ms, cut, not rounded: that much more
    /// is allowed.
    pub fn not_before_budget(&self) -> bool {
        let printed = 0.1 + 0.1 / 8.0;
        self.cpu_ms + self.period_ms / 8.0 + printed >= self.budget_ms as f64
    }
}

/// A parsed dump (from stderr or a dump file).
pub struct Dump<'a> {
    pub text: &'a str,
    /// Lines from the verdict line up to the symbolized part.
    pub raw: Vec<&'a str>,
    /// Lines of the symbolized part.
    pub symbolized: Vec<&'a str>,
}

impl<'a> Dump<'a> {
    /// Finds the dump in `text`; panics with `text` if there is none.
    pub fn parse(text: &'a str) -> Dump<'a> {
        let lines: Vec<&str> = text.lines().collect();
        let first = lines
            .iter()
            .position(|l| l.starts_with("failstop: stuck:") || l.starts_with("failstop: blocked:"))
            .unwrap_or_else(|| panic!("no `failstop: stuck:` or `failstop: blocked:` line in:\n{text}"));
        let sym = lines.iter().position(|l| *l == "failstop: symbolized backtraces:");
        let raw_end = sym.unwrap_or(lines.len());
        assert!(raw_end > first, "symbolized part before the verdict line:\n{text}");
        let raw = lines[first..raw_end].to_vec();
        let symbolized = sym.map(|s| lines[s + 1..].to_vec()).unwrap_or_default();
        Dump { text, raw, symbolized }
    }

    /// The verdict line, parsed:
    /// `failstop: stuck: thread "<name>" (tid N) used X ms of CPU without progress (cpu_budget B ms); action: A`.
    pub fn verdict(&self) -> Verdict {
        let l = self.raw[0];
        let parse = || -> Option<Verdict> {
            let rest = l.strip_prefix("failstop: stuck: thread \"")?;
            let (name, rest) = rest.split_once("\" (tid ")?;
            let (tid, rest) = rest.split_once(") used ")?;
            let (cpu, rest) = rest.split_once(" ms of CPU without progress (cpu_budget ")?;
            let (budget, action) = without_process(rest).split_once(" ms); action: ")?;
            // "300 ms, checked every 75.0" -> the budget and the timer period.
            let (budget, period) = budget.split_once(" ms, checked every ")?;
            Some(Verdict {
                name: name.into(),
                tid: tid.parse().ok()?,
                cpu_ms: cpu.parse().ok()?,
                budget_ms: budget.parse().ok()?,
                period_ms: period.parse().ok()?,
                action: action.into(),
            })
        };
        parse().unwrap_or_else(|| panic!("malformed verdict line {l:?}"))
    }

    /// The per-thread lines of the raw part: (culprit mark, tid, name, rest).
    pub fn threads(&self) -> Vec<(bool, i32, String, String)> {
        self.raw
            .iter()
            .filter_map(|l| {
                let (culprit, rest) = if let Some(r) = l.strip_prefix("> thread ") {
                    (true, r)
                } else {
                    (false, l.strip_prefix("  thread ")?)
                };
                let (tid, rest) = rest.split_once(" \"")?;
                let (name, rest) = rest.split_once("\" state ")?;
                Some((culprit, tid.parse().ok()?, name.to_string(), rest.to_string()))
            })
            .collect()
    }

    /// The symbolized frames of thread `tid` (its block's `#i` lines).
    pub fn symbolized_frames(&self, tid: i32) -> Option<(bool, Vec<&'a str>)> {
        let head_culprit = format!("> thread {tid} \"");
        let head_other = format!("  thread {tid} \"");
        let start = self.symbolized.iter().position(|l| l.starts_with(&head_culprit) || l.starts_with(&head_other))?;
        let culprit = self.symbolized[start].starts_with('>');
        let frames = self.symbolized[start + 1..].iter().take_while(|l| l.starts_with("    #")).copied().collect();
        Some((culprit, frames))
    }

    pub fn written(&self) -> bool {
        self.text.lines().any(|l| l.starts_with("failstop: dump written in "))
    }

    /// Checks the shape every fatal stuck dump has: the verdict names
    /// `name`/`tid`, the culprit is marked and listed first, and the
    /// culprit's symbolized backtrace contains `function`.
    pub fn assert_stuck(&self, name: &str, tid: i32, action: &str, function: &str) {
        let v = self.verdict();
        assert_eq!((v.name.as_str(), v.tid), (name, tid), "wrong culprit in\n{}", self.text);
        assert_eq!(v.action, action, "wrong action in\n{}", self.text);
        assert_eq!(v.budget_ms, BUDGET.as_millis() as u64, "{}", self.text);
        assert!(v.not_before_budget(), "verdict before the budget: {v:?}");
        assert!(v.cpu_ms < 5000.0, "verdict far after the budget: {v:?}");
        let threads = self.threads();
        let culprits: Vec<_> = threads.iter().filter(|t| t.0).collect();
        assert_eq!(culprits.len(), 1, "exactly one culprit line expected in\n{}", self.text);
        assert_eq!((culprits[0].1, culprits[0].2.as_str()), (tid, name), "{}", self.text);
        assert!(threads[0].0, "the culprit is listed first\n{}", self.text);
        let (marked, frames) = self
            .symbolized_frames(tid)
            .unwrap_or_else(|| panic!("no symbolized block for the culprit {tid}\n{}", self.text));
        assert!(marked, "the culprit's symbolized block is not marked '>'\n{}", self.text);
        assert!(
            frames.iter().any(|f| f.contains(function)),
            "`{function}` not in the culprit's symbolized backtrace:\n{}\n--- whole dump\n{}",
            frames.join("\n"),
            self.text
        );
        assert!(self.written(), "no `dump written` line\n{}", self.text);
    }
}

/// The built demo example: `target/<profile>/examples/demo`, next to the
/// `deps` directory this test binary lives in.
pub fn demo_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let p = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples").join("demo");
    assert!(p.exists(), "{p:?} not built (cargo test builds examples first)");
    p
}

/// A fresh path for a dump file under the target's temporary directory.
pub fn temp_path(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    target_tmp().join(format!("{tag}-{}-{nanos}.dump", std::process::id()))
}

/// Prints a measured figure, and appends it to `target/tmp/figures.txt`,
/// which `.ci/run` shows at its end (a passing test's output is captured).
#[allow(dead_code)]
pub fn figure(line: &str) {
    eprintln!("{line}");
    let path = target_tmp().join("figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
    }
}

/// `"NAME" (tid N)` as (name, tid); `line` is for the messages.
pub fn named_tid(s: &str, line: &str) -> (String, i32) {
    let s = s.strip_prefix('"').unwrap_or_else(|| panic!("malformed {s:?} in {line}"));
    let (name, tid) = s.split_once("\" (tid ").unwrap_or_else(|| panic!("malformed {s:?} in {line}"));
    (name.to_string(), tid.trim_end_matches(')').parse().unwrap_or_else(|_| panic!("tid in {line}")))
}

/// The threads of a dump's `failstop: deadlock:` line, in order, as
/// (name, tid); asserts the line closes on its first thread.
pub fn deadlock_cycle(text: &str) -> Vec<(String, i32)> {
    let line = text
        .lines()
        .find(|l| l.starts_with("failstop: deadlock: "))
        .unwrap_or_else(|| panic!("no `failstop: deadlock:` line in\n{text}"));
    let rest = line.strip_prefix("failstop: deadlock: ").unwrap();
    let (head, tail) = rest.split_once(" waits for ").unwrap_or_else(|| panic!("malformed: {line}"));
    let mut cycle = vec![named_tid(head, line)];
    cycle.extend(tail.split(", which waits for ").map(|s| named_tid(s, line)));
    let last = cycle.pop().unwrap();
    assert_eq!(last, cycle[0], "the cycle must close on its first thread: {line}");
    cycle
}

/// Checks that the manual (README.md or docs/*.md) shows the repository file `file` (a path from the
/// crate's root) as it is: the block under its `<!-- file: FILE -->`
/// marker equals the file. Panics, showing both, when not.
pub fn assert_readme_shows_file(file: &str) {
    let root = std::path::Path::new(c::ROOT);
    let marker = format!("<!-- file: {file} -->");
    let docs = doc_files();
    let (name, text) = docs
        .iter()
        .find(|(_, text)| text.contains(&marker))
        .unwrap_or_else(|| panic!("neither README.md nor docs/*.md has {marker:?} above a block"));
    let at = text.find(&marker).unwrap();
    let rest = &text[at + marker.len()..];
    let rest = rest.strip_prefix('\n').unwrap_or(rest);
    let (fence, body) = rest.split_once('\n').expect("a line after the marker");
    assert!(fence.starts_with("```"), "{name}: the line after {marker:?} must open a fence: {fence:?}");
    let end = body.find("\n```\n").unwrap_or_else(|| panic!("{name}: the block of {file} is not closed"));
    let shown = &body[..end + 1];
    let actual = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
    assert!(
        shown == actual,
        "{name}'s block of {file} differs from the file:\n--- {name}\n{shown}--- {file}\n{actual}"
    );
}

/// The manual: `README.md` and every `docs/*.md`, as (path relative to the
/// repository, text), README first.
pub fn doc_files() -> Vec<(String, String)> {
    let root = std::path::Path::new(c::ROOT);
    let mut files =
        vec![("README.md".to_string(), std::fs::read_to_string(root.join("README.md")).expect("read README.md"))];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    for p in docs {
        let name = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {name}: {e}"));
        files.push((name, text));
    }
    files
}

/// The target directory's `tmp/` (what cargo gives integration tests as
/// `CARGO_TARGET_TMPDIR`), found from the running test binary
/// (`TARGET/PROFILE/deps/NAME`), made if missing.
pub fn target_tmp() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent()?.parent())
        .unwrap_or_else(|| panic!("{}: not a test binary under TARGET/PROFILE/deps", exe.display()));
    let tmp = target.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    tmp
}
