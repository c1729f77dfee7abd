//! The C epoll echo server of `examples/c/echo_server.c`, built with
//! `-Wall -Wextra -Werror` against this run's `libfailstop.a` (and once
//! without failstop, `-DECHO_NO_FAILSTOP`), driven by real TCP clients:
//! a client's `FAULT spin` / `FAULT block` ends it with SIGABRT and a
//! `stuck` / `blocked` dump naming the loop thread; under load from many
//! clients it gives no verdict, stays healthy and stops cleanly on SIGTERM.

use failstop_test_support as common;

use common::{Dump, Running, Spec, c};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SOURCE: &str = "examples/c/echo_server.c";
/// The stall budget of the blocked case and of the load test.
const STALL_BUDGET_MS: u64 = 1000;
/// How long the load test hammers the server.
const LOAD_FOR: Duration = Duration::from_secs(4);
const LOAD_CLIENTS: usize = 8;
/// A reply slower than this means the server is stuck (the test fails).
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// The server, with failstop (linked statically) or without (`plain`).
fn server_path(plain: bool) -> &'static Path {
    static WITH: OnceLock<PathBuf> = OnceLock::new();
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if plain {
        PLAIN.get_or_init(|| {
            // No header, no library: the plain build must not need failstop at all.
            let out = tmp.join(format!("echo_server_plain-{}", std::process::id()));
            let mut args: Vec<String> = c::STRICT.iter().map(|s| s.to_string()).collect();
            args.extend(["-O2".into(), "-DECHO_NO_FAILSTOP".into(), format!("{}/{SOURCE}", c::ROOT)]);
            args.extend(["-o".into(), out.display().to_string()]);
            c::compile(&args);
            out
        })
    } else {
        WITH.get_or_init(|| c::build_static(SOURCE, &tmp.join(format!("echo_server-{}", std::process::id())), &["-O2"]))
    }
}

struct Server {
    running: Running,
    port: u16,
}

/// Starts the server on a free port with small budgets (and `env` on top).
fn start(plain: bool, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut all: Vec<&str> = args.to_vec();
    all.push("0");
    let mut spec = Spec::program(server_path(plain).to_path_buf(), &all)
        .env("FAILSTOP_CPU_BUDGET_MS", &common::BUDGET.as_millis().to_string())
        .env("FAILSTOP_WARN_MS", &common::WARN.as_millis().to_string())
        .env("FAILSTOP_STALL_BUDGET_MS", &STALL_BUDGET_MS.to_string())
        .env("FAILSTOP_DUMP_TIMEOUT_MS", &common::DUMP_TIMEOUT.as_millis().to_string());
    for (k, v) in env {
        spec = spec.env(k, v);
    }
    let mut running = spec.spawn();
    let (_, line) = running.wait_for_line("echo_server: listening on 127.0.0.1:", Duration::from_secs(30));
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Server { running, port }
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
    fn ask(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\n").as_bytes()).unwrap_or_else(|e| panic!("send {line:?}: {e}"));
        let mut reply = String::new();
        let n = self.reader.read_line(&mut reply).unwrap_or_else(|e| panic!("reply to {line:?}: {e}"));
        assert!(n > 0 && reply.ends_with('\n'), "connection closed before the reply to {line:?} (got {reply:?})");
        reply.pop();
        reply
    }
}

/// Echoes, HEALTH, then `FAULT <kind>`; returns the outcome and the time
/// from the fault's acknowledgement to the process's end.
fn run_fault(kind: &str) -> (common::Outcome, Duration) {
    let server = start(false, &["--allow-faults"], &[]);
    let mut client = Client::connect(server.port);
    assert_eq!(client.ask("hello"), "hello");
    assert_eq!(client.ask("HEALTH"), "HEALTHY");
    assert_eq!(client.ask(&format!("FAULT {kind}")), format!("FAULT {kind}: the loop {kind}s now"));
    let fault = Instant::now();
    let o = server.running.finish();
    let took = o.ended.saturating_duration_since(fault);
    eprintln!("c_echo_server: FAULT {kind}: the process ended {:.0} ms after the fault", took.as_secs_f64() * 1e3);
    o.assert_signal(libc::SIGABRT);
    assert!(took < common::CATCH_BOUND, "FAULT {kind}: ended {took:?} after the fault\n{}", o.describe());
    (o, took)
}

/// The server's pid: its loop runs on the main thread, so it is the loop's tid.
fn loop_tid(o: &common::Outcome) -> i32 {
    let line = o
        .stderr
        .lines()
        .find(|l| l.starts_with("failstop: pid "))
        .unwrap_or_else(|| panic!("no `failstop: pid` line\n{}", o.describe()));
    line["failstop: pid ".len()..].split(',').next().and_then(|p| p.parse().ok()).expect("pid")
}

#[test]
fn fault_spin_ends_the_server_with_a_stuck_dump() {
    let (o, _) = run_fault("spin");
    let tid = loop_tid(&o);
    Dump::parse(&o.stderr).assert_stuck("echo-loop", tid, "abort", "fault_spin");
}

#[test]
fn fault_block_ends_the_server_with_a_blocked_dump() {
    let (o, took) = run_fault("block");
    let tid = loop_tid(&o);
    let verdict = o
        .stderr
        .lines()
        .find(|l| l.starts_with("failstop: stuck:") || l.starts_with("failstop: blocked:"))
        .unwrap_or_else(|| panic!("no verdict line\n{}", o.describe()));
    assert!(verdict.starts_with(&format!("failstop: blocked: thread \"echo-loop\" (tid {tid}) ")), "{}", o.describe());
    assert!(verdict.contains(&format!("(stall_budget {STALL_BUDGET_MS} ms); action: abort")), "{}", o.describe());
    // Never before the stall budget.
    assert!(took >= Duration::from_millis(STALL_BUDGET_MS), "blocked verdict after {took:?}\n{}", o.describe());
    // The culprit, first, sleeping in the read() that never returns.
    let culprit = format!("> thread {tid} \"echo-loop\" state ");
    let at = o.stderr.find(&culprit).unwrap_or_else(|| panic!("no culprit line\n{}", o.describe()));
    let block: Vec<&str> = o.stderr[at..].lines().take(4).collect();
    assert!(block.iter().any(|l| l.trim_start().starts_with("syscall: read (nr ")), "{}", o.describe());
    assert!(o.stderr.contains("failstop: dump written in "), "{}", o.describe());
}

/// One load client: round trips with verified echoes (and a HEALTH every
/// 100) until `until`, reconnecting every 500; returns the round trips.
fn hammer(port: u16, id: usize, until: Instant) -> u64 {
    let mut client = Client::connect(port);
    let mut done = 0u64;
    while Instant::now() < until {
        if done % 100 == 99 {
            assert_eq!(client.ask("HEALTH"), "HEALTHY", "client {id} after {done} round trips");
        } else {
            let line = format!("client {id} request {done} {}", "x".repeat((done as usize * 7) % 300));
            let reply = client.ask(&line);
            assert_eq!(reply, line, "client {id}: wrong echo after {done} round trips");
        }
        done += 1;
        if done.is_multiple_of(500) {
            client = Client::connect(port);
        }
    }
    done
}

#[test]
fn under_load_no_verdict_then_sigterm_stops_it_cleanly() {
    let server = start(false, &[], &[]);
    let port = server.port;
    // Without --allow-faults a fault request is refused and changes nothing.
    let mut probe = Client::connect(port);
    assert_eq!(probe.ask("FAULT spin"), "ERR faults are disabled (start the server with --allow-faults)");
    assert_eq!(probe.ask("FAULT block"), "ERR faults are disabled (start the server with --allow-faults)");

    let until = Instant::now() + LOAD_FOR;
    let clients: Vec<_> = (0..LOAD_CLIENTS).map(|id| std::thread::spawn(move || hammer(port, id, until))).collect();
    let total: u64 = clients.into_iter().map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).sum();
    eprintln!(
        "c_echo_server: load: {total} verified round trips by {LOAD_CLIENTS} clients in {LOAD_FOR:?} ({:.0}/s), no verdict",
        total as f64 / LOAD_FOR.as_secs_f64()
    );
    assert!(total >= 2000, "only {total} round trips in {LOAD_FOR:?}");
    assert_eq!(probe.ask("HEALTH"), "HEALTHY");

    let pid = server.running.pid();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let o = server.running.finish();
    o.assert_exit(0);
    o.assert_no_verdict();
    let stopped = o
        .lines
        .iter()
        .find_map(|(_, l)| l.strip_prefix("echo_server: stopped by SIGTERM after "))
        .unwrap_or_else(|| panic!("no `stopped` line\n{}", o.describe()));
    let requests: u64 = stopped.split(' ').next().and_then(|n| n.parse().ok()).expect("request count");
    // The clients' round trips, the probe's 3 requests.
    assert_eq!(requests, total + 3, "{}", o.describe());
}

#[test]
fn plain_build_without_failstop_echoes_and_stops() {
    let server = start(true, &[], &[]);
    let mut client = Client::connect(server.port);
    assert_eq!(client.ask("hello, plain"), "hello, plain");
    assert_eq!(client.ask("HEALTH"), "HEALTHY");
    assert_eq!(client.ask("FAULT spin"), "ERR faults are disabled (start the server with --allow-faults)");
    assert_eq!(client.ask("FAULT nonsense"), "ERR faults are disabled (start the server with --allow-faults)");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(server.running.pid(), libc::SIGINT) }, 0);
    let o = server.running.finish();
    o.assert_exit(0);
    assert!(
        o.stdout().contains("echo_server: stopped by SIGINT after 4 requests on 1 connections"),
        "{}",
        o.describe()
    );
    assert!(o.stderr.is_empty(), "{}", o.describe());
}

#[test]
fn bad_command_lines_are_refused() {
    let cases: &[(&[&str], &str)] = &[
        (&["70000"], "echo_server: invalid port '70000': expected a number from 0 to 65535"),
        (&["12ab"], "echo_server: invalid port '12ab'"),
        (&[], "echo_server: missing PORT"),
        (&["--allow-faults"], "echo_server: missing PORT"),
        (&["--frob", "0"], "echo_server: unexpected argument '--frob'"),
        (&["0", "1"], "echo_server: unexpected argument '1'"),
        (&["--bind", "1.2.3", "0"], "echo_server: invalid --bind '1.2.3': expected an IPv4 address such as 0.0.0.0"),
        (&["--bind"], "echo_server: --bind needs a value"),
        (&["--heartbeat", "x", "0"], "echo_server: invalid --heartbeat 'x': expected a port from 0 to 65535"),
        (
            &["--name", "a b", "0"],
            "echo_server: invalid --name 'a b': expected 1 to 64 letters, digits, '-', '_' or '.'",
        ),
        (&["--name", "", "0"], "echo_server: invalid --name ''"),
    ];
    for (args, message) in cases {
        let o = Spec::program(server_path(false).to_path_buf(), args).run();
        o.assert_exit(2);
        assert!(o.stderr.contains(message), "{args:?}: expected {message:?}\n{}", o.describe());
    }
}

#[test]
fn unknown_fault_and_long_lines_get_an_error_reply() {
    let server = start(false, &["--allow-faults"], &[]);
    let mut client = Client::connect(server.port);
    assert_eq!(
        client.ask("FAULT melt"),
        "ERR unknown fault (allowed: FAULT spin, FAULT block, FAULT vanish, FAULT slow, FAULT write PATH)"
    );
    assert_eq!(client.ask("crlf\r"), "crlf");
    assert_eq!(client.ask(""), "");
    // 4096 bytes without a '\n' fill the line buffer: an error reply, then
    // the server closes the connection.
    client.writer.write_all("y".repeat(4096).as_bytes()).expect("send a long line");
    let mut reply = String::new();
    client.reader.read_line(&mut reply).expect("reply to a long line");
    assert_eq!(reply, "ERR line longer than 4095 bytes\n");
    reply.clear();
    assert_eq!(client.reader.read_line(&mut reply).expect("read after the error"), 0, "not closed: {reply:?}");
    // A line of exactly 4095 bytes (plus '\n') is echoed.
    let mut client = Client::connect(server.port);
    let max = "z".repeat(4095);
    assert_eq!(client.ask(&max), max);
    assert_eq!(client.ask("HEALTH"), "HEALTHY");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(server.running.pid(), libc::SIGTERM) }, 0);
    let o = server.running.finish();
    o.assert_exit(0);
    o.assert_no_verdict();
}

/// `FAULT write PATH` on a file system that is not frozen: the loop appends
/// its line to PATH and serves again; a path it cannot open is said on
/// stderr, and the loop serves again too. (tests/pacemaker.rs freezes the
/// file system, and the write never returns.)
#[test]
fn fault_write_appends_a_line_then_the_loop_serves_again() {
    let dir = c::temp_dir("echo-write");
    let file = dir.join("written");
    let server = start(false, &["--allow-faults"], &[]);
    let mut client = Client::connect(server.port);
    let path = file.to_str().expect("UTF-8 path");
    assert_eq!(client.ask(&format!("FAULT write {path}")), "FAULT write: the loop writes now");
    assert_eq!(client.ask("hello"), "hello");
    assert_eq!(client.ask(&format!("FAULT write {path}")), "FAULT write: the loop writes now");
    assert_eq!(client.ask("again"), "again");
    let written = std::fs::read_to_string(&file).expect("read the written file");
    assert_eq!(written, "echo_server: FAULT write\n".repeat(2));
    let missing = dir.join("no-such-dir/written");
    let missing = missing.to_str().expect("UTF-8 path");
    assert_eq!(client.ask(&format!("FAULT write {missing}")), "FAULT write: the loop writes now");
    assert_eq!(client.ask("still"), "still");
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(server.running.pid(), libc::SIGTERM) }, 0);
    let o = server.running.finish();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.stdout().matches("echo_server: FAULT write: done").count(), 2, "{}", o.describe());
    let said = format!("echo_server: FAULT write: open {missing}: No such file or directory");
    assert!(o.stderr.contains(&said), "expected {said:?}\n{}", o.describe());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The heartbeat's one-line answer on a new connection to `port`.
fn heartbeat(port: u16) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to heartbeat {port}: {e}"));
    s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("set_read_timeout");
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("read the heartbeat");
    answer
}

/// `--heartbeat`: a thread of its own answers HEALTHY while the loop
/// hangs, until failstop's verdict; the `unhealthy` action keeps the
/// process, and the heartbeat then answers UNHEALTHY. `--name` is the
/// answer to NAME.
#[test]
fn heartbeat_thread_answers_from_failstop_healthy_while_the_loop_hangs() {
    let env = [("FAILSTOP_ACTION", "unhealthy")];
    let mut server = start(false, &["--allow-faults", "--heartbeat", "0", "--name", "node-x"], &env);
    let (_, line) = server.running.wait_for_line("echo_server: heartbeat on 127.0.0.1:", Duration::from_secs(30));
    let hb: u16 = line.rsplit(':').next().and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(heartbeat(hb), "HEALTHY\n");
    let mut client = Client::connect(server.port);
    assert_eq!(client.ask("NAME"), "node-x");
    assert_eq!(client.ask("FAULT block"), "FAULT block: the loop blocks now");
    let fault = Instant::now();
    // Hung, before the stall budget: the heartbeat still says HEALTHY.
    assert_eq!(heartbeat(hb), "HEALTHY\n", "before the verdict");
    let after = loop {
        if heartbeat(hb) == "UNHEALTHY\n" {
            break fault.elapsed();
        }
        assert!(fault.elapsed() < common::CATCH_BOUND, "still HEALTHY {:?} after the block", fault.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(after >= Duration::from_millis(STALL_BUDGET_MS), "a verdict {after:?} after the block");
    assert_eq!(heartbeat(hb), "UNHEALTHY\n", "after the verdict");
    assert!(matches!(server.running.child.try_wait(), Ok(None)), "the unhealthy action ended the process");
    // SAFETY: signalling our own child (the loop is blocked: SIGKILL).
    assert_eq!(unsafe { libc::kill(server.running.pid(), libc::SIGKILL) }, 0);
    let o = server.running.finish();
    o.assert_signal(libc::SIGKILL);
    assert!(o.stderr.contains("failstop: blocked: thread \"echo-loop\""), "{}", o.describe());
    assert!(o.stderr.contains("; action: unhealthy"), "{}", o.describe());
}
