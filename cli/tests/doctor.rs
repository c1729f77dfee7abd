//! `failstop doctor` in real child processes: here it finds everything
//! failstop needs (exit 0); a bad `FAILSTOP_*` variable, a used-up
//! `RLIMIT_SIGPENDING`, an unwritable dump directory fail it (exit 1); a
//! low limit, PID 1 of a PID namespace and a CPU quota (a cgroup of the
//! test's own) are reported; `--json` parses.

// The workspace's test harness, for its cgroups with a CPU quota.
use failstop_test_support as common;
mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
use support::*;

/// The command with no `FAILSTOP_*` or systemd variable of the test's own
/// environment.
fn doctor() -> Command {
    let mut cmd = Command::new(failstop());
    cmd.arg("doctor");
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("FAILSTOP_") || n.starts_with("WATCHDOG_") || n == "NOTIFY_SOCKET" {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// The line of `topic`, asserting there is exactly one.
fn line<'a>(out: &'a Ended, topic: &str) -> &'a str {
    let mut found =
        out.stdout.lines().filter(|l| l.get(5..).is_some_and(|rest| rest.starts_with(&format!("{topic}: "))));
    let first = found.next().unwrap_or_else(|| panic!("no `{topic}` line:\n{}", out.transcript()));
    assert!(found.next().is_none(), "two `{topic}` lines:\n{}", out.transcript());
    first
}

/// Lowers `RLIMIT_SIGPENDING` of the child to `n` before it execs.
fn sigpending(cmd: &mut Command, n: u64) {
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
            if libc::setrlimit(libc::RLIMIT_SIGPENDING, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn finds_everything_failstop_needs_here() {
    preload();
    let out = run(&mut doctor());
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    for (topic, says) in [
        ("settings", "ok   settings: no FAILSTOP_* variable set"),
        ("proc", "ok   proc: /proc is mounted and readable"),
        ("cpu-timers", "ok   cpu-timers: a timer on this thread's CPU clock (signal "),
        ("sigpending", "RLIMIT_SIGPENDING is "),
        ("ptrace", "ptrace"),
        ("process_vm_readv", "process_vm_readv"),
        ("core", "core_pattern "),
        ("cpu-quota", "cpu-quota: "),
        ("pid1", "ok   pid1: this process is not PID 1"),
        ("systemd", "ok   systemd: no systemd watchdog asked for"),
        ("dump-path", "ok   dump-path: FAILSTOP_DUMP_PATH unset"),
        ("preload", "libfailstop_preload.so beside this command"),
    ] {
        let l = line(&out, topic);
        assert!(l.contains(says), "`{topic}` line does not say {says:?}: {l}");
        assert!(!l.starts_with("fail"), "{l}");
        // Every finding says what it means.
        assert!(l.matches("; ").count() >= 1, "no meaning in: {l}");
    }
    assert!(
        out.stdout.ends_with("failstop: doctor: failstop can do everything it needs here\n")
            || out.stdout.contains("with less than everything"),
        "{}",
        out.transcript()
    );
    assert!(out.stderr.is_empty(), "{}", out.transcript());
}

#[test]
fn a_bad_variable_fails_naming_it() {
    let out = run(doctor().env("FAILSTOP_CPU_BUDGET_MS", "soon"));
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    let l = line(&out, "settings");
    assert!(
        l.starts_with(
            "fail settings: FAILSTOP_CPU_BUDGET_MS=\"soon\": not a decimal integer; allowed: a decimal integer"
        ),
        "{l}"
    );
    assert!(out.stdout.contains("failstop: doctor: something failstop needs is missing"), "{}", out.transcript());
    // A typo in a name too.
    let out = run(doctor().env("FAILSTOP_STAL_BUDGET_MS", "1000"));
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    assert!(line(&out, "settings").contains("(did you mean FAILSTOP_STALL_BUDGET_MS?)"), "{}", out.transcript());
}

#[test]
fn json_parses() {
    let check = r#"
import json, sys
d = json.load(sys.stdin)
assert isinstance(d["ok"], bool)
for f in d["findings"]:
    assert set(f) == {"status", "topic", "finding", "meaning", "action"}, f
    assert f["status"] in ("ok", "note", "warn", "fail"), f
print(d["ok"], ",".join(f["topic"] for f in d["findings"]))
print(",".join(f["status"] for f in d["findings"]))
"#;
    for (var, ok, code) in [(None, "True", 0), (Some(("FAILSTOP_ACTION", "explode\"\\\n")), "False", 1)] {
        let mut cmd = doctor();
        cmd.arg("--json");
        if let Some((n, v)) = var {
            cmd.env(n, v);
        }
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(code), "{}", out.transcript());
        let parsed = tool("python3", "python3")
            .args(["-c", check])
            .stdin(std::fs::File::open(write_tmp("doctor.json", &out.stdout)).unwrap())
            .output()
            .expect("python3");
        let said = String::from_utf8_lossy(&parsed.stdout);
        assert!(
            parsed.status.success(),
            "not valid JSON ({}):\n{}\n{}",
            String::from_utf8_lossy(&parsed.stderr),
            out.stdout,
            said
        );
        assert!(said.starts_with(&format!("{ok} settings,proc,cpu-timers,sigpending,ptrace,")), "{said}");
    }
}

/// Signals queued now by this user (all its processes), from `SigQ` of
/// `/proc/self/status`: what counts against `RLIMIT_SIGPENDING` besides
/// the command's own timers.
fn queued_by_this_user() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigQ:")?.trim().split('/').next()?.parse().ok())
        .expect("a SigQ line in /proc/self/status")
}

#[test]
fn a_low_sigpending_limit_is_reported() {
    // Room for a few hundred timers above what this user's other processes
    // (other tests, on a shared machine) hold: below the 1024 the doctor
    // warns under, far enough above zero not to run out meanwhile.
    let limit = queued_by_this_user() + 300;
    let mut cmd = doctor();
    sigpending(&mut cmd, limit);
    let out = run(&mut cmd);
    let l = line(&out, "sigpending");
    assert!(l.starts_with(&format!("warn sigpending: RLIMIT_SIGPENDING is {limit} (hard {limit})")), "{l}");
    assert!(l.contains("ulimit -i"), "{l}");
    assert_eq!(out.status.code(), Some(0), "a low limit is a warning:\n{}", out.transcript());

    // None at all: no timer can be made, failstop cannot work.
    let mut cmd = doctor();
    sigpending(&mut cmd, 0);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    assert!(line(&out, "sigpending").starts_with("fail sigpending: RLIMIT_SIGPENDING is 0"), "{}", out.transcript());
    let timers = line(&out, "cpu-timers");
    assert!(timers.starts_with("fail cpu-timers: timer_create(CLOCK_THREAD_CPUTIME_ID) failed"), "{timers}");
}

#[test]
fn pid_1_of_a_pid_namespace_is_reported() {
    let out = run(tool("unshare", "util-linux")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(failstop())
        .arg("doctor")
        .env_remove("FAILSTOP_CPU_BUDGET_MS"));
    let l = line(&out, "pid1");
    assert!(l.starts_with("warn pid1: this process is PID 1 of its PID namespace"), "{}", out.transcript());
    assert!(l.contains("_exit(134)") && l.contains("docker run --init"), "{l}");
    assert_eq!(out.status.code(), Some(0), "PID 1 is a warning:\n{}", out.transcript());
}

#[test]
fn an_unwritable_dump_path_and_systemd_variables() {
    let dir = scratch("doctor");
    let out = run(doctor().env("FAILSTOP_DUMP_PATH", dir.join("missing/dump-%p.txt")));
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    assert!(line(&out, "dump-path").starts_with("fail dump-path: FAILSTOP_DUMP_PATH="), "{}", out.transcript());
    assert!(line(&out, "dump-path").contains("does not exist"), "{}", out.transcript());

    let out = run(doctor().env("FAILSTOP_DUMP_PATH", dir.join("dump-%p.txt")));
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    assert!(line(&out, "dump-path").starts_with("ok   dump-path:"), "{}", out.transcript());

    // A real notify socket, as systemd's.
    let socket = dir.join("notify");
    let _listener = std::os::unix::net::UnixDatagram::bind(&socket).expect("bind a notify socket");
    let socket = socket.to_str().expect("utf-8 path").to_string();
    let out = run(doctor().env("WATCHDOG_USEC", "30000000").env("NOTIFY_SOCKET", &socket));
    let l = line(&out, "systemd");
    assert!(
        l.starts_with(&format!(
            "ok   systemd: WATCHDOG_USEC=30000000 and NOTIFY_SOCKET {socket} reachable: failstop pings every 15000 ms"
        )),
        "{l}"
    );
    assert!(l.contains("NotifyAccess=main"), "{l}");
    let out = run(doctor().env("WATCHDOG_USEC", "2000000").env("NOTIFY_SOCKET", &socket));
    assert!(line(&out, "systemd").starts_with("warn systemd:"), "{}", out.transcript());
    assert!(line(&out, "systemd").contains("above 2 x the dump timeout"), "{}", out.transcript());
    // A socket nobody listens on: failstop's start would fail.
    let out = run(doctor().env("WATCHDOG_USEC", "30000000").env("NOTIFY_SOCKET", dir.join("nobody")));
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    assert!(line(&out, "systemd").contains("cannot be reached: No such file or directory"), "{}", out.transcript());
    // Meant for another process (the unit's main process is not this one).
    let out = run(doctor().env("WATCHDOG_USEC", "30000000").env("WATCHDOG_PID", "1").env("NOTIFY_SOCKET", &socket));
    let l = line(&out, "systemd");
    assert!(l.starts_with("note systemd: WATCHDOG_USEC=30000000 is meant for process 1, not this one"), "{l}");
    assert!(l.contains("failstop run does"), "{l}");
    // Malformed: failstop's start would fail.
    let out = run(doctor().env("WATCHDOG_USEC", "10s").env("NOTIFY_SOCKET", &socket));
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    assert!(
        line(&out, "systemd").starts_with("fail systemd: WATCHDOG_USEC=\"10s\" is not a number of microseconds"),
        "{}",
        out.transcript()
    );
    // Unless failstop is told to leave systemd alone.
    let out = run(doctor()
        .env("WATCHDOG_USEC", "10s")
        .env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("FAILSTOP_SYSTEMD", "off"));
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    assert!(
        line(&out, "systemd").starts_with("note systemd: WATCHDOG_USEC=10s but FAILSTOP_SYSTEMD=off"),
        "{}",
        out.transcript()
    );
}

fn write_tmp(name: &str, text: &str) -> std::path::PathBuf {
    let p = scratch("json").join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_cpu_quota_is_reported() {
    // A fifth of a CPU, on the cgroup the command runs in.
    let cg = common::cgroup::Cgroup::with_cpu_quota(20_000, 100_000);
    let out = cg.wrap(common::Spec::program(failstop(), &["doctor"])).run();
    let stdout = out.stdout();
    let l = stdout
        .lines()
        .find(|l| l.get(5..).is_some_and(|r| r.starts_with("cpu-quota: ")))
        .unwrap_or_else(|| panic!("no cpu-quota line:\n{}", out.describe()));
    assert!(l.starts_with("warn cpu-quota: a CPU quota of 0.20 CPUs in force at "), "{l}");
    assert!(l.contains(&cg.dir.display().to_string()), "{l} does not name {:?}", cg.dir);
    assert!(l.contains("CPU budgets count CPU time and are unaffected"), "{l}");
    out.assert_exit(0);
}
