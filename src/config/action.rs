//! [`Action`]: what failstop does on a verdict, and its one text form.

use std::fmt;

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
    /// End the process with `_exit(status)`; the status must be in `1..=255`
    /// (0 would tell a supervisor that the service ended cleanly, and
    /// `Restart=on-failure` would not restart it).
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
