//! The configuration's tests: the builder, the signal parser and every
//! `FAILSTOP_*` variable.

use super::builder::MAX_DURATION;
use super::env::*;
use super::signal::*;
use super::*;
use crate::error::{Error, ErrorKind};
use libc::c_int;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

/// Applies `vars` (name, value) on top of the defaults.
fn apply(vars: &[(&str, &[u8])]) -> Result<Config, Error> {
    apply_os(vars.iter().map(|(n, v)| (OsString::from(n), OsString::from_vec(v.to_vec()))).collect())
}

fn apply_os(vars: Vec<(OsString, OsString)>) -> Result<Config, Error> {
    let names: Vec<OsString> = vars.iter().map(|(n, _)| n.clone()).collect();
    Config::new().apply_env_with(
        |name| vars.iter().find(|(n, _)| n.as_os_str() == name).map(|(_, v)| v.clone()),
        names.into_iter(),
    )
}

fn one(name: &str, value: &str) -> Result<Config, Error> {
    apply(&[(name, value.as_bytes())])
}

/// Asserts `name=value` is rejected with a message naming both and
/// containing `fragment`.
fn rejects(name: &str, value: &str, fragment: &str) {
    let err = one(name, value).expect_err(&format!("{name}={value:?} accepted"));
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let msg = err.message();
    let prefix = format!("{name}={value:?}: ");
    assert!(msg.starts_with(&prefix), "{msg:?} does not start with {prefix:?}");
    assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
    assert!(msg.contains("; allowed: "), "{msg:?} lacks allowed");
}

#[test]
fn defaults() {
    let c = Config::default();
    let s = c.settings();
    assert!(!s.disabled);
    assert_eq!(s.cpu_budget, Duration::from_millis(1000));
    assert_eq!(s.warn_after, Duration::from_millis(100));
    assert_eq!(s.stall_budget, Duration::from_secs(10));
    assert_eq!(s.action, Action::Abort);
    assert_eq!(s.signal, Signal::default_signal());
    assert_eq!(s.signal.number(), libc::SIGRTMAX() - 3);
    assert_eq!(s.dump_path, None);
    assert_eq!(s.dump_timeout, Duration::from_secs(2));
    assert!(!s.abort_under_debugger);
    assert!(s.panic_is_verdict);
    assert_eq!(s.systemd, Systemd::Auto);
    assert!(!s.wall_clock_timers);
    assert!(s.pre_abort_hook.is_none());
    c.validate().unwrap();
    // An empty environment changes nothing.
    let e = apply(&[]).unwrap();
    assert_eq!(format!("{:?}", e.settings()), format!("{:?}", s));
}

#[test]
fn env_var_table_matches_defaults() {
    let names: Vec<&str> = ENV_VARS.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            VAR_DISABLE,
            VAR_CPU_BUDGET_MS,
            VAR_WARN_MS,
            VAR_STALL_BUDGET_MS,
            VAR_POLL_BUDGET_MS,
            VAR_ACTION,
            VAR_SIGNAL,
            VAR_DUMP_PATH,
            VAR_DUMP_TIMEOUT_MS,
            VAR_ABORT_UNDER_DEBUGGER,
            VAR_PANIC_IS_VERDICT,
            VAR_SYSTEMD
        ]
    );
    // Every default but the dump path parses to the code default.
    let vars: Vec<(&str, &[u8])> = ENV_VARS
        .iter()
        .filter(|e| e.name != VAR_DUMP_PATH && e.name != VAR_POLL_BUDGET_MS)
        .map(|e| (e.name, e.default.as_bytes()))
        .collect();
    let c = apply(&vars).unwrap();
    assert_eq!(format!("{:?}", c.settings()), format!("{:?}", Config::new().settings()));
    for v in ENV_VARS {
        assert!(!v.allowed.is_empty() && !v.meaning.is_empty(), "{}", v.name);
    }
}

#[test]
fn setters() {
    fn hook() {}
    let c = Config::new()
        .disabled(true)
        .cpu_budget(Duration::from_secs(3))
        .warn_after(Duration::from_secs(1))
        .stall_budget(Duration::from_secs(60))
        .action(Action::Unhealthy)
        .signal(Signal::SIGPROF)
        .dump_path("/tmp/x")
        .dump_timeout(Duration::from_secs(5))
        .abort_under_debugger(true)
        .systemd(Systemd::Off)
        .wall_clock_timers(true);
    // SAFETY: the hook does nothing.
    let c = unsafe { c.pre_abort_hook(hook) };
    c.validate().unwrap();
    let s = c.settings();
    assert!(s.disabled);
    assert_eq!(s.cpu_budget, Duration::from_secs(3));
    assert_eq!(s.warn_after, Duration::from_secs(1));
    assert_eq!(s.stall_budget, Duration::from_secs(60));
    assert_eq!(s.action, Action::Unhealthy);
    assert_eq!(s.signal, Signal::SIGPROF);
    assert_eq!(s.dump_path.as_deref(), Some(std::path::Path::new("/tmp/x")));
    assert_eq!(s.dump_timeout, Duration::from_secs(5));
    assert!(s.abort_under_debugger);
    assert_eq!(s.systemd, Systemd::Off);
    assert!(s.wall_clock_timers);
    assert!(s.pre_abort_hook.is_some());
}

#[test]
fn validate_rejects_bad_durations() {
    type Set = fn(Config, Duration) -> Config;
    let cases: [(&str, Set); 4] = [
        ("cpu_budget", Config::cpu_budget),
        ("warn_after", Config::warn_after),
        ("stall_budget", Config::stall_budget),
        ("dump_timeout", Config::dump_timeout),
    ];
    for (name, set) in cases {
        let c = set(Config::new(), Duration::ZERO);
        let msg = c.validate().unwrap_err().message().to_string();
        assert!(msg.starts_with(&format!("{name}=0ns: ")), "{msg}");
        assert!(msg.contains("greater than zero"), "{msg}");

        let too_long = MAX_DURATION + Duration::from_nanos(1);
        let c = set(Config::new(), too_long).cpu_budget(Duration::from_secs(86_400));
        let c = if name == "cpu_budget" { set(c, too_long) } else { c };
        let msg = c.validate().unwrap_err().message().to_string();
        assert!(msg.starts_with(&format!("{name}=")), "{msg}");
        assert!(msg.contains("one day"), "{msg}");

        // Exactly one day is fine (warn must stay below the budget).
        let c = set(Config::new().cpu_budget(MAX_DURATION), MAX_DURATION);
        let c = if name == "warn_after" { c.warn_after(Duration::from_secs(1)) } else { c };
        c.validate().unwrap();
    }
    let c = Config::new().warn_after(Duration::from_millis(1000));
    let msg = c.validate().unwrap_err().message().to_string();
    assert!(msg.contains("warn_after=1s") && msg.contains("cpu_budget=1s"), "{msg}");
    Config::new().warn_after(Duration::from_millis(999)).validate().unwrap();
    Config::new().warn_after(Duration::from_nanos(1)).cpu_budget(Duration::from_nanos(2)).validate().unwrap();
}

#[test]
fn validate_rejects_bad_action_and_path() {
    for status in [-1, 0, 256, i32::MIN, i32::MAX] {
        let msg = Config::new().action(Action::Exit(status)).validate().unwrap_err().message().to_string();
        assert!(msg.contains(&format!("action=Exit({status})")), "{msg}");
    }
    let msg = Config::new().action(Action::Exit(0)).validate().unwrap_err().message().to_string();
    assert!(msg.contains("exit status 0 tells a supervisor the service ended cleanly"), "{msg}");
    for status in [1, 2, 255] {
        Config::new().action(Action::Exit(status)).validate().unwrap();
    }
    let msg = Config::new().dump_path("").validate().unwrap_err().to_string();
    assert!(msg.contains("dump_path=\"\": empty path"), "{msg}");
    let msg = Config::new().dump_path("a\0b").validate().unwrap_err().to_string();
    assert!(msg.contains("NUL"), "{msg}");
}

#[test]
fn env_disable() {
    for (v, want) in
        [("1", true), ("true", true), ("TRUE", true), ("True", true), ("0", false), ("false", false), ("FALSE", false)]
    {
        assert_eq!(one(VAR_DISABLE, v).unwrap().settings().disabled, want, "{v}");
    }
    rejects(VAR_DISABLE, "yes", "not a boolean");
    rejects(VAR_DISABLE, "2", "not a boolean");
    rejects(VAR_DISABLE, "-1", "not a boolean");
    rejects(VAR_DISABLE, "", "empty value");
    rejects(VAR_DISABLE, " 1", "whitespace");
    rejects(VAR_DISABLE, "1\n", "whitespace");
}

#[test]
fn env_panic_is_verdict() {
    assert!(one(VAR_PANIC_IS_VERDICT, "1").unwrap().settings().panic_is_verdict);
    assert!(!one(VAR_PANIC_IS_VERDICT, "false").unwrap().settings().panic_is_verdict);
    rejects(VAR_PANIC_IS_VERDICT, "sometimes", "not a boolean");
}

#[test]
fn env_abort_under_debugger() {
    assert!(one(VAR_ABORT_UNDER_DEBUGGER, "1").unwrap().settings().abort_under_debugger);
    assert!(one(VAR_ABORT_UNDER_DEBUGGER, "tRuE").unwrap().settings().abort_under_debugger);
    assert!(!one(VAR_ABORT_UNDER_DEBUGGER, "0").unwrap().settings().abort_under_debugger);
    rejects(VAR_ABORT_UNDER_DEBUGGER, "on", "not a boolean");
    rejects(VAR_ABORT_UNDER_DEBUGGER, "", "empty value");
    rejects(VAR_ABORT_UNDER_DEBUGGER, "01", "not a boolean");
}

fn ms_var_bad_values(name: &str) {
    rejects(name, "soon", "not a decimal integer");
    rejects(name, "1.5", "not a decimal integer");
    rejects(name, "1e3", "not a decimal integer");
    rejects(name, "+5", "not a decimal integer");
    rejects(name, "0x10", "not a decimal integer");
    rejects(name, "0", "greater than zero");
    rejects(name, "000", "greater than zero");
    rejects(name, "-5", "negative");
    rejects(name, "-0", "negative");
    rejects(name, "86400001", "too large");
    rejects(name, "18446744073709551616", "too large");
    rejects(name, "99999999999999999999999999999", "too large");
    rejects(name, "", "empty value");
    rejects(name, " 5", "whitespace");
    rejects(name, "5 ", "whitespace");
    rejects(name, "\u{a0}5", "whitespace");
    rejects(name, "５", "not a decimal integer");
}

#[test]
fn env_cpu_budget() {
    let get = |v: &str| one(VAR_CPU_BUDGET_MS, v).map(|c| c.settings().cpu_budget);
    assert_eq!(get("1000").unwrap(), Duration::from_millis(1000));
    assert_eq!(get("101").unwrap(), Duration::from_millis(101));
    assert_eq!(get("0250").unwrap(), Duration::from_millis(250));
    assert_eq!(get("86400000").unwrap(), MAX_DURATION);
    ms_var_bad_values(VAR_CPU_BUDGET_MS);
    // Not above the default warn_after (100 ms): cross-field error naming both.
    for v in ["100", "50", "1"] {
        let msg = get(v).unwrap_err().message().to_string();
        assert!(msg.starts_with(&format!("{VAR_CPU_BUDGET_MS}={v:?}: ")), "{msg}");
        assert!(msg.contains("warn_after=100ms") && msg.contains(VAR_WARN_MS), "{msg}");
    }
}

#[test]
fn env_warn() {
    let get = |v: &str| one(VAR_WARN_MS, v).map(|c| c.settings().warn_after);
    assert_eq!(get("1").unwrap(), Duration::from_millis(1));
    assert_eq!(get("999").unwrap(), Duration::from_millis(999));
    ms_var_bad_values(VAR_WARN_MS);
    for v in ["1000", "5000", "86400000"] {
        let msg = get(v).unwrap_err().message().to_string();
        assert!(msg.starts_with(&format!("{VAR_WARN_MS}={v:?}: ")), "{msg}");
        assert!(msg.contains("cpu_budget=1s") && msg.contains(VAR_CPU_BUDGET_MS), "{msg}");
    }
}

#[test]
fn env_warn_and_budget_together() {
    let c = apply(&[(VAR_CPU_BUDGET_MS, b"50"), (VAR_WARN_MS, b"10")]).unwrap();
    assert_eq!(c.settings().cpu_budget, Duration::from_millis(50));
    assert_eq!(c.settings().warn_after, Duration::from_millis(10));
    for (b, w) in [("50", "50"), ("50", "60"), ("100", "1000")] {
        let msg =
            apply(&[(VAR_CPU_BUDGET_MS, b.as_bytes()), (VAR_WARN_MS, w.as_bytes())]).unwrap_err().message().to_string();
        assert_eq!(
            msg,
            format!(
                "{VAR_WARN_MS}={w:?}: must be less than {VAR_CPU_BUDGET_MS}={b:?}; \
                 allowed: {VAR_WARN_MS} < {VAR_CPU_BUDGET_MS}"
            )
        );
    }
    // Environment on top of code: the code's warn_after is kept.
    let err = Config::new()
        .warn_after(Duration::from_millis(500))
        .apply_env_with(
            |n| (n == VAR_CPU_BUDGET_MS).then(|| "400".into()),
            [OsString::from(VAR_CPU_BUDGET_MS)].into_iter(),
        )
        .unwrap_err();
    assert!(err.message().contains("warn_after=500ms"), "{err}");
}

#[test]
fn env_stall_budget_and_dump_timeout() {
    let c = one(VAR_STALL_BUDGET_MS, "30000").unwrap();
    assert_eq!(c.settings().stall_budget, Duration::from_secs(30));
    let c = one(VAR_STALL_BUDGET_MS, "1").unwrap();
    assert_eq!(c.settings().stall_budget, Duration::from_millis(1));
    ms_var_bad_values(VAR_STALL_BUDGET_MS);

    let c = one(VAR_DUMP_TIMEOUT_MS, "500").unwrap();
    assert_eq!(c.settings().dump_timeout, Duration::from_millis(500));
    let c = one(VAR_DUMP_TIMEOUT_MS, "86400000").unwrap();
    assert_eq!(c.settings().dump_timeout, MAX_DURATION);
    ms_var_bad_values(VAR_DUMP_TIMEOUT_MS);
}

#[test]
fn env_action() {
    let get = |v: &str| one(VAR_ACTION, v).map(|c| c.settings().action);
    assert_eq!(get("abort").unwrap(), Action::Abort);
    assert_eq!(get("ABORT").unwrap(), Action::Abort);
    assert_eq!(get("unhealthy").unwrap(), Action::Unhealthy);
    assert_eq!(get("warn").unwrap(), Action::Warn);
    rejects(VAR_ACTION, "exit:0", "exit status 0 tells a supervisor the service ended cleanly");
    rejects(VAR_ACTION, "exit:000", "exit status 0");
    assert_eq!(get("exit:70").unwrap(), Action::Exit(70));
    assert_eq!(get("Exit:255").unwrap(), Action::Exit(255));
    assert_eq!(get("exit:007").unwrap(), Action::Exit(7));
    rejects(VAR_ACTION, "kill", "unknown action");
    rejects(VAR_ACTION, "exit", "unknown action");
    rejects(VAR_ACTION, "exit:", "missing exit status");
    rejects(VAR_ACTION, "exit:256", "above 255");
    rejects(VAR_ACTION, "exit:99999999999999999999", "above 255");
    rejects(VAR_ACTION, "exit:-1", "negative");
    rejects(VAR_ACTION, "exit:+1", "not a decimal integer");
    rejects(VAR_ACTION, "exit: 1", "not a decimal integer");
    rejects(VAR_ACTION, "exit:1x", "not a decimal integer");
    rejects(VAR_ACTION, "", "empty value");
    rejects(VAR_ACTION, "abort ", "whitespace");
    // Display round-trips through the parser.
    for a in [Action::Abort, Action::Exit(3), Action::Unhealthy, Action::Warn] {
        assert_eq!(get(&a.to_string()).unwrap(), a);
    }
}

#[test]
fn env_systemd() {
    assert_eq!(one(VAR_SYSTEMD, "auto").unwrap().settings().systemd, Systemd::Auto);
    assert_eq!(one(VAR_SYSTEMD, "off").unwrap().settings().systemd, Systemd::Off);
    assert_eq!(one(VAR_SYSTEMD, "OFF").unwrap().settings().systemd, Systemd::Off);
    rejects(VAR_SYSTEMD, "on", "unknown mode");
    rejects(VAR_SYSTEMD, "0", "unknown mode");
    rejects(VAR_SYSTEMD, "", "empty value");
    for m in [Systemd::Auto, Systemd::Off] {
        assert_eq!(one(VAR_SYSTEMD, &m.to_string()).unwrap().settings().systemd, m);
    }
}

#[test]
fn env_signal() {
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    let get = |v: &str| one(VAR_SIGNAL, v).map(|c| c.settings().signal.number());
    for (v, n) in [
        ("SIGALRM", libc::SIGALRM),
        ("SIGVTALRM", libc::SIGVTALRM),
        ("SIGPROF", libc::SIGPROF),
        ("SIGUSR1", libc::SIGUSR1),
        ("SIGUSR2", libc::SIGUSR2),
        ("SIGRTMIN", rtmin),
        ("SIGRTMIN+0", rtmin),
        ("SIGRTMIN+3", rtmin + 3),
        ("SIGRTMAX", rtmax),
        ("SIGRTMAX-2", rtmax - 2),
        ("14", libc::SIGALRM),
        ("014", libc::SIGALRM),
    ] {
        assert_eq!(get(v).unwrap(), n, "{v}");
    }
    assert_eq!(get(&format!("SIGRTMIN+{}", rtmax - rtmin)).unwrap(), rtmax);
    assert_eq!(get(&format!("SIGRTMAX-{}", rtmax - rtmin)).unwrap(), rtmin);
    assert_eq!(get(&rtmin.to_string()).unwrap(), rtmin);
    assert_eq!(get(&rtmax.to_string()).unwrap(), rtmax);

    rejects(VAR_SIGNAL, "SIGKILL", "SIGKILL cannot be caught");
    rejects(VAR_SIGNAL, "SIGSTOP", "SIGSTOP cannot be caught");
    rejects(VAR_SIGNAL, "SIGSEGV", "SIGSEGV is a synchronous fault signal");
    rejects(VAR_SIGNAL, "SIGBUS", "synchronous fault");
    rejects(VAR_SIGNAL, "SIGILL", "synchronous fault");
    rejects(VAR_SIGNAL, "SIGFPE", "synchronous fault");
    rejects(VAR_SIGNAL, "SIGTRAP", "synchronous fault");
    rejects(VAR_SIGNAL, "SIGSYS", "synchronous fault");
    rejects(VAR_SIGNAL, "SIGABRT", "SIGABRT is used by the abort action");
    rejects(VAR_SIGNAL, "SIGCHLD", "child process");
    rejects(VAR_SIGNAL, "SIGPIPE", "pipes");
    for t in ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] {
        rejects(VAR_SIGNAL, t, "termination request");
    }
    for t in ["SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGCONT"] {
        rejects(VAR_SIGNAL, t, "job control");
    }
    rejects(VAR_SIGNAL, "9", "9 (SIGKILL) cannot be caught");
    rejects(VAR_SIGNAL, "11", "11 (SIGSEGV) is a synchronous fault signal");
    rejects(VAR_SIGNAL, "0", "not a signal");
    rejects(VAR_SIGNAL, "-1", "negative");
    rejects(VAR_SIGNAL, "32", "reserved by the C library");
    rejects(VAR_SIGNAL, &(rtmax + 1).to_string(), "above SIGRTMAX");
    rejects(VAR_SIGNAL, "99999999999999", "above SIGRTMAX");
    rejects(VAR_SIGNAL, "SIGRTMIN+999", "above SIGRTMAX");
    rejects(VAR_SIGNAL, "SIGRTMIN+99999999999999", "out of range");
    rejects(VAR_SIGNAL, "SIGRTMIN+", "not a decimal number");
    rejects(VAR_SIGNAL, "SIGRTMIN-1", "not a signal name");
    rejects(VAR_SIGNAL, "SIGRTMIN+-1", "not a decimal number");
    rejects(VAR_SIGNAL, "SIGRTMAX-999", "below SIGRTMIN");
    rejects(VAR_SIGNAL, "SIGRTMAX+1", "not a signal name");
    rejects(VAR_SIGNAL, "sigalrm", "upper case");
    rejects(VAR_SIGNAL, "ALRM", "SIG prefix");
    rejects(VAR_SIGNAL, "SIGFOO", "not a signal name or number");
    rejects(VAR_SIGNAL, "", "empty value");
    rejects(VAR_SIGNAL, " SIGALRM", "whitespace");
    // Every message says what is allowed.
    let msg = one(VAR_SIGNAL, "SIGKILL").unwrap_err().to_string();
    assert!(msg.contains("allowed: SIGALRM, SIGVTALRM"), "{msg}");
}

#[test]
fn signal_new_and_display() {
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    assert_eq!(Signal::new(libc::SIGALRM).unwrap(), Signal::SIGALRM);
    assert_eq!(Signal::default(), Signal::new(libc::SIGRTMAX() - 3).unwrap());
    for n in [0, -1, c_int::MIN, c_int::MAX, libc::SIGKILL, libc::SIGABRT, rtmax + 1] {
        let err = Signal::new(n).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("allowed:"), "{err}");
    }
    assert_eq!(Signal::SIGALRM.to_string(), "SIGALRM");
    assert_eq!(Signal::new(rtmin).unwrap().to_string(), "SIGRTMIN");
    assert_eq!(Signal::new(rtmin + 3).unwrap().to_string(), "SIGRTMIN+3");
    assert_eq!(Signal::new(rtmax).unwrap().to_string(), "SIGRTMAX");
    // Every allowed signal's name parses back to it.
    for n in 1..=rtmax {
        if let Ok(sig) = Signal::new(n) {
            assert_eq!(Signal::parse(&sig.to_string()), Ok(sig));
            assert_eq!(Signal::parse(&n.to_string()), Ok(sig));
        } else {
            assert!(Signal::parse(&n.to_string()).is_err());
        }
    }
}

#[test]
fn env_dump_path() {
    let c = one(VAR_DUMP_PATH, "/var/log/dump").unwrap();
    assert_eq!(c.settings().dump_path, Some(PathBuf::from("/var/log/dump")));
    // Any bytes but NUL, spaces included, are a path.
    let raw = b" odd \xff path ";
    let c = apply(&[(VAR_DUMP_PATH, raw)]).unwrap();
    assert_eq!(c.settings().dump_path, Some(PathBuf::from(OsString::from_vec(raw.to_vec()))));
    rejects(VAR_DUMP_PATH, "", "empty path");
    rejects(VAR_DUMP_PATH, "a\0b", "NUL");
}

#[test]
fn non_utf8_values_name_the_variable() {
    for &EnvVar { name, .. } in ENV_VARS {
        if name == VAR_DUMP_PATH {
            continue;
        }
        let msg = apply(&[(name, b"1\xff")]).unwrap_err().message().to_string();
        assert!(msg.starts_with(&format!("{name}=\"1\\xFF\": not valid UTF-8; allowed: ")), "{msg}");
    }
}

#[test]
fn unknown_names_are_rejected() {
    let err = apply(&[(VAR_CPU_BUDGET_MS, b"500"), ("FAILSTOP_CPU_BUDGET", b"500")]).unwrap_err();
    let msg = err.message();
    assert!(
        msg.starts_with("FAILSTOP_CPU_BUDGET=\"500\": unknown variable (did you mean FAILSTOP_CPU_BUDGET_MS?)"),
        "{msg}"
    );
    for &EnvVar { name, .. } in ENV_VARS {
        assert!(msg.contains(name), "{msg} lacks {name}");
    }

    let msg = apply(&[("FAILSTOP_", b""), ("FAILSTOP_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", b"x")])
        .unwrap_err()
        .message()
        .to_string();
    assert!(msg.starts_with("FAILSTOP_=\"\": unknown variable (and 1 more"), "{msg}");

    let msg =
        apply_os(vec![(OsString::from_vec(b"FAILSTOP_\xff".to_vec()), "1".into())]).unwrap_err().message().to_string();
    assert!(msg.starts_with("FAILSTOP_\u{fffd}="), "{msg}");

    // Other prefixes are not ours.
    apply(&[("FAILSTOPX", b"1"), ("failstop_cpu", b"1"), ("PATH", b"/bin")]).unwrap();
}

#[test]
fn env_overrides_code() {
    let c = Config::new()
        .cpu_budget(Duration::from_secs(5))
        .action(Action::Warn)
        .apply_env_with(|n| (n == VAR_ACTION).then(|| "exit:3".into()), [OsString::from(VAR_ACTION)].into_iter())
        .unwrap();
    assert_eq!(c.settings().action, Action::Exit(3));
    assert_eq!(c.settings().cpu_budget, Duration::from_secs(5));

    // Invalid code values are caught even when the environment is empty.
    let err = Config::new().stall_budget(Duration::ZERO).apply_env_with(|_| None, std::iter::empty()).unwrap_err();
    assert!(err.message().starts_with("stall_budget=0ns"), "{err}");
}

#[test]
fn edit_distance_works() {
    assert_eq!(edit_distance(b"", b"abc"), 3);
    assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
    assert_eq!(edit_distance(b"same", b"same"), 0);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// Values worth trying: arbitrary text, arbitrary bytes, and
    /// near-misses of the accepted forms.
    fn value() -> impl Strategy<Value = OsString> {
        prop_oneof![
            any::<String>().prop_map(OsString::from),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(OsString::from_vec),
            "[0-9]{1,22}".prop_map(OsString::from),
            "-?[0-9 +]{0,10}".prop_map(OsString::from),
            "(?i)(exit:|abort|warn|unhealthy|auto|off|true|false)[0-9-]{0,5}".prop_map(OsString::from),
            "SIG(RTMIN|RTMAX|ALRM|KILL|USR1)?[+-]?[0-9]{0,12}".prop_map(OsString::from),
        ]
    }

    fn check(name: &str, value: OsString) -> Result<(), TestCaseError> {
        let result = apply_os(vec![(OsString::from(name), value.clone())]);
        match result {
            Ok(config) => prop_assert!(config.validate().is_ok()),
            Err(err) => {
                prop_assert_eq!(err.kind(), ErrorKind::InvalidConfig);
                let prefix = format!("{name}={value:?}: ");
                prop_assert!(err.message().starts_with(&prefix), "{}", err.message());
                prop_assert!(err.message().contains("; allowed: "), "{}", err.message());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn disable(v in value()) { check(VAR_DISABLE, v)?; }
        #[test]
        fn cpu_budget(v in value()) { check(VAR_CPU_BUDGET_MS, v)?; }
        #[test]
        fn warn(v in value()) { check(VAR_WARN_MS, v)?; }
        #[test]
        fn stall_budget(v in value()) { check(VAR_STALL_BUDGET_MS, v)?; }
        #[test]
        fn action(v in value()) { check(VAR_ACTION, v)?; }
        #[test]
        fn signal(v in value()) { check(VAR_SIGNAL, v)?; }
        #[test]
        fn dump_path(v in value()) { check(VAR_DUMP_PATH, v)?; }
        #[test]
        fn dump_timeout(v in value()) { check(VAR_DUMP_TIMEOUT_MS, v)?; }
        #[test]
        fn abort_under_debugger(v in value()) { check(VAR_ABORT_UNDER_DEBUGGER, v)?; }
        #[test]
        fn panic_is_verdict(v in value()) { check(VAR_PANIC_IS_VERDICT, v)?; }
        #[test]
        fn systemd(v in value()) { check(VAR_SYSTEMD, v)?; }

        /// Any FAILSTOP_* name: known ones parse, others are named.
        #[test]
        fn unknown_name(
            suffix in proptest::collection::vec(any::<u8>(), 0..24),
            v in value(),
        ) {
            let mut name = b"FAILSTOP_".to_vec();
            name.extend_from_slice(&suffix);
            let name = OsString::from_vec(name);
            let known = ENV_VARS.iter().any(|e| OsStr::new(e.name) == name);
            match apply_os(vec![(name.clone(), v)]) {
                Ok(config) => {
                    prop_assert!(known);
                    prop_assert!(config.validate().is_ok());
                }
                Err(err) => {
                    let shown = format!("{}=", name.to_string_lossy());
                    prop_assert!(err.message().starts_with(&shown), "{}", err.message());
                }
            }
        }

        /// Arbitrary code durations never panic validation.
        #[test]
        fn validate_never_panics(
            a in any::<u64>(), b in any::<u32>(), c in any::<u64>(), d in any::<u64>(),
            status in any::<i32>(),
        ) {
            let config = Config::new()
                .cpu_budget(Duration::new(a, b % 1_000_000_000))
                .warn_after(Duration::from_nanos(c))
                .stall_budget(Duration::from_millis(d))
                .action(Action::Exit(status));
            let _ = config.validate();
        }
    }
}
