//! The `FAILSTOP_*` variables: their table ([`ENV_VARS`]), the value
//! parsers, and the check for unknown names with its did-you-mean.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use super::action::Action;
use crate::error::Error;

/// The largest millisecond value any `FAILSTOP_*_MS` variable accepts (one day).
const MAX_MS: u64 = 86_400_000;

pub(super) const VAR_DISABLE: &str = "FAILSTOP_DISABLE";
pub(super) const VAR_CPU_BUDGET_MS: &str = "FAILSTOP_CPU_BUDGET_MS";
pub(super) const VAR_WARN_MS: &str = "FAILSTOP_WARN_MS";
pub(super) const VAR_STALL_BUDGET_MS: &str = "FAILSTOP_STALL_BUDGET_MS";
pub(super) const VAR_ACTION: &str = "FAILSTOP_ACTION";
pub(super) const VAR_SIGNAL: &str = "FAILSTOP_SIGNAL";
pub(super) const VAR_DUMP_PATH: &str = "FAILSTOP_DUMP_PATH";
pub(super) const VAR_DUMP_TIMEOUT_MS: &str = "FAILSTOP_DUMP_TIMEOUT_MS";
pub(super) const VAR_ABORT_UNDER_DEBUGGER: &str = "FAILSTOP_ABORT_UNDER_DEBUGGER";
pub(super) const VAR_SYSTEMD: &str = "FAILSTOP_SYSTEMD";
pub(super) const VAR_POLL_BUDGET_MS: &str = "FAILSTOP_POLL_BUDGET_MS";
pub(super) const VAR_PANIC_IS_VERDICT: &str = "FAILSTOP_PANIC_IS_VERDICT";

/// One `FAILSTOP_*` variable that [`Config::with_env`](crate::Config::with_env)
/// reads: its name, its default, what it means and what it allows.
///
/// ```
/// let v = failstop::ENV_VARS.iter().find(|v| v.name == "FAILSTOP_ACTION").unwrap();
/// assert_eq!(v.default, "abort");
/// assert!(v.allowed.contains("exit:N"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvVar {
    /// The variable's name, `FAILSTOP_...`.
    pub name: &'static str,
    /// Its value when unset, as text.
    pub default: &'static str,
    /// What it controls, in a sentence or two.
    pub meaning: &'static str,
    /// The values it accepts (also the end of every error message about it).
    pub allowed: &'static str,
}

/// Every `FAILSTOP_*` variable [`Config::with_env`](crate::Config::with_env)
/// reads.
///
/// Any other variable whose name starts with `FAILSTOP_` makes
/// [`Config::with_env`](crate::Config::with_env) fail. Values are used
/// exactly as given: surrounding whitespace is an error. Millisecond values
/// are decimal integers from 1 to 86400000 (one day).
///
/// ```
/// for v in failstop::ENV_VARS {
///     println!("{} (default {}): {} Allowed: {}", v.name, v.default, v.meaning, v.allowed);
/// }
/// assert!(failstop::ENV_VARS.iter().any(|v| v.name == "FAILSTOP_CPU_BUDGET_MS"));
/// ```
pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: VAR_DISABLE,
        default: "0",
        meaning: "Start succeeds but watches nothing.",
        allowed: "1, true, 0, false (any case)",
    },
    EnvVar {
        name: VAR_CPU_BUDGET_MS,
        default: "1000",
        meaning: "CPU time (ms) a thread may use without progress before the stuck verdict; \
                  must exceed FAILSTOP_WARN_MS.",
        allowed: MS_RANGE,
    },
    EnvVar {
        name: VAR_WARN_MS,
        default: "100",
        meaning: "CPU time (ms) since the last touch before a warning; must be below \
                  FAILSTOP_CPU_BUDGET_MS.",
        allowed: MS_RANGE,
    },
    EnvVar {
        name: VAR_STALL_BUDGET_MS,
        default: "10000",
        meaning: "Wall time (ms) without progress, CPU use or context switches before the blocked verdict.",
        allowed: MS_RANGE,
    },
    EnvVar {
        name: VAR_POLL_BUDGET_MS,
        default: "5 x FAILSTOP_STALL_BUDGET_MS (50000)",
        meaning: "Wall time (ms) without progress and without a byte read or written, while the thread only \
                  sleeps and wakes, before the polling verdict.",
        allowed: MS_RANGE,
    },
    EnvVar {
        name: VAR_ACTION,
        default: "abort",
        meaning: "What to do on a verdict.",
        allowed: "abort, exit:N (N from 1 to 255), unhealthy, warn (any case)",
    },
    EnvVar {
        name: VAR_SIGNAL,
        default: "SIGRTMAX-3",
        meaning: "Signal the per-thread timers deliver.",
        allowed: "SIGALRM, SIGVTALRM, SIGPROF, SIGUSR1, SIGUSR2, SIGRTMIN, SIGRTMIN+n, SIGRTMAX, SIGRTMAX-n, \
                  or one of their numbers",
    },
    EnvVar {
        name: VAR_DUMP_PATH,
        default: "(unset: standard error)",
        meaning: "File the thread dump is written to.",
        allowed: "a non-empty path",
    },
    EnvVar {
        name: VAR_DUMP_TIMEOUT_MS,
        default: "2000",
        meaning: "Hard deadline (ms) for the whole thread dump.",
        allowed: MS_RANGE,
    },
    EnvVar {
        name: VAR_ABORT_UNDER_DEBUGGER,
        default: "0",
        meaning: "End the process on a fatal verdict even under a debugger.",
        allowed: "1, true, 0, false (any case)",
    },
    EnvVar {
        name: VAR_PANIC_IS_VERDICT,
        default: "1",
        meaning: "A registered thread that unwinds from a panic with its handle alive is a vanished verdict.",
        allowed: "1, true, 0, false (any case)",
    },
    EnvVar {
        name: VAR_SYSTEMD,
        default: "auto",
        meaning: "Whether to use systemd's watchdog.",
        allowed: "auto, off (any case)",
    },
];

/// What every millisecond variable allows.
const MS_RANGE: &str = "a decimal integer from 1 to 86400000";

/// The variable called `name`, if failstop knows it.
pub(super) fn env_var(name: &str) -> Option<&'static EnvVar> {
    ENV_VARS.iter().find(|v| v.name == name)
}

/// Which cross-checked values came from the environment, as given.
#[derive(Default)]
pub(super) struct EnvOrigin {
    pub(super) cpu_budget: Option<String>,
    pub(super) warn_after: Option<String>,
}

/// `NAME=<value>: <why>; allowed: <allowed>`.
pub(super) fn env_error(name: &str, raw: &OsStr, why: &str, allowed: &str) -> Error {
    Error::invalid_config(format!("{name}={raw:?}: {why}; allowed: {allowed}"))
}

/// Fails on the first (in sorted order) `FAILSTOP_*` name not in [`ENV_VARS`].
pub(super) fn check_unknown_names(
    lookup: &impl Fn(&str) -> Option<OsString>,
    names: impl Iterator<Item = OsString>,
) -> Result<(), Error> {
    let mut unknown: Vec<OsString> = names
        .filter(|n| {
            n.as_bytes().starts_with(b"FAILSTOP_") && !ENV_VARS.iter().any(|e| e.name.as_bytes() == n.as_bytes())
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    unknown.dedup();
    let first = &unknown[0];
    let shown = first.to_string_lossy();
    let value = first.to_str().and_then(lookup).unwrap_or_default();
    let suggestion =
        closest_known(first.as_bytes()).map(|known| format!(" (did you mean {known}?)")).unwrap_or_default();
    let more = match unknown.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more unknown FAILSTOP_* variable)".to_string(),
        n => format!(" (and {n} more unknown FAILSTOP_* variables)"),
    };
    let known: Vec<&str> = ENV_VARS.iter().map(|e| e.name).collect();
    Err(Error::invalid_config(format!(
        "{shown}={value:?}: unknown variable{suggestion}{more}; allowed: {}",
        known.join(", ")
    )))
}

/// The known variable nearest to `name` by edit distance, if close enough.
pub(super) fn closest_known(name: &[u8]) -> Option<&'static str> {
    if name.len() > 64 {
        return None;
    }
    ENV_VARS
        .iter()
        .map(|e| (edit_distance(name, e.name.as_bytes()), e.name))
        .filter(|&(d, _)| d <= 4)
        .min_by_key(|&(d, _)| d)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes.
pub(super) fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

pub(super) fn parse_bool(value: &str) -> Result<bool, &'static str> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err("not a boolean"),
    }
}

/// A millisecond count from 1 to one day.
pub(super) fn parse_ms(value: &str) -> Result<Duration, &'static str> {
    if value.starts_with('-') {
        return Err("negative values are not allowed");
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal integer");
    }
    let ms: u64 = value.parse().map_err(|_| "too large")?;
    if ms == 0 {
        return Err("must be greater than zero");
    }
    if ms > MAX_MS {
        return Err("too large");
    }
    Ok(Duration::from_millis(ms))
}

pub(super) fn parse_action(value: &str) -> Result<Action, &'static str> {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "abort" => return Ok(Action::Abort),
        "unhealthy" => return Ok(Action::Unhealthy),
        "warn" => return Ok(Action::Warn),
        _ => {}
    }
    let Some(status) = lower.strip_prefix("exit:") else {
        return Err("unknown action");
    };
    if status.is_empty() {
        return Err("missing exit status");
    }
    if status.starts_with('-') {
        return Err("exit status is negative");
    }
    if !status.bytes().all(|b| b.is_ascii_digit()) {
        return Err("exit status is not a decimal integer");
    }
    match status.parse::<u16>() {
        Ok(0) => {
            Err("exit status 0 tells a supervisor the service ended cleanly (Restart=on-failure would not restart it)")
        }
        Ok(n) if n <= 255 => Ok(Action::Exit(i32::from(n))),
        _ => Err("exit status is above 255"),
    }
}
