//! Configuration: the [`Config`] builder, its [`Settings`], and the
//! `FAILSTOP_*` environment variables that can override them.
//!
//! Every value is checked before the watchdog starts. A bad value is never
//! ignored or replaced with a default: it is an [`Error`] of kind
//! [`ErrorKind::InvalidConfig`] whose message names the setting or variable,
//! repeats the value as given and says what is allowed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use libc::c_int;

use crate::error::{Error, ErrorKind};

/// The longest duration any setting accepts: one day.
const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// The largest millisecond value any `FAILSTOP_*_MS` variable accepts (one day).
const MAX_MS: u64 = 86_400_000;

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidConfig, message)
}

// ---------------------------------------------------------------------------
// Action
// ---------------------------------------------------------------------------

/// What failstop does once it reaches a verdict (`stuck` or `blocked`).
///
/// In every case the verdict and the thread dump are reported first.
///
/// ```
/// use failstop::{Action, Config};
///
/// let config = Config::new().action(Action::Exit(70));
/// assert_eq!(config.settings().action, Action::Exit(70));
/// assert!(Action::Exit(70).is_fatal());
/// assert!(!Action::Warn.is_fatal());
/// assert_eq!(Action::Exit(70).to_string(), "exit:70");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// End the process with `abort()` (SIGABRT, core dump if enabled). The default.
    #[default]
    Abort,
    /// End the process with `_exit(status)`; the status must be in `0..=255`.
    Exit(i32),
    /// Keep running, but report the process as unhealthy from then on.
    Unhealthy,
    /// Only report; keep running.
    Warn,
}

impl Action {
    /// Whether this action ends the process ([`Action::Abort`] and
    /// [`Action::Exit`]).
    ///
    /// ```
    /// use failstop::Action;
    ///
    /// assert!(Action::Abort.is_fatal());
    /// assert!(!Action::Unhealthy.is_fatal());
    /// ```
    pub fn is_fatal(&self) -> bool {
        matches!(self, Action::Abort | Action::Exit(_))
    }
}

/// Formats the action the way `FAILSTOP_ACTION` spells it: `abort`,
/// `exit:N`, `unhealthy` or `warn`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Abort => f.write_str("abort"),
            Action::Exit(status) => write!(f, "exit:{status}"),
            Action::Unhealthy => f.write_str("unhealthy"),
            Action::Warn => f.write_str("warn"),
        }
    }
}

// ---------------------------------------------------------------------------
// Systemd
// ---------------------------------------------------------------------------

/// Whether failstop talks to systemd's watchdog.
///
/// ```
/// use failstop::{Config, Systemd};
///
/// let config = Config::new().systemd(Systemd::Off);
/// assert_eq!(config.settings().systemd, Systemd::Off);
/// assert_eq!(Systemd::default(), Systemd::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Systemd {
    /// Use the systemd watchdog when the service manager asked for it
    /// (`WATCHDOG_USEC` / `NOTIFY_SOCKET`). The default.
    #[default]
    Auto,
    /// Never talk to systemd.
    Off,
}

/// Formats the mode the way `FAILSTOP_SYSTEMD` spells it: `auto` or `off`.
impl fmt::Display for Systemd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Systemd::Auto => "auto",
            Systemd::Off => "off",
        })
    }
}

// ---------------------------------------------------------------------------
// Signal
// ---------------------------------------------------------------------------

/// Why a classic (non-real-time) signal is refused, by name and number.
/// `None` as the reason marks a signal on the allow-list.
const CLASSIC_SIGNALS: &[(&str, c_int, Option<&str>)] = &[
    ("SIGHUP", libc::SIGHUP, Some(TERMINATION)),
    ("SIGINT", libc::SIGINT, Some(TERMINATION)),
    ("SIGQUIT", libc::SIGQUIT, Some(TERMINATION)),
    ("SIGILL", libc::SIGILL, Some(FAULT)),
    ("SIGTRAP", libc::SIGTRAP, Some(FAULT)),
    ("SIGABRT", libc::SIGABRT, Some(ABORT)),
    ("SIGIOT", libc::SIGABRT, Some(ABORT)),
    ("SIGBUS", libc::SIGBUS, Some(FAULT)),
    ("SIGFPE", libc::SIGFPE, Some(FAULT)),
    ("SIGKILL", libc::SIGKILL, Some(UNCATCHABLE)),
    ("SIGUSR1", libc::SIGUSR1, None),
    ("SIGSEGV", libc::SIGSEGV, Some(FAULT)),
    ("SIGUSR2", libc::SIGUSR2, None),
    ("SIGPIPE", libc::SIGPIPE, Some("is raised by writes to closed pipes and sockets")),
    ("SIGALRM", libc::SIGALRM, None),
    ("SIGTERM", libc::SIGTERM, Some(TERMINATION)),
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ("SIGSTKFLT", libc::SIGSTKFLT, Some("is a legacy signal with a fixed meaning")),
    ("SIGCHLD", libc::SIGCHLD, Some("reports child process state changes")),
    ("SIGCLD", libc::SIGCHLD, Some("reports child process state changes")),
    ("SIGCONT", libc::SIGCONT, Some(JOB_CONTROL)),
    ("SIGSTOP", libc::SIGSTOP, Some(UNCATCHABLE)),
    ("SIGTSTP", libc::SIGTSTP, Some(JOB_CONTROL)),
    ("SIGTTIN", libc::SIGTTIN, Some(JOB_CONTROL)),
    ("SIGTTOU", libc::SIGTTOU, Some(JOB_CONTROL)),
    ("SIGURG", libc::SIGURG, Some("reports urgent socket data")),
    ("SIGXCPU", libc::SIGXCPU, Some("reports an exceeded CPU-time resource limit")),
    ("SIGXFSZ", libc::SIGXFSZ, Some("reports an exceeded file-size resource limit")),
    ("SIGVTALRM", libc::SIGVTALRM, None),
    ("SIGPROF", libc::SIGPROF, None),
    ("SIGWINCH", libc::SIGWINCH, Some("reports terminal size changes")),
    ("SIGIO", libc::SIGIO, Some("reports asynchronous I/O readiness")),
    ("SIGPOLL", libc::SIGIO, Some("reports asynchronous I/O readiness")),
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    ("SIGPWR", libc::SIGPWR, Some("reports power failure")),
    ("SIGSYS", libc::SIGSYS, Some(FAULT)),
];

const TERMINATION: &str = "is a termination request the application must keep receiving";
const FAULT: &str = "is a synchronous fault signal";
const ABORT: &str = "is used by the abort action";
const UNCATCHABLE: &str = "cannot be caught";
const JOB_CONTROL: &str = "is used for job control";

/// The signal failstop's per-thread timers deliver.
///
/// Only signals nothing else is expected to use are accepted: `SIGALRM`,
/// `SIGVTALRM`, `SIGPROF`, `SIGUSR1`, `SIGUSR2` and the real-time signals
/// `SIGRTMIN..=SIGRTMAX` (as the C library reports them at run time; on
/// Linux with glibc only). A `Signal` value is always one of these. The
/// default is `SIGALRM`.
///
/// ```
/// use failstop::{Config, Signal};
///
/// let sig = Signal::parse("SIGRTMIN+3").unwrap();
/// assert_eq!(sig.number(), libc::SIGRTMIN() + 3);
/// assert_eq!(sig.to_string(), "SIGRTMIN+3");
///
/// let config = Config::new().signal(sig);
/// assert_eq!(config.settings().signal, sig);
///
/// let why = Signal::parse("SIGKILL").unwrap_err();
/// assert!(why.contains("SIGKILL cannot be caught"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(c_int);

impl Default for Signal {
    fn default() -> Self {
        Signal::SIGALRM
    }
}

impl Signal {
    /// `SIGALRM`, the default.
    ///
    /// ```
    /// assert_eq!(failstop::Signal::SIGALRM.number(), libc::SIGALRM);
    /// ```
    pub const SIGALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGVTALRM`.
    ///
    /// ```
    /// assert_eq!(failstop::Signal::SIGVTALRM.to_string(), "SIGVTALRM");
    /// ```
    pub const SIGVTALRM: Signal = Signal(libc::SIGVTALRM);
    /// `SIGPROF`.
    ///
    /// ```
    /// assert_eq!(failstop::Signal::SIGPROF.to_string(), "SIGPROF");
    /// ```
    pub const SIGPROF: Signal = Signal(libc::SIGPROF);
    /// `SIGUSR1`.
    ///
    /// ```
    /// assert_eq!(failstop::Signal::SIGUSR1.number(), libc::SIGUSR1);
    /// ```
    pub const SIGUSR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`.
    ///
    /// ```
    /// assert_eq!(failstop::Signal::SIGUSR2.number(), libc::SIGUSR2);
    /// ```
    pub const SIGUSR2: Signal = Signal(libc::SIGUSR2);

    /// The signal with this number, if it is on the allow-list.
    ///
    /// The error message says why the number is refused and what is allowed.
    ///
    /// ```
    /// use failstop::Signal;
    ///
    /// assert_eq!(Signal::new(libc::SIGPROF).unwrap(), Signal::SIGPROF);
    /// let err = Signal::new(libc::SIGSEGV).unwrap_err();
    /// assert!(err.message().contains("synchronous fault signal"));
    /// ```
    pub fn new(number: c_int) -> Result<Signal, Error> {
        Signal::check(number).map_err(|why| invalid(format!("signal {why}")))
    }

    /// Parses a signal name or number.
    ///
    /// Accepted: `SIGALRM`, `SIGVTALRM`, `SIGPROF`, `SIGUSR1`, `SIGUSR2`,
    /// `SIGRTMIN`, `SIGRTMIN+n`, `SIGRTMAX`, `SIGRTMAX-n` (exact upper case,
    /// no spaces; `n` a decimal number, the result within
    /// `SIGRTMIN..=SIGRTMAX`), or the decimal number of one of these. The
    /// real-time range is resolved now, with `libc::SIGRTMIN()` and
    /// `libc::SIGRTMAX()`.
    ///
    /// The error is the reason, ending in `; allowed: ...`, for the caller to
    /// put after the input it names.
    ///
    /// ```
    /// use failstop::Signal;
    ///
    /// assert_eq!(Signal::parse("SIGALRM"), Ok(Signal::SIGALRM));
    /// assert_eq!(Signal::parse("27"), Ok(Signal::SIGPROF));
    /// assert_eq!(Signal::parse("SIGRTMAX").unwrap().number(), libc::SIGRTMAX());
    /// assert!(Signal::parse("SIGABRT").unwrap_err().contains("used by the abort action"));
    /// assert!(Signal::parse("sigalrm").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Signal, String> {
        let allowed = allowed_signals();
        if s.starts_with("SIGRTMIN") || s.starts_with("SIGRTMAX") {
            let Some((rtmin, rtmax)) = rt_range() else {
                return Err(format!("{s}: real-time signals need Linux with glibc; allowed: {allowed}"));
            };
            return parse_realtime(s, rtmin, rtmax, &allowed);
        }
        if let Some(&(name, number, reason)) = CLASSIC_SIGNALS.iter().find(|e| e.0 == s) {
            return match reason {
                None => Ok(Signal(number)),
                Some(reason) => Err(format!("{name} {reason}; allowed: {allowed}")),
            };
        }
        let digits = s.strip_prefix('-').unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            if s.starts_with('-') {
                return Err(format!("{s} is negative; signal numbers are positive; allowed: {allowed}"));
            }
            return match digits.parse::<c_int>() {
                Ok(n) => Signal::check(n),
                Err(_) => Err(format!("{s} is above {}; allowed: {allowed}", highest_signal())),
            };
        }
        if s.is_empty() {
            return Err(format!("empty signal name; allowed: {allowed}"));
        }
        let upper = s.to_ascii_uppercase();
        let known_upper = upper.starts_with("SIGRTMIN")
            || upper.starts_with("SIGRTMAX")
            || CLASSIC_SIGNALS.iter().any(|e| e.0 == upper);
        if known_upper && upper != s {
            return Err(format!("{s} is not a signal name (names are upper case, like {upper}); allowed: {allowed}"));
        }
        if !s.starts_with("SIG") {
            let prefixed = format!("SIG{upper}");
            if CLASSIC_SIGNALS.iter().any(|e| e.0 == prefixed) {
                return Err(format!(
                    "{s} is not a signal name (names need the SIG prefix, like {prefixed}); allowed: {allowed}"
                ));
            }
        }
        Err(format!("{s} is not a signal name or number; allowed: {allowed}"))
    }

    /// The signal number.
    ///
    /// ```
    /// assert_eq!(failstop::Signal::SIGALRM.number(), libc::SIGALRM);
    /// ```
    pub fn number(&self) -> c_int {
        self.0
    }

    /// Accepts `number` if it is on the allow-list; otherwise the reason,
    /// starting with the number, ending with what is allowed.
    fn check(number: c_int) -> Result<Signal, String> {
        let rt = rt_range();
        if rt.is_some_and(|(rtmin, rtmax)| (rtmin..=rtmax).contains(&number)) {
            return Ok(Signal(number));
        }
        let why = if number == 0 {
            "0 is not a signal (it only probes whether a process exists)".to_string()
        } else if number < 0 {
            format!("{number} is negative; signal numbers are positive")
        } else if rt.is_some_and(|(_, rtmax)| number > rtmax) {
            format!("{number} is above {}", highest_signal())
        } else if let Some(&(name, _, reason)) = CLASSIC_SIGNALS.iter().find(|e| e.1 == number) {
            match reason {
                None => return Ok(Signal(number)),
                Some(reason) => format!("{number} ({name}) {reason}"),
            }
        } else if let Some((rtmin, _)) = rt {
            // Between the classic signals and SIGRTMIN: glibc keeps these
            // for its threading implementation.
            format!("{number} is reserved by the C library (below SIGRTMIN, {rtmin})")
        } else {
            format!("{number} is not an allowed signal (real-time signals need Linux with glibc)")
        };
        Err(format!("{why}; allowed: {}", allowed_signals()))
    }
}

/// Formats the signal by name: `SIGALRM`, `SIGRTMIN`, `SIGRTMIN+3`, `SIGRTMAX`.
impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((rtmin, rtmax)) = rt_range() {
            if self.0 == rtmax {
                return f.write_str("SIGRTMAX");
            }
            if self.0 == rtmin {
                return f.write_str("SIGRTMIN");
            }
            if self.0 > rtmin && self.0 < rtmax {
                return write!(f, "SIGRTMIN+{}", self.0 - rtmin);
            }
        }
        match CLASSIC_SIGNALS.iter().find(|e| e.1 == self.0) {
            Some(&(name, _, _)) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// `SIGRTMIN..=SIGRTMAX` as the C library reports them at run time; `None`
/// where real-time signals are not supported (everywhere but Linux/glibc).
fn rt_range() -> Option<(c_int, c_int)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    return Some((libc::SIGRTMIN(), libc::SIGRTMAX()));
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    return None;
}

/// The highest allowed signal, for "is above ..." messages.
fn highest_signal() -> String {
    match rt_range() {
        Some((_, rtmax)) => format!("SIGRTMAX ({rtmax})"),
        None => "the highest allowed signal".to_string(),
    }
}

/// Parses `SIGRTMIN`, `SIGRTMIN+n`, `SIGRTMAX`, `SIGRTMAX-n` within
/// `rtmin..=rtmax`; `s` starts with `SIGRTMIN` or `SIGRTMAX`.
fn parse_realtime(s: &str, rtmin: c_int, rtmax: c_int, allowed: &str) -> Result<Signal, String> {
    if let Some(rest) = s.strip_prefix("SIGRTMIN") {
        let number = if rest.is_empty() {
            Some(rtmin)
        } else if let Some(offset) = rest.strip_prefix('+') {
            let offset = parse_small(offset).map_err(|why| format!("{s}: offset {why}; allowed: {allowed}"))?;
            rtmin.checked_add(offset)
        } else {
            return Err(format!("{s} is not a signal name; allowed: {allowed}"));
        };
        return match number {
            Some(n) if n <= rtmax => Ok(Signal(n)),
            _ => Err(format!("{s} is above SIGRTMAX ({rtmax}); allowed: {allowed}")),
        };
    }
    let rest = &s["SIGRTMAX".len()..];
    let number = if rest.is_empty() {
        Some(rtmax)
    } else if let Some(offset) = rest.strip_prefix('-') {
        let offset = parse_small(offset).map_err(|why| format!("{s}: offset {why}; allowed: {allowed}"))?;
        rtmax.checked_sub(offset)
    } else {
        return Err(format!("{s} is not a signal name; allowed: {allowed}"));
    };
    match number {
        Some(n) if n >= rtmin => Ok(Signal(n)),
        _ => Err(format!("{s} is below SIGRTMIN ({rtmin}); allowed: {allowed}")),
    }
}

/// The allow-list, in words, with the real-time range of this process.
fn allowed_signals() -> String {
    match rt_range() {
        Some((rtmin, rtmax)) => format!(
            "SIGALRM, SIGVTALRM, SIGPROF, SIGUSR1, SIGUSR2, SIGRTMIN, SIGRTMIN+n, SIGRTMAX, \
             SIGRTMAX-n (SIGRTMIN={rtmin}, SIGRTMAX={rtmax} here), or the decimal number of one of these"
        ),
        None => "SIGALRM, SIGVTALRM, SIGPROF, SIGUSR1, SIGUSR2, or the decimal number of one of these \
                 (real-time signals need Linux with glibc)"
            .to_string(),
    }
}

/// Parses a non-empty string of ASCII digits into a `c_int`.
fn parse_small(s: &str) -> Result<c_int, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a decimal number");
    }
    s.parse::<c_int>().map_err(|_| "is out of range")
}

// ---------------------------------------------------------------------------
// Settings and Config
// ---------------------------------------------------------------------------

/// The values of a [`Config`], readable through [`Config::settings`].
///
/// Set them through the [`Config`] builder methods of the same names.
///
/// ```
/// use std::time::Duration;
///
/// let config = failstop::Config::new().cpu_budget(Duration::from_millis(500));
/// let s = config.settings();
/// assert_eq!(s.cpu_budget, Duration::from_millis(500));
/// assert_eq!(s.warn_after, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Default `false`. When `true`, `start` succeeds and watches nothing.
    pub disabled: bool,
    /// Default 1000 ms. CPU time a thread may use without making progress
    /// (touching) before the `stuck` verdict.
    pub cpu_budget: Duration,
    /// Default 100 ms. CPU time since the last touch after which a warning is
    /// reported. Strictly less than `cpu_budget`.
    pub warn_after: Duration,
    /// Default 10 s. Wall (monotonic) time without progress and without CPU
    /// use or context switches before the `blocked` verdict.
    pub stall_budget: Duration,
    /// Default [`Action::Abort`]. What to do on a verdict.
    pub action: Action,
    /// Default [`Signal::SIGALRM`]. The signal the per-thread timers deliver.
    pub signal: Signal,
    /// Default `None` (the dump goes to standard error only). A file the
    /// thread dump is also written to, fsynced.
    pub dump_path: Option<PathBuf>,
    /// Default 2 s. Hard deadline for the whole thread dump; the action
    /// proceeds when it passes.
    pub dump_timeout: Duration,
    /// Default `false`. When a debugger is attached (`TracerPid` in
    /// `/proc/self/status`), a verdict is reported but the process is not
    /// ended unless this is `true`.
    pub abort_under_debugger: bool,
    /// Default [`Systemd::Auto`]. Whether to use systemd's watchdog.
    pub systemd: Systemd,
    /// Default `false`. Use the wall-clock fallback timer even where CPU-clock
    /// timers work. The fallback exists for platforms where CPU clocks cannot
    /// arm timers; the handler still decides on CPU-time deltas. Setting this
    /// is mainly for testing the fallback.
    pub wall_clock_timers: bool,
    /// Default `None`. A function run after the gate closes (a verdict is
    /// final) and before the process ends.
    ///
    /// It runs in signal context or on the fatal path, possibly while other
    /// threads hold locks: it must be async-signal-safe (no allocation, no
    /// locks, no `println!`) and finish quickly, since nothing can interrupt
    /// it. Closing a heartbeat socket with `libc::close` is a typical use.
    pub pre_abort_hook: Option<fn()>,
}

/// The watchdog configuration: a by-value builder.
///
/// Start from [`Config::new`] (the defaults, listed on [`Settings`]), chain
/// setters, optionally apply the `FAILSTOP_*` variables with
/// [`Config::from_env`], and read values back through [`Config::settings`].
/// Setters do not check their input; [`Config::validate`] and
/// [`Config::from_env`] do, and the watchdog validates again when it starts.
///
/// ```
/// use std::time::Duration;
/// use failstop::{Action, Config};
///
/// let config = Config::new()
///     .cpu_budget(Duration::from_millis(250))
///     .warn_after(Duration::from_millis(50))
///     .action(Action::Exit(70));
/// config.validate()?;
/// assert_eq!(config.settings().action, Action::Exit(70));
/// # Ok::<(), failstop::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    settings: Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// The default configuration (see [`Settings`] for each default).
    ///
    /// ```
    /// let config = failstop::Config::new();
    /// assert!(config.validate().is_ok());
    /// assert!(!config.settings().disabled);
    /// ```
    pub fn new() -> Config {
        Config {
            settings: Settings {
                disabled: false,
                cpu_budget: Duration::from_millis(1000),
                warn_after: Duration::from_millis(100),
                stall_budget: Duration::from_secs(10),
                action: Action::Abort,
                signal: Signal::SIGALRM,
                dump_path: None,
                dump_timeout: Duration::from_secs(2),
                abort_under_debugger: false,
                systemd: Systemd::Auto,
                wall_clock_timers: false,
                pre_abort_hook: None,
            },
        }
    }

    /// The current values.
    ///
    /// ```
    /// let config = failstop::Config::new();
    /// assert_eq!(config.settings().signal, failstop::Signal::SIGALRM);
    /// ```
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// When `true`, `start` succeeds and watches nothing. Default `false`.
    ///
    /// ```
    /// assert!(failstop::Config::new().disabled(true).settings().disabled);
    /// ```
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.settings.disabled = disabled;
        self
    }

    /// CPU time a thread may use without progress before the `stuck`
    /// verdict. Default 1000 ms; allowed: more than zero, at most one day,
    /// greater than `warn_after`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = failstop::Config::new().cpu_budget(Duration::from_secs(2));
    /// assert_eq!(config.settings().cpu_budget, Duration::from_secs(2));
    /// ```
    pub fn cpu_budget(mut self, budget: Duration) -> Self {
        self.settings.cpu_budget = budget;
        self
    }

    /// CPU time since the last touch before a warning. Default 100 ms;
    /// allowed: more than zero, strictly less than `cpu_budget`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = failstop::Config::new().warn_after(Duration::from_millis(20));
    /// assert_eq!(config.settings().warn_after, Duration::from_millis(20));
    /// ```
    pub fn warn_after(mut self, warn_after: Duration) -> Self {
        self.settings.warn_after = warn_after;
        self
    }

    /// Wall (monotonic) time without progress and without CPU use or context
    /// switches before the `blocked` verdict. Default 10 s; allowed: more
    /// than zero, at most one day.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = failstop::Config::new().stall_budget(Duration::from_secs(30));
    /// assert_eq!(config.settings().stall_budget, Duration::from_secs(30));
    /// ```
    pub fn stall_budget(mut self, budget: Duration) -> Self {
        self.settings.stall_budget = budget;
        self
    }

    /// What to do on a verdict. Default [`Action::Abort`];
    /// [`Action::Exit`] statuses must be in `0..=255`.
    ///
    /// ```
    /// use failstop::{Action, Config};
    /// let config = Config::new().action(Action::Warn);
    /// assert!(!config.settings().action.is_fatal());
    /// ```
    pub fn action(mut self, action: Action) -> Self {
        self.settings.action = action;
        self
    }

    /// The signal the per-thread timers deliver. Default `SIGALRM`.
    ///
    /// ```
    /// use failstop::{Config, Signal};
    /// let config = Config::new().signal(Signal::SIGUSR2);
    /// assert_eq!(config.settings().signal.number(), libc::SIGUSR2);
    /// ```
    pub fn signal(mut self, signal: Signal) -> Self {
        self.settings.signal = signal;
        self
    }

    /// Also write the thread dump to this file (created or truncated at the
    /// verdict, written whole and fsynced before the process ends, even when
    /// standard error is closed or a broken pipe). Default: unset (standard
    /// error only). The path must be non-empty and contain no NUL byte.
    ///
    /// ```
    /// let config = failstop::Config::new().dump_path("/var/log/app/failstop.dump");
    /// assert!(config.settings().dump_path.is_some());
    /// ```
    pub fn dump_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.dump_path = Some(path.into());
        self
    }

    /// Hard deadline for the whole thread dump. Default 2 s; allowed: more
    /// than zero, at most one day.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = failstop::Config::new().dump_timeout(Duration::from_millis(500));
    /// assert_eq!(config.settings().dump_timeout, Duration::from_millis(500));
    /// ```
    pub fn dump_timeout(mut self, timeout: Duration) -> Self {
        self.settings.dump_timeout = timeout;
        self
    }

    /// End the process on a fatal verdict even when a debugger is attached.
    /// Default `false`: under a debugger the verdict is only reported.
    ///
    /// ```
    /// let config = failstop::Config::new().abort_under_debugger(true);
    /// assert!(config.settings().abort_under_debugger);
    /// ```
    pub fn abort_under_debugger(mut self, abort: bool) -> Self {
        self.settings.abort_under_debugger = abort;
        self
    }

    /// Whether to use systemd's watchdog. Default [`Systemd::Auto`].
    ///
    /// ```
    /// use failstop::{Config, Systemd};
    /// assert_eq!(Config::new().systemd(Systemd::Off).settings().systemd, Systemd::Off);
    /// ```
    pub fn systemd(mut self, systemd: Systemd) -> Self {
        self.settings.systemd = systemd;
        self
    }

    /// Use the wall-clock fallback timer even where CPU-clock timers work.
    /// Default `false`.
    ///
    /// The fallback is for platforms where CPU clocks cannot arm timers; the
    /// handler still decides on CPU-time deltas, so verdicts mean the same.
    /// Turning it on elsewhere is mainly for testing the fallback.
    ///
    /// ```
    /// let config = failstop::Config::new().wall_clock_timers(true);
    /// assert!(config.settings().wall_clock_timers);
    /// ```
    pub fn wall_clock_timers(mut self, wall_clock: bool) -> Self {
        self.settings.wall_clock_timers = wall_clock;
        self
    }

    /// A function run after the gate closes (the verdict is final) and before
    /// the process ends. Default: none.
    ///
    /// It runs in signal context or on the fatal path, possibly while other
    /// threads hold locks, so it must be async-signal-safe (no allocation,
    /// no locks, no `println!`) and time-bounded: nothing interrupts it.
    /// Closing a heartbeat socket is the typical use.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicI32, Ordering};
    ///
    /// static HEARTBEAT_FD: AtomicI32 = AtomicI32::new(-1);
    ///
    /// fn close_heartbeat() {
    ///     let fd = HEARTBEAT_FD.swap(-1, Ordering::SeqCst);
    ///     if fd >= 0 {
    ///         // SAFETY: close is async-signal-safe; the fd is ours.
    ///         unsafe { libc::close(fd) };
    ///     }
    /// }
    ///
    /// let config = failstop::Config::new().pre_abort_hook(close_heartbeat);
    /// assert!(config.settings().pre_abort_hook.is_some());
    /// ```
    pub fn pre_abort_hook(mut self, hook: fn()) -> Self {
        self.settings.pre_abort_hook = Some(hook);
        self
    }

    /// Checks every value.
    ///
    /// Rejected: zero durations (`cpu_budget`, `warn_after`, `stall_budget`,
    /// `dump_timeout`), durations over one day, `warn_after >= cpu_budget`,
    /// [`Action::Exit`] statuses outside `0..=255`, and an empty `dump_path`
    /// or one containing a NUL byte. The message names the setting, its value
    /// and what is allowed.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let err = failstop::Config::new()
    ///     .warn_after(Duration::from_secs(1))
    ///     .validate()
    ///     .unwrap_err();
    /// assert!(err.message().contains("warn_after"));
    /// assert!(err.message().contains("cpu_budget"));
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_from(&EnvOrigin::default())
    }

    /// Applies the `FAILSTOP_*` environment variables on top of this
    /// configuration, then [validates](Config::validate) the result.
    ///
    /// Each variable that is set replaces the corresponding setting; see
    /// [`ENV_VARS`] for the list, defaults and formats. A set variable with a
    /// bad value, and any `FAILSTOP_*` variable that failstop does not know
    /// (a typo must not be silently ignored), is an error naming the
    /// variable and its value. Values are taken exactly as given: surrounding
    /// whitespace is an error, not trimmed.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Code sets the defaults; the environment may override them.
    /// let config = failstop::Config::new()
    ///     .cpu_budget(Duration::from_millis(500))
    ///     .from_env()?;
    /// config.validate()?;
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn from_env(self) -> Result<Config, Error> {
        self.apply_env_with(|name| std::env::var_os(name), std::env::vars_os().map(|(name, _)| name))
    }

    /// [`Config::from_env`] over an explicit environment: `lookup` returns a
    /// variable's value, `names` yields every variable name present (used to
    /// reject unknown `FAILSTOP_*` names).
    pub(crate) fn apply_env_with(
        mut self,
        lookup: impl Fn(&str) -> Option<OsString>,
        names: impl Iterator<Item = OsString>,
    ) -> Result<Config, Error> {
        check_unknown_names(&lookup, names)?;

        let mut origin = EnvOrigin::default();
        for &(name, _, _) in ENV_VARS {
            let Some(raw) = lookup(name) else { continue };
            self.apply_one(name, &raw, &mut origin)?;
        }
        self.validate_from(&origin)?;
        Ok(self)
    }

    /// Applies one variable's value.
    fn apply_one(&mut self, name: &str, raw: &OsStr, origin: &mut EnvOrigin) -> Result<(), Error> {
        let s = &mut self.settings;
        if name == VAR_DUMP_PATH {
            if raw.is_empty() {
                return Err(env_error(name, raw, "empty path", "a non-empty file path"));
            }
            if raw.as_bytes().contains(&0) {
                return Err(env_error(name, raw, "contains a NUL byte", "a non-empty file path"));
            }
            s.dump_path = Some(PathBuf::from(raw));
            return Ok(());
        }
        let allowed =
            ENV_VARS.iter().find(|e| e.0 == name).map_or("", |e| e.2.rsplit_once("Allowed: ").map_or("", |(_, a)| a));
        let Some(value) = raw.to_str() else {
            return Err(env_error(name, raw, "not valid UTF-8", allowed));
        };
        if value.is_empty() {
            return Err(env_error(name, raw, "empty value", allowed));
        }
        if value.trim() != value {
            return Err(env_error(name, raw, "surrounding whitespace is not allowed", allowed));
        }
        let fail = |why: &str| env_error(name, raw, why, allowed);
        match name {
            VAR_DISABLE => s.disabled = parse_bool(value).map_err(fail)?,
            VAR_CPU_BUDGET_MS => {
                s.cpu_budget = parse_ms(value).map_err(fail)?;
                origin.cpu_budget = Some(value.to_string());
            }
            VAR_WARN_MS => {
                s.warn_after = parse_ms(value).map_err(fail)?;
                origin.warn_after = Some(value.to_string());
            }
            VAR_STALL_BUDGET_MS => s.stall_budget = parse_ms(value).map_err(fail)?,
            VAR_ACTION => s.action = parse_action(value).map_err(fail)?,
            VAR_SIGNAL => {
                // The reason from `Signal::parse` already ends in "; allowed: ...".
                s.signal = Signal::parse(value).map_err(|why| invalid(format!("{name}={raw:?}: {why}")))?;
            }
            VAR_DUMP_TIMEOUT_MS => s.dump_timeout = parse_ms(value).map_err(fail)?,
            VAR_ABORT_UNDER_DEBUGGER => s.abort_under_debugger = parse_bool(value).map_err(fail)?,
            VAR_SYSTEMD => {
                s.systemd = match value.to_ascii_lowercase().as_str() {
                    "auto" => Systemd::Auto,
                    "off" => Systemd::Off,
                    _ => return Err(fail("unknown mode")),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// [`Config::validate`], naming `FAILSTOP_*` variables for the values
    /// that came from them.
    fn validate_from(&self, origin: &EnvOrigin) -> Result<(), Error> {
        let s = &self.settings;
        for (setting, value) in [
            ("cpu_budget", s.cpu_budget),
            ("warn_after", s.warn_after),
            ("stall_budget", s.stall_budget),
            ("dump_timeout", s.dump_timeout),
        ] {
            let why = if value.is_zero() {
                "must be greater than zero"
            } else if value > MAX_DURATION {
                "must be at most one day"
            } else {
                continue;
            };
            return Err(invalid(format!(
                "{setting}={value:?}: {why}; allowed: more than zero, at most one day (86400s)"
            )));
        }

        if s.warn_after >= s.cpu_budget {
            let warn = s.warn_after;
            let budget = s.cpu_budget;
            let message = match (&origin.warn_after, &origin.cpu_budget) {
                (Some(w), Some(b)) => format!(
                    "{VAR_WARN_MS}={w:?}: must be less than {VAR_CPU_BUDGET_MS}={b:?}; \
                     allowed: {VAR_WARN_MS} < {VAR_CPU_BUDGET_MS}"
                ),
                (Some(w), None) => format!(
                    "{VAR_WARN_MS}={w:?}: must be less than cpu_budget={budget:?} \
                     ({VAR_CPU_BUDGET_MS} is not set); allowed: {VAR_WARN_MS} below {} \
                     or a larger {VAR_CPU_BUDGET_MS}",
                    budget.as_millis()
                ),
                (None, Some(b)) => format!(
                    "{VAR_CPU_BUDGET_MS}={b:?}: must be greater than warn_after={warn:?} \
                     ({VAR_WARN_MS} is not set); allowed: {VAR_CPU_BUDGET_MS} above {} \
                     or a smaller {VAR_WARN_MS}",
                    warn.as_millis()
                ),
                (None, None) => format!(
                    "warn_after={warn:?}: must be less than cpu_budget={budget:?}; \
                     allowed: warn_after < cpu_budget"
                ),
            };
            return Err(invalid(message));
        }

        if let Action::Exit(status) = s.action
            && !(0..=255).contains(&status)
        {
            return Err(invalid(format!("action=Exit({status}): exit status out of range; allowed: Exit(0..=255)")));
        }

        if let Some(path) = &s.dump_path {
            let bytes = path.as_os_str().as_bytes();
            let why = if bytes.is_empty() {
                "empty path"
            } else if bytes.contains(&0) {
                "contains a NUL byte"
            } else {
                return Ok(());
            };
            return Err(invalid(format!(
                "dump_path={path:?}: {why}; allowed: a non-empty file path without NUL bytes"
            )));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Environment variables
// ---------------------------------------------------------------------------

const VAR_DISABLE: &str = "FAILSTOP_DISABLE";
const VAR_CPU_BUDGET_MS: &str = "FAILSTOP_CPU_BUDGET_MS";
const VAR_WARN_MS: &str = "FAILSTOP_WARN_MS";
const VAR_STALL_BUDGET_MS: &str = "FAILSTOP_STALL_BUDGET_MS";
const VAR_ACTION: &str = "FAILSTOP_ACTION";
const VAR_SIGNAL: &str = "FAILSTOP_SIGNAL";
const VAR_DUMP_PATH: &str = "FAILSTOP_DUMP_PATH";
const VAR_DUMP_TIMEOUT_MS: &str = "FAILSTOP_DUMP_TIMEOUT_MS";
const VAR_ABORT_UNDER_DEBUGGER: &str = "FAILSTOP_ABORT_UNDER_DEBUGGER";
const VAR_SYSTEMD: &str = "FAILSTOP_SYSTEMD";

/// Every `FAILSTOP_*` variable [`Config::from_env`] reads, as
/// `(name, default, meaning)`. The meaning ends with `Allowed: ...`.
///
/// Any other variable whose name starts with `FAILSTOP_` makes
/// [`Config::from_env`] fail. Values are used exactly as given: surrounding
/// whitespace is an error. Millisecond values are decimal integers from 1 to
/// 86400000 (one day).
///
/// ```
/// for (name, default, meaning) in failstop::ENV_VARS {
///     println!("{name} (default {default}): {meaning}");
/// }
/// assert!(failstop::ENV_VARS.iter().any(|v| v.0 == "FAILSTOP_CPU_BUDGET_MS"));
/// ```
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (VAR_DISABLE, "0", "Start succeeds but watches nothing. Allowed: 1, true, 0, false (any case)"),
    (
        VAR_CPU_BUDGET_MS,
        "1000",
        "CPU time (ms) a thread may use without progress before the stuck verdict; \
         must exceed FAILSTOP_WARN_MS. Allowed: a decimal integer from 1 to 86400000",
    ),
    (
        VAR_WARN_MS,
        "100",
        "CPU time (ms) since the last touch before a warning; must be below \
         FAILSTOP_CPU_BUDGET_MS. Allowed: a decimal integer from 1 to 86400000",
    ),
    (
        VAR_STALL_BUDGET_MS,
        "10000",
        "Wall time (ms) without progress, CPU use or context switches before the \
         blocked verdict. Allowed: a decimal integer from 1 to 86400000",
    ),
    (
        VAR_ACTION,
        "abort",
        "What to do on a verdict. Allowed: abort, exit:N (N from 0 to 255), unhealthy, warn \
         (any case)",
    ),
    (
        VAR_SIGNAL,
        "SIGALRM",
        "Signal the per-thread timers deliver. Allowed: SIGALRM, SIGVTALRM, SIGPROF, SIGUSR1, \
         SIGUSR2, SIGRTMIN, SIGRTMIN+n, SIGRTMAX, SIGRTMAX-n, or one of their numbers",
    ),
    (VAR_DUMP_PATH, "(unset: standard error)", "File the thread dump is written to. Allowed: a non-empty path"),
    (
        VAR_DUMP_TIMEOUT_MS,
        "2000",
        "Hard deadline (ms) for the whole thread dump. Allowed: a decimal integer from 1 to \
         86400000",
    ),
    (
        VAR_ABORT_UNDER_DEBUGGER,
        "0",
        "End the process on a fatal verdict even under a debugger. Allowed: 1, true, 0, false \
         (any case)",
    ),
    (VAR_SYSTEMD, "auto", "Whether to use systemd's watchdog. Allowed: auto, off (any case)"),
];

/// Which cross-checked values came from the environment, as given.
#[derive(Default)]
struct EnvOrigin {
    cpu_budget: Option<String>,
    warn_after: Option<String>,
}

/// `NAME=<value>: <why>; allowed: <allowed>`.
fn env_error(name: &str, raw: &OsStr, why: &str, allowed: &str) -> Error {
    invalid(format!("{name}={raw:?}: {why}; allowed: {allowed}"))
}

/// Fails on the first (in sorted order) `FAILSTOP_*` name not in [`ENV_VARS`].
fn check_unknown_names(
    lookup: &impl Fn(&str) -> Option<OsString>,
    names: impl Iterator<Item = OsString>,
) -> Result<(), Error> {
    let mut unknown: Vec<OsString> = names
        .filter(|n| n.as_bytes().starts_with(b"FAILSTOP_") && !ENV_VARS.iter().any(|e| e.0.as_bytes() == n.as_bytes()))
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
    let known: Vec<&str> = ENV_VARS.iter().map(|e| e.0).collect();
    Err(invalid(format!("{shown}={value:?}: unknown variable{suggestion}{more}; allowed: {}", known.join(", "))))
}

/// The known variable nearest to `name` by edit distance, if close enough.
fn closest_known(name: &[u8]) -> Option<&'static str> {
    if name.len() > 64 {
        return None;
    }
    ENV_VARS
        .iter()
        .map(|e| (edit_distance(name, e.0.as_bytes()), e.0))
        .filter(|&(d, _)| d <= 4)
        .min_by_key(|&(d, _)| d)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
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

fn parse_bool(value: &str) -> Result<bool, &'static str> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err("not a boolean"),
    }
}

/// A millisecond count from 1 to one day.
fn parse_ms(value: &str) -> Result<Duration, &'static str> {
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

fn parse_action(value: &str) -> Result<Action, &'static str> {
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
        Ok(n) if n <= 255 => Ok(Action::Exit(i32::from(n))),
        _ => Err("exit status is above 255"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

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
        assert_eq!(s.signal, Signal::SIGALRM);
        assert_eq!(s.dump_path, None);
        assert_eq!(s.dump_timeout, Duration::from_secs(2));
        assert!(!s.abort_under_debugger);
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
        let names: Vec<&str> = ENV_VARS.iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                VAR_DISABLE,
                VAR_CPU_BUDGET_MS,
                VAR_WARN_MS,
                VAR_STALL_BUDGET_MS,
                VAR_ACTION,
                VAR_SIGNAL,
                VAR_DUMP_PATH,
                VAR_DUMP_TIMEOUT_MS,
                VAR_ABORT_UNDER_DEBUGGER,
                VAR_SYSTEMD
            ]
        );
        // Every default but the dump path parses to the code default.
        let vars: Vec<(&str, &[u8])> =
            ENV_VARS.iter().filter(|e| e.0 != VAR_DUMP_PATH).map(|e| (e.0, e.1.as_bytes())).collect();
        let c = apply(&vars).unwrap();
        assert_eq!(format!("{:?}", c.settings()), format!("{:?}", Config::new().settings()));
        for (name, _, meaning) in ENV_VARS {
            assert!(meaning.contains("Allowed: "), "{name}");
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
            .wall_clock_timers(true)
            .pre_abort_hook(hook);
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
        for status in [-1, 256, i32::MIN, i32::MAX] {
            let msg = Config::new().action(Action::Exit(status)).validate().unwrap_err().message().to_string();
            assert!(msg.contains(&format!("action=Exit({status})")), "{msg}");
        }
        for status in [0, 1, 255] {
            Config::new().action(Action::Exit(status)).validate().unwrap();
        }
        let msg = Config::new().dump_path("").validate().unwrap_err().to_string();
        assert!(msg.contains("dump_path=\"\": empty path"), "{msg}");
        let msg = Config::new().dump_path("a\0b").validate().unwrap_err().to_string();
        assert!(msg.contains("NUL"), "{msg}");
    }

    #[test]
    fn env_disable() {
        for (v, want) in [
            ("1", true),
            ("true", true),
            ("TRUE", true),
            ("True", true),
            ("0", false),
            ("false", false),
            ("FALSE", false),
        ] {
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
            let msg = apply(&[(VAR_CPU_BUDGET_MS, b.as_bytes()), (VAR_WARN_MS, w.as_bytes())])
                .unwrap_err()
                .message()
                .to_string();
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
        assert_eq!(get("exit:0").unwrap(), Action::Exit(0));
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
        assert_eq!(Signal::default(), Signal::SIGALRM);
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
        for &(name, _, _) in ENV_VARS {
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
        for &(name, _, _) in ENV_VARS {
            assert!(msg.contains(name), "{msg} lacks {name}");
        }

        let msg = apply(&[("FAILSTOP_", b""), ("FAILSTOP_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZ", b"x")])
            .unwrap_err()
            .message()
            .to_string();
        assert!(msg.starts_with("FAILSTOP_=\"\": unknown variable (and 1 more"), "{msg}");

        let msg = apply_os(vec![(OsString::from_vec(b"FAILSTOP_\xff".to_vec()), "1".into())])
            .unwrap_err()
            .message()
            .to_string();
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
                let known = ENV_VARS.iter().any(|e| OsStr::new(e.0) == name);
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
}
