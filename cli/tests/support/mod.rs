//! Shared by the `failstop` command's tests: the command, the preload
//! beside it, the C programs, children with a deadline.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The hard limit for any child.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The `failstop` command cargo built for these tests.
pub fn failstop() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_failstop"))
}

/// The build directory of this test run's profile (`target/<profile>`),
/// where the command is.
pub fn profile_dir() -> PathBuf {
    failstop().parent().expect("profile dir").to_path_buf()
}

/// A scratch directory of this test's own under `target/tmp`.
pub fn scratch(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `libfailstop_preload.so` beside the command (`target/<profile>/`),
/// where `failstop run` looks first. `cargo test -p failstop-cli` does not
/// build another crate's `cdylib`, so the first call runs `cargo build -p
/// failstop-preload` for this profile (cargo releases its lock while tests
/// run); a build failure fails the test.
pub fn preload() -> PathBuf {
    let path = failstop_test_support::c::built_by("failstop-preload", "libfailstop_preload.so");
    assert_eq!(path.parent(), Some(profile_dir().as_path()), "the preload is not beside the command");
    path
}

/// The C compiler: `$CC`, or `cc`.
pub fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Runs a tool the tests need; a missing one fails the test naming the
/// Debian package that has it.
pub fn tool(name: &str, package: &str) -> Command {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(name).is_file());
    assert!(found || Path::new(name).is_file(), "`{name}` not found in PATH: install the Debian package {package}");
    Command::new(name)
}

/// Runs `cmd` to completion, failing the test with its output if it fails.
pub fn check(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cli/tests/c/<name>.c` compiled into `dir/<name>` with `-g` and
/// `extra` flags.
pub fn c_program(name: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = dir.join(name);
    let cc = cc();
    check(
        tool(&cc, "gcc")
            .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-g", "-O0", "-fno-omit-frame-pointer"])
            .args(extra)
            .arg("-o")
            .arg(&out)
            .arg(&src),
    );
    out
}

/// A child's end: status, output and how long it ran.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub pid: u32,
}

impl Ended {
    /// The signal that ended the child, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Everything the child wrote, for assertion messages.
    pub fn transcript(&self) -> String {
        format!("status {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Spawns `cmd` with piped output and waits for it, at most
/// [`CHILD_TIMEOUT`] (then kills it and fails the test).
pub fn run(cmd: &mut Command) -> Ended {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let status = wait_deadline(&mut child, CHILD_TIMEOUT);
    let elapsed = t0.elapsed();
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let Some(status) = status else {
        panic!("{cmd:?} still running after {CHILD_TIMEOUT:?}; killed\n--- stdout\n{stdout}--- stderr\n{stderr}");
    };
    Ended { status, stdout, stderr, elapsed, pid }
}

/// Waits for `child` until `limit`; kills it and returns `None` then.
pub fn wait_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Prints a measured figure, and appends it to `target/tmp/figures.txt`,
/// which `.ci/run` shows at its end.
pub fn figure(line: &str) {
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
    }
}

/// The `pid N` line the C programs print first.
pub fn reported_pid(stdout: &str) -> Option<u32> {
    stdout.lines().find_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
}

/// The `LD_PRELOAD=...` line the C programs print.
pub fn reported_ld_preload(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|l| l.strip_prefix("LD_PRELOAD=")).map(str::to_string)
}
