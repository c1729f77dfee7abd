//! runit's `runsv` supervising one service directory of a test's own (no
//! system init, no `/etc/service`): `./run` is a shell script that sends each
//! run's stdout, stderr and failstop dump to files named by its pid, and
//! `./finish` records how each run ended, as runsv reports it.
//!
//! runsv keeps `./run` (and `./finish`) in its own process group, and the
//! test starts runsv as the leader of a new group: [`Service`]'s `Drop`
//! kills that group, so a failing test leaves no supervisor and no service
//! behind.
//!
//! Why runsv rather than supervisord: supervisord makes each program a
//! process-group leader of its own (a killed supervisord leaves its
//! children running, so the test would have to track every pid), gives up
//! on a program after `startretries` quick exits (FATAL) and backs off,
//! needs a config file, a control socket and a log directory, and Debian's
//! package starts a system-wide supervisord when it is installed. runsv is
//! one small C program given one directory: no config, no socket, no
//! daemon started by the package, it restarts the service every time
//! (at once, or one second later if the run lasted less than a second), and
//! its state is a 20-byte file.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package that has `runsv` and `sv` (`.ci/run` installs it).
pub const PACKAGE: &str = "runit";

/// `name` in `$PATH`; fails loudly, naming the package, when it is not.
pub fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not in PATH ({}): install Debian's `{PACKAGE}` package \
                 (apt-get install {PACKAGE}; .ci/run does)",
                path.to_string_lossy()
            )
        })
}

/// `s` quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// How one run of the service ended, from `./finish`'s arguments: runsv
/// passes the exit code (-1 when a signal ended it) and the signal (0 for an
/// exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    pub code: i32,
    pub signal: i32,
}

/// A service under runsv.
pub struct Service {
    /// The service directory (`run`, `finish`, and runsv's `supervise/`).
    pub dir: PathBuf,
    /// Each run's `stdout.PID`, `stderr.PID`, `dump.PID`, and `finish`.
    pub logs: PathBuf,
    runsv_log: PathBuf,
    runsv: Child,
    reaped: bool,
}

impl Service {
    /// Writes `root/NAME/{run,finish}` and starts `runsv root/NAME`. The
    /// run script sets `env` (and `FAILSTOP_DUMP_PATH`, a file per run),
    /// turns core files off, and execs `argv` (the pid stays the one runsv
    /// started).
    pub fn start(root: &Path, name: &str, argv: &[&str], env: &[(&str, &str)]) -> Service {
        let runsv = program("runsv");
        program("sv");
        let dir = root.join(name);
        let logs = root.join(format!("{name}-runs"));
        for d in [&dir, &logs] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {d:?}: {e}"));
        }
        let l = |file: &str| quote(&format!("{}/{file}", logs.to_str().expect("UTF-8 path")));
        let mut run = String::from(
            "#!/bin/sh\n\
             # Written by tests/supervisor.rs: one run of the service under runsv.\n\
             # Its output and dump go to files named by its pid ($$, kept by exec).\n",
        );
        run += &format!("exec >{}.$$ 2>{}.$$ </dev/null\n", l("stdout"), l("stderr"));
        run += "ulimit -c 0\n";
        run += &format!("FAILSTOP_DUMP_PATH={}.$$\nexport FAILSTOP_DUMP_PATH\n", l("dump"));
        for (k, v) in env {
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "bad variable name {k:?}");
            run += &format!("{k}={}\nexport {k}\n", quote(v));
        }
        run += "exec";
        for a in argv {
            run += " ";
            run += &quote(a);
        }
        run += "\n";
        let finish = format!(
            "#!/bin/sh\n\
             # runsv passes ./run's exit code (-1 after a signal) and its signal (0 after an exit).\n\
             echo \"$1 $2\" >>{}\n",
            l("finish")
        );
        for (file, text) in [("run", run), ("finish", finish)] {
            let p = dir.join(file);
            fs::write(&p, text).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let runsv_log = root.join(format!("{name}-runsv.log"));
        let log = File::create(&runsv_log).expect("runsv log");
        let mut cmd = Command::new(&runsv);
        cmd.arg(&dir);
        // The service sees only the FAILSTOP_* variables its run script sets.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("FAILSTOP_") {
                cmd.env_remove(k);
            }
        }
        cmd.process_group(0);
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup")).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {runsv:?}: {e}"));
        Service { dir, logs, runsv_log, runsv: child, reaped: false }
    }

    /// The pid of the running service, from runsv's `supervise/status`
    /// (`supervise/pid` names `./finish` while that runs): its 20 bytes are
    /// a TAI64N time, the pid (4 bytes, little-endian), the paused flag,
    /// the wanted state, the term flag, and the state (0 down, 1 run,
    /// 2 finish). runsv replaces the file at once by a rename.
    pub fn pid(&self) -> Option<i32> {
        let s = fs::read(self.dir.join("supervise/status")).ok()?;
        if s.len() != 20 || s[19] != 1 {
            return None;
        }
        let pid = i32::from_le_bytes(s[12..16].try_into().unwrap());
        (pid > 0).then_some(pid)
    }

    /// `sv status DIR`.
    pub fn status(&self) -> String {
        let out = Command::new(program("sv")).arg("status").arg(&self.dir).output().expect("sv status");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Panics with everything known unless `ok`.
    pub fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            panic!("{what}\n{}", self.describe());
        }
    }

    /// runsv's state, its log, and every run's files, for failure messages.
    pub fn describe(&mut self) -> String {
        let mut s = format!("runsv: {:?}; sv status: {}", self.runsv.try_wait(), self.status());
        s += &format!("--- runsv log\n{}", fs::read_to_string(&self.runsv_log).unwrap_or_default());
        let mut files: Vec<_> =
            fs::read_dir(&self.logs).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        files.sort();
        for f in files {
            let text = fs::read_to_string(&f).unwrap_or_default();
            let cut: String = text.chars().take(6000).collect();
            s += &format!("--- {}\n{cut}", f.file_name().unwrap().to_string_lossy());
        }
        s
    }

    /// Waits until runsv reports a running service other than `not`;
    /// returns its pid and when it was first seen.
    pub fn wait_running(&mut self, not: Option<i32>, timeout: Duration) -> (i32, Instant) {
        let until = Instant::now() + timeout;
        loop {
            if let Some(p) = self.pid().filter(|&p| Some(p) != not) {
                return (p, Instant::now());
            }
            self.check(self.runsv_alive(), "runsv ended");
            self.check(Instant::now() < until, &format!("no new run (other than {not:?}) within {timeout:?}"));
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether runsv still runs (without reaping it: its pid, the group's
    /// id, stays ours until `Drop`).
    fn runsv_alive(&self) -> bool {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid out-struct; WNOWAIT
        // leaves it waitable.
        let r = unsafe {
            libc::waitid(libc::P_PID, self.runsv.id(), &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        // SAFETY: si_pid is set by waitid when a child is waitable (0 if none).
        r == 0 && unsafe { info.si_pid() } == 0
    }

    pub fn stdout_of(&self, pid: i32) -> PathBuf {
        self.logs.join(format!("stdout.{pid}"))
    }

    pub fn stderr_of(&self, pid: i32) -> PathBuf {
        self.logs.join(format!("stderr.{pid}"))
    }

    pub fn dump_of(&self, pid: i32) -> PathBuf {
        self.logs.join(format!("dump.{pid}"))
    }

    /// Every `dump.*` file written so far.
    pub fn dumps(&self) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(&self.logs)
            .expect("logs dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dump.")))
            .collect();
        v.sort();
        v
    }

    /// How each run ended so far, in order.
    pub fn endings(&self) -> Vec<Ending> {
        let text = fs::read_to_string(self.logs.join("finish")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut it = l.split_whitespace().map(|n| n.parse().unwrap_or_else(|_| panic!("finish line {l:?}")));
                Ending { code: it.next().expect("code"), signal: it.next().expect("signal") }
            })
            .collect()
    }

    /// Waits until `n` runs have ended (`./finish` ran `n` times).
    pub fn wait_endings(&mut self, n: usize, timeout: Duration) -> Vec<Ending> {
        let until = Instant::now() + timeout;
        loop {
            let e = self.endings();
            if e.len() >= n {
                return e;
            }
            self.check(Instant::now() < until, &format!("fewer than {n} runs ended within {timeout:?}"));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until a line of `pid`'s stdout contains `needle`; returns the
    /// line and when it was first seen.
    pub fn wait_stdout(&mut self, pid: i32, needle: &str, timeout: Duration) -> (String, Instant) {
        let until = Instant::now() + timeout;
        loop {
            let text = fs::read_to_string(self.stdout_of(pid)).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                return (l.to_string(), Instant::now());
            }
            self.check(Instant::now() < until, &format!("run {pid} did not print {needle:?} within {timeout:?}"));
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `sv exit DIR`: runsv sends the service SIGTERM (and SIGCONT), waits
    /// for it to end, runs `./finish`, then exits itself. Waits for that.
    pub fn exit(&mut self, timeout: Duration) {
        let out = Command::new(program("sv")).arg("exit").arg(&self.dir).output().expect("sv exit");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        self.check(out.status.success(), &format!("sv exit failed: {:?} {said}", out.status));
        let until = Instant::now() + timeout;
        while self.runsv_alive() {
            self.check(Instant::now() < until, &format!("runsv still running {timeout:?} after `sv exit`"));
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Whether process `pid` still exists (a zombie counts until reaped).
pub fn exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl Drop for Service {
    fn drop(&mut self) {
        if !self.reaped {
            let service = self.pid();
            // runsv is not reaped yet, so its pid (the group id) cannot have
            // been reused: the service and runsv end here, passed or failed.
            // SAFETY: signalling the process group created for our own child.
            unsafe { libc::kill(-(self.runsv.id() as i32), libc::SIGKILL) };
            let _ = self.runsv.wait();
            self.reaped = true;
            // The service, orphaned, is reaped by init: wait (a bounded
            // while) so that nothing of this test is left when it returns.
            let until = Instant::now() + Duration::from_secs(5);
            while service.is_some_and(exists) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
