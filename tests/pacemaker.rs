//! Failover with a real cluster manager and fencing: Debian's corosync 3
//! (knet) and Pacemaker 2.1 move a failstop-protected service and its
//! address to the other node when failstop fail-stops it, fence the node
//! when the process cannot end, and move nothing otherwise.
//!
//! The test builds a two-node cluster and a client on one machine. Each
//! node is a network namespace of its own (`fs20-<pid>-a`, `-b`; the client
//! `-c`), joined by a bridge in a fourth (`-sw`): node-a is 10.231.20.1,
//! node-b 10.231.20.2, the client 10.231.20.3, the service's address
//! 10.231.20.100. Each node is also a mount namespace of its own, set up by
//! the node's first process (this test binary again, as the scenario
//! `pacemaker-node`): tmpfs over `/run`, `/var/lib/pacemaker`,
//! `/var/lib/corosync` and `/dev/shm`; a directory of the test's on
//! `/var/log/pacemaker` (so that the logs outlive the node);
//! `examples/pacemaker/corosync.conf` on `/etc/corosync/corosync.conf`;
//! the echo server and the monitor hook over `/usr/local/bin` and the
//! fence agent over `/usr/sbin` (read-only overlays); `/run/netns/node-a`
//! and `/run/netns/node-b`, the nodes' namespaces under their node names,
//! for the fence agent. It then starts `corosync -f` and `pacemakerd -f`
//! and reaps every process orphaned in the node (a subreaper, as an init
//! would: the `anything` agent's `kill -0` must not take a zombie for a
//! running service). Once both nodes are online, `examples/pacemaker/cib.sh`
//! loads the configuration, as it is: fencing on (`fence_netns`, the
//! example agent), the echo server (`examples/c/echo_server.c`, failstop
//! inside: cpu_budget 500 ms, stall_budget 1.5 s) as an `anything`
//! resource whose monitor hook asks its heartbeat thread, and its address
//! (`IPaddr2`), colocated with it and started after it. A thread of the test
//! in the client's namespace asks the address `NAME` every few tens of ms,
//! so it sees which node serves it.
//!
//! On the node that runs the service, in turn (each case starts from a
//! settled cluster, its failures cleaned up; the service stays where it
//! moved, so the cases alternate between the nodes):
//!
//! - `FAULT spin`, `FAULT block`, `FAULT vanish` (action `abort`): the
//!   monitor fails, the service and its address move to the other node,
//!   and the old run's dump has the verdict;
//! - `FAULT block` with `FAILSTOP_ACTION=unhealthy`: the process stays, its
//!   heartbeat answering `UNHEALTHY`, the monitor fails and the service
//!   moves (Pacemaker's stop ends the process);
//! - `FAULT slow` (6 s of slow but living work): nothing moves, no verdict;
//! - the control, `FAULT block` with `FAILSTOP_DISABLE=1`: the heartbeat goes
//!   on answering `HEALTHY` and nothing moves for [`CONTROL_WINDOW`];
//! - the process that cannot die: `FAULT write PATH` into an ext4 file
//!   system on a loop device frozen with `fsfreeze -f`. The write sleeps
//!   uninterruptibly; failstop's `blocked` verdict stops the heartbeat, the
//!   monitor fails, the stop cannot end the process and times out, and
//!   Pacemaker fences the node with `fence_netns` (its links cut, its
//!   processes killed but the one that cannot die); the other node starts
//!   the service and takes the address. The dump says the culprit cannot
//!   be killed until its system call returns and to fence the node.
//!
//! For each takeover the test prints the time from the fault to the client
//! served by the other node, and its parts: failstop's verdict (the dump's
//! `verdict at CLOCK_MONOTONIC`), the failed monitor, the stop (or the
//! fence), the start of the service and of its address on the other node
//! (each from the nodes' Pacemaker logs), and the client's first answer.
//!
//! It needs root (CI runs as root), `ip` (`iproute2`), `nsenter`
//! (`util-linux`), corosync (`corosync`), Pacemaker (`pacemaker`,
//! `pacemaker-cli-utils`), the `anything` and `IPaddr2` agents
//! (`resource-agents`), `ps` (`procps`, for the hook), `mkfs.ext4`
//! (`e2fsprogs`), `losetup` (`mount`) and `fsfreeze` (`util-linux`), which
//! `scripts/test.sh` installs; it fails, naming what is missing, without
//! them. Everything it made (the processes, the namespaces, the loop
//! device, its files) is removed when it ends, passed or failed ([`Lab`]'s
//! `Drop`), the file system thawed first.

use failstop_test_support as common;

/// A measured figure: printed, and kept for `.ci/run` (see `common::figure`).
macro_rules! figure {
    ($($arg:tt)*) => {
        common::figure(&format!($($arg)*))
    };
}

use common::c;
use common::netns::{Prober, ask, heartbeat, in_netns, monotonic_ms, ms, program, remove_netns, verdict_at};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The files docs/failover.md shows, loaded as they are.
const COROSYNC_CONF: &str = "examples/pacemaker/corosync.conf";
const CIB: &str = "examples/pacemaker/cib.sh";
const HOOK: &str = "examples/pacemaker/check_heartbeat.sh";
const FENCE_AGENT: &str = "examples/pacemaker/fence_netns";

/// This test's name, for the node scenario's command line.
const TEST_NAME: &str = "pacemaker_moves_the_service_and_fences_the_node_that_cannot_stop_it";
/// The node scenario, and the variables it reads.
const NODE_SCENARIO: &str = "pacemaker-node";
const NODE_DIR_VAR: &str = "FSTEST_PACEMAKER_NODE_DIR";
const LAB_DIR_VAR: &str = "FSTEST_PACEMAKER_LAB_DIR";
const NETNS_VAR: &str = "FSTEST_PACEMAKER_NETNS";

const NET: &str = "10.231.20";
const VIP: &str = "10.231.20.100";
const SERVICE_PORT: u16 = 7000;
const HEARTBEAT_PORT: u16 = 7001;
/// The nodes: (suffix of the namespace, address, node name).
const NODES: [(&str, &str, &str); 2] = [("a", "10.231.20.1", "node-a"), ("b", "10.231.20.2", "node-b")];

/// The budgets `cib.sh` gives failstop (its `cmdline_options`).
const STALL_BUDGET_MS: u64 = 1500;
/// The anything agent's wait between SIGTERM and SIGKILL (`stop_timeout`).
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// From the start of corosync and Pacemaker to both nodes online with a DC
/// (about 25 s: Pacemaker's election waits for its peers).
const CLUSTER_BOUND: Duration = Duration::from_secs(120);
/// From a change (the configuration, a cleanup) to a settled cluster.
const SETTLE_BOUND: Duration = Duration::from_secs(90);
/// From a fault to the client served by the other node (generous: two
/// noisy cores; the expected time is about 4 s).
const TAKEOVER_BOUND: Duration = Duration::from_secs(60);
/// The same when the node must be fenced (the stop's timeout of 8 s first).
const FENCE_TAKEOVER_BOUND: Duration = Duration::from_secs(90);
/// How long the control (no failstop) must keep the service on the hung node.
const CONTROL_WINDOW: Duration = Duration::from_secs(10);
/// How long the slow work's end is waited for (it takes 6 s).
const SLOW_BOUND: Duration = Duration::from_secs(40);
/// The old run's end, its dump, a thawed process's end.
const END_BOUND: Duration = Duration::from_secs(30);

/// The client's probe: connect and reply timeouts, and the pause between two.
const PROBE_CONNECT: Duration = Duration::from_millis(100);
const PROBE_REPLY: Duration = Duration::from_millis(100);
const PROBE_PAUSE: Duration = Duration::from_millis(20);

/// A node: its first process (the node scenario: the mount namespace's
/// set-up, corosync's and Pacemaker's parent, the subreaper), its
/// directory (logs, the namespaces' names), its network namespace.
struct Node {
    init: Child,
    dir: PathBuf,
    ns: String,
}

impl Node {
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log/pacemaker.log")).unwrap_or_default()
    }

    /// The echo server's stdout and stderr (the agent's logfile and
    /// errlogfile: failstop's verdict and dump are on stderr).
    fn server_out(&self) -> String {
        fs::read_to_string(self.dir.join("log/echo_server.log")).unwrap_or_default()
    }

    fn server_err(&self) -> String {
        fs::read_to_string(self.dir.join("log/echo_server.err")).unwrap_or_default()
    }
}

/// The namespaces, the nodes, the loop device and the test's files; `Drop`
/// removes all of it.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    dir: PathBuf,
    nodes: Vec<Node>,
    prober: Option<Prober>,
    ip: PathBuf,
    nsenter: PathBuf,
    /// The loop device and the mount point of the file system to freeze.
    loop_dev: Option<String>,
    data: PathBuf,
    mounted: bool,
    frozen: bool,
}

impl Lab {
    fn new() -> Lab {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test needs root for namespaces, mounts and Pacemaker (CI runs as root)");
        let ip = program("ip", "iproute2");
        let nsenter = program("nsenter", "util-linux");
        // Found now, so that a missing package fails before anything starts.
        program("corosync", "corosync");
        program("pacemakerd", "pacemaker");
        for tool in ["crm_mon", "crm_resource", "crm_attribute", "cibadmin", "stonith_admin"] {
            program(tool, "pacemaker-cli-utils");
        }
        for agent in ["anything", "IPaddr2"] {
            let path = Path::new("/usr/lib/ocf/resource.d/heartbeat").join(agent);
            assert!(
                path.is_file(),
                "{path:?} is missing: this test needs Debian's `resource-agents` package \
                 (apt-get install resource-agents; scripts/test.sh installs it)"
            );
        }
        program("ps", "procps");
        program("mkfs.ext4", "e2fsprogs");
        program("losetup", "mount");
        program("fsfreeze", "util-linux");
        let prefix = format!("fs20-{}", std::process::id());
        let dir = c::temp_dir("pacemaker");
        let data = dir.join("data");
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            dir,
            nodes: Vec::new(),
            prober: None,
            ip,
            nsenter,
            loop_dev: None,
            data,
            mounted: false,
            frozen: false,
        };
        lab.build_network();
        lab.install_files();
        lab.make_file_system();
        lab
    }

    fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Runs `program args`; fails the test with its output unless it succeeded.
    fn run(&mut self, program: &Path, args: &[&str]) -> Output {
        let out = Command::new(program).args(args).output();
        match out {
            Ok(o) if o.status.success() => o,
            o => {
                let shown = o.map_or_else(
                    |e| e.to_string(),
                    |o| {
                        format!(
                            "{:?}: {}{}",
                            o.status,
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    },
                );
                self.fail(&format!("`{} {}` failed: {shown}", program.display(), args.join(" ")))
            }
        }
    }

    fn run_ip(&mut self, args: &[&str]) {
        let ip = self.ip.clone();
        self.run(&ip, args);
    }

    /// A bridge in `-sw`, and a veth pair from it to `eth0` of each of `-a`,
    /// `-b` and `-c`, with loopback up (the hook asks 127.0.0.1).
    fn build_network(&mut self) {
        let sw = self.ns("sw");
        self.run_ip(&["netns", "add", &sw]);
        self.namespaces.push(sw.clone());
        self.run_ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        self.run_ip(&["-n", &sw, "link", "set", "br0", "up"]);
        let client = format!("{NET}.3");
        let hosts = [("a", NODES[0].1), ("b", NODES[1].1), ("c", &client as &str)];
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

    /// What the nodes see in `/usr/local/bin` (the echo server, built with
    /// `-O2`, and the hook) and in `/usr/sbin` (the fence agent), each a
    /// lower layer of a read-only overlay over the real directory; and the
    /// nodes' directories.
    fn install_files(&mut self) {
        let bin = self.dir.join("bin");
        let sbin = self.dir.join("sbin");
        for d in [&bin, &sbin] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {d:?}: {e}"));
        }
        c::build_static("examples/c/echo_server.c", &bin.join("echo_server"), &["-O2"]);
        for (file, to) in [(HOOK, bin.join("check_heartbeat.sh")), (FENCE_AGENT, sbin.join("fence_netns"))] {
            fs::copy(Path::new(c::ROOT).join(file), &to).unwrap_or_else(|e| panic!("copy {file}: {e}"));
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for (suffix, _, _) in NODES {
            let node = self.dir.join(format!("node-{suffix}"));
            let log = node.join("log");
            fs::create_dir_all(&log).unwrap_or_else(|e| panic!("mkdir {log:?}: {e}"));
            fs::create_dir_all(node.join("netns")).expect("mkdir netns");
            let log_s = log.to_str().expect("UTF-8 path").to_string();
            self.run(Path::new("chown"), &["hacluster:haclient", &log_s]);
            fs::set_permissions(&log, fs::Permissions::from_mode(0o770)).expect("chmod");
        }
    }

    /// A 32 MiB ext4 file system on a loop device, mounted at `data` before
    /// the nodes start (so that their mount namespaces have it too).
    fn make_file_system(&mut self) {
        let image = self.dir.join("disk.img");
        fs::File::create(&image).and_then(|f| f.set_len(32 << 20)).expect("create the disk image");
        fs::create_dir_all(&self.data).expect("mkdir data");
        let image_s = image.to_str().expect("UTF-8 path").to_string();
        let losetup = program("losetup", "mount");
        let out = self.run(&losetup, &["--find", "--show", &image_s]);
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.loop_dev = Some(dev.clone());
        let mkfs = program("mkfs.ext4", "e2fsprogs");
        self.run(&mkfs, &["-q", "-F", &dev]);
        let data = self.data.to_str().expect("UTF-8 path").to_string();
        self.run(Path::new("mount"), &[&dev, &data]);
        self.mounted = true;
    }

    /// Starts node `n`'s first process in its network namespace (`ip netns
    /// exec` gives it a mount namespace of its own too).
    fn start_node(&mut self, n: usize) {
        let (suffix, _, _) = NODES[n];
        let ns = self.ns(suffix);
        let dir = self.dir.join(format!("node-{suffix}"));
        let names = NODES.iter().map(|(s, _, name)| format!("{name}={}", self.ns(s))).collect::<Vec<_>>().join(" ");
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &ns]).arg(exe).args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"]);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FAILSTOP_") {
                cmd.env_remove(k);
            }
        }
        cmd.env(common::SCENARIO_VAR, NODE_SCENARIO).env(NODE_DIR_VAR, &dir).env(LAB_DIR_VAR, &self.dir);
        cmd.env(NETNS_VAR, names);
        let out = fs::File::create(dir.join("init.log")).expect("create init.log");
        cmd.stdin(Stdio::null()).stdout(out.try_clone().expect("dup")).stderr(out);
        let init = cmd.spawn().unwrap_or_else(|e| panic!("spawn node {suffix}: {e}"));
        self.nodes.push(Node { init, dir, ns });
    }

    /// Runs `args` in node `n` (its network and mount namespaces).
    fn on_node(&self, n: usize, args: &[&str]) -> Output {
        let pid = self.nodes[n].init.id().to_string();
        Command::new(&self.nsenter)
            .args(["-t", &pid, "-m", "-n", "--"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("nsenter {args:?}: {e}"))
    }

    /// `args` on node `n`; fails the test unless it succeeded; its stdout.
    fn on_node_ok(&mut self, n: usize, args: &[&str]) -> String {
        let out = self.on_node(n, args);
        if !out.status.success() {
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            self.fail(&format!("on {}: `{}` failed ({:?}): {said}", NODES[n].2, args.join(" "), out.status));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A node whose Pacemaker still runs, to ask the cluster.
    fn live_node(&mut self) -> usize {
        (0..self.nodes.len()).find(|&n| matches!(self.nodes[n].init.try_wait(), Ok(None))).expect("a live node")
    }

    /// Waits until both nodes are online in `crm_mon` with a DC.
    fn wait_online(&mut self, start: Instant) -> Instant {
        loop {
            let out = self.on_node(0, &["crm_mon", "-1"]);
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("Online: [ node-a node-b ]") && text.contains("partition with quorum") {
                return Instant::now();
            }
            for (n, (_, _, name)) in NODES.iter().enumerate() {
                let st = self.nodes[n].init.try_wait();
                self.check(matches!(st, Ok(None)), &format!("node {name}'s first process ended: {st:?}"));
            }
            self.check(start.elapsed() < CLUSTER_BOUND, &format!("both nodes not online within {CLUSTER_BOUND:?}"));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until the cluster has no action pending (`crm_resource
    /// --wait`), then until the client is served by the node that runs the
    /// service; returns that node.
    fn settle(&mut self, what: &str) -> usize {
        let n = self.live_node();
        let timeout = format!("--timeout={}s", SETTLE_BOUND.as_secs());
        let out = self.on_node(n, &["crm_resource", "--wait", &timeout]);
        if !out.status.success() {
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            self.fail(&format!("{what}: the cluster did not settle within {SETTLE_BOUND:?}: {said}"));
        }
        let holder = self.holder(what);
        let now = Instant::now();
        self.wait_served_by(holder, now, SETTLE_BOUND, what);
        holder
    }

    /// The node that runs the service (`crm_resource --locate`), and the
    /// address with it.
    fn holder(&mut self, what: &str) -> usize {
        let n = self.live_node();
        let echo = self.on_node_ok(n, &["crm_resource", "--resource", "echo", "--locate"]);
        let ip = self.on_node_ok(n, &["crm_resource", "--resource", "echo_ip", "--locate"]);
        let on = |text: &str| {
            let node = text.trim().rsplit_once("is running on: ").map(|(_, n)| n.to_string());
            NODES.iter().position(|(_, _, name)| node.as_deref() == Some(*name))
        };
        let (Some(a), Some(b)) = (on(&echo), on(&ip)) else {
            self.fail(&format!("{what}: the service or its address does not run on one node: {echo:?} {ip:?}"))
        };
        self.check(a == b, &format!("{what}: the service on {}, its address on {}", NODES[a].2, NODES[b].2));
        a
    }

    /// The echo server's pid on node `n` (the agent's pid file, seen
    /// through the node's first process).
    fn server_pid(&mut self, n: usize) -> i32 {
        let path = format!("/proc/{}/root/run/echo_server.pid", self.nodes[n].init.id());
        let text = fs::read_to_string(&path).unwrap_or_default();
        match text.trim().parse() {
            Ok(pid) => pid,
            Err(_) => self.fail(&format!("no pid in {path}: {text:?}")),
        }
    }

    /// Sets the service's `cmdline_options` (Pacemaker restarts it in place
    /// with them) and waits until the cluster settled.
    fn set_options(&mut self, options: &str, what: &str) -> usize {
        let n = self.live_node();
        self.on_node_ok(
            n,
            &["crm_resource", "--resource", "echo", "--set-parameter", "cmdline_options", "--parameter-value", options],
        );
        self.settle(what)
    }

    /// Clears the service's failures (`crm_resource --cleanup`): the node it
    /// failed on may run it again. It stays where it is (stickiness).
    fn cleanup(&mut self, what: &str) -> usize {
        let n = self.live_node();
        self.on_node_ok(n, &["crm_resource", "--cleanup", "--resource", "echo"]);
        self.settle(what)
    }

    /// The client: a thread in `-c` that asks the address `NAME` without
    /// end, each time on a new connection.
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

    /// Sends `FAULT kind` to node `n`'s service, at the node's address, from
    /// the client's namespace; returns when it was acknowledged, as an
    /// Instant, in CLOCK_MONOTONIC and as wall-clock time (Pacemaker's logs).
    fn fault(&mut self, n: usize, kind: &str) -> Fault {
        let addr = NODES[n].1;
        let sent_ms = monotonic_ms();
        let ack = in_netns(&self.ns("c"), {
            let kind = kind.to_string();
            move || ask(addr, SERVICE_PORT, &format!("FAULT {kind}"), Duration::from_secs(5), Duration::from_secs(10))
        });
        let fault = Fault { at: Instant::now(), monotonic_ms: monotonic_ms(), sent_ms, wall: SystemTime::now() };
        let word = kind.split_whitespace().next().unwrap_or(kind);
        let want = match word {
            "vanish" => "FAULT vanish: the loop vanishes now".to_string(),
            "slow" => "FAULT slow: the loop works slowly now".to_string(),
            _ => format!("FAULT {word}: the loop {word}s now"),
        };
        self.check(ack.as_deref() == Ok(want.as_str()), &format!("FAULT {kind} answered {ack:?}"));
        fault
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

    /// The cluster's state, the nodes' logs (Pacemaker's notices and
    /// errors), the service's output and the client's last probes, for
    /// failure messages.
    fn describe(&mut self) -> String {
        let mut s = String::new();
        if let Some(n) = (0..self.nodes.len()).find(|&n| matches!(self.nodes[n].init.try_wait(), Ok(None))) {
            let out = self.on_node(n, &["crm_mon", "-1", "--show-detail", "--fence-history"]);
            s += &format!("--- crm_mon on {}\n{}\n", NODES[n].2, String::from_utf8_lossy(&out.stdout));
        }
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let state = node.init.try_wait();
            s += &format!("--- {} (first process {}): {state:?}\n", NODES[n].2, node.init.id());
            let init = fs::read_to_string(node.dir.join("init.log")).unwrap_or_default();
            let log = node.log();
            let interesting: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("notice:") || l.contains("warning:") || l.contains("error:") || l.contains("crit:")
                })
                .filter(|l| !l.contains("pacemaker-based"))
                .collect();
            let tail = |lines: Vec<&str>, n: usize| lines[lines.len().saturating_sub(n)..].join("\n");
            s += &format!("--- its first process\n{}\n", tail(init.lines().collect(), 20));
            s += &format!("--- its pacemaker.log (notices and worse)\n{}\n", tail(interesting, 80));
            s += &format!("--- its echo_server.log\n{}\n", tail(node.server_out().lines().collect(), 20));
            s += &format!("--- its echo_server.err\n{}\n", tail(node.server_err().lines().collect(), 40));
        }
        let probes = self.prober.as_ref().map(|p| p.probes().clone()).unwrap_or_default();
        s += "--- the client's last probes\n";
        let start = probes.len().saturating_sub(20);
        for (t, r) in &probes[start..] {
            s += &format!("{:?} ago: {r:?}\n", t.elapsed());
        }
        s
    }

    /// Thaws the file system (a writer in it can then end).
    fn thaw(&mut self) {
        if self.frozen {
            let out = Command::new("fsfreeze").arg("-u").arg(&self.data).output();
            match out {
                Ok(o) if o.status.success() => self.frozen = false,
                o => eprintln!("pacemaker test: fsfreeze -u {:?}: {o:?}", self.data),
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.prober.take());
        // Thawed first: a process in uninterruptible sleep there could not
        // be killed.
        self.thaw();
        for node in &mut self.nodes {
            if matches!(node.init.try_wait(), Ok(None)) {
                let _ = node.init.kill();
            }
        }
        for ns in self.namespaces.iter().rev() {
            remove_netns(&self.ip, ns, "pacemaker test");
        }
        for node in &mut self.nodes {
            let _ = node.init.wait();
        }
        if self.mounted {
            match Command::new("umount").arg(&self.data).output() {
                Ok(o) if o.status.success() => {}
                o => eprintln!("pacemaker test: umount {:?}: {o:?}", self.data),
            }
        }
        if let Some(dev) = self.loop_dev.take() {
            match Command::new("losetup").args(["-d", &dev]).output() {
                Ok(o) if o.status.success() => {}
                o => eprintln!("pacemaker test: losetup -d {dev}: {o:?}"),
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// When a fault was acknowledged, on each clock the test compares with.
#[derive(Clone, Copy)]
struct Fault {
    at: Instant,
    monotonic_ms: f64,
    /// CLOCK_MONOTONIC when the fault was sent (the loop's last progress
    /// came after it).
    sent_ms: f64,
    wall: SystemTime,
}

/// Seconds since local midnight of `t` (Pacemaker's log times are local).
fn local_day_seconds(t: SystemTime) -> f64 {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: an all-zero tm is a valid value to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; localtime_r is thread-safe.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    f64::from(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) + f64::from(since.subsec_nanos()) / 1e9
}

/// The first line of Pacemaker's log `log` at or after `fault` for which
/// `matches` holds, as the time from the fault (the log's times have ms).
fn logged_after(log: &str, fault: &Fault, matches: impl Fn(&str) -> bool) -> Option<Duration> {
    let from = local_day_seconds(fault.wall);
    log.lines().filter(|l| matches(l)).find_map(|l| {
        // "Dec 08 00:42:20.178 host daemon [pid] (function) level: message"
        let clock = l.split_whitespace().nth(2)?;
        let mut parts = clock.split(':');
        let (h, m, s) = (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?);
        let mut at = h * 3600.0 + m * 60.0 + s.parse::<f64>().ok()?;
        if at < from - 43_200.0 {
            at += 86_400.0; // past midnight
        }
        // The log's times are truncated to the ms.
        (at >= from - 0.001).then(|| Duration::from_secs_f64((at - from).max(0.0)))
    })
}

/// The dump that node `n`'s service wrote to its stderr after `offset`
/// bytes, waited for until its last line.
fn dump_after(lab: &mut Lab, n: usize, offset: usize, bound: Duration) -> String {
    let until = Instant::now() + bound;
    loop {
        let text = lab.nodes[n].server_err();
        let new = text.get(offset..).unwrap_or("").to_string();
        if new.contains("failstop: dump written in ") {
            return new;
        }
        lab.check(Instant::now() < until, &format!("no complete dump on {} within {bound:?}:\n{new}", NODES[n].2));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The kinds of verdict lines (`failstop: KIND: thread ...`); a warning
/// (`failstop: warning: ...`) is none.
const VERDICTS: [&str; 5] = ["stuck", "blocked", "vanished", "polling", "stalled"];

/// The verdict line a fault must give.
fn verdict_prefix(kind: &str, pid: i32) -> String {
    // The echo server's loop runs on its main thread: the culprit's tid is the pid.
    match kind {
        "spin" => format!("failstop: stuck: thread \"echo-loop\" (tid {pid}) "),
        "vanish" => format!("failstop: vanished: thread \"echo-loop\" (tid {pid}) "),
        _ => format!("failstop: blocked: thread \"echo-loop\" (tid {pid}) "),
    }
}

/// Checks the dump's verdict line (the culprit, the process, the action)
/// and returns the dump's verdict time from the fault.
fn check_verdict(lab: &mut Lab, dump: &str, kind: &str, pid: i32, action: &str, fault: &Fault) -> Duration {
    // The verdict line (warnings may come before it: a spin is warned of
    // at 100 ms of CPU).
    let first =
        dump.lines().find(|l| VERDICTS.iter().any(|k| l.starts_with(&format!("failstop: {k}: ")))).unwrap_or_default();
    let first = first.to_string();
    let want = verdict_prefix(kind, pid);
    lab.check(first.starts_with(&want), &format!("FAULT {kind}: the verdict line {first:?}, expected {want:?}"));
    let ends = format!("; action: {action}");
    let named = common::without_process(&first);
    lab.check(named.ends_with(&ends), &format!("FAULT {kind}: {first:?} does not end with {ends:?}"));
    lab.check(
        common::process_of(&first) == Some((pid, "echo_server".to_string())),
        &format!("FAULT {kind}: {first:?} does not name the process {pid} \"echo_server\""),
    );
    let Some(at) = verdict_at(dump) else { lab.fail(&format!("no `verdict at CLOCK_MONOTONIC` in the dump:\n{dump}")) };
    let from = fault.monotonic_ms;
    lab.check(at >= from, &format!("FAULT {kind}: a verdict at {at} ms, before the fault at {from:.1} ms"));
    let verdict = Duration::from_secs_f64((at - from) / 1e3);
    if kind.starts_with("block") || kind.starts_with("write") {
        // Not within the stall budget of the loop's last progress, which
        // came after the fault was sent.
        let early = at - fault.sent_ms < STALL_BUDGET_MS as f64;
        let after = at - fault.sent_ms;
        lab.check(
            !early,
            &format!("FAULT {kind}: a verdict {after:.1} ms after the fault was sent, within the stall budget"),
        );
    }
    verdict
}

/// The parts of one takeover, each from the fault.
struct Takeover {
    case: String,
    verdict: Duration,
    detected: Duration,
    /// The stop's end on the failed node, or the fence's success.
    stopped: Duration,
    fenced: bool,
    started: Duration,
    address: Duration,
    served: Duration,
}

impl Takeover {
    fn print(&self, from: &str, to: &str) {
        let f = |d: Duration| format!("{:.0} ms", ms(d));
        let part = |a: Duration, b: Duration| format!("{:.0} ms", ms(b.saturating_sub(a)));
        let stop = if self.fenced { format!("{from} fenced") } else { format!("stopped on {from}") };
        figure!(
            "pacemaker: {}: served by {to} {:.0} ms after the fault; verdict at {}, monitor failed at {}, {stop} at {}, \
             started on {to} at {}, its address at {}: failstop {}, Pacemaker's detection {}, the {} {}, the start {}, \
             the client {}",
            self.case,
            ms(self.served),
            f(self.verdict),
            f(self.detected),
            f(self.stopped),
            f(self.started),
            f(self.address),
            f(self.verdict),
            part(self.verdict, self.detected),
            if self.fenced { "fence" } else { "stop" },
            part(self.detected, self.stopped),
            part(self.stopped, self.address),
            part(self.address, self.served),
        );
    }
}

/// Whether `l` is the failed monitor of the service on `node`.
fn monitor_failed(l: &str, node: &str) -> bool {
    let key = format!("Result of monitor operation for echo on {node}: ");
    l.find(&key).is_some_and(|i| {
        let result = &l[i + key.len()..];
        !result.starts_with("ok") && !result.starts_with("Cancelled")
    })
}

/// Whether `l` is the success of `op` for `rsc` on `node`.
fn op_ok(l: &str, op: &str, rsc: &str, node: &str) -> bool {
    l.contains(&format!("Result of {op} operation for {rsc} on {node}: ok"))
}

/// The takeover's parts from the two nodes' logs, waited for (the client
/// may be served a moment before the start's result is logged).
fn takeover_parts(
    lab: &mut Lab,
    case: &str,
    from: usize,
    fault: &Fault,
    fenced: bool,
) -> (Duration, Duration, Duration, Duration) {
    let (fname, tname) = (NODES[from].2, NODES[1 - from].2);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (flog, tlog) = (lab.nodes[from].log(), lab.nodes[1 - from].log());
        let detected = logged_after(&flog, fault, |l| monitor_failed(l, fname));
        let stopped = if fenced {
            let done = format!("Operation 'off' targeting {fname} by {tname} ");
            logged_after(&tlog, fault, |l| l.contains(&done) && l.contains(": OK"))
        } else {
            logged_after(&flog, fault, |l| op_ok(l, "stop", "echo", fname))
        };
        let started = logged_after(&tlog, fault, |l| op_ok(l, "start", "echo", tname));
        let address = logged_after(&tlog, fault, |l| op_ok(l, "start", "echo_ip", tname));
        if let (Some(d), Some(s), Some(st), Some(a)) = (detected, stopped, started, address) {
            return (d, s, st, a);
        }
        let got = format!(
            "monitor failed {detected:?}, stopped or fenced {stopped:?}, started {started:?}, address {address:?}"
        );
        lab.check(Instant::now() < until, &format!("{case}: the logs do not show the whole takeover: {got}"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fault on the node `h` that runs the service; waits until the client is
/// served by the other node; checks the verdict and returns the takeover.
fn takeover(lab: &mut Lab, h: usize, kind: &str, action: &str, case: &str) -> (Takeover, i32, Fault) {
    let o = 1 - h;
    // Each fault comes right after the cluster settled: a pause of 0 to 1 s
    // makes the monitor's phase (one run a second) a fair sample.
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos();
    std::thread::sleep(Duration::from_millis(u64::from(nanos % 1000)));
    let pid = lab.server_pid(h);
    let offset = lab.nodes[h].server_err().len();
    let fault = lab.fault(h, kind);
    if action == "unhealthy" {
        // The process stays (until Pacemaker's stop ends it, STOP_TIMEOUT
        // after its SIGTERM at the earliest), its heartbeat answering
        // HEALTHY until the verdict, then UNHEALTHY.
        loop {
            let beat = lab.heartbeat_of(h);
            if beat.as_deref() == Ok("UNHEALTHY\n") {
                break;
            }
            let ok = beat.as_deref() == Ok("HEALTHY\n") && fault.at.elapsed() < END_BOUND;
            lab.check(
                ok,
                &format!("{case}: {}'s heartbeat {beat:?} {:?} after the fault", NODES[h].2, fault.at.elapsed()),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let dump = dump_after(lab, h, offset, END_BOUND);
    let verdict = check_verdict(lab, &dump, kind.split_whitespace().next().unwrap_or(kind), pid, action, &fault);
    let bound = if case.contains("fenced") { FENCE_TAKEOVER_BOUND } else { TAKEOVER_BOUND };
    let served = lab.wait_served_by(o, fault.at, bound, case);
    let fenced = case.contains("fenced");
    let (detected, stopped, started, address) = takeover_parts(lab, case, h, &fault, fenced);
    let t = Takeover {
        case: case.to_string(),
        verdict,
        detected,
        stopped,
        fenced,
        started,
        address,
        served: served - fault.at,
    };
    // The order of things: the verdict, then the monitor's failure, the stop
    // (or the fence), the start on the other node, its address.
    let order = [t.verdict, t.detected, t.stopped, t.started, t.address];
    // The log's times are wall-clock ms, set against the fault on the
    // monotonic clock; the verdict's are finer. The two clocks, sampled a
    // moment apart, and the log's truncation can put a monitor failure that
    // follows the verdict by under a ms a few ms before it (seen: 2.1 ms).
    let ordered = order.windows(2).all(|w| w[0] <= w[1] + Duration::from_millis(10));
    lab.check(ordered, &format!("{case}: out of order: verdict, monitor failed, stop, start, address: {order:?}"));
    (t, pid, fault)
}

/// Waits until the process `pid` is gone (the node's subreaper reaped it).
fn wait_gone(lab: &mut Lab, pid: i32, what: &str) {
    let until = Instant::now() + END_BOUND;
    while Path::new(&format!("/proc/{pid}")).exists() {
        lab.check(Instant::now() < until, &format!("{what}: the old run {pid} still exists {END_BOUND:?} later"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter of process `pid` (`/proc/PID/stat`), if it exists.
fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

/// The states of the threads of `pid`.
fn thread_states(pid: i32) -> Vec<char> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()))
        .collect()
}

/// A node's first process: sets up the node's mount namespace, starts
/// corosync and Pacemaker in the foreground, and reaps every process left
/// to it, until it is killed.
fn node_main() -> ! {
    let dir = PathBuf::from(std::env::var(NODE_DIR_VAR).expect("the node's directory"));
    let lab = PathBuf::from(std::env::var(LAB_DIR_VAR).expect("the lab's directory"));
    let names = std::env::var(NETNS_VAR).expect("the nodes' namespaces");
    let sh = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(out.status.success(), "{args:?}: {:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    };
    let p = |p: &Path| p.to_str().expect("UTF-8 path").to_string();
    // Nothing of this node's mounts goes back to the machine's.
    sh(&["mount", "--make-rprivate", "/"]);
    // The nodes' namespaces under their node names, kept across the tmpfs
    // on /run.
    let netns = dir.join("netns");
    for pair in names.split_whitespace() {
        let (name, ns) = pair.split_once('=').expect("name=namespace");
        let at = netns.join(name);
        fs::write(&at, "").expect("mount point");
        sh(&["mount", "--bind", &format!("/run/netns/{ns}"), &p(&at)]);
    }
    sh(&["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"]);
    fs::create_dir("/run/netns").expect("mkdir /run/netns");
    sh(&["mount", "--rbind", &p(&netns), "/run/netns"]);
    for d in ["/var/lib/pacemaker", "/var/lib/corosync"] {
        sh(&["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d]);
    }
    sh(&["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm"]);
    for sub in ["cib", "pengine", "blackbox", "cores"] {
        let d = Path::new("/var/lib/pacemaker").join(sub);
        fs::create_dir(&d).expect("mkdir");
        sh(&["chown", "hacluster:haclient", &p(&d)]);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o750)).expect("chmod");
    }
    sh(&["mount", "--bind", &p(&dir.join("log")), "/var/log/pacemaker"]);
    let conf = Path::new(c::ROOT).join(COROSYNC_CONF);
    sh(&["mount", "--bind", &p(&conf), "/etc/corosync/corosync.conf"]);
    for (lower, over) in [("sbin", "/usr/sbin"), ("bin", "/usr/local/bin")] {
        let opts = format!("lowerdir={}:{over}", p(&lab.join(lower)));
        sh(&["mount", "-t", "overlay", "overlay", "-o", &opts, over]);
    }
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "PR_SET_CHILD_SUBREAPER: {}", std::io::Error::last_os_error());
    let log = |name: &str| fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"));
    let corosync_log = dir.join("corosync.log");
    let out = log("corosync.log");
    // Both are reaped by the loop below, with every orphan of the node.
    #[allow(clippy::zombie_processes)]
    Command::new("corosync")
        .arg("-f")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn corosync");
    let until = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&corosync_log).unwrap_or_default().contains("ready to provide service") {
        assert!(Instant::now() < until, "corosync not ready within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = log("pacemakerd.log");
    #[allow(clippy::zombie_processes)]
    Command::new("pacemakerd")
        .arg("-f")
        // Its log only in /var/log/pacemaker/pacemaker.log: no syslog here.
        .env("PCMK_logfacility", "none")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn pacemakerd");
    println!("node: corosync and pacemakerd started");
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn pacemaker_moves_the_service_and_fences_the_node_that_cannot_stop_it() {
    if common::scenario().as_deref() == Some(NODE_SCENARIO) {
        node_main();
    }
    let mut lab = Lab::new();
    let start = Instant::now();
    lab.start_prober();
    lab.start_node(0);
    lab.start_node(1);
    let online = lab.wait_online(start);
    figure!("pacemaker: both nodes online with a DC {:.0} ms after corosync started", ms(online - start));

    // What Pacemaker's fencer needs of an agent: found in its directory,
    // with metadata.
    let installed = lab.on_node_ok(0, &["stonith_admin", "--list-installed"]);
    lab.check(installed.lines().any(|l| l.trim() == "fence_netns"), &format!("fence_netns not listed: {installed}"));
    let meta = lab.on_node_ok(0, &["stonith_admin", "--metadata", "--agent", "fence_netns"]);
    lab.check(meta.contains("<resource-agent name=\"fence_netns\""), &format!("fence_netns's metadata: {meta}"));

    // The configuration, as docs/failover.md shows it.
    let cib = Path::new(c::ROOT).join(CIB);
    lab.on_node_ok(0, &["sh", cib.to_str().expect("UTF-8 path")]);
    let loaded = Instant::now();
    let mut h = lab.settle("the configuration loaded");
    figure!(
        "pacemaker: the client served by {} {:.0} ms after cib.sh",
        NODES[h].2,
        ms(lab.served_by(h, loaded).map_or(Duration::ZERO, |t| t - loaded))
    );
    let options = lab.on_node_ok(0, &["crm_resource", "--resource", "echo", "--get-parameter", "cmdline_options"]);
    let options = options.trim().to_string();
    lab.check(options.contains("/usr/local/bin/echo_server"), &format!("cmdline_options: {options:?}"));
    let beat = lab.heartbeat_of(1 - h);
    lab.check(beat.is_err(), &format!("the service runs on both nodes: {}'s heartbeat {beat:?}", NODES[1 - h].2));

    for kind in ["spin", "block", "vanish"] {
        let (t, pid, _) = takeover(&mut lab, h, kind, "abort", kind);
        t.print(NODES[h].2, NODES[1 - h].2);
        wait_gone(&mut lab, pid, kind);
        h = lab.cleanup(&format!("the cleanup after {kind}"));
    }

    // The unhealthy action: the process stays, its heartbeat says so, and
    // the service moves (Pacemaker's stop ends the process: SIGTERM, which
    // the hung loop never takes, then SIGKILL after stop_timeout).
    let unhealthy = format!("FAILSTOP_ACTION=unhealthy {options}");
    h = lab.set_options(&unhealthy, "FAILSTOP_ACTION=unhealthy set");
    let (t, pid, _) = takeover(&mut lab, h, "block", "unhealthy", "block, action unhealthy");
    let stop_took = t.stopped.saturating_sub(t.detected);
    lab.check(
        stop_took >= STOP_TIMEOUT,
        &format!("the unhealthy action: the stop took {stop_took:?}, less than the SIGTERM's {STOP_TIMEOUT:?}"),
    );
    t.print(NODES[h].2, NODES[1 - h].2);
    wait_gone(&mut lab, pid, "the unhealthy action");
    lab.set_options(&options, "the options restored");
    h = lab.cleanup("the cleanup after the unhealthy action");

    // Slow but living work: 6 s on the loop; the heartbeat answers HEALTHY
    // throughout, and nothing moves.
    let pid = lab.server_pid(h);
    let offset = lab.nodes[h].server_err().len();
    let fault = lab.fault(h, "slow");
    let until = fault.at + SLOW_BOUND;
    while !lab.nodes[h].server_out().contains("echo_server: FAULT slow: done") {
        lab.check(Instant::now() < until, &format!("FAULT slow: not done within {SLOW_BOUND:?}"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = fault.at.elapsed();
    lab.check(done >= Duration::from_secs(5), &format!("FAULT slow: done after {done:?}, expected 6 s"));
    let again = lab.wait_served_by(h, fault.at + done, TAKEOVER_BOUND, "after the slow work");
    std::thread::sleep(Duration::from_secs(2));
    let moved = lab.served_by(1 - h, fault.at);
    lab.check(
        moved.is_none(),
        &format!("FAULT slow: the other node served {:?} after the fault", moved.map(|t| t - fault.at)),
    );
    let pid_now = lab.server_pid(h);
    lab.check(pid_now == pid, &format!("FAULT slow: the service was restarted ({pid} is now {pid_now})"));
    let failed = logged_after(&lab.nodes[h].log(), &fault, |l| monitor_failed(l, NODES[h].2));
    lab.check(failed.is_none(), &format!("FAULT slow: a failed monitor {failed:?} after the fault"));
    let err = lab.nodes[h].server_err();
    let new = err.get(offset..).unwrap_or("");
    let verdict = new.lines().find(|l| VERDICTS.iter().any(|k| l.starts_with(&format!("failstop: {k}: "))));
    lab.check(verdict.is_none(), &format!("FAULT slow: a verdict: {verdict:?}"));
    figure!(
        "pacemaker: slow: 6 s of slow work done {:.0} ms after the fault, {} serving again {:.0} ms later, the other node never",
        ms(done),
        NODES[h].2,
        ms(again.saturating_duration_since(fault.at + done))
    );

    // The control: the same block without failstop keeps the service on
    // the hung node.
    let disabled = format!("FAILSTOP_DISABLE=1 {options}");
    h = lab.set_options(&disabled, "FAILSTOP_DISABLE=1 set");
    let fault = lab.fault(h, "block");
    std::thread::sleep(CONTROL_WINDOW);
    let moved = lab.served_by(1 - h, fault.at);
    lab.check(
        moved.is_none(),
        &format!("the control: the other node served {:?} after the fault", moved.map(|t| t - fault.at)),
    );
    let beat = lab.heartbeat_of(h);
    lab.check(beat.as_deref() == Ok("HEALTHY\n"), &format!("the control: {}'s heartbeat {beat:?}", NODES[h].2));
    let answered =
        lab.prober().probes().iter().filter(|(t, r)| *t > fault.at + Duration::from_secs(1) && r.is_ok()).count();
    lab.check(answered == 0, &format!("the control: the hung node answered {answered} probes"));
    let failed = logged_after(&lab.nodes[h].log(), &fault, |l| monitor_failed(l, NODES[h].2));
    lab.check(failed.is_none(), &format!("the control: a failed monitor {failed:?} after the fault"));
    figure!(
        "pacemaker: control (FAILSTOP_DISABLE=1, FAULT block): the service stayed on the hung {} for {:.0} s; its \
         heartbeat still answers HEALTHY",
        NODES[h].2,
        CONTROL_WINDOW.as_secs_f64()
    );
    // Back to failstop: the restart's stop ends the hung run (SIGKILL).
    h = lab.set_options(&options, "the options restored after the control");

    // The process that cannot die: a write into a frozen file system.
    let data = lab.data.to_str().expect("UTF-8 path").to_string();
    lab.run(Path::new("fsfreeze"), &["-f", &data]);
    lab.frozen = true;
    let file = format!("{data}/written-by-echo-server");
    let case = "write into a frozen file system, fenced";
    let (t, pid, fault) = takeover(&mut lab, h, &format!("write {file}"), "abort", case);
    t.print(NODES[h].2, NODES[1 - h].2);
    let err = lab.nodes[h].server_err();
    let verdict = err.lines().rfind(|l| l.starts_with("failstop: blocked: ")).unwrap_or_default().to_string();
    // failstop says what the cluster manager must do.
    lab.check(
        verdict.contains("cannot be killed until the system call returns") && verdict.contains("fence the node"),
        &format!("the frozen write: the verdict line does not say to fence the node: {verdict:?}"),
    );
    // Pacemaker's stop could not end it either: it timed out, before the fence.
    let timed_out = logged_after(&lab.nodes[h].log(), &fault, |l| {
        l.contains(&format!("Result of stop operation for echo on {}: Timed Out", NODES[h].2))
    });
    lab.check(
        timed_out.is_some_and(|d| d >= t.detected && d <= t.stopped),
        &format!(
            "the frozen write: the stop's time-out {timed_out:?}, expected between {:?} and {:?}",
            t.detected, t.stopped
        ),
    );
    // The process could not end: it is still there, its writer in D.
    let states = thread_states(pid);
    lab.check(states.contains(&'D'), &format!("the frozen write: {pid}'s threads are in states {states:?}, none in D"));
    // The fence: the node's links are down, corosync and Pacemaker ended.
    let ns = lab.nodes[h].ns.clone();
    let ip = lab.ip.clone();
    let link = lab.run(&ip, &["-n", &ns, "-o", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    lab.check(!link.contains("state UP"), &format!("the fenced node's link: {link}"));
    let init = lab.nodes[h].init.try_wait();
    lab.check(
        matches!(init, Ok(Some(st)) if st.signal() == Some(libc::SIGKILL)),
        &format!("the fenced node's first process: {init:?}, not killed"),
    );
    // The fence's parts: the stop's time-out, the agent's `off`, the fence
    // confirmed (once the node left corosync's membership).
    let o = NODES[1 - h].2;
    let agent = format!("targeting {} using fence_nodes returned 0", NODES[h].2);
    let agent_done =
        logged_after(&lab.nodes[1 - h].log(), &fault, |l| l.contains("Operation 'off' [") && l.contains(&agent));
    let left = logged_after(&lab.nodes[1 - h].log(), &fault, |l| {
        l.contains("pacemaker-fenced") && l.contains(&format!("Node {} state is now lost", NODES[h].2))
    });
    let f = |d: Option<Duration>| d.map_or("?".to_string(), |d| format!("{:.0} ms", ms(d)));
    figure!(
        "pacemaker: the fence's parts, from the fault: the stop timed out at {}, {o}'s fence_netns off returned at {}, \
         {} left the membership at {}, the fence confirmed at {:.0} ms",
        f(timed_out),
        f(agent_done),
        NODES[h].2,
        f(left),
        ms(t.stopped)
    );
    lab.check(agent_done.is_some(), &format!("no `{agent}` in {o}'s log"));
    // Thawed, the write returns and the process ends.
    lab.thaw();
    let until = Instant::now() + END_BOUND;
    while matches!(proc_state(pid), Some(s) if s != 'Z') {
        lab.check(Instant::now() < until, &format!("the thawed process {pid} still runs {END_BOUND:?} later"));
        std::thread::sleep(Duration::from_millis(20));
    }
    figure!(
        "pacemaker: the fenced node's verdict line: {}",
        verdict.split_once("; it ").map_or("(no uninterruptible sleep noted)", |(_, r)| r)
    );
    figure!("pacemaker: the whole test took {:.0} s", start.elapsed().as_secs_f64());
}

/// docs/failover.md's "Under Pacemaker" shows the files the test above loads, as
/// they are in the repository.
#[test]
fn readme_shows_the_pacemaker_files_the_test_loads() {
    for file in [COROSYNC_CONF, CIB, HOOK, FENCE_AGENT] {
        common::assert_readme_shows_file(file);
    }
}
