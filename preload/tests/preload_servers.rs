//! Event-loop servers we did not change, under `libfailstop_preload.so`:
//! real traffic with their own client tools, a spin and a block made with
//! their own commands, and sustained load that must not give a verdict.
//!
//! Each server is a [`Server`]: how to start it on a port, drive load, make
//! its loop spin and make it block. Two are here: Debian's redis-server, and
//! our C echo server of `examples/c/` built without any failstop call
//! (`-DECHO_NO_FAILSTOP`). To add one, implement the trait and add three
//! one-line tests at the end of this file.

use failstop_test_support as common;

use common::preload::{free_port, preload_lib, verdict_line, verdict_ms};
use common::{Running, Spec};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The budgets of these runs: small, so that a fault is caught quickly, and
/// so that the no-verdict test under load means something.
const CPU_BUDGET_MS: u64 = 500;
const STALL_BUDGET_MS: u64 = 3000;
/// Generous bounds on a two-core machine shared with other builds.
const SPIN_CATCH_BOUND: Duration = Duration::from_secs(20);
const BLOCK_CATCH_BOUND: Duration = Duration::from_secs(25);

/// A server under test.
trait Server {
    /// For messages.
    fn name(&self) -> &'static str;
    /// The command that runs the server in the foreground on `port`.
    fn command(&self, port: u16) -> (PathBuf, Vec<String>);
    /// The `comm` of the thread that runs the event loop.
    fn loop_thread(&self) -> &'static str;
    /// Whether the server answers on `port`.
    fn ready(&self, port: u16) -> bool;
    /// Drives load for about `wall` with the server's own tool; returns a
    /// line that says how much work was done (for the failure messages).
    fn load(&self, port: u16, wall: Duration) -> String;
    /// Makes the event loop spin; returns the client that sent the request
    /// (its reply never comes).
    fn spin(&self, port: u16) -> Child;
    /// Makes the event loop block outside its wait; returns the client.
    fn block(&self, port: u16) -> Child;
    /// Asks the server (process `pid`) to exit cleanly.
    fn shutdown(&self, port: u16, pid: i32);
}

// ---------------------------------------------------------------------------
// redis-server (Debian's redis-server / redis-tools)
// ---------------------------------------------------------------------------

/// Debian's redis-server 7.0. Relied on:
/// - the event loop is the main thread (`comm` "redis-server"), waiting in
///   `epoll_wait` (ae_epoll.c); the bio threads wait on condition variables
///   and never in an interposed call;
/// - `EVAL "while true do end" 0` runs Lua on the main thread; until
///   `busy-reply-threshold` (the old `lua-time-limit`) has passed, the Lua
///   hook does not process events, so the loop really spins without waiting;
///   the threshold is set far above the CPU budget;
/// - `DEBUG SLEEP 60` calls nanosleep on the main thread (needs
///   `enable-debug-command yes` since 7.0);
/// - redis' crash handler catches SIGABRT, writes its bug report and raises
///   SIGABRT again. Its crash-time memory test is turned off: on this kernel
///   it faults on a special mapping and turns the end into SIGSEGV (it does
///   so without the preload too, after a plain `kill -ABRT`).
struct Redis;

const REDIS_INSTALL: &str = "apt-get install -y redis-server redis-tools (scripts/test.sh installs them)";

fn tool(name: &str) -> PathBuf {
    let p = PathBuf::from("/usr/bin").join(name);
    assert!(p.exists(), "{p:?} not found: {REDIS_INSTALL}");
    p
}

fn redis_cli(port: u16, args: &[&str]) -> std::process::Output {
    Command::new(tool("redis-cli")).args(["-p", &port.to_string()]).args(args).output().expect("run redis-cli")
}

/// A request whose reply may never come: the client runs on its own.
fn redis_cli_in_background(port: u16, args: &[&str]) -> Child {
    Command::new(tool("redis-cli"))
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run redis-cli")
}

impl Server for Redis {
    fn name(&self) -> &'static str {
        "redis-server"
    }

    fn command(&self, port: u16) -> (PathBuf, Vec<String>) {
        let args = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--enable-debug-command",
            "yes",
            "--busy-reply-threshold",
            "600000",
            "--crash-memcheck-enabled",
            "no",
        ]
        .map(str::to_string)
        .to_vec();
        (tool("redis-server"), args)
    }

    fn loop_thread(&self) -> &'static str {
        "redis-server"
    }

    fn ready(&self, port: u16) -> bool {
        redis_cli(port, &["ping"]).stdout.starts_with(b"PONG")
    }

    fn load(&self, port: u16, wall: Duration) -> String {
        // redis-benchmark has no duration option: run rounds until `wall`.
        let until = Instant::now() + wall;
        let mut rounds = Vec::new();
        while Instant::now() < until {
            let out = Command::new(tool("redis-benchmark"))
                .args(["-p", &port.to_string(), "-q", "-n", "50000", "-c", "20", "-t", "set,get,lpush,lpop", "--csv"])
                .output()
                .expect("run redis-benchmark");
            assert!(out.status.success(), "redis-benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
            rounds.push(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .skip(1)
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        format!("{} rounds: {}", rounds.len(), rounds.join(" | "))
    }

    fn spin(&self, port: u16) -> Child {
        redis_cli_in_background(port, &["eval", "while true do end", "0"])
    }

    fn block(&self, port: u16) -> Child {
        redis_cli_in_background(port, &["debug", "sleep", "60"])
    }

    fn shutdown(&self, port: u16, _pid: i32) {
        // The connection closes without a reply when the server exits.
        let _ = redis_cli(port, &["shutdown", "nosave"]);
    }
}

// ---------------------------------------------------------------------------
// The C echo server of examples/c/, built without failstop
// ---------------------------------------------------------------------------

/// `examples/c/echo_server.c` built with `-DECHO_NO_FAILSTOP`: no failstop
/// call, no header, no library; the preload alone watches it. Its loop is the
/// main thread (`comm` "echo_server"), waiting in `epoll_pwait`. With
/// `--allow-faults`, the line `FAULT spin` makes the loop spin and
/// `FAULT block` makes it block in a `read` that never returns.
struct Echo {
    program: PathBuf,
}

impl Echo {
    /// Builds the plain server once per test binary run.
    fn new() -> Echo {
        static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let program = BUILT
            .get_or_init(|| {
                let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
                let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plain").join("echo_server");
                std::fs::create_dir_all(out.parent().unwrap()).expect("mkdir");
                let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
                let o = Command::new(&cc)
                    .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-O2", "-DECHO_NO_FAILSTOP"])
                    .arg(root.join("examples/c/echo_server.c"))
                    .arg("-o")
                    .arg(&out)
                    .output()
                    .unwrap_or_else(|e| panic!("run {cc}: {e} (a C compiler is needed; set CC)"));
                assert!(
                    o.status.success(),
                    "building the plain echo server failed:\n{}",
                    String::from_utf8_lossy(&o.stderr)
                );
                out
            })
            .clone();
        Echo { program }
    }

    /// A client that sends `line` and then waits for replies that may never
    /// come (bash's /dev/tcp: a separate process, as for redis-cli).
    fn send_in_background(port: u16, line: &str) -> Child {
        Command::new("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}; printf '%s\\n' '{line}' >&3; cat <&3")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run bash")
    }
}

/// One line sent, its reply read.
fn echo_round_trip(stream: &mut std::io::BufReader<std::net::TcpStream>, line: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    stream.get_mut().write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_line(&mut reply)?;
    Ok(reply)
}

impl Server for Echo {
    fn name(&self) -> &'static str {
        "echo_server"
    }

    fn command(&self, port: u16) -> (PathBuf, Vec<String>) {
        (self.program.clone(), vec!["--allow-faults".into(), port.to_string()])
    }

    fn loop_thread(&self) -> &'static str {
        "echo_server"
    }

    fn ready(&self, port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|s| echo_round_trip(&mut std::io::BufReader::new(s), "HEALTH"))
            .is_ok_and(|r| r == "HEALTHY\n")
    }

    fn load(&self, port: u16, wall: Duration) -> String {
        // 8 clients doing verified round trips until `wall`.
        let until = Instant::now() + wall;
        let clients: Vec<_> = (0..8)
            .map(|c| {
                std::thread::spawn(move || {
                    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    let mut s = std::io::BufReader::new(s);
                    let mut n = 0u64;
                    while Instant::now() < until {
                        let line = format!("client {c} line {n}");
                        let reply = echo_round_trip(&mut s, &line).expect("round trip");
                        assert_eq!(reply.trim_end(), line, "echo");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let total: u64 = clients.into_iter().map(|c| c.join().expect("client")).sum();
        format!("{total} verified round trips by 8 clients")
    }

    fn spin(&self, port: u16) -> Child {
        Echo::send_in_background(port, "FAULT spin")
    }

    fn block(&self, port: u16) -> Child {
        Echo::send_in_background(port, "FAULT block")
    }

    fn shutdown(&self, _port: u16, pid: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

// ---------------------------------------------------------------------------
// The scenarios, for any server
// ---------------------------------------------------------------------------

/// Starts `server` under the preload with the small budgets; returns when
/// it answers.
fn start(server: &dyn Server, dump: &std::path::Path) -> (Running, u16) {
    let port = free_port();
    let (program, args) = server.command(port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lib = preload_lib();
    let mut r = Spec::program(program, &args)
        .env("LD_PRELOAD", lib.to_str().unwrap())
        .env("FAILSTOP_CPU_BUDGET_MS", &CPU_BUDGET_MS.to_string())
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_STALL_BUDGET_MS", &STALL_BUDGET_MS.to_string())
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
        .env("FAILSTOP_DUMP_PATH", dump.to_str().unwrap())
        .timeout(Duration::from_secs(120))
        .spawn();
    let until = Instant::now() + Duration::from_secs(20);
    while !server.ready(port) {
        if let Ok(Some(st)) = r.child.try_wait() {
            panic!("{} ended ({st:?}) before answering", server.name());
        }
        assert!(Instant::now() < until, "{} did not answer within 20 s", server.name());
        std::thread::sleep(Duration::from_millis(50));
    }
    (r, port)
}

/// Traffic, then `fault`; asserts SIGABRT and a dump that names the loop
/// thread with verdict `kind`. Returns the time from the fault to the end.
fn caught(server: &dyn Server, fault: fn(&dyn Server, u16) -> Child, kind: &str, bound: Duration) -> Duration {
    let dump = common::temp_path(&format!("preload-{}-{kind}", server.name()));
    let (r, port) = start(server, &dump);
    let work = server.load(port, Duration::from_secs(2));
    let pid = r.pid();
    let t = Instant::now();
    let mut client = fault(server, port);
    let o = r.finish();
    let _ = client.kill();
    let _ = client.wait();
    let took = o.ended.saturating_duration_since(t);
    let text = std::fs::read_to_string(&dump).unwrap_or_default();
    let _ = std::fs::remove_file(&dump);
    let context = format!("load before the fault: {work}\n{}\n--- dump file\n{text}", o.describe());
    o.assert_signal(libc::SIGABRT);
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict on stderr\n{context}"));
    assert_eq!(v.kind, kind, "{context}");
    assert_eq!(v.name, server.loop_thread(), "{context}");
    assert_eq!(v.tid, pid, "the loop runs on the main thread\n{context}");
    let figure = verdict_ms(&v);
    let budget = if kind == "stuck" { CPU_BUDGET_MS } else { STALL_BUDGET_MS } as f64;
    assert!(
        figure >= budget * 0.85 && figure < budget * 4.0,
        "verdict figure {figure} ms for budget {budget}\n{context}"
    );
    assert_eq!(verdict_line(&text).as_ref(), Some(&v), "the dump file has the same verdict\n{context}");
    assert!(text.contains("failstop: dump written in "), "{context}");
    assert!(took < bound, "{} took {took:?} to end after the {kind} fault (bound {bound:?})\n{context}", server.name());
    eprintln!("{}: {kind} fault to SIGABRT in {took:?} (verdict figure {figure} ms)", server.name());
    took
}

fn quiet_under_load(server: &dyn Server) {
    let dump = common::temp_path(&format!("preload-{}-load", server.name()));
    let (r, port) = start(server, &dump);
    let work = server.load(port, Duration::from_secs(10));
    let alive = server.ready(port);
    server.shutdown(port, r.pid());
    let o = r.finish();
    let context = format!("load: {work}\n{}", o.describe());
    assert!(alive, "{} stopped answering under load\n{context}", server.name());
    o.assert_no_verdict();
    assert!(!std::fs::exists(&dump).unwrap_or(false), "a dump file was written\n{context}");
    o.assert_exit(0);
    assert!(!o.stderr.contains("failstop"), "failstop said something\n{context}");
}

fn spin(s: &dyn Server, port: u16) -> Child {
    s.spin(port)
}

fn block(s: &dyn Server, port: u16) -> Child {
    s.block(port)
}

#[test]
fn redis_spin_is_caught() {
    caught(&Redis, spin, "stuck", SPIN_CATCH_BOUND);
}

#[test]
fn redis_block_is_caught() {
    caught(&Redis, block, "blocked", BLOCK_CATCH_BOUND);
}

#[test]
fn redis_under_load_gets_no_verdict() {
    quiet_under_load(&Redis);
}

#[test]
fn echo_server_spin_is_caught() {
    caught(&Echo::new(), spin, "stuck", SPIN_CATCH_BOUND);
}

#[test]
fn echo_server_block_is_caught() {
    caught(&Echo::new(), block, "blocked", BLOCK_CATCH_BOUND);
}

#[test]
fn echo_server_under_load_gets_no_verdict() {
    quiet_under_load(&Echo::new());
}
