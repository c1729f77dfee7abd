//! `failstop doctor [--json]`: checks the place it runs in, one finding per
//! line, each with what it means for failstop and what to do.
//!
//! The trials are real: a timer on this thread's CPU clock must fire, a
//! child must be able to `ptrace` its parent (as failstop's capture helper
//! does), `process_vm_readv` must read this process's memory. The rest is
//! read from `/proc`, `/sys/fs/cgroup`, the resource limits and the
//! environment.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `failstop help doctor`.
pub(crate) const HELP: &str = "\
Usage: failstop doctor [--json]

Checks what failstop needs from the machine, the container and the environment it runs
in, and prints one line per finding: its status, the topic, what was found, what it means
for failstop and what to do. Statuses: ok; note (worth knowing); warn (failstop works, with
less: frames, threads, cores); fail (failstop cannot do its job, or a FAILSTOP_* variable
is bad). Run it where the program will run: in its container, as its user, with its
environment (e.g. from the unit's ExecStartPre= or `docker run IMAGE failstop doctor`).

  --json   one JSON object: {\"ok\": BOOL, \"findings\": [{\"status\", \"topic\", \"finding\",
           \"meaning\", \"action\"}, ...]}

Exit status: 0 when failstop can do everything it needs, 1 when something is missing
(any `fail`), 2 for a usage error.
";

/// How a finding bears on failstop.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Status {
    Ok,
    Note,
    Warn,
    Fail,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
struct Finding {
    status: Status,
    topic: &'static str,
    /// What was found.
    finding: String,
    /// What it means for failstop.
    meaning: String,
    /// What to do (empty: nothing).
    action: String,
}

/// Collects the findings.
#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn add(&mut self, status: Status, topic: &'static str, finding: String, meaning: &str, action: &str) {
        self.0.push(Finding { status, topic, finding, meaning: meaning.to_string(), action: action.to_string() });
    }

    fn worst(&self) -> Status {
        self.0.iter().map(|f| f.status).max().unwrap_or(Status::Ok)
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.0 {
            let _ = write!(out, "{:<4} {}: {}; {}", f.status.word(), f.topic, f.finding, f.meaning);
            if !f.action.is_empty() {
                let _ = write!(out, "; {}", f.action);
            }
            out.push('\n');
        }
        let summary = match self.worst() {
            Status::Fail => "failstop: doctor: something failstop needs is missing (the `fail` lines)",
            Status::Warn => "failstop: doctor: failstop can do its job, with less than everything (the `warn` lines)",
            _ => "failstop: doctor: failstop can do everything it needs here",
        };
        out.push_str(summary);
        out.push('\n');
        out
    }

    fn json(&self) -> String {
        let mut out = String::from("{\"ok\": ");
        out.push_str(if self.worst() == Status::Fail { "false" } else { "true" });
        out.push_str(", \"findings\": [");
        for (i, f) in self.0.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(
                out,
                "{{\"status\": {}, \"topic\": {}, \"finding\": {}, \"meaning\": {}, \"action\": {}}}",
                json_string(f.status.word()),
                json_string(f.topic),
                json_string(&f.finding),
                json_string(&f.meaning),
                json_string(&f.action)
            );
        }
        out.push_str("]}\n");
        out
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `failstop doctor ARGS`.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let mut json = false;
    for a in &args {
        match a.to_str() {
            Some("--json") => json = true,
            Some("-h" | "--help") => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            _ => return crate::usage_error(&format!("doctor: unknown argument {a:?}; allowed: --json, --help")),
        }
    }
    let mut r = Report::default();
    let settings = check_env(&mut r);
    check_proc(&mut r);
    check_cpu_timer(&mut r, settings.as_ref().map(|s| s.signal.number()));
    check_sigpending(&mut r);
    check_tracing(&mut r);
    check_process_vm_readv(&mut r);
    check_core(&mut r);
    check_cpu_quota(&mut r, settings.as_ref());
    check_pid1(&mut r);
    check_systemd(&mut r, settings.as_ref());
    check_dump_path(&mut r);
    check_preload(&mut r);
    if json {
        print!("{}", r.json());
    } else {
        print!("{}", r.text());
    }
    if r.worst() == Status::Fail { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// The `FAILSTOP_*` variables, through the library's parser (as the
/// preload's constructor reads them, with its default signal).
fn check_env(r: &mut Report) -> Option<failstop::Settings> {
    let set: Vec<String> = std::env::vars_os()
        .filter_map(|(n, _)| n.to_str().filter(|n| n.starts_with("FAILSTOP_")).map(str::to_string))
        .collect();
    let config = failstop::Signal::new(libc::SIGRTMAX() - 3).map(|s| failstop::Config::new().signal(s));
    match config.and_then(|c| c.with_env()) {
        Ok(config) => {
            let s = config.settings().clone();
            let finding = if set.is_empty() {
                "no FAILSTOP_* variable set".to_string()
            } else {
                format!("{} set and valid", set.join(", "))
            };
            r.add(
                Status::Ok,
                "settings",
                format!(
                    "{finding}: cpu budget {} ms, stall budget {} ms, action {}, dump timeout {} ms",
                    s.cpu_budget.as_millis(),
                    s.stall_budget.as_millis(),
                    s.action,
                    s.dump_timeout.as_millis()
                ),
                "the preload starts with these",
                "",
            );
            Some(s)
        }
        Err(err) => {
            r.add(
                Status::Fail,
                "settings",
                err.message().to_string(),
                "a program started with this environment under the preload exits with status 2 before its main",
                "fix or unset the variable (failstop run checks its options the same way)",
            );
            None
        }
    }
}

/// `/proc`: the monitor's evidence.
fn check_proc(r: &mut Report) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let must = [String::from("/proc/self/stat"), format!("/proc/self/task/{tid}/stat")];
    for m in &must {
        if let Err(e) = std::fs::read(m) {
            r.add(
                Status::Fail,
                "proc",
                format!("{m} cannot be read: {e}"),
                "failstop reads each thread's state, CPU time and context switches in /proc; without it, start fails",
                "mount /proc (mount -t proc proc /proc; in a container, do not mask it)",
            );
            return;
        }
    }
    if std::fs::read_dir("/proc/self/task").is_err() {
        r.add(
            Status::Fail,
            "proc",
            "/proc/self/task cannot be listed".into(),
            "failstop lists the process's threads there for the dump and the blocked rule",
            "mount /proc",
        );
        return;
    }
    let optional = ["schedstat", "syscall", "wchan"];
    let missing: Vec<&str> =
        optional.iter().copied().filter(|f| std::fs::read(format!("/proc/self/task/{tid}/{f}")).is_err()).collect();
    if missing.is_empty() {
        r.add(
            Status::Ok,
            "proc",
            "/proc is mounted and readable (stat, schedstat, syscall, wchan of each thread)".into(),
            "the monitor's evidence and the dump's thread states are available",
            "",
        );
    } else {
        r.add(
            Status::Warn,
            "proc",
            format!("/proc is mounted, but /proc/self/task/TID/{} cannot be read", missing.join(", ")),
            "the dump lacks those lines (run queue time, system call, wait channel)",
            "a kernel with CONFIG_SCHED_INFO and CONFIG_HAVE_ARCH_TRACEHOOK, or a /proc that is not restricted",
        );
    }
}

/// A timer on this thread's CPU clock, delivering `signo` to this thread,
/// must fire after 10 ms of CPU.
fn check_cpu_timer(r: &mut Report, signo: Option<i32>) {
    let signo = signo.unwrap_or_else(|| libc::SIGRTMAX() - 3);
    match cpu_timer_trial(signo) {
        Ok(cpu) => r.add(
            Status::Ok,
            "cpu-timers",
            format!(
                "a timer on this thread's CPU clock (signal {signo}) fired after {:.1} ms of CPU (armed for 10 ms)",
                cpu.as_secs_f64() * 1e3
            ),
            "the per-thread CPU budgets work: a spinning thread is caught by its own timer",
            "",
        ),
        Err(why) => r.add(
            Status::Fail,
            "cpu-timers",
            why,
            "failstop catches spinning threads with a timer on each thread's CPU clock; without it, start or \
             registration fails",
            "allow timer_create and timer_settime (a seccomp profile), and leave RLIMIT_SIGPENDING above 0",
        ),
    }
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn errno_text() -> String {
    std::io::Error::last_os_error().to_string()
}

fn cpu_timer_trial(signo: i32) -> Result<Duration, String> {
    // SAFETY: plain data, filled in before use; the signal is blocked in
    // this thread so that it stays pending for sigtimedwait, and the old
    // mask is restored on every path below.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signo);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = signo;
        sev.sigev_notify_thread_id = libc::gettid();
        let mut timer: libc::timer_t = std::ptr::null_mut();
        let result = if libc::timer_create(libc::CLOCK_THREAD_CPUTIME_ID, &mut sev, &mut timer) != 0 {
            Err(format!("timer_create(CLOCK_THREAD_CPUTIME_ID) failed: {}", errno_text()))
        } else {
            let spec = libc::itimerspec {
                it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: libc::timespec { tv_sec: 0, tv_nsec: 10_000_000 },
            };
            let start = thread_cpu();
            let r = if libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) != 0 {
                Err(format!("timer_settime failed: {}", errno_text()))
            } else {
                let deadline = Instant::now() + Duration::from_secs(3);
                let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                let mut x = 0u64;
                loop {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                    if libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == signo {
                        break Ok(thread_cpu() - start);
                    }
                    if Instant::now() > deadline {
                        break Err(format!(
                            "a timer on this thread's CPU clock armed for 10 ms did not fire within 3 s of wall time \
                             ({:.0} ms of CPU used)",
                            (thread_cpu() - start).as_secs_f64() * 1e3
                        ));
                    }
                }
            };
            libc::timer_delete(timer);
            r
        };
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

/// A field of `/proc/self/status`.
fn status_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// `RLIMIT_SIGPENDING`: one POSIX timer per watched thread counts against it.
fn check_sigpending(r: &mut Report) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) } != 0 {
        r.add(Status::Warn, "sigpending", format!("getrlimit failed: {}", errno_text()), "", "");
        return;
    }
    // SigQ: queued signals of this real user / the limit.
    let used: u64 = status_field("SigQ").and_then(|q| q.split('/').next()?.parse().ok()).unwrap_or(0);
    let show = |v: libc::rlim_t| if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { v.to_string() };
    let max = failstop::limits::MAX_THREADS as u64;
    // One timer per watched thread, one for the fuse.
    let threads =
        if lim.rlim_cur == libc::RLIM_INFINITY { max } else { lim.rlim_cur.saturating_sub(used + 1).min(max) };
    let finding = format!(
        "RLIMIT_SIGPENDING is {} (hard {}), {used} in use by this user: room for about {threads} watched threads \
         (failstop's own limit: {max})",
        show(lim.rlim_cur),
        show(lim.rlim_max)
    );
    let meaning = "each watched thread holds one POSIX timer, counted against this per-user limit; a thread \
                   that finds it used up is not watched (register fails and says so)";
    let action = "raise it: ulimit -i N, LimitSIGPENDING= in a systemd unit, docker run --ulimit sigpending=N";
    if threads == 0 {
        r.add(Status::Fail, "sigpending", finding, meaning, action);
    } else if threads < 1024 {
        r.add(Status::Warn, "sigpending", finding, meaning, action);
    } else {
        r.add(Status::Ok, "sigpending", finding, meaning, "");
    }
}

/// Yama, seccomp, a tracer already attached, and a real `ptrace` trial.
fn check_tracing(r: &mut Report) {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok().map(|s| s.trim().to_string());
    let seccomp = status_field("Seccomp");
    let mut context = Vec::new();
    match &scope {
        Some(s) => context.push(format!("Yama ptrace_scope {s}")),
        None => context.push("no Yama".to_string()),
    }
    match seccomp.as_deref() {
        Some("0") => context.push("no seccomp filter".into()),
        Some("1") => context.push("seccomp strict mode".into()),
        Some("2") => context.push("a seccomp filter".into()),
        _ => {}
    }
    match ptrace_trial(scope.as_deref() == Some("1")) {
        Ok(()) => r.add(
            Status::Ok,
            "ptrace",
            format!("a child could ptrace (PTRACE_SEIZE) this process ({})", context.join(", ")),
            "the dump gets frames of threads that block every signal (read by a helper that traces them)",
            "",
        ),
        Err(why) => r.add(
            Status::Warn,
            "ptrace",
            format!("a child could not ptrace this process: {why} ({})", context.join(", ")),
            "threads that block every signal (a signal thread, a deaf culprit) are dumped without frames; \
             everything else works",
            "allow ptrace of one's own children: Yama ptrace_scope 0-2 (not 3), a seccomp profile that allows \
             ptrace, CAP_SYS_PTRACE where ptrace_scope is 2",
        ),
    }
    if let Some(pid) = status_field("TracerPid").filter(|p| p != "0") {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        r.add(
            Status::Note,
            "tracer",
            format!("this process is traced by pid {pid} ({})", comm.trim()),
            "failstop spares a traced process (a debugger) until the tracer leaves, unless \
             FAILSTOP_ABORT_UNDER_DEBUGGER=1",
            "",
        );
    }
}

/// Forks a child that seizes this process with `ptrace`, as failstop's
/// capture helper seizes a thread of its parent.
fn ptrace_trial(set_ptracer: bool) -> Result<(), String> {
    // A SIGCHLD ignored by whoever started us (inherited across exec)
    // would reap the child before waitpid sees it.
    // SAFETY: restores the default disposition of SIGCHLD; no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let mut fds = [0; 2];
    // SAFETY: a valid out-array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", errno_text()));
    }
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child makes only async-signal-safe calls (read, ptrace,
    // _exit) before it ends.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!("fork: {}", errno_text()));
    }
    if child == 0 {
        // SAFETY: async-signal-safe calls on valid arguments, then _exit.
        unsafe {
            let mut b = 0u8;
            libc::close(fds[1]);
            libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            let rc = libc::ptrace(libc::PTRACE_SEIZE, parent, 0usize, 0usize);
            let code = if rc == 0 { 0 } else { *libc::__errno_location() & 0x7f };
            libc::_exit(code)
        }
    }
    // SAFETY: plain calls on our own descriptors and child.
    unsafe {
        libc::close(fds[0]);
        if set_ptracer {
            libc::prctl(libc::PR_SET_PTRACER, child as libc::c_ulong, 0, 0, 0);
        }
        libc::write(fds[1], b"x".as_ptr().cast(), 1);
        libc::close(fds[1]);
        let mut status = 0;
        while libc::waitpid(child, &mut status, 0) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                return Err(format!("waitpid: {}", errno_text()));
            }
        }
        if set_ptracer {
            libc::prctl(libc::PR_SET_PTRACER, 0, 0, 0, 0);
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else if libc::WIFEXITED(status) {
            Err(format!("PTRACE_SEIZE failed: {}", std::io::Error::from_raw_os_error(libc::WEXITSTATUS(status))))
        } else {
            Err(format!("the child ended with wait status {status:#x} (a seccomp filter that kills?)"))
        }
    }
}

/// `process_vm_readv` on this process, as the stack walk's validated reads.
fn check_process_vm_readv(r: &mut Report) {
    let source = [0x5au8; 64];
    let mut dest = [0u8; 64];
    let local = libc::iovec { iov_base: dest.as_mut_ptr().cast(), iov_len: dest.len() };
    let remote = libc::iovec { iov_base: source.as_ptr() as *mut libc::c_void, iov_len: source.len() };
    // SAFETY: both iovecs describe live buffers of this process; getpid has
    // no preconditions.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == 64 && dest == source {
        r.add(
            Status::Ok,
            "process_vm_readv",
            "process_vm_readv reads this process's memory".into(),
            "stack walks read frames with it, safely (a bad address is an error, not a crash)",
            "",
        );
    } else {
        r.add(
            Status::Warn,
            "process_vm_readv",
            format!("process_vm_readv on this process failed: {}", errno_text()),
            "stack walks fall back to a slower pipe probe for their validated reads; frames are still complete",
            "allow process_vm_readv in the seccomp profile",
        );
    }
}

/// Where a core file goes after `SIGABRT`.
fn check_core(r: &mut Report) {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").map(|s| s.trim().to_string());
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) };
    let limit = if lim.rlim_cur == libc::RLIM_INFINITY { "unlimited".to_string() } else { lim.rlim_cur.to_string() };
    let where_to = match &pattern {
        Ok(p) if p.starts_with('|') => {
            let handler = p[1..].split_whitespace().next().unwrap_or("");
            format!(
                "core_pattern pipes cores to {handler} (which applies its own rules; systemd-coredump: coredumpctl)"
            )
        }
        Ok(p) if p.starts_with('/') => format!("core_pattern writes cores to {p}"),
        Ok(p) => format!("core_pattern writes cores to {p} in the program's working directory"),
        Err(e) => format!("core_pattern cannot be read ({e})"),
    };
    if lim.rlim_cur == 0 && !pattern.as_ref().is_ok_and(|p| p.starts_with('|')) {
        r.add(
            Status::Note,
            "core",
            format!("{where_to}; RLIMIT_CORE is 0 (hard {})", show_rlim(lim.rlim_max)),
            "a fail-stop by SIGABRT leaves no core file: failstop's dump is all there is",
            "for cores: ulimit -c unlimited, LimitCORE=infinity (systemd), docker run --ulimit core=-1",
        );
    } else {
        r.add(
            Status::Ok,
            "core",
            format!("{where_to}; RLIMIT_CORE is {limit}"),
            "a fail-stop by SIGABRT leaves a core file there, besides failstop's dump",
            "",
        );
    }
}

fn show_rlim(v: libc::rlim_t) -> String {
    if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { v.to_string() }
}

/// A CPU quota of this process's cgroup or an ancestor (v2 `cpu.max`, v1
/// `cpu.cfs_quota_us`): the tightest, in CPUs.
fn cpu_quota() -> Option<(f64, String)> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(f64, String)> = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let v2 = controllers.is_empty();
        if !v2 && !controllers.split(',').any(|c| c == "cpu") {
            continue;
        }
        // The mount of that hierarchy: (root within the hierarchy, mount point).
        let mount = mountinfo.lines().find_map(|m| {
            let (left, right) = m.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let fstype = r.next()?;
            let _source = r.next();
            let options = r.next().unwrap_or("");
            let ok =
                if v2 { fstype == "cgroup2" } else { fstype == "cgroup" && options.split(',').any(|o| o == "cpu") };
            if !ok {
                return None;
            }
            let f: Vec<&str> = left.split_whitespace().collect();
            Some((f.get(3)?.to_string(), f.get(4)?.to_string()))
        });
        let Some((root, mount_point)) = mount else { continue };
        let rel = path.strip_prefix(root.as_str()).unwrap_or(path).trim_start_matches('/');
        let mut dir = PathBuf::from(&mount_point).join(rel);
        loop {
            let quota = if v2 {
                std::fs::read_to_string(dir.join("cpu.max")).ok().and_then(|t| {
                    let mut w = t.split_whitespace();
                    let q: f64 = w.next()?.parse().ok()?; // "max" fails: no quota
                    let p: f64 = w.next()?.parse().ok()?;
                    Some(q / p)
                })
            } else {
                let q = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"))
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok());
                let p = std::fs::read_to_string(dir.join("cpu.cfs_period_us"))
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok());
                match (q, p) {
                    (Some(q), Some(p)) if q > 0.0 && p > 0.0 => Some(q / p),
                    _ => None,
                }
            };
            if let Some(cpus) = quota
                && best.as_ref().is_none_or(|(b, _)| cpus < *b)
            {
                best = Some((cpus, format!("{} ({})", dir.display(), if v2 { "v2" } else { "v1" })));
            }
            if dir == Path::new(&mount_point) || !dir.pop() || !dir.starts_with(&mount_point) {
                break;
            }
        }
    }
    best
}

fn check_cpu_quota(r: &mut Report, settings: Option<&failstop::Settings>) {
    let stall = settings.map_or(10_000, |s| s.stall_budget.as_millis());
    match cpu_quota() {
        None => r.add(
            Status::Ok,
            "cpu-quota",
            "no CPU quota on this process's cgroups".into(),
            "wall-clock budgets (stall, poll, dump timeout) are not stretched by throttling",
            "",
        ),
        Some((cpus, at)) => {
            let status = if cpus < 1.0 { Status::Warn } else { Status::Note };
            r.add(
                status,
                "cpu-quota",
                format!("a CPU quota of {cpus:.2} CPUs in force at {at}"),
                "CPU budgets count CPU time and are unaffected; wall-clock waits stretch under throttling (at 0.05 \
                 CPUs, 250 ms of work take 5 s): failstop discounts the throttled time it reads in cpu.stat, but the \
                 stall budget and the dump timeout must leave room for slow progress",
                &format!(
                    "keep --stall-budget (now {stall} ms) well above the longest wait a throttled peer can cause, or \
                     raise the quota"
                ),
            );
        }
    }
}

/// PID 1 of a PID namespace without an init.
fn check_pid1(r: &mut Report) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    if pid == 1 {
        r.add(
            Status::Warn,
            "pid1",
            "this process is PID 1 of its PID namespace (no init above it)".into(),
            "a program started here is PID 1, where the kernel ignores SIGABRT's default action: failstop ends it \
             with _exit(134) itself, without a core file, and nobody reaps its zombies",
            "run an init as PID 1: docker run --init, tini -- PROGRAM, shareProcessNamespace: true in a pod",
        );
        return;
    }
    let comm = std::fs::read_to_string("/proc/1/comm").map(|c| c.trim().to_string()).unwrap_or_default();
    let nested = status_field("NSpid").is_some_and(|n| n.split_whitespace().count() > 1);
    r.add(
        Status::Ok,
        "pid1",
        format!(
            "this process is not PID 1; PID 1 {}is {}",
            if nested { "of this PID namespace " } else { "" },
            if comm.is_empty() { "unknown" } else { &comm }
        ),
        "SIGABRT ends a program started here with a core file where limits allow",
        "",
    );
}

/// systemd's watchdog variables.
fn check_systemd(r: &mut Report, settings: Option<&failstop::Settings>) {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let wd_pid = std::env::var("WATCHDOG_PID").ok();
    let socket = std::env::var("NOTIFY_SOCKET").ok();
    let off = settings.is_some_and(|s| s.systemd == failstop::Systemd::Off);
    let Some(usec) = usec else {
        r.add(
            Status::Ok,
            "systemd",
            format!(
                "no systemd watchdog asked for (WATCHDOG_USEC unset{})",
                if socket.is_some() { ", NOTIFY_SOCKET set" } else { ", NOTIFY_SOCKET unset" }
            ),
            "nothing to ping; with WatchdogSec= in a unit, failstop's monitor pings systemd's watchdog",
            "",
        );
        return;
    };
    if off {
        r.add(
            Status::Note,
            "systemd",
            format!("WATCHDOG_USEC={usec} but FAILSTOP_SYSTEMD=off"),
            "failstop does not ping: the program must ping systemd's watchdog itself",
            "",
        );
        return;
    }
    // The library's order: WATCHDOG_PID, WATCHDOG_USEC, NOTIFY_SOCKET.
    let fix = "fix the unit (systemd sets these itself), or set FAILSTOP_SYSTEMD=off";
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if let Some(p) = &wd_pid {
        let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let Some(pid) = p.parse::<i32>().ok().filter(|&pid| digits && pid > 0) else {
            let finding = format!("WATCHDOG_PID={p:?} is not a process id");
            r.add(Status::Fail, "systemd", finding, "failstop's start fails on a malformed WATCHDOG_PID", fix);
            return;
        };
        if pid != me {
            r.add(
                Status::Note,
                "systemd",
                format!("WATCHDOG_USEC={usec} is meant for process {pid}, not this one ({me})"),
                "failstop pings only from the process systemd named: the unit's main process",
                "exec the program (failstop run does) so that it is the main process; NotifyAccess=main (the \
                 default) then suffices",
            );
            return;
        }
    }
    let digits = !usec.is_empty() && usec.bytes().all(|b| b.is_ascii_digit());
    let Some(us) = usec.parse::<u64>().ok().filter(|&u| digits && u > 0 && u < u64::MAX) else {
        let finding = format!("WATCHDOG_USEC={usec:?} is not a number of microseconds");
        r.add(Status::Fail, "systemd", finding, "failstop's start fails on a malformed WATCHDOG_USEC", fix);
        return;
    };
    let Some(socket) = socket else {
        r.add(
            Status::Warn,
            "systemd",
            format!("WATCHDOG_USEC={us} without NOTIFY_SOCKET"),
            "failstop cannot reach systemd: no pings, and systemd's watchdog ends the service",
            "run under the unit itself (systemd sets both), or set FAILSTOP_SYSTEMD=off",
        );
        return;
    };
    if let Err(why) = reach_notify_socket(&socket) {
        r.add(
            Status::Fail,
            "systemd",
            format!("WATCHDOG_USEC={us}, but NOTIFY_SOCKET={socket:?} cannot be reached: {why}"),
            "failstop's start fails when it cannot reach the socket to ping",
            fix,
        );
        return;
    }
    let dump_ms = settings.map_or(2000, |s| s.dump_timeout.as_millis() as u64);
    let status = if us / 1000 <= 2 * dump_ms { Status::Warn } else { Status::Ok };
    r.add(
        status,
        "systemd",
        format!("WATCHDOG_USEC={us} and NOTIFY_SOCKET {socket} reachable: failstop pings every {} ms", us / 2000),
        "the pings come from failstop's monitor in the main process (NotifyAccess=main, the default, suffices; \
         NotifyAccess=none drops them); on a verdict they stop and failstop sends WATCHDOG=trigger",
        if status == Status::Warn { "keep WatchdogSec= above 2 x the dump timeout" } else { "" },
    );
}

/// Connects a datagram socket to `NOTIFY_SOCKET` (a path, or `@name` for an
/// abstract one), as failstop's start does; sends nothing.
fn reach_notify_socket(name: &str) -> Result<(), String> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = match name.as_bytes().first() {
        Some(b'/') => SocketAddr::from_pathname(name),
        Some(b'@') if name.len() > 1 => SocketAddr::from_abstract_name(&name.as_bytes()[1..]),
        _ => return Err("not a unix socket path or @abstract name".to_string()),
    }
    .map_err(|e| e.to_string())?;
    let sock = UnixDatagram::unbound().map_err(|e| e.to_string())?;
    sock.connect_addr(&addr).map_err(|e| e.to_string())
}

/// `FAILSTOP_DUMP_PATH`: its directory must take a new file.
fn check_dump_path(r: &mut Report) {
    let Some(path) = std::env::var_os("FAILSTOP_DUMP_PATH").filter(|p| !p.is_empty()) else {
        r.add(
            Status::Ok,
            "dump-path",
            "FAILSTOP_DUMP_PATH unset: dumps go to standard error only".into(),
            "keep the program's stderr (journald and most supervisors do)",
            "",
        );
        return;
    };
    let path = PathBuf::from(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: a NUL-terminated path.
    let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    if writable && dir.is_dir() {
        r.add(
            Status::Ok,
            "dump-path",
            format!("FAILSTOP_DUMP_PATH={}: {} takes new files", path.display(), dir.display()),
            "each dump is also written there, as a new file (never overwritten)",
            "",
        );
    } else {
        r.add(
            Status::Fail,
            "dump-path",
            format!(
                "FAILSTOP_DUMP_PATH={}: {} {}",
                path.display(),
                dir.display(),
                if dir.is_dir() { "is not writable by this user" } else { "does not exist" }
            ),
            "the dump file cannot be written (the dump still goes to stderr)",
            "create the directory, writable by the program's user, or point FAILSTOP_DUMP_PATH elsewhere",
        );
    }
}

/// Where `failstop run` finds the preload.
fn check_preload(r: &mut Report) {
    match crate::run::find_preload() {
        Ok(p) => r.add(
            Status::Ok,
            "preload",
            format!("{} beside this command", p.display()),
            "failstop run puts it in LD_PRELOAD",
            "",
        ),
        Err(why) => r.add(
            Status::Warn,
            "preload",
            why,
            "failstop run needs --preload PATH",
            "install the package (or scripts/install.sh) so that the library sits in PREFIX/lib",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn the_cpu_timer_fires_here() {
        let cpu = cpu_timer_trial(libc::SIGRTMAX() - 3).expect("CPU timer");
        assert!(cpu >= Duration::from_millis(10), "{cpu:?}");
    }
}
