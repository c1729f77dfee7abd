//! systemd's watchdog against a real notify socket: each case re-runs this
//! test binary as a child (`FSTEST_SCENARIO` picks what the child does) with
//! `NOTIFY_SOCKET` naming a datagram socket the parent reads.

use std::hint::black_box;
use std::io::Read;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

const SCENARIO: &str = "FSTEST_SCENARIO";
/// Any child still running after this is killed and the case fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The child side
// ---------------------------------------------------------------------------

/// Entry point of the child processes; does nothing in a normal test run.
#[test]
fn child() {
    let Ok(scenario) = std::env::var(SCENARIO) else { return };
    let code = match scenario.as_str() {
        "healthy" => healthy(Duration::from_secs(2)),
        "quiet" => healthy(Duration::from_secs(1)),
        "spin" => spin_to_abort(),
        "warn" => spin_in_warn_mode(),
        "start-error" => start_error(),
        other => panic!("unknown {SCENARIO}={other}"),
    };
    std::process::exit(code);
}

/// A loop that keeps coming around for `how_long`.
fn healthy(how_long: Duration) -> i32 {
    let wd = failstop::start(failstop::Config::new().with_env().unwrap()).unwrap();
    let h = failstop::register("main-loop").unwrap();
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        h.touch();
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(h);
    wd.stop();
    0
}

#[inline(never)]
fn spin(stop: &AtomicBool) {
    let mut x = 0u64;
    while !stop.load(Relaxed) {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn spinner(stop: &'static AtomicBool) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("spinner".into())
        .spawn(move || {
            let h = failstop::register("spinner").unwrap();
            h.touch();
            spin(stop);
            drop(h);
        })
        .unwrap()
}

fn no_core_files() {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit with a valid struct; affects only this child.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// Abort mode: the spinner is judged stuck and the process ends by SIGABRT.
fn spin_to_abort() -> i32 {
    no_core_files();
    let config = failstop::Config::new().cpu_budget(Duration::from_millis(300)).with_env().unwrap();
    let _wd = failstop::start(config).unwrap();
    static STOP: AtomicBool = AtomicBool::new(false);
    let _t = spinner(&STOP);
    std::thread::sleep(CHILD_TIMEOUT);
    1 // not reached: the process aborts
}

/// Warn mode: the verdict is only reported; a marker datagram tells the
/// parent when the child saw it, then the process runs on for a second.
fn spin_in_warn_mode() -> i32 {
    let config = failstop::Config::new()
        .cpu_budget(Duration::from_millis(300))
        .action(failstop::Action::Warn)
        .with_env()
        .unwrap();
    let wd = failstop::start(config).unwrap();
    static STOP: AtomicBool = AtomicBool::new(false);
    let t = spinner(&STOP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while failstop::stats().verdicts == 0 {
        assert!(Instant::now() < deadline, "no verdict within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(failstop::healthy());
    let sock = std::env::var("NOTIFY_SOCKET").unwrap();
    let tx = UnixDatagram::unbound().unwrap();
    let name = sock.strip_prefix('@').unwrap();
    tx.send_to_addr(b"FSTEST=verdict", &SocketAddr::from_abstract_name(name).unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    STOP.store(true, Relaxed);
    t.join().unwrap();
    wd.stop();
    0
}

/// `start` refuses a malformed WATCHDOG_USEC.
fn start_error() -> i32 {
    let err = failstop::start(failstop::Config::new().with_env().unwrap()).unwrap_err();
    eprintln!("{err}");
    let ok = err.kind() == failstop::ErrorKind::InvalidConfig && err.message().contains("WATCHDOG_USEC=\"soon\"");
    if ok { 0 } else { 1 }
}

// ---------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------

/// What the parent saw of one child.
struct Outcome {
    /// Each datagram and when it arrived (since the child was started).
    msgs: Vec<(Duration, String)>,
    status: ExitStatus,
    stderr: String,
}

impl Outcome {
    fn times_of(&self, msg: &str) -> Vec<Duration> {
        self.msgs.iter().filter(|m| m.1 == msg).map(|m| m.0).collect()
    }

    fn index_of(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.msgs.iter().position(|m| pred(&m.1))
    }

    fn show(&self) -> String {
        format!("status {:?}, messages {:?}\n--- child stderr ---\n{}", self.status, self.msgs, self.stderr)
    }
}

/// Runs `scenario` in a child with a fresh notify socket (abstract when
/// `abstract_name`) and `env` on top; collects what arrives on the socket.
fn run_child(scenario: &str, abstract_name: bool, env: &[(&str, &str)]) -> Outcome {
    let tag = format!("failstop-sd-{}-{scenario}", std::process::id());
    let path = std::env::temp_dir().join(format!("{tag}.sock"));
    let (rx, notify_socket) = if abstract_name {
        let addr = SocketAddr::from_abstract_name(tag.as_bytes()).unwrap();
        (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{tag}"))
    } else {
        let _ = std::fs::remove_file(&path);
        (UnixDatagram::bind(&path).unwrap(), path.to_str().unwrap().to_string())
    };
    rx.set_read_timeout(Some(Duration::from_millis(20))).unwrap();

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("FAILSTOP_") || k.starts_with("WATCHDOG_") || k == "NOTIFY_SOCKET" {
            cmd.env_remove(&*k);
        }
    }
    cmd.env(SCENARIO, scenario).env("NOTIFY_SOCKET", &notify_socket).env("WATCHDOG_USEC", "400000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });

    let mut msgs = Vec::new();
    let mut buf = [0u8; 4096];
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => msgs.push((t0.elapsed(), String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                // Drained after the exit: every datagram it sent is queued by now.
                if exited.is_some() {
                    break;
                }
            }
            Err(e) => panic!("recv: {e}"),
        }
        if exited.is_none()
            && let Some(st) = child.try_wait().unwrap()
        {
            exited = Some((st, Instant::now()));
        }
        if exited.is_none() && t0.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {scenario} still running after {CHILD_TIMEOUT:?}; messages {msgs:?}");
        }
    }
    let stderr = err_reader.join().unwrap();
    if !abstract_name {
        let _ = std::fs::remove_file(&path);
    }
    Outcome { msgs, status: exited.unwrap().0, stderr }
}

fn gaps(times: &[Duration]) -> Vec<u128> {
    times.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
}

#[test]
fn pings_every_half_timeout_while_healthy() {
    let o = run_child("healthy", false, &[]);
    assert!(o.status.success(), "{}", o.show());
    assert!(o.msgs.iter().all(|m| m.1 == "WATCHDOG=1"), "only pings expected: {}", o.show());
    let pings = o.times_of("WATCHDOG=1");
    let g = gaps(&pings);
    eprintln!("{} pings, gaps (ms): {g:?}", pings.len());
    assert!((6..=14).contains(&pings.len()), "about 10 pings in 2 s expected: {}", o.show());
    assert!(g.iter().all(|&ms| ms < 600), "a gap of 600 ms or more: {g:?}");
}

#[test]
fn verdict_stops_pings_and_triggers() {
    let o = run_child("spin", false, &[]);
    assert_eq!(o.status.signal(), Some(libc::SIGABRT), "{}", o.show());
    let status = o
        .index_of(|m| m.starts_with("STATUS=failstop: stuck thread \"spinner\" (tid "))
        .unwrap_or_else(|| panic!("{}", o.show()));
    let trigger = o.index_of(|m| m == "WATCHDOG=trigger").unwrap_or_else(|| panic!("{}", o.show()));
    assert!(status < trigger, "STATUS before the trigger: {}", o.show());
    assert_eq!(o.times_of("WATCHDOG=trigger").len(), 1, "{}", o.show());
    assert!(o.msgs[status..].iter().all(|m| m.1 != "WATCHDOG=1"), "a ping after the verdict: {}", o.show());
    assert_eq!(o.msgs.len(), trigger + 1, "nothing after the trigger: {}", o.show());
    assert!(o.stderr.contains("failstop: stuck: thread \"spinner\""), "{}", o.show());
    // The tid in STATUS is the culprit's, as in the dump.
    let tid = o.msgs[status].1.rsplit("(tid ").next().unwrap().trim_end_matches(')').to_string();
    assert!(o.stderr.contains(&format!("\"spinner\" (tid {tid})")), "{}", o.show());
}

#[test]
fn watchdog_pid_of_another_process_means_silence() {
    let other = std::process::id().to_string(); // the parent's pid, not the child's
    let o = run_child("quiet", false, &[("WATCHDOG_PID", &other)]);
    assert!(o.status.success(), "{}", o.show());
    assert!(o.msgs.is_empty(), "{}", o.show());
}

#[test]
fn failstop_systemd_off_means_silence() {
    let o = run_child("quiet", false, &[("FAILSTOP_SYSTEMD", "off")]);
    assert!(o.status.success(), "{}", o.show());
    assert!(o.msgs.is_empty(), "{}", o.show());
}

#[test]
fn warn_mode_keeps_pinging_and_never_triggers() {
    let o = run_child("warn", true, &[]);
    assert!(o.status.success(), "{}", o.show());
    let marker = o.index_of(|m| m == "FSTEST=verdict").unwrap_or_else(|| panic!("{}", o.show()));
    let after = o.msgs[marker..].iter().filter(|m| m.1 == "WATCHDOG=1").count();
    assert!(after >= 3, "pings should go on for the second after the verdict: {}", o.show());
    // Writing the dump (symbolization can take most of dump_timeout) must
    // not starve the pings while the gate is open.
    let g = gaps(&o.times_of("WATCHDOG=1"));
    eprintln!("warn mode: gaps (ms) {g:?}, verdict seen at {:?}", o.msgs[marker].0);
    assert!(g.iter().all(|&ms| ms < 600), "a gap of 600 ms or more around the dump: {g:?}\n{}", o.show());
    assert!(o.msgs.iter().all(|m| m.1 == "WATCHDOG=1" || m.1 == "FSTEST=verdict"), "{}", o.show());
    assert!(o.stderr.contains("failstop: stuck: thread \"spinner\""), "{}", o.show());
}

#[test]
fn malformed_watchdog_usec_fails_start() {
    let o = run_child("start-error", false, &[("WATCHDOG_USEC", "soon")]);
    assert!(o.status.success(), "{}", o.show());
    assert!(o.msgs.is_empty(), "{}", o.show());
}
