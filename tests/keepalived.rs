//! Failover with a real cluster manager: Debian's keepalived
//! (VRRP) moves a service's address to the backup node when failstop
//! fail-stops the master's serving loop, and only then.
//!
//! The test builds two nodes and a client on one machine, each in a network
//! namespace of its own (names `fs19-<pid>-a`, `-b`, `-c`), joined by a
//! bridge in a fourth (`fs19-<pid>-sw`), so nothing of it touches the host's
//! network and parallel runs do not meet: node a is 10.231.19.1, node b
//! 10.231.19.2, the client 10.231.19.3, the service's virtual address
//! 10.231.19.100. Each node runs the C echo server
//! (`examples/c/echo_server.c --bind 0.0.0.0 --heartbeat 7001 --name
//! node-X 7000`, failstop inside: cpu_budget 500 ms, stall_budget 1.5 s)
//! and keepalived with `examples/keepalived/keepalived.conf` (docs/failover.md's
//! file, only the check's path replaced by the repository's
//! `check_heartbeat.sh`): a `vrrp_script` asks the server's heartbeat
//! thread, which answers `HEALTHY` or `UNHEALTHY` from `failstop_healthy()`
//! and keeps answering while the serving loop hangs. A thread of the test in
//! the client's namespace asks the virtual address `NAME` every few tens of
//! ms, so it sees which node serves it.
//!
//! On the master (node a), in turn:
//!
//! - `FAULT spin`, `FAULT block`, `FAULT vanish` (action `abort`): the
//!   address moves to node b within [`TAKEOVER_BOUND`], the old run ends by
//!   SIGABRT with its dump's verdict; node a's service is then started again
//!   and takes the address back (higher priority);
//! - `FAULT slow` (6 s of slow but living work on the loop): the address
//!   stays on node a, no verdict, and node a serves again afterwards;
//! - `FAULT block` with `FAILSTOP_ACTION=unhealthy`: the address moves while
//!   the process stays alive, its heartbeat answering `UNHEALTHY`;
//! - the control, `FAULT block` with `FAILSTOP_DISABLE=1`: the heartbeat
//!   thread goes on answering `HEALTHY`, and the address stays on the hung
//!   node for [`CONTROL_WINDOW`]: nothing but failstop turns the hung loop
//!   into a failover.
//!
//! For each takeover the test prints the time from the fault to the client
//! being served by node b, and its parts: failstop's verdict (the dump's
//! `verdict at CLOCK_MONOTONIC`), keepalived's check on node a failing,
//! node b entering the MASTER state, and the client's first answer from it.
//!
//! It needs root (CI runs as root), `ip` (Debian's `iproute2`) and
//! `keepalived` (Debian's `keepalived`, installed by `scripts/test.sh`); it
//! fails, naming what is missing, without them. Everything it made (the
//! processes, the namespaces with their links and addresses, its files) is
//! removed when it ends, passed or failed ([`Lab`]'s `Drop`).

use failstop_test_support as common;

/// A measured figure: printed, and kept for `.ci/run` (see `common::figure`).
macro_rules! figure {
    ($($arg:tt)*) => {
        common::figure(&format!($($arg)*))
    };
}

use common::c;
use common::netns::{
    Lines, Prober, ask, heartbeat, in_netns, monotonic_ms, ms, program, read_lines, remove_netns, verdict_at,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The keepalived configuration, as docs/failover.md shows it.
const CONFIG: &str = "examples/keepalived/keepalived.conf";
/// The check it runs, as docs/failover.md shows it.
const CHECK: &str = "examples/keepalived/check_heartbeat.sh";
/// Where the configuration expects the check; the test points it at [`CHECK`].
const CHECK_INSTALLED: &str = "/usr/local/bin/check_heartbeat.sh";

/// The subnet of the namespaces (private to them: the host never sees it).
const NET: &str = "10.231.19";
const VIP: &str = "10.231.19.100";
const SERVICE_PORT: u16 = 7000;
const HEARTBEAT_PORT: u16 = 7001;
/// The nodes: (suffix of the namespace, address, `--name`, keepalived's `-i`).
const NODES: [(&str, &str, &str, &str); 2] =
    [("a", "10.231.19.1", "node-a", "node_a"), ("b", "10.231.19.2", "node-b", "node_b")];
const A: usize = 0;
const B: usize = 1;

const CPU_BUDGET_MS: u64 = 500;
const STALL_BUDGET_MS: u64 = 1500;

/// From a fault to the client served by node b (generous: two noisy cores;
/// the expected time is a few seconds).
const TAKEOVER_BOUND: Duration = Duration::from_secs(30);
/// From node a's new run to the client served by it again (the check's
/// `rise`, then VRRP's master-down time).
const RECLAIM_BOUND: Duration = Duration::from_secs(40);
/// How long the control (no failstop) must keep the address on the hung node.
const CONTROL_WINDOW: Duration = Duration::from_secs(15);
/// How long the slow work's end is waited for (it takes 6 s).
const SLOW_BOUND: Duration = Duration::from_secs(40);
/// From the fault to the end of the aborted run (detection and the dump).
const END_BOUND: Duration = Duration::from_secs(30);
/// A server that does not listen within this fails the test.
const START_BOUND: Duration = Duration::from_secs(20);

/// The client's probe: connect and reply timeouts, and the pause between two.
const PROBE_CONNECT: Duration = Duration::from_millis(100);
const PROBE_REPLY: Duration = Duration::from_millis(100);
const PROBE_PAUSE: Duration = Duration::from_millis(20);

/// A process the test started in a namespace.
struct Proc {
    label: String,
    child: Child,
    lines: Lines,
    readers: Vec<JoinHandle<()>>,
    /// Its dump file (services only).
    dump: Option<PathBuf>,
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The first line containing `needle` that came at or after `since`.
    fn line_after(&self, needle: &str, since: Instant) -> Option<(Instant, String)> {
        self.lines.lock().unwrap().iter().find(|(t, l)| *t >= since && l.contains(needle)).cloned()
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().iter().map(|(_, l)| format!("{l}\n")).collect()
    }
}

/// The namespaces, the processes in them and the test's files; `Drop`
/// removes all of it.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    /// The test's files (the server, the configuration, the dumps).
    dir: PathBuf,
    /// The copy of the check (see `render_config`).
    check_dir: PathBuf,
    procs: Vec<Proc>,
    /// The service of each node now (an index in `procs`).
    service: [Option<usize>; 2],
    prober: Option<Prober>,
    server: PathBuf,
    config: PathBuf,
    ip: PathBuf,
    keepalived: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test needs root for `ip netns` and keepalived (CI runs as root)");
        let ip = program("ip", "iproute2");
        let keepalived = program("keepalived", "keepalived");
        let prefix = format!("fs19-{}", std::process::id());
        let dir = c::temp_dir("keepalived");
        let check_dir = std::env::temp_dir().join(&prefix);
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            dir,
            check_dir,
            procs: Vec::new(),
            service: [None, None],
            prober: None,
            server: PathBuf::new(),
            config: PathBuf::new(),
            ip,
            keepalived,
        };
        lab.build_network();
        lab.server = c::build_static("examples/c/echo_server.c", &lab.dir.join("echo_server"), &["-O2"]);
        lab.config = lab.render_config();
        lab
    }

    fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    fn run_ip(&mut self, args: &[&str]) {
        let out = Command::new(&self.ip).args(args).output().unwrap_or_else(|e| panic!("run ip: {e}"));
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr).into_owned();
            self.fail(&format!("`ip {}` failed ({:?}): {said}", args.join(" "), out.status));
        }
    }

    /// A bridge in `-sw`, and a veth pair from it to `eth0` of each of `-a`,
    /// `-b` and `-c`, with loopback up (the check asks 127.0.0.1).
    fn build_network(&mut self) {
        let sw = self.ns("sw");
        self.run_ip(&["netns", "add", &sw]);
        self.namespaces.push(sw.clone());
        self.run_ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        self.run_ip(&["-n", &sw, "link", "set", "br0", "up"]);
        let hosts = [("a", NODES[A].1), ("b", NODES[B].1), ("c", &format!("{NET}.3") as &str)];
        for (suffix, addr) in hosts {
            let ns = self.ns(suffix);
            self.run_ip(&["netns", "add", &ns]);
            self.namespaces.push(ns.clone());
            let port = format!("v{suffix}");
            self.run_ip(&["-n", &ns, "link", "set", "lo", "up"]);
            self.run_ip(&["link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &sw]);
            self.run_ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
            self.run_ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            self.run_ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
    }

    /// docs/failover.md's configuration with the check's path replaced (and
    /// nothing else); the check script is copied beside it.
    fn render_config(&mut self) -> PathBuf {
        let text = fs::read_to_string(Path::new(c::ROOT).join(CONFIG)).expect("read the keepalived config");
        let n = text.matches(CHECK_INSTALLED).count();
        if n != 1 {
            self.fail(&format!("{CONFIG} names {CHECK_INSTALLED} {n} times, expected once"));
        }
        // The check runs as `nobody` (script_user): a copy it can reach
        // (every directory above this checkout may not be), in a directory
        // of the test's own under /tmp.
        let bin = self.check_dir.clone();
        fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("mkdir {bin:?}: {e}"));
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");
        let check = bin.join("check_heartbeat.sh");
        fs::copy(Path::new(c::ROOT).join(CHECK), &check).expect("copy the check");
        fs::set_permissions(&check, fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = self.dir.join("keepalived.conf");
        fs::write(&out, text.replace(CHECK_INSTALLED, check.to_str().expect("UTF-8 path"))).expect("write config");
        out
    }

    /// Starts `argv` in namespace `ns` (by `ip netns exec`, which execs it:
    /// the pid is the program's), in a process group of its own, without
    /// core files, with the `FAILSTOP_*` variables `env` only.
    fn spawn(&mut self, label: &str, ns: &str, argv: &[&str], env: &[(&str, String)], dump: Option<PathBuf>) -> usize {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", ns]).args(argv);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FAILSTOP_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(d) = &dump {
            cmd.env("FAILSTOP_DUMP_PATH", d);
        }
        cmd.process_group(0);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between
        // fork and exec here.
        unsafe {
            cmd.pre_exec(|| {
                let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::setrlimit(libc::RLIMIT_CORE, &none) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {argv:?} in {ns}: {e}"));
        let lines = Lines::default();
        let readers = vec![
            read_lines(child.stdout.take().expect("stdout"), lines.clone(), ""),
            read_lines(child.stderr.take().expect("stderr"), lines.clone(), "stderr: "),
        ];
        self.procs.push(Proc { label: label.into(), child, lines, readers, dump });
        self.procs.len() - 1
    }

    /// Starts node `n`'s service (with failstop's small budgets and `extra`
    /// variables) and waits until it listens.
    fn start_service(&mut self, n: usize, extra: &[(&str, &str)]) -> usize {
        let (suffix, _, name, _) = NODES[n];
        let run = self.procs.len();
        let dump = self.dir.join(format!("dump-{name}-{run}"));
        let mut env = vec![
            ("FAILSTOP_CPU_BUDGET_MS", CPU_BUDGET_MS.to_string()),
            ("FAILSTOP_WARN_MS", common::WARN.as_millis().to_string()),
            ("FAILSTOP_STALL_BUDGET_MS", STALL_BUDGET_MS.to_string()),
            ("FAILSTOP_DUMP_TIMEOUT_MS", common::DUMP_TIMEOUT.as_millis().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let server = self.server.to_str().expect("UTF-8 path").to_string();
        let (hb, port) = (HEARTBEAT_PORT.to_string(), SERVICE_PORT.to_string());
        let argv = [&server as &str, "--allow-faults", "--bind", "0.0.0.0", "--heartbeat", &hb, "--name", name, &port];
        let ns = self.ns(suffix);
        let i = self.spawn(&format!("service {name} #{run}"), &ns, &argv, &env, Some(dump));
        let until = Instant::now() + START_BOUND;
        let want = format!("echo_server: listening on 0.0.0.0:{SERVICE_PORT} (faults allowed)");
        while self.procs[i].line_after(&want, Instant::now() - Duration::from_secs(3600)).is_none() {
            let alive = self.procs[i].alive();
            self.check(alive, &format!("{name}'s service ended before listening"));
            self.check(Instant::now() < until, &format!("{name}'s service does not listen within {START_BOUND:?}"));
            std::thread::sleep(Duration::from_millis(5));
        }
        let beat = format!("echo_server: heartbeat on 0.0.0.0:{HEARTBEAT_PORT}");
        let has_beat = self.procs[i].text().contains(&beat);
        self.check(has_beat, &format!("{name}'s service did not print {beat:?}"));
        self.service[n] = Some(i);
        i
    }

    /// Starts keepalived on node `n`: in the foreground, logging to its
    /// stdout, VRRP only, with pid files of the test's own.
    fn start_keepalived(&mut self, n: usize) -> usize {
        let (suffix, _, name, id) = NODES[n];
        let f = |x: &str| self.dir.join(format!("{id}.{x}")).to_str().expect("UTF-8 path").to_string();
        let (pid, vrrp, checkers) = (f("pid"), f("vrrp.pid"), f("checkers.pid"));
        let keepalived = self.keepalived.to_str().expect("UTF-8 path").to_string();
        let config = self.config.to_str().expect("UTF-8 path").to_string();
        let argv = [
            &keepalived as &str,
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--vrrp",
            "--use-file",
            &config,
            "--config-id",
            id,
            "--pid",
            &pid,
            "--vrrp_pid",
            &vrrp,
            "--checkers_pid",
            &checkers,
        ];
        let ns = self.ns(suffix);
        self.spawn(&format!("keepalived {name}"), &ns, &argv, &[], None)
    }

    /// The client: a thread in `-c` that asks the virtual address `NAME`
    /// without end, each time on a new connection.
    fn start_prober(&mut self) {
        self.prober = Some(Prober::start(self.ns("c"), VIP, SERVICE_PORT, PROBE_CONNECT, PROBE_REPLY, PROBE_PAUSE));
    }

    /// The client (started by [`Lab::start_prober`]).
    fn prober(&self) -> &Prober {
        self.prober.as_ref().expect("the client is not started")
    }

    /// The first probe at or after `since` that `node` answered.
    fn served_by(&self, node: usize, since: Instant) -> Option<Instant> {
        self.prober().served_by(NODES[node].2, since)
    }

    /// Waits until the client is served by `node` after `since`.
    fn wait_served_by(&mut self, node: usize, since: Instant, bound: Duration, what: &str) -> Instant {
        let served = self.prober().wait_served_by(NODES[node].2, since, bound);
        match served {
            Ok(t) => t,
            Err(why) => self.fail(&format!("{what}: {why}")),
        }
    }

    /// Sends `FAULT kind` to node a's service, at its own address, from the
    /// client's namespace; returns when it was acknowledged (the loop
    /// starts the fault right after), as an Instant and in CLOCK_MONOTONIC.
    fn fault(&mut self, kind: &str) -> (Instant, f64) {
        let ack = in_netns(&self.ns("c"), {
            let kind = kind.to_string();
            move || {
                ask(NODES[A].1, SERVICE_PORT, &format!("FAULT {kind}"), Duration::from_secs(5), Duration::from_secs(10))
            }
        });
        let at = (Instant::now(), monotonic_ms());
        let want = match kind {
            "vanish" => "FAULT vanish: the loop vanishes now".to_string(),
            "slow" => "FAULT slow: the loop works slowly now".to_string(),
            _ => format!("FAULT {kind}: the loop {kind}s now"),
        };
        self.check(ack.as_deref() == Ok(want.as_str()), &format!("FAULT {kind} answered {ack:?}"));
        at
    }

    /// Node `n`'s heartbeat, asked from the client's namespace.
    fn heartbeat_of(&self, n: usize) -> Result<String, String> {
        let addr = NODES[n].1;
        in_netns(&self.ns("c"), move || heartbeat(addr, HEARTBEAT_PORT))
    }

    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.fail(what);
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        panic!("{what}\n{}", self.describe());
    }

    /// Every process's state and output, the dumps, and the client's last
    /// probes, for failure messages.
    fn describe(&mut self) -> String {
        let mut s = String::new();
        for p in &mut self.procs {
            let state = p.child.try_wait();
            let text = p.text();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            s += &format!("--- {} (pid {}): {state:?}\n", p.label, p.child.id());
            for l in tail.iter().rev() {
                s += &format!("{l}\n");
            }
            if let Some((d, Ok(t))) = p.dump.as_ref().map(|d| (d, fs::read_to_string(d))) {
                s += &format!("--- dump {}\n{}\n", d.display(), t.chars().take(4000).collect::<String>());
            }
        }
        let probes = self.prober.as_ref().map(|p| p.probes().clone()).unwrap_or_default();
        s += "--- the client's last probes\n";
        let start = probes.len().saturating_sub(40);
        for (t, r) in &probes[start..] {
            s += &format!("{:?} ago: {r:?}\n", t.elapsed());
        }
        s
    }

    /// Kills node `n`'s current service (SIGKILL) and reaps it.
    fn kill_service(&mut self, n: usize) {
        if let Some(i) = self.service[n].take() {
            let _ = self.procs[i].child.kill();
            let _ = self.procs[i].child.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.prober.take());
        // keepalived first, politely (it removes its address and tells the
        // peer), then whatever is left in the namespaces, by force.
        for p in &mut self.procs {
            if p.label.starts_with("keepalived") && matches!(p.child.try_wait(), Ok(None)) {
                // SAFETY: signalling our own child, not reaped yet.
                unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        while self.procs.iter_mut().any(|p| p.label.starts_with("keepalived") && matches!(p.child.try_wait(), Ok(None)))
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in &mut self.procs {
            if matches!(p.child.try_wait(), Ok(None)) {
                // SAFETY: the process group made for our own child (the
                // group id stays ours while the child is not reaped).
                unsafe { libc::kill(-(p.child.id() as i32), libc::SIGKILL) };
                let _ = p.child.kill();
            }
            let _ = p.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            remove_netns(&self.ip, ns, "keepalived test");
        }
        for p in &mut self.procs {
            for r in p.readers.drain(..) {
                let _ = r.join();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.check_dir);
    }
}

/// The parts of one takeover, each from the fault.
struct Takeover {
    fault: &'static str,
    verdict: Option<Duration>,
    check_failed: Option<Duration>,
    backup_master: Option<Duration>,
    served: Duration,
}

impl Takeover {
    fn print(&self) {
        let f = |d: Option<Duration>| d.map_or("?".to_string(), |d| format!("{:.0} ms", ms(d)));
        let part = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0} ms", ms(b.saturating_sub(a))),
            _ => "?".into(),
        };
        figure!(
            "keepalived: {}: served by node-b {:.0} ms after the fault; verdict at {}, node-a's check failed at {}, \
             node-b MASTER at {}: failstop {}, the check {}, VRRP {}, the client {}",
            self.fault,
            ms(self.served),
            f(self.verdict),
            f(self.check_failed),
            f(self.backup_master),
            f(self.verdict),
            part(self.verdict, self.check_failed),
            part(self.check_failed, self.backup_master),
            part(self.backup_master, Some(self.served)),
        );
    }
}

/// From `fault_ms` (CLOCK_MONOTONIC) to the verdict of the dump `text`.
fn verdict_after(lab: &mut Lab, text: &str, fault_ms: f64) -> Duration {
    let Some(at) = verdict_at(text) else { lab.fail(&format!("no `verdict at CLOCK_MONOTONIC` in the dump:\n{text}")) };
    lab.check(at >= fault_ms, &format!("a verdict at {at} ms, before the fault at {fault_ms:.1} ms"));
    Duration::from_secs_f64((at - fault_ms) / 1e3)
}

/// The dump of service `svc`, waited for (it is written before the end).
fn dump_text(lab: &mut Lab, svc: usize, bound: Duration) -> String {
    let path = lab.procs[svc].dump.clone().expect("a service's dump path");
    let until = Instant::now() + bound;
    loop {
        let text = fs::read_to_string(&path).unwrap_or_default();
        if text.contains("failstop: dump written in ") || (text.lines().count() > 2 && !lab.procs[svc].alive()) {
            return text;
        }
        lab.check(Instant::now() < until, &format!("no complete dump in {path:?} within {bound:?}"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The verdict line a fault must give.
fn verdict_prefix(kind: &str, pid: i32) -> String {
    // The echo server's loop runs on its main thread: the culprit's tid is the pid.
    match kind {
        "spin" => format!("failstop: stuck: thread \"echo-loop\" (tid {pid}) "),
        "vanish" => format!("failstop: vanished: thread \"echo-loop\" (tid {pid}) "),
        _ => format!("failstop: blocked: thread \"echo-loop\" (tid {pid}) "),
    }
}

/// A fault on node a's service `svc`; waits for node b to serve; returns
/// the parts of the takeover.
fn takeover(lab: &mut Lab, kind: &'static str, action: &str) -> (Takeover, Instant) {
    let svc = lab.service[A].expect("node a's service");
    // Each fault comes right after node a took the address back, so its
    // phase against keepalived's check timer (one run a second) would be
    // the same every time: a pause of 0 to 1 s makes the check's part of
    // the figures a fair sample.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    std::thread::sleep(Duration::from_millis(u64::from(nanos % 1000)));
    let (fault, fault_ms) = lab.fault(kind);
    let served = lab.wait_served_by(B, fault, TAKEOVER_BOUND, &format!("FAULT {kind}"));
    let ka = lab.procs.iter().position(|p| p.label == "keepalived node-a").expect("keepalived a");
    let kb = lab.procs.iter().position(|p| p.label == "keepalived node-b").expect("keepalived b");
    let check_failed =
        lab.procs[ka].line_after("VRRP_Script(failstop_heartbeat) failed", fault).map(|(t, _)| t - fault);
    let backup_master = lab.procs[kb].line_after("Entering MASTER STATE", fault).map(|(t, _)| t - fault);
    lab.check(check_failed.is_some(), &format!("FAULT {kind}: node a's keepalived did not log its check failing"));
    lab.check(backup_master.is_some(), &format!("FAULT {kind}: node b's keepalived did not log its MASTER state"));
    let pid = lab.procs[svc].pid();
    let dump = dump_text(lab, svc, END_BOUND);
    let first = dump.lines().next().unwrap_or_default().to_string();
    let want = verdict_prefix(kind, pid);
    lab.check(first.starts_with(&want), &format!("FAULT {kind}: the dump's first line {first:?}, expected {want:?}"));
    let ends = format!("; action: {action}");
    let named = common::without_process(&first);
    lab.check(named.ends_with(&ends), &format!("FAULT {kind}: {first:?} does not end with {ends:?}"));
    lab.check(
        common::process_of(&first) == Some((pid, "echo_server".to_string())),
        &format!("FAULT {kind}: {first:?} does not name the process {pid} \"echo_server\""),
    );
    let verdict = verdict_after(lab, &dump, fault_ms);
    if kind == "block" {
        let early = verdict < Duration::from_millis(STALL_BUDGET_MS);
        lab.check(!early, &format!("FAULT block: a verdict {verdict:?} after the fault, within the stall budget"));
    }
    let t = Takeover { fault: kind, verdict: Some(verdict), check_failed, backup_master, served: served - fault };
    (t, fault)
}

/// Waits for node a's aborted run `svc` to end by SIGABRT.
fn assert_aborted(lab: &mut Lab, svc: usize, fault: Instant, kind: &str) {
    let until = fault + END_BOUND;
    loop {
        match lab.procs[svc].child.try_wait() {
            Ok(Some(st)) => {
                let ok = st.signal() == Some(libc::SIGABRT);
                lab.check(ok, &format!("FAULT {kind}: node a's service ended {st:?}, not by SIGABRT"));
                return;
            }
            Ok(None) => {}
            Err(e) => lab.fail(&format!("wait: {e}")),
        }
        lab.check(Instant::now() < until, &format!("FAULT {kind}: node a's service still alive {END_BOUND:?} after"));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts node a's service again and waits until its keepalived entered
/// the MASTER state again (after keepalived's `rise`, VRRP's preemption)
/// and the client is served by it; returns how long that took.
fn reclaim(lab: &mut Lab, extra: &[(&str, &str)], after: &str) -> Duration {
    let start = Instant::now();
    lab.start_service(A, extra);
    let ka = lab.procs.iter().position(|p| p.label == "keepalived node-a").expect("keepalived a");
    let until = start + RECLAIM_BOUND;
    let master = loop {
        if let Some((t, _)) = lab.procs[ka].line_after("Entering MASTER STATE", start) {
            break t;
        }
        lab.check(
            Instant::now() < until,
            &format!("node a restarted after {after}: not MASTER within {RECLAIM_BOUND:?}"),
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let t = lab.wait_served_by(A, master, RECLAIM_BOUND, &format!("node a restarted after {after}"));
    t - start
}

/// Ends node a's service (SIGKILL, as a crash would) and waits until node b
/// serves: the state a fault leaves, from which [`reclaim`] starts.
fn kill_and_fail_over(lab: &mut Lab) {
    let start = Instant::now();
    lab.kill_service(A);
    lab.wait_served_by(B, start, TAKEOVER_BOUND, "node a's service killed");
}

#[test]
fn keepalived_moves_the_address_when_failstop_fail_stops_the_master() {
    let mut lab = Lab::new();
    let start = Instant::now();
    lab.start_prober();
    lab.start_service(A, &[]);
    lab.start_service(B, &[]);
    lab.start_keepalived(A);
    lab.start_keepalived(B);
    let ka = lab.procs.iter().position(|p| p.label == "keepalived node-a").expect("keepalived a");
    let until = start + RECLAIM_BOUND;
    let master = loop {
        if let Some((t, _)) = lab.procs[ka].line_after("Entering MASTER STATE", start) {
            break t;
        }
        lab.check(Instant::now() < until, &format!("node a: not MASTER within {RECLAIM_BOUND:?} of the start"));
        std::thread::sleep(Duration::from_millis(10));
    };
    let first = lab.wait_served_by(A, master, RECLAIM_BOUND, "the start");
    figure!("keepalived: node-a serves the virtual address {:.0} ms after keepalived started", ms(first - start));
    let b_before = lab.heartbeat_of(B);
    lab.check(b_before.as_deref() == Ok("HEALTHY\n"), &format!("node b's heartbeat: {b_before:?}"));

    let mut takeovers = Vec::new();
    let mut reclaims = Vec::new();
    for kind in ["spin", "block", "vanish"] {
        let svc = lab.service[A].expect("node a's service");
        let (t, fault) = takeover(&mut lab, kind, "abort");
        assert_aborted(&mut lab, svc, fault, kind);
        t.print();
        takeovers.push(t);
        lab.service[A] = None;
        reclaims.push(reclaim(&mut lab, &[], kind));
    }

    // Slow but living work: 6 s on the loop; the heartbeat thread answers
    // HEALTHY throughout, and the address stays.
    let svc = lab.service[A].expect("node a's service");
    let (fault, _) = lab.fault("slow");
    let until = fault + SLOW_BOUND;
    let done = loop {
        if let Some((t, _)) = lab.procs[svc].line_after("echo_server: FAULT slow: done", fault) {
            break t;
        }
        let alive = lab.procs[svc].alive();
        lab.check(alive, "FAULT slow: node a's service ended");
        lab.check(Instant::now() < until, &format!("FAULT slow: not done within {SLOW_BOUND:?}"));
        std::thread::sleep(Duration::from_millis(20));
    };
    let slow_for = done - fault;
    lab.check(slow_for >= Duration::from_secs(5), &format!("FAULT slow: done after {slow_for:?}, expected 6 s"));
    let served_again = lab.wait_served_by(A, done, TAKEOVER_BOUND, "after the slow work");
    std::thread::sleep(Duration::from_secs(2));
    let moved = lab.served_by(B, fault);
    lab.check(moved.is_none(), &format!("FAULT slow: node b served {:?} after the fault", moved.map(|t| t - fault)));
    let alive = lab.procs[svc].alive();
    lab.check(alive, "FAULT slow: node a's service ended");
    let text = lab.procs[svc].text();
    let kinds = ["stuck", "blocked", "vanished", "polling", "stalled"];
    let verdict = text.lines().find(|l| kinds.iter().any(|k| l.starts_with(&format!("stderr: failstop: {k}: "))));
    lab.check(verdict.is_none(), &format!("FAULT slow: a verdict: {verdict:?}"));
    let dump = lab.procs[svc].dump.clone().expect("dump path");
    lab.check(!dump.exists(), &format!("FAULT slow: a dump file {dump:?}"));
    let faulted = lab.procs[ka].line_after("Entering FAULT STATE", fault);
    lab.check(faulted.is_none(), &format!("FAULT slow: node a's keepalived {faulted:?}"));
    figure!(
        "keepalived: slow: 6 s of slow work done {:.0} ms after the fault, node-a serving again {:.0} ms later, \
         node-b never",
        ms(slow_for),
        ms(served_again.saturating_duration_since(done))
    );

    // The unhealthy action: the process stays for inspection, the address moves.
    kill_and_fail_over(&mut lab);
    reclaims.push(reclaim(&mut lab, &[("FAILSTOP_ACTION", "unhealthy")], "a kill"));
    let svc = lab.service[A].expect("node a's service");
    let (mut t, _) = takeover(&mut lab, "block", "unhealthy");
    t.fault = "block, action unhealthy";
    t.print();
    takeovers.push(t);
    let alive = lab.procs[svc].alive();
    lab.check(alive, "the unhealthy action: node a's service ended");
    let beat = lab.heartbeat_of(A);
    lab.check(beat.as_deref() == Ok("UNHEALTHY\n"), &format!("the unhealthy action: node a's heartbeat {beat:?}"));
    std::thread::sleep(Duration::from_secs(2));
    let alive = lab.procs[svc].alive();
    lab.check(alive, "the unhealthy action: node a's service ended");

    // The control: the same block without failstop keeps the address.
    kill_and_fail_over(&mut lab);
    reclaims.push(reclaim(&mut lab, &[("FAILSTOP_DISABLE", "1")], "a kill"));
    let svc = lab.service[A].expect("node a's service");
    let (fault, _) = lab.fault("block");
    std::thread::sleep(CONTROL_WINDOW);
    let moved = lab.served_by(B, fault);
    lab.check(moved.is_none(), &format!("the control: node b served {:?} after the fault", moved.map(|t| t - fault)));
    let alive = lab.procs[svc].alive();
    lab.check(alive, "the control: node a's service ended without failstop");
    let beat = lab.heartbeat_of(A);
    lab.check(beat.as_deref() == Ok("HEALTHY\n"), &format!("the control: node a's heartbeat {beat:?}"));
    let answered =
        lab.prober().probes().iter().filter(|(t, r)| *t > fault + Duration::from_secs(1) && r.is_ok()).count();
    lab.check(answered == 0, &format!("the control: the hung node answered {answered} probes"));
    let faulted = lab.procs[ka].line_after("Entering FAULT STATE", fault);
    lab.check(faulted.is_none(), &format!("the control: node a's keepalived {faulted:?}"));
    figure!(
        "keepalived: control (FAILSTOP_DISABLE=1, FAULT block): the address stayed on the hung node-a for {:.0} s; \
         its heartbeat still answers HEALTHY",
        CONTROL_WINDOW.as_secs_f64()
    );
    let r: Vec<String> = reclaims.iter().map(|d| format!("{:.0}", ms(*d))).collect();
    figure!("keepalived: node-a's new run served the address again after (ms): {}", r.join(", "));
    figure!("keepalived: the whole test took {:.0} s", start.elapsed().as_secs_f64());
}

/// docs/failover.md's "Failover with a cluster manager" shows the configuration
/// and the check the test above runs, as they are in the repository.
#[test]
fn readme_shows_the_keepalived_files_the_test_runs() {
    for file in [CONFIG, CHECK] {
        common::assert_readme_shows_file(file);
    }
}
