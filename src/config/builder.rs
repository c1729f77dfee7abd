//! [`Config`], the by-value builder, and its [`Settings`]; the cross-field
//! checks; applying the `FAILSTOP_*` variables parsed by [`env`](super::env).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use super::action::Action;
use super::env::*;
use super::signal::Signal;
use super::systemd::Systemd;
use crate::error::Error;

/// The longest duration any setting accepts: one day.
pub(super) const MAX_DURATION: Duration = Duration::from_secs(86_400);

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
    /// Default `None`: 5 × `stall_budget` (50 s). Wall time without
    /// progress and without a byte read or written, while the thread only
    /// sleeps and wakes (context switches, a little CPU), before the
    /// `polling` verdict: a `while (!ready) usleep(1000);` that never ends.
    /// Longer than `stall_budget`, so that slow but living waits (data
    /// trickling in moves bytes; a sleep between two touches) stay free.
    pub poll_budget: Option<Duration>,
    /// Default [`Action::Abort`]. What to do on a verdict.
    pub action: Action,
    /// Default [`Signal::default_signal`] (`SIGRTMAX-3`). The signal the
    /// per-thread timers deliver.
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
    /// Default `true`. A registered thread that unwinds from a panic with
    /// its [`ThreadHandle`](crate::ThreadHandle) alive is a `vanished`
    /// verdict: the loop it kept moving is gone, as if the thread had died.
    /// `false` treats it as an ordinary unregistration (for threads whose
    /// panics are caught and whose work another thread takes over).
    pub panic_is_verdict: bool,
    /// Default [`Systemd::Auto`]. Whether to use systemd's watchdog.
    pub systemd: Systemd,
    /// Default `false`. Use the wall-clock fallback timer even where CPU-clock
    /// timers work. The fallback exists for platforms where CPU clocks cannot
    /// arm timers; the handler still decides on CPU-time deltas. Setting this
    /// is mainly for testing the fallback.
    pub wall_clock_timers: bool,
    /// Default `None`. A function run after the gate closes (a verdict is
    /// final) and before the process ends; set it with the `unsafe`
    /// [`Config::pre_abort_hook`], whose `# Safety` states its contract
    /// (async-signal-safe, quick).
    pub pre_abort_hook: Option<fn()>,
}

/// The watchdog configuration: a by-value builder.
///
/// Start from [`Config::new`] (the defaults, listed on [`Settings`]), chain
/// setters, optionally apply the `FAILSTOP_*` variables with
/// [`Config::with_env`], and read values back through [`Config::settings`].
/// Setters do not check their input; [`Config::validate`] and
/// [`Config::with_env`] do, and the watchdog validates again when it starts.
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
                poll_budget: None,
                action: Action::Abort,
                signal: Signal::default_signal(),
                dump_path: None,
                dump_timeout: Duration::from_secs(2),
                abort_under_debugger: false,
                panic_is_verdict: true,
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
    /// assert_eq!(config.settings().signal, failstop::Signal::default_signal());
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
    /// [`Action::Exit`] statuses must be in `1..=255`.
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

    /// The signal the per-thread timers deliver. Default `SIGRTMAX-3`
    /// ([`Signal::default_signal`]).
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

    /// Wall time without progress and without a byte moved, while the
    /// thread only sleeps and wakes, before the `polling` verdict. Default
    /// 5 × [`stall_budget`](Config::stall_budget).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = failstop::Config::new().poll_budget(Duration::from_secs(20));
    /// assert_eq!(config.settings().poll_budget, Some(Duration::from_secs(20)));
    /// ```
    pub fn poll_budget(mut self, budget: Duration) -> Self {
        self.settings.poll_budget = Some(budget);
        self
    }

    /// Whether a registered thread that unwinds from a panic with its handle
    /// alive is a `vanished` verdict. Default `true` (see
    /// [`Settings::panic_is_verdict`]).
    ///
    /// ```
    /// let config = failstop::Config::new().panic_is_verdict(false);
    /// assert!(!config.settings().panic_is_verdict);
    /// ```
    pub fn panic_is_verdict(mut self, verdict: bool) -> Self {
        self.settings.panic_is_verdict = verdict;
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
    /// # Safety
    ///
    /// `hook` runs in signal context (the culprit's timer handler) or on
    /// the fatal path, possibly while other threads hold locks (the
    /// allocator's, the loader's, stdio's). It must be async-signal-safe:
    /// no allocation, no locks, no `println!`, no lazy initialisation; only
    /// calls that POSIX lists as async-signal-safe (`close`, `write`,
    /// `send`, atomic stores). It must also finish quickly: nothing
    /// interrupts it but the kernel fuse, `dump_timeout` plus 3 s after the
    /// verdict. Closing a heartbeat socket is the typical use.
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
    /// // SAFETY: close_heartbeat only makes an atomic swap and calls close(2).
    /// let config = unsafe { failstop::Config::new().pre_abort_hook(close_heartbeat) };
    /// assert!(config.settings().pre_abort_hook.is_some());
    /// ```
    pub unsafe fn pre_abort_hook(mut self, hook: fn()) -> Self {
        self.settings.pre_abort_hook = Some(hook);
        self
    }

    /// Checks every value.
    ///
    /// Rejected: zero durations (`cpu_budget`, `warn_after`, `stall_budget`,
    /// `dump_timeout`), durations over one day, `warn_after >= cpu_budget`,
    /// [`Action::Exit`] statuses outside `1..=255` (0 reads as a clean exit to a
    /// supervisor), and an empty `dump_path`
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
    /// In a program run in secure mode (set-user-ID or set-group-ID, or
    /// with file capabilities: the kernel's `AT_SECURE`), the environment
    /// belongs to a less trusted caller and is not read: the configuration
    /// set in code applies as it is, and one line on stderr names the
    /// `FAILSTOP_*` variables ignored (as the dynamic loader ignores
    /// `LD_PRELOAD` paths there).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Code sets the defaults; the environment may override them.
    /// let config = failstop::Config::new()
    ///     .cpu_budget(Duration::from_millis(500))
    ///     .with_env()?;
    /// config.validate()?;
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn with_env(self) -> Result<Config, Error> {
        if secure_mode() {
            let ignored: Vec<String> = std::env::vars_os()
                .map(|(name, _)| name.to_string_lossy().into_owned())
                .filter(|name| name.starts_with("FAILSTOP_"))
                .collect();
            if !ignored.is_empty() {
                eprintln!(
                    "failstop: secure mode (set-user-ID, set-group-ID or file capabilities): the environment is not \
                     read; ignored: {}; the configuration set in code applies",
                    ignored.join(", ")
                );
            }
            self.validate()?;
            return Ok(self);
        }
        self.apply_env_with(|name| std::env::var_os(name), std::env::vars_os().map(|(name, _)| name))
    }

    /// The former name of [`Config::with_env`] (a `from_` method that took
    /// `self` read like a constructor). Kept for one release.
    ///
    /// ```
    /// #[allow(deprecated)]
    /// let config = failstop::Config::new().from_env()?;
    /// # Ok::<(), failstop::Error>(())
    /// ```
    #[deprecated(since = "0.1.0", note = "renamed Config::with_env")]
    pub fn from_env(self) -> Result<Config, Error> {
        self.with_env()
    }

    /// [`Config::with_env`] over an explicit list of variables instead of
    /// the process environment: the same parsers, checks and messages, for
    /// a tool that checks settings before they reach a program (the
    /// `failstop run` command checks the environment it is about to `exec`
    /// with). Every `(name, value)` pair is a variable; a name given twice
    /// takes its last value; names that do not start with `FAILSTOP_` are
    /// ignored.
    ///
    /// ```
    /// let vars = [("FAILSTOP_CPU_BUDGET_MS", "500"), ("PATH", "/usr/bin")];
    /// let config = failstop::Config::new().with_vars(vars)?;
    /// assert_eq!(config.settings().cpu_budget, std::time::Duration::from_millis(500));
    ///
    /// let err = failstop::Config::new().with_vars([("FAILSTOP_CPU_BUDGET_MS", "soon")]).unwrap_err();
    /// assert!(err.message().starts_with("FAILSTOP_CPU_BUDGET_MS=\"soon\": not a decimal integer"));
    /// # Ok::<(), failstop::Error>(())
    /// ```
    pub fn with_vars<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Result<Config, Error>
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut list: Vec<(OsString, OsString)> = Vec::new();
        for (name, value) in vars {
            let (name, value) = (name.into(), value.into());
            list.retain(|(n, _)| *n != name);
            list.push((name, value));
        }
        let lookup = |name: &str| list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        self.apply_env_with(lookup, list.iter().map(|(n, _)| n.clone()))
    }

    /// [`Config::with_env`] over an explicit environment: `lookup` returns a
    /// variable's value, `names` yields every variable name present (used to
    /// reject unknown `FAILSTOP_*` names).
    pub(crate) fn apply_env_with(
        mut self,
        lookup: impl Fn(&str) -> Option<OsString>,
        names: impl Iterator<Item = OsString>,
    ) -> Result<Config, Error> {
        check_unknown_names(&lookup, names)?;

        let mut origin = EnvOrigin::default();
        for var in ENV_VARS {
            let name = var.name;
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
        let allowed = env_var(name).map_or("", |v| v.allowed);
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
            VAR_POLL_BUDGET_MS => s.poll_budget = Some(parse_ms(value).map_err(fail)?),
            VAR_ACTION => s.action = parse_action(value).map_err(fail)?,
            VAR_SIGNAL => {
                // The reason from `Signal::parse` already ends in "; allowed: ...".
                s.signal =
                    Signal::parse(value).map_err(|why| Error::invalid_config(format!("{name}={raw:?}: {why}")))?;
            }
            VAR_DUMP_TIMEOUT_MS => s.dump_timeout = parse_ms(value).map_err(fail)?,
            VAR_ABORT_UNDER_DEBUGGER => s.abort_under_debugger = parse_bool(value).map_err(fail)?,
            VAR_PANIC_IS_VERDICT => s.panic_is_verdict = parse_bool(value).map_err(fail)?,
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
            ("poll_budget", s.poll_budget.unwrap_or(s.stall_budget)),
        ] {
            let why = if value.is_zero() {
                "must be greater than zero"
            } else if value > MAX_DURATION {
                "must be at most one day"
            } else {
                continue;
            };
            return Err(Error::invalid_config(format!(
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
            return Err(Error::invalid_config(message));
        }

        if let Action::Exit(status) = s.action
            && !(1..=255).contains(&status)
        {
            return Err(Error::invalid_config(format!(
                "action=Exit({status}): {}; allowed: Exit(1..=255)",
                if status == 0 {
                    "exit status 0 tells a supervisor the service ended cleanly (Restart=on-failure would not \
                     restart it)"
                } else {
                    "exit status out of range"
                }
            )));
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
            return Err(Error::invalid_config(format!(
                "dump_path={path:?}: {why}; allowed: a non-empty file path without NUL bytes"
            )));
        }
        Ok(())
    }
}

/// Whether the process runs in secure mode (`AT_SECURE`: set-user-ID,
/// set-group-ID, file capabilities), where the environment is not trusted.
#[cfg(target_os = "linux")]
fn secure_mode() -> bool {
    // SAFETY: getauxval has no preconditions; 0 when the entry is absent.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Secure mode is a Linux notion here; elsewhere the environment is read.
#[cfg(not(target_os = "linux"))]
fn secure_mode() -> bool {
    false
}
