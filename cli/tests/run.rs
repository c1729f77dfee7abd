//! `failstop run` in real child processes: a spinning event loop started
//! through the command ends by `SIGABRT` with failstop's verdict; a bad
//! setting stops the command before the program starts; the program
//! replaces the command (same PID); an existing `LD_PRELOAD` is kept.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// The generous bound for "caught": the 300 ms budget, the dump and the
/// start of a debug build, on two noisy cores.
const CATCH_BOUND: Duration = Duration::from_secs(20);

fn spin_loop(dir: &Path) -> PathBuf {
    c_program("spin_loop", dir, &[])
}

#[test]
fn a_spinning_loop_ends_by_sigabrt_with_the_verdict() {
    preload();
    let dir = scratch("spin");
    let program = spin_loop(&dir);
    let end = run(Command::new(failstop())
        .args(["run", "--cpu-budget", "300ms", "--warn-after", "100ms", "--dump-timeout", "10s", "--"])
        .arg(&program)
        .env_remove("LD_PRELOAD"));
    assert_eq!(end.signal(), Some(libc::SIGABRT), "not ended by SIGABRT:\n{}", end.transcript());
    assert!(end.elapsed < CATCH_BOUND, "took {:?} (bound {CATCH_BOUND:?}):\n{}", end.elapsed, end.transcript());
    let verdict = end
        .stderr
        .lines()
        .find(|l| l.starts_with("failstop: stuck: thread \"spin_loop\""))
        .unwrap_or_else(|| panic!("no stuck verdict on stderr:\n{}", end.transcript()));
    assert!(verdict.contains("(cpu_budget 300 ms,"), "the option's budget is not the one used: {verdict}");
    // The same process: the verdict names the PID the command was spawned as.
    assert_eq!(reported_pid(&end.stdout), Some(end.pid), "{}", end.transcript());
    assert!(verdict.ends_with(&format!("process {} \"spin_loop\"", end.pid)), "{verdict}");
    // The in-process symbolizer names the spin (the program has -g).
    assert!(end.stderr.contains("spin_forever at "), "{}", end.transcript());
    figure(&format!("failstop run --cpu-budget 300ms, spinning C loop: SIGABRT after {:?}", end.elapsed));
}

#[test]
fn a_bad_value_stops_the_command_before_the_program_starts() {
    let dir = scratch("bad");
    let program = spin_loop(&dir);
    let marker = dir.join("started");
    // (arguments, a variable, what the message must say)
    type Case<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: &[Case] = &[
        (
            &["--cpu-budget", "5x"],
            None,
            &["--cpu-budget \"5x\": unknown unit; allowed: a number with a unit, ms, s or min"],
        ),
        (&["--cpu-budget", "300"], None, &["--cpu-budget \"300\": no unit"]),
        (&["--stall-budget=2days"], None, &["--stall-budget \"2days\": unknown unit"]),
        (&["--dump-timeout", "0ms"], None, &["--dump-timeout \"0ms\": must be greater than zero"]),
        (
            &["--action", "explode"],
            None,
            &["--action \"explode\" (FAILSTOP_ACTION=\"explode\"): unknown action; allowed: abort, exit:N"],
        ),
        (&["--action", "exit:0"], None, &["--action \"exit:0\"", "allowed: abort, exit:N (N from 1 to 255)"]),
        (&["--signal", "SIGKILL"], None, &["--signal \"SIGKILL\" (FAILSTOP_SIGNAL=\"SIGKILL\")", "allowed:"]),
        (
            &["--cpu-budget", "1s", "--warn-after", "2s"],
            None,
            &["--warn-after \"2s\" (FAILSTOP_WARN_MS=\"2000\"): must be less than --cpu-budget \"1s\""],
        ),
        (&["--disable=maybe"], None, &["--disable \"maybe\" (FAILSTOP_DISABLE=\"maybe\"): not a boolean"]),
        (&["--systemd", "on"], None, &["--systemd \"on\" (FAILSTOP_SYSTEMD=\"on\"): unknown mode; allowed: auto, off"]),
        (&["--cpu-bugdet", "1s"], None, &["unknown option --cpu-bugdet; allowed: --cpu-budget"]),
        (
            &[],
            Some(("FAILSTOP_CPU_BUDGET_MS", "soon")),
            &["FAILSTOP_CPU_BUDGET_MS=\"soon\": not a decimal integer", "(from the environment)"],
        ),
        (
            &[],
            Some(("FAILSTOP_ACTON", "warn")),
            &["FAILSTOP_ACTON=\"warn\": unknown variable (did you mean FAILSTOP_ACTION?)"],
        ),
        (
            &["--preload", "/nonexistent/libfailstop_preload.so"],
            None,
            &["--preload /nonexistent/libfailstop_preload.so: cannot use it"],
        ),
    ];
    for (args, var, wanted) in cases {
        let mut cmd = Command::new(failstop());
        cmd.arg("run").args(*args).arg("--").arg(&program).arg("--marker").arg(&marker).arg("--exit");
        if let Some((name, value)) = var {
            cmd.env(name, value);
        }
        let end = run(&mut cmd);
        assert_eq!(end.status.code(), Some(2), "{args:?} {var:?}: not exit status 2:\n{}", end.transcript());
        for w in *wanted {
            assert!(end.stderr.contains(w), "{args:?} {var:?}: stderr does not say {w:?}:\n{}", end.transcript());
        }
        assert!(
            end.stderr.contains("failstop: run: the program was not started") || end.stderr.contains("unknown option"),
            "{}",
            end.transcript()
        );
        assert!(end.stdout.is_empty(), "{args:?}: the program wrote:\n{}", end.transcript());
        assert!(!marker.exists(), "{args:?} {var:?}: the program started (marker {marker:?} exists)");
    }
    // The same command with good values starts it.
    let end = run(Command::new(failstop())
        .args(["run", "--cpu-budget", "1s", "--action", "exit:3", "--"])
        .arg(&program)
        .arg("--marker")
        .arg(&marker)
        .arg("--exit"));
    assert_eq!(end.status.code(), Some(0), "{}", end.transcript());
    assert!(marker.exists(), "the program did not start:\n{}", end.transcript());
}

#[test]
fn the_program_replaces_the_command() {
    preload();
    let dir = scratch("exec");
    let program = spin_loop(&dir);
    let end = run(Command::new(failstop()).args(["run", "--"]).arg(&program).arg("--exit").env_remove("LD_PRELOAD"));
    assert_eq!(end.status.code(), Some(0), "{}", end.transcript());
    assert_eq!(reported_pid(&end.stdout), Some(end.pid), "not exec'd in place:\n{}", end.transcript());
    let ours = std::fs::canonicalize(preload()).unwrap();
    assert_eq!(reported_ld_preload(&end.stdout).as_deref(), ours.to_str(), "{}", end.transcript());

    // And what that costs: the command's start and exec, against the
    // program started with LD_PRELOAD directly (median of 15 each).
    let median = |cmd: &mut dyn FnMut() -> Command| {
        let mut times: Vec<Duration> = (0..15)
            .map(|_| {
                let t0 = Instant::now();
                let st = cmd().stdout(std::process::Stdio::null()).status().expect("spawn");
                assert!(st.success());
                t0.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    let via_command = median(&mut || {
        let mut c = Command::new(failstop());
        c.args(["run", "--"]).arg(&program).args(["--exit", "--waits", "0"]);
        c
    });
    let direct = median(&mut || {
        let mut c = Command::new(&program);
        c.args(["--exit", "--waits", "0"]).env("LD_PRELOAD", &ours);
        c
    });
    figure(&format!(
        "failstop run exec overhead (debug build): median {via_command:?} through the command, {direct:?} with \
         LD_PRELOAD directly ({:?} more)",
        via_command.saturating_sub(direct)
    ));
}

#[test]
fn an_existing_ld_preload_is_kept_behind_ours() {
    preload();
    let dir = scratch("keep");
    let program = spin_loop(&dir);
    // Another preload library, which says when it is loaded.
    let src = dir.join("other.c");
    std::fs::write(
        &src,
        "#include <unistd.h>\n\
         __attribute__((constructor)) static void said(void) {\n\
         static const char m[] = \"other preload loaded\\n\";\n\
         (void)!write(2, m, sizeof m - 1);\n}\n",
    )
    .unwrap();
    let other = dir.join("libother.so");
    check(tool(&cc(), "gcc").args(["-shared", "-fPIC", "-o"]).arg(&other).arg(&src));
    // An explicit --preload, given as a relative path (made absolute).
    let ours = std::fs::canonicalize(preload()).unwrap();
    let relative = pathdiff(&ours, &dir);
    let end = run(Command::new(failstop())
        .current_dir(&dir)
        .arg("run")
        .arg("--preload")
        .arg(&relative)
        .arg("--")
        .arg(&program)
        .arg("--exit")
        .env("LD_PRELOAD", format!("{} {}", other.display(), "/stale/libfailstop_preload.so")));
    assert_eq!(end.status.code(), Some(0), "{}", end.transcript());
    assert_eq!(
        reported_ld_preload(&end.stdout),
        Some(format!("{}:{}", ours.display(), other.display())),
        "ours first, the other kept, the stale copy of ours dropped:\n{}",
        end.transcript()
    );
    assert!(end.stderr.contains("other preload loaded"), "the other library was not loaded:\n{}", end.transcript());
}

#[test]
fn a_program_the_preload_cannot_reach_is_refused() {
    let dir = scratch("static");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/spin_loop.c");
    let program = dir.join("spin_static");
    check(tool(&cc(), "gcc").args(["-static", "-o"]).arg(&program).arg(&src));
    let marker = dir.join("started");
    let end =
        run(Command::new(failstop()).args(["run", "--"]).arg(&program).arg("--marker").arg(&marker).arg("--exit"));
    assert_eq!(end.status.code(), Some(2), "{}", end.transcript());
    assert!(end.stderr.contains("statically linked"), "{}", end.transcript());
    assert!(!marker.exists(), "the program started");

    // Set-user-ID to another user: the loader would ignore LD_PRELOAD.
    let setuid = spin_loop(&dir);
    let c_path = std::ffi::CString::new(setuid.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; chown and chmod have no other preconditions.
    let (owned, moded) = unsafe { (libc::chown(c_path.as_ptr(), 65534, 65534), libc::chmod(c_path.as_ptr(), 0o4755)) };
    assert!(
        owned == 0 && moded == 0,
        "chown/chmod {setuid:?}: {} (this test needs root)",
        std::io::Error::last_os_error()
    );
    let end = run(Command::new(failstop()).args(["run", "--"]).arg(&setuid).arg("--marker").arg(&marker).arg("--exit"));
    assert_eq!(end.status.code(), Some(2), "{}", end.transcript());
    assert!(
        end.stderr.contains("set-user-ID or set-group-ID: the dynamic loader would ignore LD_PRELOAD"),
        "{}",
        end.transcript()
    );
    assert!(!marker.exists(), "the set-user-ID program started");
}

/// `to` relative to `from` (both absolute), with `..` as needed.
fn pathdiff(to: &Path, from: &Path) -> PathBuf {
    let to: Vec<_> = to.components().collect();
    let from: Vec<_> = from.components().collect();
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}
