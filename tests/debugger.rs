//! Under a debugger (`TracerPid` set), a fatal verdict is reported and the
//! gate closed, but the process is not ended, unless
//! `FAILSTOP_ABORT_UNDER_DEBUGGER=1`.
//!
//! The test process is the debugger: it attaches to the child's main thread
//! with `PTRACE_SEIZE` (which sets `TracerPid` without stopping it) and
//! passes every signal through, as gdb does with `SIGALRM`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[inline(never)]
fn spin_under_debugger() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn scenario() {
    let config = failstop::Config::new().cpu_budget(Duration::from_millis(300)).with_env().expect("config");
    let _wd = failstop::start(config).expect("start");
    std::thread::spawn(|| {
        let h = failstop::register("spinner").expect("register");
        // Wait until the parent attached (it says so by closing our stdin).
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        h.touch();
        spin_under_debugger();
    });
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if !failstop::healthy() {
            println!("GATE CLOSED");
            std::thread::sleep(Duration::from_millis(1500));
            println!("STILL ALIVE");
        }
    }
}

#[expect(
    clippy::zombie_processes,
    reason = "reaped with waitpid(__WALL): the tracee is reported there, not to Child::wait"
)]
/// Runs the child under our "debugger"; returns how it ended (None: still
/// alive after `watch`, then killed), its stdout and its stderr.
fn run_traced(abort_under_debugger: bool, watch: Duration) -> (Option<std::process::ExitStatus>, String, String) {
    let dir = std::env::temp_dir().join(format!("failstop-dbg-{}-{abort_under_debugger}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let err_path = dir.join("stderr");
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.args(["--exact", "debugger_attached", "--nocapture", "--test-threads=1"])
        .env("FSTEST_SCENARIO", "debugger")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    if abort_under_debugger {
        cmd.env("FAILSTOP_ABORT_UNDER_DEBUGGER", "1");
    }
    let mut child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    // A child that never says READY must fail the test, not hang it.
    let guard = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        // SAFETY: signalling our own child (a no-op if it is gone and reaped).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    drop(guard);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stdout = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        stdout.push_str(&line);
        // The harness prints "test debugger_attached ... " on the same line.
        if line.contains("READY") {
            break;
        }
        line.clear();
    }
    // SAFETY: attaching to our own child's main thread; SEIZE does not stop it.
    let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
    assert_eq!(rc, 0, "PTRACE_SEIZE: {}", std::io::Error::last_os_error());
    drop(child.stdin.take()); // let the spinner start
    let t0 = Instant::now();
    let mut ended = None;
    while t0.elapsed() < watch {
        let mut status = 0;
        // SAFETY: waiting for our own traced child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
        if r == pid {
            if libc::WIFSTOPPED(status) {
                // Pass the signal through, as a debugger does for SIGALRM.
                let sig = libc::WSTOPSIG(status);
                let pass = if sig == libc::SIGTRAP || sig == libc::SIGSTOP { 0 } else { sig };
                // SAFETY: resuming our tracee.
                unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, pass) };
                continue;
            }
            ended = Some(std::process::ExitStatus::from_raw(status));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if ended.is_none() {
        let _ = child.kill();
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    stdout.push_str(&rest);
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (ended, stdout, stderr)
}

#[test]
fn debugger_attached() {
    if std::env::var("FSTEST_SCENARIO").is_ok() {
        scenario();
    }
    // Reported, gate closed, not ended.
    let (ended, stdout, stderr) = run_traced(false, Duration::from_secs(12));
    assert!(ended.is_none(), "ended under a debugger: {ended:?}\n{stderr}");
    assert!(stderr.contains("failstop: stuck: thread \"spinner\""), "{stderr}");
    assert!(stderr.contains("a debugger is attached (TracerPid"), "{stderr}");
    assert!(stdout.contains("GATE CLOSED") && stdout.contains("STILL ALIVE"), "{stdout}");

    // Allowed to end it.
    let (ended, _, stderr) = run_traced(true, Duration::from_secs(30));
    let ended = ended.unwrap_or_else(|| panic!("not ended with FAILSTOP_ABORT_UNDER_DEBUGGER=1:\n{stderr}"));
    assert_eq!(ended.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(!stderr.contains("a debugger is attached"), "{stderr}");
}
