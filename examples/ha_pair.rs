//! An HA pair on loopback: a primary that serves requests and a standby that
//! takes over when the primary's heartbeats stop. failstop is what stops them
//! when the primary's main thread locks up while its heartbeat thread is fine.
//!
//! ```text
//! cargo run --example ha_pair -- --fault syscall-hang  # main thread stuck in a syscall: blocked, takeover
//! cargo run --example ha_pair -- --fault deadlock      # two threads, two locks: blocked, takeover
//! cargo run --example ha_pair -- --fault spin          # main thread spins: stuck, takeover
//! cargo run --example ha_pair -- --fault slow          # 10 s of long but living work: no takeover
//! cargo run --example ha_pair -- --fault none          # nothing happens: no takeover
//! ```
//!
//! The story is the one of a Stack Overflow question ("High availability
//! computing: how to deal with a non-returning system call, without risking
//! false positives?"): a kernel bug left the main thread of a service in a
//! system call that never returned, its heartbeat thread kept beating, and
//! no peer ever took over. Putting the heartbeat on the main thread would
//! have turned every slow request into a false failover. failstop tells the
//! two apart: a thread that uses CPU without progress is `stuck`, a thread
//! that makes no progress, uses no CPU and is never scheduled is `blocked`;
//! a thread that is slow but alive (it ticks, or it keeps being woken) is
//! neither. On a verdict failstop closes the heartbeat gate
//! ([`failstop::healthy`]) and ends the process with `SIGABRT`.
//!
//! Three processes: this one (the orchestrator) re-executes itself as
//! `--role standby` and `--role primary`, prints what happens on one
//! timeline (seconds since the orchestrator started; CLOCK_MONOTONIC is
//! shared by the processes), and waits for both.
//!
//! - The primary serves UDP requests (`REQ n` → `RSP n`) on its main thread,
//!   which is registered with failstop: idle around the receive, `touch`
//!   after it, `tick` per request. A separate thread sends a heartbeat to the
//!   standby every 100 ms while `failstop::healthy()`. Just before the fault
//!   it tells the standby `FAULT <kind> <CLOCK_MONOTONIC ns>`.
//! - The standby sends the primary a request every 250 ms, and declares it
//!   dead after 500 ms without a heartbeat: it takes over and prints
//!   `takeover after N ms`, counted from the start of the fault.
//!
//! Faults (`--fault`, starting `--after` ms after the primary started):
//!
//! - `syscall-hang`: the main thread enters a system call that never
//!   returns, in uninterruptible sleep (state D), without root: a vfork
//!   (`clone(CLONE_VM | CLONE_VFORK)`) whose child never execs or exits.
//! - `deadlock`: the main thread and a second registered thread take two
//!   mutexes in opposite orders.
//! - `spin`: the main thread loops forever without progress.
//! - `slow`: 10 s of legitimate long work on the main thread: 5 s of CPU
//!   with a `tick` every 3 ms, then 5 s of a blocking read that gets one byte
//!   every 200 ms. Requests wait, heartbeats go on; no takeover.
//! - `none`.
//!
//! Options: `--fault syscall-hang|deadlock|spin|slow|none` (default
//! syscall-hang), `--after MS` (default 1000), `--seconds N` (length of the
//! run; default 15 for slow and none, enough for a takeover otherwise).
//! failstop in the primary uses short budgets (cpu_budget 500 ms,
//! warn_after 100 ms, stall_budget 2 s, action abort); `FAILSTOP_*`
//! variables override them.
//!
//! The orchestrator exits 0 when the outcome is the expected one (a takeover
//! for the three lockups, none for slow and none), 1 otherwise.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::*};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The primary sends a heartbeat this often.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);
/// The standby declares the primary dead after this long without one.
const DEAD_AFTER: Duration = Duration::from_millis(500);
/// The standby sends the primary a request this often.
const REQUEST_EVERY: Duration = Duration::from_millis(250);
/// The standby reports unanswered requests after this long without an answer.
const ANSWER_GAP: Duration = Duration::from_millis(1000);
/// The standby's exit status when it took over.
const STANDBY_TOOK_OVER: i32 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    SyscallHang,
    Deadlock,
    Spin,
    Slow,
    None,
}

impl Fault {
    const ALL: [Fault; 5] = [Fault::SyscallHang, Fault::Deadlock, Fault::Spin, Fault::Slow, Fault::None];

    fn name(self) -> &'static str {
        match self {
            Fault::SyscallHang => "syscall-hang",
            Fault::Deadlock => "deadlock",
            Fault::Spin => "spin",
            Fault::Slow => "slow",
            Fault::None => "none",
        }
    }

    fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Whether the fault is a lockup the standby must take over from.
    fn expects_takeover(self) -> bool {
        matches!(self, Fault::SyscallHang | Fault::Deadlock | Fault::Spin)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Orchestrator,
    Primary,
    Standby,
}

struct Options {
    role: Role,
    fault: Fault,
    after: Duration,
    seconds: Option<u64>,
    // Set by the orchestrator for the children.
    t0: u64,
    primary_port: u16,
    standby_port: u16,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        role: Role::Orchestrator,
        fault: Fault::SyscallHang,
        after: Duration::from_millis(1000),
        seconds: None,
        t0: 0,
        primary_port: 0,
        standby_port: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.parse().map_err(|_| format!("{name} {v:?}: not a valid number"))
        }
        match a.as_str() {
            "--fault" => {
                let v = value("--fault")?;
                o.fault = Fault::parse(&v).ok_or_else(|| {
                    let names: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
                    format!("--fault {v:?}: allowed: {}", names.join(", "))
                })?;
            }
            "--after" => o.after = Duration::from_millis(number("--after", &value("--after")?)?),
            "--seconds" => o.seconds = Some(number("--seconds", &value("--seconds")?)?),
            "--role" => {
                o.role = match value("--role")?.as_str() {
                    "primary" => Role::Primary,
                    "standby" => Role::Standby,
                    other => return Err(format!("--role {other:?}: allowed: primary, standby")),
                }
            }
            "--t0" => o.t0 = number("--t0", &value("--t0")?)?,
            "--primary-port" => o.primary_port = number("--primary-port", &value("--primary-port")?)?,
            "--standby-port" => o.standby_port = number("--standby-port", &value("--standby-port")?)?,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.role != Role::Orchestrator && (o.t0 == 0 || o.primary_port == 0 || o.standby_port == 0 || o.seconds.is_none())
    {
        return Err("--role needs --t0, --primary-port, --standby-port and --seconds (set by the orchestrator)".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// Time and printing
// ---------------------------------------------------------------------------

/// CLOCK_MONOTONIC in ns: the same clock in every process of the machine.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the valid timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The orchestrator's start: time zero of the printed timeline.
static T0: AtomicU64 = AtomicU64::new(0);
static WHO: OnceLock<&'static str> = OnceLock::new();

/// Seconds since time zero at the CLOCK_MONOTONIC instant `ns`.
fn rel(ns: u64) -> f64 {
    ns.saturating_sub(T0.load(Relaxed)) as f64 / 1e9
}

fn say(what: std::fmt::Arguments<'_>) {
    let who = WHO.get().copied().unwrap_or("?");
    println!("[{:>7.3}s] {who:<12} {what}", rel(monotonic_ns()));
}

macro_rules! say {
    ($($t:tt)*) => { say(format_args!($($t)*)) };
}

fn ms(ns: u64) -> u64 {
    ns / 1_000_000
}

// ---------------------------------------------------------------------------
// The configuration (the orchestrator prints it, the primary uses it)
// ---------------------------------------------------------------------------

fn primary_config() -> Result<failstop::Config, failstop::Error> {
    failstop::Config::new()
        .cpu_budget(Duration::from_millis(500))
        .warn_after(Duration::from_millis(100))
        .stall_budget(Duration::from_secs(2))
        .action(failstop::Action::Abort)
        .with_env()
}

// ---------------------------------------------------------------------------
// The orchestrator
// ---------------------------------------------------------------------------

/// A free UDP port on loopback (the kernel picks it; we let it go for the
/// child that will bind it).
fn free_port() -> Result<u16, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    s.local_addr().map(|a| a.port()).map_err(|e| format!("local_addr: {e}"))
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGABRT => "SIGABRT".to_string(),
                libc::SIGKILL => "SIGKILL".to_string(),
                libc::SIGSEGV => "SIGSEGV".to_string(),
                libc::SIGTERM => "SIGTERM".to_string(),
                n => format!("signal {n}"),
            };
            format!("ended by {name}{}", if status.core_dumped() { " (core dumped)" } else { "" })
        }
        _ => format!("ended with {status:?}"),
    }
}

/// Waits up to `timeout` for `pid` (our child) to end, without reaping it: a
/// zombie keeps its pid and process group id from being reused.
fn wait_ended_unreaped(pid: u32, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    loop {
        // SAFETY: siginfo_t is plain data; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with WNOWAIT only inspects it.
        let r = unsafe {
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        // SAFETY: si_pid is valid to read for a SIGCHLD siginfo (0 if none yet).
        if r == 0 && unsafe { info.si_pid() } != 0 {
            return true;
        }
        if r != 0 || Instant::now() >= until {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Kills process group `pgid` (the primary and whatever it left behind, such
/// as the child of the vfork).
fn kill_group(pgid: u32) {
    // SAFETY: kill with a negative pid signals that process group only.
    unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
}

fn spawn_child(role: &str, o: &Options, seconds: u64, ports: (u16, u16), group: bool) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["--role", role, "--fault", o.fault.name()])
        .args(["--after", &o.after.as_millis().to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--t0", &T0.load(Relaxed).to_string()])
        .args(["--primary-port", &ports.0.to_string(), "--standby-port", &ports.1.to_string()])
        .stdin(Stdio::null());
    if role == "standby" {
        cmd.stdout(Stdio::piped());
    }
    if group {
        cmd.process_group(0);
    }
    cmd.spawn().map_err(|e| format!("spawning the {role}: {e}"))
}

fn orchestrate(o: &Options) -> Result<ExitCode, String> {
    let config = primary_config().map_err(|e| e.to_string())?;
    let s = config.settings();
    let budget = if o.fault == Fault::Spin { s.cpu_budget } else { s.stall_budget };
    let seconds = o.seconds.unwrap_or(match o.fault {
        Fault::Slow | Fault::None => 15,
        _ => (o.after + budget).as_secs() + 10,
    });
    let ports = (free_port()?, free_port()?);
    say!("HA pair: fault {} at +{} ms, run of {seconds} s", o.fault.name(), o.after.as_millis());
    say!(
        "failstop in the primary: cpu_budget {} ms, warn_after {} ms, stall_budget {} ms, action {}",
        s.cpu_budget.as_millis(),
        s.warn_after.as_millis(),
        s.stall_budget.as_millis(),
        s.action
    );
    say!(
        "primary serves on 127.0.0.1:{}, heartbeats every {} ms to the standby on 127.0.0.1:{}, \
         which takes over after {} ms of silence",
        ports.0,
        HEARTBEAT_EVERY.as_millis(),
        ports.1,
        DEAD_AFTER.as_millis()
    );
    say!(
        "expected: {}",
        if o.fault.expects_takeover() {
            "failstop ends the primary, heartbeats stop, the standby takes over"
        } else {
            "the primary keeps beating, no takeover"
        }
    );

    let mut standby = spawn_child("standby", o, seconds, ports, false)?;
    // The standby's lines go through us so that we learn the takeover time.
    let out = standby.stdout.take().ok_or("no standby stdout")?;
    let reader = thread::spawn(move || {
        let mut took_over_ms = None;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.split("takeover after ").nth(1) {
                took_over_ms = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok());
            }
        }
        took_over_ms
    });
    // The primary leads its own process group: the vfork child of the
    // syscall-hang fault stays in it, and is killed with it at the end.
    let mut primary = match spawn_child("primary", o, seconds, ports, true) {
        Ok(p) => p,
        Err(e) => {
            let _ = standby.kill();
            let _ = standby.wait();
            return Err(e);
        }
    };
    let pid = primary.id();

    // The standby ends by itself: after a takeover, or when the run is over.
    let hard_end = Instant::now() + Duration::from_secs(seconds + 10);
    let standby_status = loop {
        match standby.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < hard_end => thread::sleep(Duration::from_millis(20)),
            _ => {
                say!("the standby did not end in time: killing it");
                let _ = standby.kill();
                break standby.wait().map_err(|e| format!("waiting for the standby: {e}"))?;
            }
        }
    };
    let took_over_ms = reader.join().unwrap_or(None);
    let took_over = standby_status.code() == Some(STANDBY_TOOK_OVER);

    // A primary caught by failstop ends within dump_timeout plus a few
    // seconds of grace; one that ran to the end says goodbye and exits.
    let grace = s.dump_timeout + Duration::from_secs(6);
    let ended = wait_ended_unreaped(pid, grace);
    if !ended {
        say!("the primary did not end within {} s: killing it", grace.as_secs());
    }
    kill_group(pid);
    let primary_status = primary.wait().map_err(|e| format!("waiting for the primary: {e}"))?;

    say!("result: fault {}", o.fault.name());
    match (took_over, took_over_ms) {
        (true, Some(n)) => say!("result: takeover after {n} ms"),
        (true, None) => say!("result: takeover (no fault start was announced)"),
        (false, _) => say!("result: no takeover (standby {})", describe(standby_status)),
    }
    say!("result: primary {}{}", describe(primary_status), if ended { "" } else { " (by the orchestrator)" });
    let expected = if o.fault.expects_takeover() {
        took_over && ended && primary_status.signal() == Some(libc::SIGABRT)
    } else {
        !took_over && standby_status.success() && primary_status.success()
    };
    if expected {
        say!("result: as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        say!("result: NOT as expected");
        Ok(ExitCode::from(1))
    }
}

// ---------------------------------------------------------------------------
// The primary
// ---------------------------------------------------------------------------

/// If our parent (the orchestrator) dies, so do we.
fn die_with_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes nothing else.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
}

fn primary(o: &Options) -> Result<ExitCode, String> {
    die_with_parent();
    // The demo aborts on purpose: no core files.
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the valid rlimit we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };

    let config = primary_config().map_err(|e| e.to_string())?;
    let _wd = failstop::start(config).map_err(|e| e.to_string())?;
    let started = monotonic_ns();
    let end_at = T0.load(Relaxed) + o.seconds.unwrap_or(15) * 1_000_000_000;
    let fault_at = started + o.after.as_nanos() as u64;

    let service = UdpSocket::bind(("127.0.0.1", o.primary_port)).map_err(|e| format!("bind service port: {e}"))?;
    service.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let to_standby = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    to_standby.connect(("127.0.0.1", o.standby_port)).map_err(|e| format!("connect to the standby: {e}"))?;
    let to_standby = Arc::new(to_standby);
    {
        let sock = to_standby.clone();
        thread::Builder::new().name("heartbeat".into()).spawn(move || heartbeat(&sock)).map_err(|e| e.to_string())?;
    }

    let h = failstop::register("primary-main").map_err(|e| e.to_string())?;
    say!(
        "pid {}: serving on 127.0.0.1:{} from the main thread (tid {}, registered as \"primary-main\")",
        std::process::id(),
        o.primary_port,
        h.tid()
    );
    let mut served = 0u64;
    let mut faulted = false;
    let mut buf = [0u8; 64];
    loop {
        let r = h.with_idle(|| service.recv_from(&mut buf));
        h.touch();
        match r {
            Ok((n, from)) => {
                if let Some(seq) = buf[..n].strip_prefix(b"REQ ") {
                    let mut reply = b"RSP ".to_vec();
                    reply.extend_from_slice(seq);
                    let _ = service.send_to(&reply, from);
                    served += 1;
                    h.tick();
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(e) => return Err(format!("receiving requests: {e}")),
        }
        let now = monotonic_ns();
        if !faulted && now >= fault_at {
            faulted = true;
            if o.fault != Fault::None {
                let start = monotonic_ns();
                let _ = to_standby.send(format!("FAULT {} {start}", o.fault.name()).as_bytes());
                inject(o.fault, &h);
            }
        }
        if now >= end_at {
            break;
        }
    }
    let _ = to_standby.send(b"BYE");
    say!("run over: served {served} requests; shutting down cleanly (healthy: {})", failstop::healthy());
    Ok(ExitCode::SUCCESS)
}

/// Beats every [`HEARTBEAT_EVERY`] while failstop says the process is healthy.
fn heartbeat(sock: &UdpSocket) {
    let mut seq = 0u64;
    let mut stopped = false;
    loop {
        if failstop::healthy() {
            seq += 1;
            let _ = sock.send(format!("HB {seq}").as_bytes());
        } else if !stopped {
            stopped = true;
            say!("heartbeat thread: failstop closed the gate: no heartbeat after #{seq}");
        }
        thread::sleep(HEARTBEAT_EVERY);
    }
}

fn inject(fault: Fault, h: &failstop::ThreadHandle) {
    match fault {
        Fault::SyscallHang => {
            say!("FAULT syscall-hang: the main thread enters a vfork whose child never execs nor exits");
            match hang_in_vfork() {
                Ok(pid) => say!("vfork returned: its child {pid} is gone; serving again"),
                Err(e) => say!("vfork failed: {e}; serving again"),
            }
        }
        Fault::Deadlock => {
            say!("FAULT deadlock: the main thread and \"peer-worker\" take locks A and B in opposite orders");
            deadlock(h)
        }
        Fault::Spin => {
            say!("FAULT spin: the main thread enters spin_forever()");
            spin_forever()
        }
        Fault::Slow => {
            slow_but_living(h);
        }
        Fault::None => {}
    }
}

/// The child of the vfork. It shares our memory and runs on its own small
/// stack: it may only do async-signal-safe things, and it waits forever.
extern "C" fn vfork_child(_: *mut libc::c_void) -> libc::c_int {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is a single system call: if the primary
    // dies, so does this child.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    loop {
        // SAFETY: pause is async-signal-safe and touches no memory.
        unsafe { libc::pause() };
    }
}

/// The kernel writes the vfork child's pid here (CLONE_PARENT_SETTID) before
/// the child runs, while the calling thread is already stuck.
static VFORK_CHILD: AtomicI32 = AtomicI32::new(0);

/// Enters a system call that does not return until the child it creates
/// execs or exits, which it never does: the calling thread sleeps in state D
/// (uninterruptible), uses no CPU and is never scheduled, like a thread
/// caught in a kernel bug. Returns only if someone kills the child.
///
/// This is `vfork()` done the way `posix_spawn` does it: `clone` with
/// `CLONE_VM | CLONE_VFORK` and a stack of the child's own, so the child
/// never runs on (and never scribbles over) the caller's stack.
#[inline(never)]
fn hang_in_vfork() -> std::io::Result<i32> {
    const STACK: usize = 64 * 1024;
    let stack: &'static mut [u8] = Box::leak(vec![0u8; STACK].into_boxed_slice());
    // The stack grows down: start at its 16-byte aligned top.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    let main_tid = gettid();
    thread::Builder::new().name("vfork-observer".into()).spawn(move || observe_vfork(main_tid))?;
    // SAFETY: the child runs `vfork_child` on a stack of its own that is never
    // freed (leaked above); with CLONE_VM it shares our memory but only
    // calls prctl and pause. CLONE_VFORK suspends this thread until the child
    // execs or exits. The kernel writes the child's pid into VFORK_CHILD.
    let pid = unsafe {
        libc::clone(
            vfork_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PARENT_SETTID | libc::SIGCHLD,
            std::ptr::null_mut(),
            VFORK_CHILD.as_ptr(),
        )
    };
    if pid == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid)
}

fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Reports the vfork child's pid and the main thread's state as the kernel
/// shows it, once the main thread is stuck.
fn observe_vfork(main_tid: libc::pid_t) {
    let until = Instant::now() + Duration::from_secs(2);
    while VFORK_CHILD.load(Acquire) == 0 && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(200));
    let status = std::fs::read_to_string(format!("/proc/self/task/{main_tid}/status")).unwrap_or_default();
    let state = status.lines().find_map(|l| l.strip_prefix("State:")).map_or("?", str::trim).to_string();
    say!(
        "vfork child pid {} pauses forever; the main thread (tid {main_tid}) is in state {state}",
        VFORK_CHILD.load(Acquire)
    );
}

static LOCK_A: Mutex<()> = Mutex::new(());
static LOCK_B: Mutex<()> = Mutex::new(());

/// The main thread takes A then B, a second registered thread B then A.
#[inline(never)]
fn deadlock(h: &failstop::ThreadHandle) -> ! {
    let both_hold_one = Arc::new(Barrier::new(2));
    let barrier = both_hold_one.clone();
    let peer = thread::Builder::new().name("peer-worker".into()).spawn(move || {
        let h = failstop::register("peer-worker").expect("register peer-worker");
        h.touch();
        let _b = LOCK_B.lock();
        barrier.wait();
        h.touch();
        say!("peer-worker: holds lock B, takes lock A");
        let _a = LOCK_A.lock();
        unreachable!("lock A taken: no deadlock");
    });
    if let Err(e) = peer {
        panic!("spawning peer-worker: {e}");
    }
    let _a = LOCK_A.lock();
    both_hold_one.wait();
    h.touch();
    say!("main thread: holds lock A, takes lock B");
    let _b = LOCK_B.lock();
    unreachable!("lock B taken: no deadlock");
}

/// The lockup that uses CPU: a loop that never makes progress.
#[inline(never)]
fn spin_forever() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// About `micros` µs of CPU work.
fn work(micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    let mut x = 0u64;
    while Instant::now() < until {
        for i in 0..200u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

/// Ten seconds of long but living work on the main thread, outside any idle
/// scope: requests wait, but failstop has no reason to stop the heartbeat.
#[inline(never)]
fn slow_but_living(h: &failstop::ThreadHandle) {
    say!("slow: 5 s of CPU-heavy work, with a tick() every 3 ms");
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        std::hint::black_box(work(3_000));
        h.tick();
    }
    const BYTES: u8 = 25;
    say!("slow: now a blocking read of {BYTES} bytes that arrive one every 200 ms (no tick, not idle)");
    let (mut rx, mut tx) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => return say!("slow: socketpair: {e}"),
    };
    let feeder = thread::Builder::new().name("slow-feeder".into()).spawn(move || {
        for i in 0..BYTES {
            thread::sleep(Duration::from_millis(200));
            if tx.write_all(&[i]).is_err() {
                return;
            }
        }
    });
    if let Err(e) = feeder {
        return say!("slow: spawning the feeder: {e}");
    }
    let started = Instant::now();
    let mut got = 0;
    let mut byte = [0u8; 1];
    while got < BYTES {
        match rx.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => got += 1,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                say!("slow: read: {e}");
                break;
            }
        }
    }
    say!("slow: done: read {got} bytes in {:.1} s; serving again", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// The standby
// ---------------------------------------------------------------------------

/// Sends the primary a request every [`REQUEST_EVERY`] and reports when
/// answers stop and start again.
fn drive_requests(port: u16, stop: &AtomicBool, last_heartbeat: &AtomicU64) -> (u64, u64) {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else { return (0, 0) };
    if sock.connect(("127.0.0.1", port)).is_err() || sock.set_read_timeout(Some(Duration::from_millis(20))).is_err() {
        return (0, 0);
    }
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut last_answer = monotonic_ns();
    let mut in_gap = false;
    let mut next_send = monotonic_ns();
    let mut buf = [0u8; 64];
    while !stop.load(Acquire) {
        let now = monotonic_ns();
        if now >= next_send {
            sent += 1;
            let _ = sock.send(format!("REQ {sent}").as_bytes());
            next_send = now + REQUEST_EVERY.as_nanos() as u64;
        }
        if let Ok(n) = sock.recv(&mut buf)
            && buf[..n].starts_with(b"RSP ")
        {
            answered += 1;
            let now = monotonic_ns();
            if in_gap {
                in_gap = false;
                say!("requests: the primary answers again, after {} ms without an answer", ms(now - last_answer));
            }
            last_answer = now;
        }
        let now = monotonic_ns();
        if !in_gap && answered > 0 && now - last_answer > ANSWER_GAP.as_nanos() as u64 {
            in_gap = true;
            say!(
                "requests: no answer for {} ms, but the last heartbeat came {} ms ago: the primary counts as alive",
                ms(now - last_answer),
                ms(now.saturating_sub(last_heartbeat.load(Acquire)))
            );
        }
    }
    (sent, answered)
}

fn standby(o: &Options) -> Result<ExitCode, String> {
    die_with_parent();
    let sock = UdpSocket::bind(("127.0.0.1", o.standby_port)).map_err(|e| format!("bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(10))).map_err(|e| e.to_string())?;
    say!("pid {}: listening for heartbeats on 127.0.0.1:{}", std::process::id(), o.standby_port);
    let run_end = T0.load(Relaxed) + o.seconds.unwrap_or(15) * 1_000_000_000;
    // Past the end of the run the primary says goodbye; this is a backstop.
    let give_up = run_end + 3_000_000_000;
    let first_deadline = monotonic_ns() + 10_000_000_000;

    let stop = Arc::new(AtomicBool::new(false));
    let last_heartbeat = Arc::new(AtomicU64::new(0));
    let mut client = None;
    let mut heartbeats = 0u64;
    let mut last_seq = 0u64;
    let mut fault: Option<(String, u64)> = None;
    let mut buf = [0u8; 128];
    let took_over = loop {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let mut words = msg.split(' ');
            match words.next() {
                Some("HB") => {
                    last_heartbeat.store(monotonic_ns(), Release);
                    last_seq = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                    heartbeats += 1;
                    if client.is_none() {
                        say!(
                            "first heartbeat from the primary; sending it a request every {} ms",
                            REQUEST_EVERY.as_millis()
                        );
                        let (stop, last_heartbeat) = (stop.clone(), last_heartbeat.clone());
                        let port = o.primary_port;
                        client = Some(thread::spawn(move || drive_requests(port, &stop, &last_heartbeat)));
                    }
                }
                Some("FAULT") => {
                    let kind = words.next().unwrap_or("?").to_string();
                    let start: u64 = words.next().and_then(|s| s.parse().ok()).unwrap_or_else(monotonic_ns);
                    say!("the primary announces fault {kind}, starting at {:.3}s", rel(start));
                    fault = Some((kind, start));
                }
                Some("BYE") => {
                    say!("the primary says goodbye: the run is over");
                    break false;
                }
                _ => say!("unexpected message {msg:?}"),
            }
        }
        let now = monotonic_ns();
        let last = last_heartbeat.load(Acquire);
        if last != 0 && now - last > DEAD_AFTER.as_nanos() as u64 {
            say!(
                "no heartbeat for {} ms (the last, #{last_seq}, came at {:.3}s): the primary is dead. TAKING OVER",
                ms(now - last),
                rel(last)
            );
            match &fault {
                Some((kind, start)) => {
                    say!(
                        "takeover after {} ms (from the start of fault {kind} at {:.3}s)",
                        ms(now - start),
                        rel(*start)
                    )
                }
                None => say!("took over, but the primary announced no fault"),
            }
            break true;
        }
        if last == 0 && now > first_deadline {
            return Err("no heartbeat from the primary within 10 s".into());
        }
        if now > give_up {
            say!("the run is over and the primary did not say goodbye");
            break false;
        }
    };
    stop.store(true, Release);
    if let Some((sent, answered)) = client.and_then(|c| c.join().ok()) {
        say!("requests: sent {sent}, answered {answered}; heartbeats received: {heartbeats}");
    }
    if took_over {
        say!("standby is now the primary");
        Ok(ExitCode::from(STANDBY_TOOK_OVER as u8))
    } else {
        say!("no takeover");
        Ok(ExitCode::SUCCESS)
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ha_pair: {e}");
            }
            eprintln!("usage: ha_pair [--fault syscall-hang|deadlock|spin|slow|none] [--after MS] [--seconds N]");
            return ExitCode::from(2);
        }
    };
    let (who, t0) = match o.role {
        Role::Orchestrator => ("orchestrator", monotonic_ns()),
        Role::Primary => ("primary", o.t0),
        Role::Standby => ("standby", o.t0),
    };
    T0.store(t0, Relaxed);
    let _ = WHO.set(who);
    let r = match o.role {
        Role::Orchestrator => orchestrate(&o),
        Role::Primary => primary(&o),
        Role::Standby => standby(&o),
    };
    r.unwrap_or_else(|e| {
        eprintln!("ha_pair {who}: {e}");
        ExitCode::from(1)
    })
}
