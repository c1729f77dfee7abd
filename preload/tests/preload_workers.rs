//! Servers as people deploy them, under `libfailstop_preload.so`: a master
//! that forks its workers (Debian's nginx, `master_process on`, two
//! workers, daemonized as by default) and a daemon that forks itself away
//! (`redis-server --daemonize yes`). Each forked process that waits in an
//! event loop gets its own watchdog from its first wait.
//!
//! Faults come from `tests/c/fault_inject.c`, a preload of the test's own
//! loaded before failstop's: a signal to one process makes its thread spin
//! or block right after its next `epoll_wait` returns, outside the wait, as
//! a bug in the server's code would. nginx and redis-server run as root
//! here (the tests need root: scripts/test.sh runs them so); nginx's
//! workers run as `nobody`, as by default.

use failstop_test_support::preload::{free_port, preload_lib, verdict_line, verdict_ms};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CPU_BUDGET_MS: u64 = 500;
const STALL_BUDGET_MS: u64 = 3000;
/// Generous bounds on a two-core machine shared with other builds: from the
/// fault's signal to the end of the process.
const SPIN_CATCH_BOUND: Duration = Duration::from_secs(20);
const BLOCK_CATCH_BOUND: Duration = Duration::from_secs(25);
/// Sustained load that must give no verdict.
const LOAD: Duration = Duration::from_secs(20);

const NGINX_INSTALL: &str = "apt-get install -y nginx-light (scripts/test.sh installs it)";
const REDIS_INSTALL: &str = "apt-get install -y redis-server redis-tools (scripts/test.sh installs them)";

/// SIGRTMIN+4 / SIGRTMIN+5: fault_inject.c's spin and block requests.
fn spin_signal() -> i32 {
    libc::SIGRTMIN() + 4
}
fn block_signal() -> i32 {
    libc::SIGRTMIN() + 5
}

fn need(path: &str, install: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.exists(), "{path} not found: {install}");
    p
}

fn need_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests start nginx and redis-server as root: run them as root");
}

/// `tests/c/fault_inject.c` as a shared object, built once per run.
fn fault_inject_lib() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault_inject.so");
            std::fs::create_dir_all(out.parent().unwrap()).expect("mkdir");
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            let o = Command::new(&cc)
                .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-O1", "-shared", "-fPIC"])
                .arg(root.join("tests/c/fault_inject.c"))
                .arg("-o")
                .arg(&out)
                .arg("-ldl")
                .output()
                .unwrap_or_else(|e| panic!("run {cc}: {e} (a C compiler is needed; set CC)"));
            assert!(o.status.success(), "building fault_inject.so failed:\n{}", String::from_utf8_lossy(&o.stderr));
            out
        })
        .clone()
}

/// The preload list: the fault injector first, so that its `epoll_wait`
/// wraps failstop's.
fn ld_preload() -> String {
    format!("{}:{}", fault_inject_lib().display(), preload_lib().display())
}

/// A fresh directory outside the build tree (nginx's workers run as
/// `nobody`, who must be able to reach it): `/tmp/failstop-<tag>-<pid>-<ns>`.
/// The `dumps` directory in it is writable by everyone (sticky, as /tmp).
fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let d = std::env::temp_dir().join(format!("failstop-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(d.join("dumps")).expect("mkdir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(d.join("dumps"), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    d
}

fn alive(pid: i32) -> bool {
    // A zombie is not alive: it has ended, its parent has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z') && !r.starts_with('X')))
        .unwrap_or(false)
}

/// Processes whose parent is `ppid`.
fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let mut f = rest.split(' ');
        let state = f.next().unwrap_or("");
        if f.next().and_then(|p| p.parse::<i32>().ok()) == Some(ppid) && state != "Z" {
            out.push(pid);
        }
    }
    out.sort();
    out
}

fn wait_for(what: &str, bound: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < bound, "{what}: not within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

fn read_pid_file(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: signalling a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// The dump files in `dir`, by name.
fn dumps_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Checks one process's dump file: whole (it ends with the "dump written"
/// line), one `kind` verdict whose first line names process `pid` and
/// `process`, a figure near the budget. Returns the verdict line.
fn check_dump(dir: &Path, pid: i32, process: &str, kind: &str, context: &str) -> String {
    let file = dir.join(format!("failstop.{pid}.dump"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no dump {file:?} ({e}); dumps: {:?}\n{context}", dumps_in(dir)));
    let context = format!("{context}\n--- {file:?}\n{text}");
    let first = text.lines().next().unwrap_or_default();
    let v = verdict_line(&text).unwrap_or_else(|| panic!("no verdict line\n{context}"));
    assert_eq!(v.line, first, "the verdict is the first line\n{context}");
    assert_eq!(v.kind, kind, "{context}");
    assert_eq!(v.tid, pid, "the loop is the process's main thread\n{context}");
    assert!(
        first.ends_with(&format!("; process {pid} \"{process}\"")),
        "the first line names the process (pid and name)\n{context}"
    );
    let figure = verdict_ms(&v);
    let budget = if kind == "stuck" { CPU_BUDGET_MS } else { STALL_BUDGET_MS } as f64;
    assert!(
        figure >= budget * 0.85 && figure < budget * 4.0,
        "verdict figure {figure} ms for budget {budget}\n{context}"
    );
    assert!(text.lines().any(|l| l.starts_with("failstop: dump written in ")), "the dump is whole\n{context}");
    v.line
}

// ---------------------------------------------------------------------------
// HTTP load on nginx
// ---------------------------------------------------------------------------

/// One `GET /` on a keep-alive connection; the body must be "ok\n".
fn http_get(s: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    s.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut status = String::new();
    s.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("status line {status:?}")));
    }
    let mut len = None;
    loop {
        let mut h = String::new();
        if s.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len.ok_or_else(|| std::io::Error::other("no content-length"))?];
    s.read_exact(&mut body)?;
    if body != b"ok\n" {
        return Err(std::io::Error::other(format!("body {body:?}")));
    }
    Ok(())
}

fn answers(port: u16) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    http_get(&mut BufReader::new(s)).is_ok()
}

/// `clients` keep-alive clients doing verified GETs for `wall`; returns the
/// number of answers. A client whose connection a hung worker holds would
/// wait: each read has a timeout, and the client then reconnects (the
/// kernel hands the new connection to a live worker).
fn http_load(port: u16, clients: usize, wall: Duration) -> (u64, u64) {
    let until = Instant::now() + wall;
    let ts: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while Instant::now() < until {
                    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
                        failed += 1;
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut s = BufReader::new(s);
                    while Instant::now() < until && http_get(&mut s).is_ok() {
                        ok += 1;
                    }
                    if Instant::now() < until {
                        failed += 1;
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    ts.into_iter().map(|t| t.join().expect("client")).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

// ---------------------------------------------------------------------------
// nginx: a daemonized master and two forked workers
// ---------------------------------------------------------------------------

struct Nginx {
    dir: PathBuf,
    port: u16,
    master: i32,
}

impl Nginx {
    /// Starts Debian's nginx as deployed by default (it daemonizes; a master
    /// and two workers) on a free loopback port, everything in `dir`.
    fn start(dir: &Path) -> Nginx {
        let nginx = need("/usr/sbin/nginx", NGINX_INSTALL);
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "master_process on;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log notice;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 100000000;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let o = Command::new(&nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .env("LD_PRELOAD", ld_preload())
            .env("FAILSTOP_CPU_BUDGET_MS", CPU_BUDGET_MS.to_string())
            .env("FAILSTOP_STALL_BUDGET_MS", STALL_BUDGET_MS.to_string())
            .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
            .env("FAILSTOP_DUMP_PATH", dir.join("dumps/failstop.%p.dump"))
            .output()
            .expect("run nginx");
        assert!(
            o.status.success(),
            "nginx did not start: {:?}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let pid_file = dir.join("nginx.pid");
        wait_for("nginx's pid file", Duration::from_secs(10), || read_pid_file(&pid_file).is_some());
        let master = read_pid_file(&pid_file).unwrap();
        let n = Nginx { dir: dir.to_path_buf(), port, master };
        wait_for("nginx answering with two workers", Duration::from_secs(20), || {
            children_of(master).len() == 2 && answers(port)
        });
        n
    }

    fn workers(&self) -> Vec<i32> {
        children_of(self.master)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn context(&self) -> String {
        format!("--- error.log\n{}\n--- dumps: {:?}", self.error_log(), dumps_in(&self.dir.join("dumps")))
    }

    /// Injects `sig`'s fault into one worker; asserts that it ends by
    /// SIGABRT with its own dump, that the master says so and starts
    /// another, and that the server answered throughout. Returns the time
    /// from the signal to the worker's end.
    fn fault_one_worker(&self, sig: i32, kind: &str, bound: Duration) -> Duration {
        let before = self.workers();
        assert_eq!(before.len(), 2, "two workers before the fault\n{}", self.context());
        let victim = before[0];
        let other = before[1];
        let t = Instant::now();
        signal(victim, sig);
        // The other worker keeps answering while the victim is hung.
        let mut answered = 0;
        while alive(victim) {
            assert!(
                t.elapsed() < bound,
                "worker {victim} still runs {bound:?} after the {kind} fault\n{}",
                self.context()
            );
            if answers(self.port) {
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let took = t.elapsed();
        let context = self.context();
        assert!(answered > 0, "nothing answered while worker {victim} was hung\n{context}");
        let log = self.error_log();
        assert!(log.contains(&format!("fault_inject: pid {victim} ")), "the fault was taken by {victim}\n{context}");
        wait_for("the master logs the worker's death", Duration::from_secs(10), || {
            self.error_log().contains(&format!("worker process {victim} exited on signal 6"))
        });
        // The verdict went to the worker's stderr: nginx's error.log.
        assert!(log.contains(&format!("failstop: {kind}: thread \"nginx\" (tid {victim})")), "{context}");
        let line = check_dump(&self.dir.join("dumps"), victim, "nginx", kind, &context);
        let replaced = wait_for("a new worker", Duration::from_secs(10), || {
            let now = self.workers();
            now.len() == 2 && !now.contains(&victim) && now.contains(&other)
        });
        let new = self.workers().into_iter().find(|&p| p != other).unwrap();
        assert!(self.error_log().contains(&format!("start worker process {new}")), "{}", self.context());
        assert!(answers(self.port), "nginx answers after the fault\n{}", self.context());
        eprintln!(
            "nginx: {kind} fault in worker {victim}: SIGABRT after {took:?}, replaced by {new} {replaced:?} later; \
             {answered} answers meanwhile; {line}"
        );
        took
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.workers();
        if alive(self.master) {
            // SAFETY: signalling the master this test started.
            unsafe { libc::kill(self.master, libc::SIGKILL) };
        }
        for w in workers {
            // SAFETY: its workers.
            unsafe { libc::kill(w, libc::SIGKILL) };
        }
    }
}

#[test]
fn nginx_workers_are_watched() {
    need_root();
    let dir = scratch_dir("nginx");
    let n = Nginx::start(&dir);
    let (ok, _) = http_load(n.port, 4, Duration::from_secs(2));
    assert!(ok > 0, "no answers under load\n{}", n.context());
    let spin = n.fault_one_worker(spin_signal(), "stuck", SPIN_CATCH_BOUND);
    let block = n.fault_one_worker(block_signal(), "blocked", BLOCK_CATCH_BOUND);

    // Sustained load on the two workers now running (one of them forked
    // after a fail-stop): no verdict, no new dump, the same workers.
    let workers = n.workers();
    let dumps = dumps_in(&dir.join("dumps"));
    let log_before = n.error_log().len();
    let (ok, failed) = http_load(n.port, 8, LOAD);
    let context = format!("{ok} answers, {failed} failed connections\n{}", n.context());
    assert!(ok > 1000, "{context}");
    assert_eq!(failed, 0, "{context}");
    assert_eq!(dumps_in(&dir.join("dumps")), dumps, "a dump under load\n{context}");
    assert_eq!(n.workers(), workers, "the workers under load are the same\n{context}");
    let log = n.error_log();
    assert_eq!(log.matches("failstop: stuck:").count(), 1, "{context}");
    assert_eq!(log.matches("failstop: blocked:").count(), 1, "{context}");
    assert!(!log.contains("failstop_preload: "), "the preload said something\n{context}");
    // Under load nothing at all from failstop, not even a warning.
    assert!(!log[log_before..].contains("failstop"), "failstop said something under load\n{context}");
    eprintln!("nginx: spin caught in {spin:?}, block in {block:?}; {LOAD:?} of load: {ok} answers, no verdict");

    // A clean stop: SIGQUIT, the workers finish and the master exits.
    signal(n.master, libc::SIGQUIT);
    wait_for("nginx to stop", Duration::from_secs(20), || !alive(n.master));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// redis-server --daemonize yes
// ---------------------------------------------------------------------------

struct RedisDaemon {
    dir: PathBuf,
    port: u16,
    pid: i32,
}

fn redis_cli(port: u16, args: &[&str]) -> std::process::Output {
    Command::new(need("/usr/bin/redis-cli", REDIS_INSTALL))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli")
}

impl RedisDaemon {
    fn start(dir: &Path) -> RedisDaemon {
        let port = free_port();
        let d = dir.display();
        let o = Command::new(need("/usr/bin/redis-server", REDIS_INSTALL))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "yes", "--crash-memcheck-enabled", "no", "--dir"])
            .arg(dir)
            .args(["--pidfile", &format!("{d}/redis.pid"), "--logfile", &format!("{d}/redis.log")])
            .env("LD_PRELOAD", ld_preload())
            .env("FAILSTOP_CPU_BUDGET_MS", CPU_BUDGET_MS.to_string())
            .env("FAILSTOP_STALL_BUDGET_MS", STALL_BUDGET_MS.to_string())
            .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
            .env("FAILSTOP_DUMP_PATH", dir.join("dumps/failstop.%p.dump"))
            .output()
            .expect("run redis-server");
        assert!(o.status.success(), "redis-server --daemonize yes failed: {o:?}");
        let pid_file = dir.join("redis.pid");
        wait_for("redis' pid file", Duration::from_secs(10), || read_pid_file(&pid_file).is_some());
        let pid = read_pid_file(&pid_file).unwrap();
        let r = RedisDaemon { dir: dir.to_path_buf(), port, pid };
        wait_for("redis answering", Duration::from_secs(20), || redis_cli(port, &["ping"]).stdout.starts_with(b"PONG"));
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn context(&self) -> String {
        format!("--- redis.log\n{}\n--- dumps: {:?}", self.log(), dumps_in(&self.dir.join("dumps")))
    }

    fn load(&self, wall: Duration) -> usize {
        let until = Instant::now() + wall;
        let mut rounds = 0;
        while Instant::now() < until {
            let o = Command::new(need("/usr/bin/redis-benchmark", REDIS_INSTALL))
                .args(["-p", &self.port.to_string(), "-q", "-n", "20000", "-c", "20", "-t", "set,get"])
                .output()
                .expect("run redis-benchmark");
            assert!(o.status.success(), "redis-benchmark: {o:?}\n{}", self.context());
            rounds += 1;
        }
        rounds
    }
}

impl Drop for RedisDaemon {
    fn drop(&mut self) {
        if alive(self.pid) {
            // SAFETY: the daemon this test started.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// A daemonized redis-server, a fault by `sig`: the daemon ends with its
/// dump (it has no parent to report its status to: its own crash log says
/// SIGABRT, and the pid is gone).
fn redis_daemon_fault(sig: i32, kind: &str, bound: Duration) {
    need_root();
    let dir = scratch_dir(&format!("redis-{kind}"));
    let r = RedisDaemon::start(&dir);
    r.load(Duration::from_secs(2));
    let t = Instant::now();
    signal(r.pid, sig);
    wait_for(&format!("the daemon {} to end after the {kind} fault\n{}", r.pid, r.context()), bound, || !alive(r.pid));
    let took = t.elapsed();
    let context = r.context();
    assert!(r.log().contains("crashed by signal: 6"), "redis' crash log says SIGABRT\n{context}");
    let line = check_dump(&dir.join("dumps"), r.pid, "redis-server", kind, &context);
    assert_eq!(dumps_in(&dir.join("dumps")).len(), 1, "{context}");
    eprintln!("redis-server --daemonize yes: {kind} fault to its end in {took:?}; {line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_daemon_spin_is_caught() {
    redis_daemon_fault(spin_signal(), "stuck", SPIN_CATCH_BOUND);
}

#[test]
fn redis_daemon_block_is_caught() {
    redis_daemon_fault(block_signal(), "blocked", BLOCK_CATCH_BOUND);
}

#[test]
fn redis_daemon_under_load_gets_no_verdict() {
    need_root();
    let dir = scratch_dir("redis-load");
    let r = RedisDaemon::start(&dir);
    let rounds = r.load(LOAD);
    let context = format!("{rounds} redis-benchmark rounds\n{}", r.context());
    assert!(alive(r.pid), "{context}");
    assert!(redis_cli(r.port, &["ping"]).stdout.starts_with(b"PONG"), "{context}");
    assert!(dumps_in(&dir.join("dumps")).is_empty(), "a dump under load\n{context}");
    assert!(!r.log().contains("crashed"), "{context}");
    let _ = redis_cli(r.port, &["shutdown", "nosave"]);
    wait_for("redis to stop", Duration::from_secs(10), || !alive(r.pid));
    let _ = std::fs::remove_dir_all(&dir);
}
