//! [`Signal`]: the signal the per-thread timers deliver, its allow-list and
//! its parser (names such as `SIGRTMIN+3`, or numbers).

use std::fmt;

use libc::c_int;

use crate::error::Error;

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
/// default is [`Signal::default_signal`], `SIGRTMAX-3`: a real-time signal of
/// failstop's own, which an application that uses `SIGALRM` (`alarm()`,
/// `setitimer`, a `sigwait` loop) never sees. `SIGALRM` stays selectable;
/// it is then shared with the application, with the hazards docs/deploy.md's
/// section "Under debuggers, in containers, with your own signals" lists.
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
    /// [`Signal::default_signal`].
    fn default() -> Self {
        Signal::default_signal()
    }
}

impl Signal {
    /// The default watchdog signal of the crate, the C library and the
    /// preload: `SIGRTMAX-3`, resolved at run time with `libc::SIGRTMAX()`
    /// (`SIGALRM` where real-time signals are not supported, which failstop
    /// does not run on anyway).
    ///
    /// A real-time signal this high is rarely used by anything else; it is
    /// failstop's alone, so the application's `SIGALRM` (and its handler's
    /// flags, masks and `EINTR`) behave exactly as without failstop.
    ///
    /// ```
    /// let sig = failstop::Signal::default_signal();
    /// assert_eq!(sig.number(), libc::SIGRTMAX() - 3);
    /// assert_eq!(sig.to_string(), "SIGRTMIN+".to_string() + &(libc::SIGRTMAX() - 3 - libc::SIGRTMIN()).to_string());
    /// assert_eq!(sig, failstop::Signal::default());
    /// ```
    pub fn default_signal() -> Signal {
        match rt_range() {
            Some((rtmin, rtmax)) if rtmax - 3 >= rtmin => Signal(rtmax - 3),
            _ => Signal::SIGALRM,
        }
    }

    /// `SIGALRM`, shared with the application when chosen (see the type's
    /// doc).
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
        Signal::check(number).map_err(|why| Error::invalid_config(format!("signal {why}")))
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
