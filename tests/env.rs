//! FAILSTOP_* variables through `start_from_env()` in child processes (the
//! environment is global).

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, gettid, say_stats, spawn_spinner};
use std::time::Duration;

/// The child: start from the environment, report the error if any.
fn scenario_start_from_env() {
    match failstop::start_from_env() {
        Ok(_wd) => say!("started"),
        Err(e) => {
            say!("kind {:?}", e.kind());
            say!("message {e}");
        }
    }
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    if common::scenario().is_some() {
        scenario_start_from_env();
        common::child_exit(0);
    }
    let cases: &[(&str, &str)] = &[
        ("FAILSTOP_DISABLE", "yes"),
        ("FAILSTOP_DISABLE", "2"),
        ("FAILSTOP_CPU_BUDGET_MS", "0"),
        ("FAILSTOP_CPU_BUDGET_MS", "soon"),
        ("FAILSTOP_CPU_BUDGET_MS", "86400001"),
        ("FAILSTOP_WARN_MS", "-5"),
        ("FAILSTOP_WARN_MS", "1.5"),
        ("FAILSTOP_STALL_BUDGET_MS", "0"),
        ("FAILSTOP_STALL_BUDGET_MS", " 100"),
        ("FAILSTOP_ACTION", "kill"),
        ("FAILSTOP_ACTION", "exit:256"),
        // A fail-stop must not look like a clean exit to a supervisor.
        ("FAILSTOP_ACTION", "exit:0"),
        ("FAILSTOP_SIGNAL", "SIGKILL"),
        ("FAILSTOP_SIGNAL", "SIGSEGV"),
        ("FAILSTOP_DUMP_PATH", ""),
        ("FAILSTOP_DUMP_TIMEOUT_MS", "0"),
        ("FAILSTOP_DUMP_TIMEOUT_MS", "abc"),
        ("FAILSTOP_ABORT_UNDER_DEBUGGER", "maybe"),
        ("FAILSTOP_ABORT_UNDER_DEBUGGER", ""),
        ("FAILSTOP_SYSTEMD", "on"),
        ("FAILSTOP_SYSTEMD", "x"),
        // Unknown names are errors too (a typo must not be ignored).
        ("FAILSTOP_CPU_BUDGET", "500"),
    ];
    let mut failures = Vec::new();
    for &(name, value) in cases {
        let o = Spec::scenario("bad_values_name_the_variable_and_the_value", "env").env(name, value).run();
        o.assert_exit(0);
        if o.has("started") {
            failures.push(format!("{name}={value:?}: start_from_env succeeded"));
            continue;
        }
        let kind = o.value("kind");
        let msg = o.value("message");
        let shown = format!("{name}={value:?}");
        if kind != "InvalidConfig" || !msg.starts_with("failstop: ") || !msg.contains(&shown) {
            failures.push(format!("{name}={value:?}: kind {kind}, message {msg:?} (expected it to contain {shown})"));
        }
    }
    assert!(failures.is_empty(), "bad messages:\n{}", failures.join("\n"));
}

#[test]
fn warn_not_below_budget_names_both_variables() {
    if common::scenario().is_some() {
        scenario_start_from_env();
        common::child_exit(0);
    }
    let o = Spec::scenario("warn_not_below_budget_names_both_variables", "env")
        .env("FAILSTOP_CPU_BUDGET_MS", "50")
        .env("FAILSTOP_WARN_MS", "100")
        .run();
    o.assert_exit(0);
    let msg = o.value("message");
    assert!(msg.contains("FAILSTOP_WARN_MS=\"100\"") && msg.contains("FAILSTOP_CPU_BUDGET_MS=\"50\""), "{msg}");
}

#[test]
fn good_values_apply() {
    if common::scenario().is_some() {
        let _wd = failstop::start_from_env().expect("start_from_env");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("good_values_apply", "env-good")
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_ACTION", "exit:9")
        .env("FAILSTOP_SIGNAL", "SIGRTMIN+2")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
        .run();
    o.assert_exit(9);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    Dump::parse(&o.stderr).assert_stuck("spinner", o.tid("spinner"), "exit:9", "spin_here_forever");
}

#[test]
fn disable_watches_nothing() {
    if common::scenario().is_some() {
        let _wd = failstop::start_from_env().expect("start_from_env with FAILSTOP_DISABLE=1");
        let t = std::thread::spawn(|| {
            let h = failstop::register("spinner").expect("register while disabled");
            say!("tid spinner {}", gettid());
            h.touch();
            say!("spin-start");
            common::spin_for_cpu(Duration::from_secs(2));
            h.touch();
            say!("spin-end");
        });
        t.join().unwrap();
        say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("disable_watches_nothing", "disabled")
        .env("FAILSTOP_DISABLE", "1")
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .run();
    o.assert_exit(0);
    assert!(o.has("spin-end"), "{}", o.describe());
    o.assert_no_verdict();
    assert!(!o.stderr.contains("failstop: warning"), "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.stat("warnings"), 0, "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
}

/// A set-user-ID program (secure mode, `AT_SECURE`) does not read the
/// environment, which belongs to a less trusted caller: a bad value that
/// fails the same program's start without the bit is ignored, one stderr
/// line names it, and the configuration set in code applies.
#[test]
fn secure_mode_does_not_read_the_environment() {
    if common::scenario().is_some() {
        let c = failstop::Config::new().cpu_budget(Duration::from_millis(700)).with_env();
        match c {
            Ok(c) => say!("cpu_budget {}", c.settings().cpu_budget.as_millis()),
            Err(e) => say!("message {e}"),
        }
        // SAFETY: getauxval has no preconditions.
        say!("secure {}", unsafe { libc::getauxval(libc::AT_SECURE) });
        common::child_exit(0);
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test makes a set-user-ID copy of itself: run it as root");
    let name = "secure_mode_does_not_read_the_environment";
    // A copy of this test binary owned by `nobody` with the set-user-ID bit,
    // in a directory `nobody` can enter.
    let base = [std::env::temp_dir(), std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))]
        .into_iter()
        .find(|d| !nosuid(d))
        .expect("neither the temporary directory nor target/tmp allows set-user-ID programs (nosuid mounts)");
    let dir = base.join(format!("failstop-secure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("env-setuid");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let path = std::ffi::CString::new(copy.to_str().unwrap()).unwrap();
    // SAFETY: valid C string; 65534 is `nobody`.
    assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let run = |program: std::path::PathBuf| {
        let args = [name, "--exact", "--nocapture", "--test-threads=1"];
        Spec::program(program, &args)
            .env("FSTEST_SCENARIO", name)
            .env("FAILSTOP_CPU_BUDGET_MS", "soon")
            .env("FAILSTOP_WARN_MS", "100")
            .run()
    };
    let plain = run(std::env::current_exe().unwrap());
    let secure = run(copy.clone());
    let _ = std::fs::remove_dir_all(&dir);
    plain.assert_exit(0);
    secure.assert_exit(0);
    assert_eq!(plain.value("secure"), "0", "{}", plain.describe());
    assert!(plain.value("message").contains("FAILSTOP_CPU_BUDGET_MS=\"soon\""), "{}", plain.describe());
    assert_eq!(secure.value("secure"), "1", "the copy did not run in secure mode\n{}", secure.describe());
    assert_eq!(secure.value("cpu_budget"), "700", "the code's setting must apply\n{}", secure.describe());
    let line = secure.stderr.lines().find(|l| l.starts_with("failstop: secure mode")).unwrap_or_default();
    assert!(
        line.contains("the environment is not read")
            && line.contains("FAILSTOP_CPU_BUDGET_MS")
            && line.contains("FAILSTOP_WARN_MS"),
        "no line naming the ignored variables\n{}",
        secure.describe()
    );
}

/// Whether the file system of `dir` ignores set-user-ID bits.
fn nosuid(dir: &std::path::Path) -> bool {
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: statvfs is plain data; a valid path and out-pointer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::statvfs(path.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_NOSUID != 0 }
}
