//! Helpers of the tests that run a real cluster manager on nodes that are
//! network namespaces of this machine (`tests/keepalived.rs`,
//! `tests/pacemaker.rs`): the programs they need, a client's requests from
//! inside a namespace, the output of their processes with the time each
//! line came, and failstop's verdict time in a dump.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A process's output lines, each with the time it was read.
pub type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CLOCK_MONOTONIC now, in ms (the clock of the dump's verdict time; the
/// namespaces share it).
pub fn monotonic_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

/// `name` in `$PATH` (or in /usr/sbin, /sbin); fails loudly, naming the
/// Debian package, when it is not.
pub fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not in PATH ({}) nor in /usr/sbin: this test needs Debian's `{package}` package \
             (apt-get install {package}; scripts/test.sh installs it)",
                path.to_string_lossy()
            )
        })
}

/// Reads `from` line by line into `lines`, each with the time it came,
/// prefixed with `tag`.
pub fn read_lines(from: impl Read + Send + 'static, lines: Lines, tag: &'static str) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end_matches('\n').to_string();
                    lines.lock().unwrap().push((Instant::now(), format!("{tag}{line}")));
                }
            }
        }
    })
}

/// Runs `f` on a new thread that entered the network namespace `ns` (a
/// thread's own: the test's other threads stay where they are).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Moves the calling thread into the network namespace `ns` (`ip netns`'s
/// name).
pub fn enter_netns(ns: &str) {
    let path = format!("/run/netns/{ns}");
    let f = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a descriptor we own; CLONE_NEWNET moves only the
    // calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns({path}): {}", std::io::Error::last_os_error());
}

/// One request on a new connection: sends `line`, returns the reply line.
pub fn ask(addr: &str, port: u16, line: &str, connect: Duration, reply: Duration) -> Result<String, String> {
    let to: SocketAddr = format!("{addr}:{port}").parse().expect("address");
    let s = TcpStream::connect_timeout(&to, connect).map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(reply)).map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    w.write_all(format!("{line}\n").as_bytes()).map_err(|e| format!("send {line:?} to {to}: {e}"))?;
    let mut answer = String::new();
    match BufReader::new(s).read_line(&mut answer) {
        Ok(n) if n > 0 && answer.ends_with('\n') => {
            answer.pop();
            Ok(answer)
        }
        Ok(_) => Err(format!("{to} closed the connection before answering {line:?} (got {answer:?})")),
        Err(e) => Err(format!("no answer from {to} to {line:?}: {e}")),
    }
}

/// The answer of the echo server's heartbeat at `addr:port` (the whole
/// connection is one line).
pub fn heartbeat(addr: &str, port: u16) -> Result<String, String> {
    let to: SocketAddr = format!("{addr}:{port}").parse().expect("address");
    let s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(s).read_to_string(&mut answer).map_err(|e| format!("read {to}: {e}"))?;
    Ok(answer)
}

/// The verdict time of the dump `text` (its `verdict at CLOCK_MONOTONIC
/// <ms> ms;` line), in ms.
pub fn verdict_at(text: &str) -> Option<f64> {
    let (_, rest) = text.lines().find_map(|l| l.split_once("; verdict at CLOCK_MONOTONIC "))?;
    rest.split_once(" ms;").and_then(|(v, _)| v.parse().ok())
}

/// Ends every process left in the network namespace `ns` (SIGKILL, again
/// until none is left or 5 s passed), then deletes the namespace. Errors
/// are printed, not raised: this runs in `Drop`.
pub fn remove_netns(ip: &PathBuf, ns: &str, who: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = Command::new(ip).args(["netns", "pids", ns]).output();
        let pids = pids.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let pids: Vec<i32> = pids.split_whitespace().filter_map(|p| p.parse().ok()).collect();
        if pids.is_empty() || Instant::now() > until {
            break;
        }
        for pid in pids {
            // SAFETY: a process in a namespace this test made.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match Command::new(ip).args(["netns", "del", ns]).output() {
        Ok(o) if o.status.success() => {}
        o => eprintln!("{who}: could not delete the namespace {ns}: {o:?}"),
    }
}

/// One probe of the client: when, and the answer (or why none).
pub type Probe = (Instant, Result<String, String>);

/// The cluster tests' client: a thread in a network namespace of its own
/// that asks `addr:port` a `NAME` line without end, each time on a new
/// connection, and keeps every answer with its time, so that a test sees
/// which node serves the address when. Stopped when dropped.
pub struct Prober {
    probes: Arc<Mutex<Vec<Probe>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    /// Starts probing from `ns`: connect within `connect`, an answer within
    /// `reply`, then `pause` before the next probe.
    pub fn start(
        ns: String,
        addr: &'static str,
        port: u16,
        connect: Duration,
        reply: Duration,
        pause: Duration,
    ) -> Self {
        let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (p, s) = (probes.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let r = ask(addr, port, "NAME", connect, reply);
                p.lock().unwrap().push((Instant::now(), r));
                std::thread::sleep(pause);
            }
        });
        Prober { probes, stop, thread: Some(thread) }
    }

    /// The probes so far.
    pub fn probes(&self) -> std::sync::MutexGuard<'_, Vec<Probe>> {
        self.probes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first probe at or after `since` that the node named `name` answered.
    pub fn served_by(&self, name: &str, since: Instant) -> Option<Instant> {
        self.probes().iter().find(|(t, r)| *t >= since && r.as_deref() == Ok(name)).map(|(t, _)| *t)
    }

    /// Waits until the node named `name` answers a probe after `since`, at
    /// most until `since + bound`; then says so.
    pub fn wait_served_by(&self, name: &str, since: Instant, bound: Duration) -> Result<Instant, String> {
        let until = since + bound;
        loop {
            if let Some(t) = self.served_by(name, since) {
                return Ok(t);
            }
            if Instant::now() >= until {
                return Err(format!("the client was not served by {name} within {bound:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
