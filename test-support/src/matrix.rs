//! The fault matrix's checker (`tests/fault_matrix.rs`, `tests/locks.rs`).
//!
//! A fault scenario runs in a child process: it registers its threads,
//! prints `SCENARIO tid <name> <tid>` for each thread that may be blamed,
//! then `SCENARIO fault-start <ns>` (its CLOCK_MONOTONIC, see
//! [`fault_start`]) the moment the fault begins. [`check`] then asserts
//! that the child ended by `SIGABRT` after exactly one verdict of the
//! expected kind naming one of the expected threads, with the whole dump
//! written, and that the verdict came within the stated bound. The time to
//! detection is the dump's `verdict at CLOCK_MONOTONIC` minus the fault's
//! start (the same clock in both processes). Each check prints one
//! `MATRIX` line with the figures, which RELIABILITY.md collects.

use super::{Outcome, Spec};
use std::time::Duration;

/// The stall budget of the matrix's children.
pub const STALL: Duration = Duration::from_secs(1);
/// From the fault's start to the end of the process: detection, a dump
/// with a 10 s deadline (symbolizing a debug build on a loaded machine),
/// the abort.
pub const END_BOUND: Duration = Duration::from_secs(25);

/// The verdict kinds, as the dump's first line names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `stuck`, reached in the culprit's own timer handler.
    Stuck,
    /// `stuck`, reached by the monitor: failstop's handler cannot run on
    /// the culprit (the verdict line says so).
    Deaf,
    /// `blocked`, reached by the monitor.
    Blocked,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Stuck | Kind::Deaf => "stuck",
            Kind::Blocked => "blocked",
        }
    }

    /// The verdict's expected time from the fault's start, for a fault that
    /// begins right after the culprit's last progress mark (the `stuck`
    /// rules count CPU time, which a spinning thread gets at most at wall
    /// speed). What a check asserts is this plus a generous allowance for
    /// a loaded two-core machine.
    pub fn expected(self) -> Duration {
        let budget = super::BUDGET;
        let period = timer_period();
        // The monitor's period: a 64th of the stall budget, at most 100 ms.
        let monitor = (STALL / 64).min(Duration::from_millis(100));
        match self {
            Kind::Stuck => budget + period,
            // `cpu_budget` + max(2 periods, 50 ms) of CPU from the deaf
            // window's start: the monitor's first look after the last
            // progress, a quarter of the stall budget later; seen at its
            // look then, at most a monitor period late.
            Kind::Deaf => STALL / 4 + budget + (2 * period).max(Duration::from_millis(50)) + monitor,
            // The stall budget plus the epoch's resolution and a look's
            // lateness (a monitor period and a half).
            Kind::Blocked => STALL + monitor * 3 / 2,
        }
    }

    /// The bound a check asserts.
    pub fn bound(self) -> Duration {
        self.expected() + Duration::from_secs(3)
    }
}

/// The children's timer period: the budget in at least 32 equal parts,
/// none longer than `warn_after`.
fn timer_period() -> Duration {
    let parts = 32u32.max(super::BUDGET.as_nanos().div_ceil(super::WARN.as_nanos()) as u32);
    super::BUDGET / parts
}

/// In the child: marks the fault's start (CLOCK_MONOTONIC, ns).
pub fn fault_start() {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    crate::say!("fault-start {}", ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
}

/// What a check found.
#[derive(Debug)]
pub struct Found {
    pub name: String,
    pub tid: i32,
    /// From the fault's start to the verdict.
    pub detected: Duration,
    /// From the fault's start to the end of the process (as the parent saw
    /// the two: the `fault-start` line's arrival, the child's exit).
    pub ended: Duration,
}

/// The verdict lines of a dump: `failstop: stuck: ...` or `failstop: blocked: ...`.
pub fn verdict_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            ["stuck", "blocked", "vanished", "polling"].iter().any(|k| l.starts_with(&format!("failstop: {k}: ")))
        })
        .collect()
}

/// `failstop: <kind>: thread "<name>" (tid N) ...` -> (kind, name, tid).
fn parse_verdict(line: &str) -> Option<(&str, &str, i32)> {
    let rest = line.strip_prefix("failstop: ")?;
    let (kind, rest) = rest.split_once(": thread \"")?;
    let (name, rest) = rest.split_once("\" (tid ")?;
    let (tid, _) = rest.split_once(')')?;
    Some((kind, name, tid.parse().ok()?))
}

/// `verdict at CLOCK_MONOTONIC X ms` of the dump's header, in ns.
fn verdict_at_ns(stderr: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.starts_with("failstop: pid "))?;
    let (_, rest) = line.split_once("verdict at CLOCK_MONOTONIC ")?;
    let (ms, _) = rest.split_once(" ms")?;
    Some((ms.parse::<f64>().ok()? * 1e6) as u64)
}

/// Runs fault `test` (its scenario is the test's own name) and checks it;
/// see the module doc.
pub fn run(test: &str, kind: Kind, culprits: &[&str]) -> (Outcome, Found) {
    let o = Spec::scenario(test, test).timeout(Duration::from_secs(90)).run();
    let found = check(test, &o, kind, culprits);
    (o, found)
}

/// Checks a finished fault child; see the module doc.
pub fn check(test: &str, o: &Outcome, kind: Kind, culprits: &[&str]) -> Found {
    let d = o.describe();
    o.assert_signal(libc::SIGABRT);
    let lines = verdict_lines(&o.stderr);
    assert_eq!(lines.len(), 1, "exactly one verdict expected (one dump, one action)\n{d}");
    let (word, name, tid) = parse_verdict(lines[0]).unwrap_or_else(|| panic!("malformed verdict line\n{d}"));
    assert_eq!(word, kind.word(), "wrong verdict kind\n{d}");
    let deaf = lines[0].contains("without running failstop's signal handler");
    assert_eq!(
        deaf,
        kind == Kind::Deaf,
        "the verdict should{} come from the monitor's deaf rule\n{d}",
        if kind == Kind::Deaf { "" } else { " not" }
    );
    assert!(culprits.contains(&name), "culprit {name:?} is not one of {culprits:?}\n{d}");
    assert_eq!(tid, o.tid(name), "the verdict names {name:?} with another tid\n{d}");
    assert_eq!(o.stderr.matches("failstop: dump written in ").count(), 1, "exactly one whole dump\n{d}");
    assert!(o.stderr.contains(&format!("> thread {tid} \"{name}\"")), "the culprit is marked in the dump\n{d}");

    let start_ns: u64 = o.value("fault-start").parse().expect("fault-start ns");
    let at_ns = verdict_at_ns(&o.stderr).unwrap_or_else(|| panic!("no `verdict at` in the dump header\n{d}"));
    let detected = Duration::from_nanos(at_ns.saturating_sub(start_ns));
    assert!(at_ns > start_ns, "verdict before the fault started\n{d}");
    // Never early: the figures in the verdict line are the rule's own.
    let figure = lines[0].split(") used ").nth(1).or_else(|| lines[0].split(") made no progress for ").nth(1));
    let figure_ms: f64 = figure.and_then(|f| f.split(' ').next()).and_then(|v| v.parse().ok()).expect("figure");
    let floor = match kind {
        // period/8 of documented slack for timer-expiry jitter.
        Kind::Stuck => super::BUDGET.as_secs_f64() * 1e3 - timer_period().as_secs_f64() * 1e3 / 8.0,
        Kind::Deaf => super::BUDGET.as_secs_f64() * 1e3,
        Kind::Blocked => STALL.as_secs_f64() * 1e3,
    };
    // Figures are printed to 0.1 ms, cut, not rounded.
    assert!(figure_ms + 0.1 >= floor, "verdict before its budget: {figure_ms} ms < {floor} ms\n{d}");
    assert!(detected <= kind.bound(), "detected after {detected:?} (bound {:?})\n{d}", kind.bound());
    let ended = o.ended.saturating_duration_since(o.time_of("fault-start"));
    assert!(ended <= END_BOUND, "ended {ended:?} after the fault (bound {END_BOUND:?})\n{d}");
    println!(
        "MATRIX {test}: {word}{} \"{name}\", detected in {:.0} ms (expected {:.0}, bound {:.0}), process ended {:.0} ms after the fault",
        if kind == Kind::Deaf { " (deaf)" } else { "" },
        detected.as_secs_f64() * 1e3,
        kind.expected().as_secs_f64() * 1e3,
        kind.bound().as_secs_f64() * 1e3,
        ended.as_secs_f64() * 1e3,
    );
    Found { name: name.to_string(), tid, detected, ended }
}
