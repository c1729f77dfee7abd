//! The one error type of the crate.

use std::fmt;
use std::io;
use std::sync::Arc;

/// What went wrong, for programs that branch on it.
///
/// ```
/// let err = failstop::Config::new().cpu_budget(std::time::Duration::ZERO).validate().unwrap_err();
/// assert_eq!(err.kind(), failstop::ErrorKind::InvalidConfig);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value (from code or from a `FAILSTOP_*` variable) is invalid.
    InvalidConfig,
    /// `start` was called while a watchdog is already running.
    AlreadyRunning,
    /// The call needs a running watchdog and none is running.
    NotRunning,
    /// The calling thread is already registered.
    AlreadyRegistered,
    /// A limit was reached (thread slots, POSIX timers, memory for stacks).
    ResourceLimit,
    /// This platform is not supported (failstop needs Linux with glibc).
    Unsupported,
    /// An operating-system call failed.
    Os,
}

/// An error from failstop: a kind and a message that names the input and what
/// is allowed.
///
/// ```standalone_crate
/// // SAFETY: this example runs as its own single-threaded process
/// // (`standalone_crate`), so nothing reads the environment concurrently.
/// unsafe { std::env::set_var("FAILSTOP_CPU_BUDGET_MS", "soon") };
/// let err = failstop::Config::new().with_env().unwrap_err();
/// assert!(err.to_string().contains("FAILSTOP_CPU_BUDGET_MS"));
/// # unsafe { std::env::remove_var("FAILSTOP_CPU_BUDGET_MS") };
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The operating-system error behind an [`ErrorKind::Os`] failure,
    /// returned by [`source`](std::error::Error::source).
    source: Option<Arc<io::Error>>,
}

/// Two errors are equal when their kind and message are: the message
/// already spells out the wrapped OS error.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

// Used by the Linux-only modules.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
impl Error {
    /// Builds an error of `kind` with a full message.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// A configuration value is invalid; `message` names it and what is allowed.
    pub(crate) fn invalid_config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfig, message)
    }

    /// An operating-system failure while doing `what`; `err` becomes the
    /// error's [`source`](std::error::Error::source).
    pub(crate) fn os(what: &str, err: io::Error) -> Self {
        let message = format!("{what}: {err}");
        Error { kind: ErrorKind::Os, message, source: Some(Arc::new(err)) }
    }

    /// Like [`Error::os`], with a kind other than [`ErrorKind::Os`] (a limit
    /// that an OS call reported) and a full message.
    pub(crate) fn with_source(kind: ErrorKind, message: impl Into<String>, err: io::Error) -> Self {
        Error { kind, message: message.into(), source: Some(Arc::new(err)) }
    }

    /// The same error with `context: ` in front of its message.
    pub(crate) fn prefixed(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The kind of failure.
    ///
    /// ```
    /// let err = failstop::register("no-watchdog").unwrap_err();
    /// assert_eq!(err.kind(), failstop::ErrorKind::NotRunning);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the `failstop: ` prefix that `Display` adds.
    ///
    /// ```
    /// let err = failstop::Config::new().action(failstop::Action::Exit(300)).validate().unwrap_err();
    /// assert!(err.message().starts_with("action=Exit(300)"));
    /// assert_eq!(err.to_string(), format!("failstop: {}", err.message()));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failstop: {}", self.message)
    }
}

/// The wrapped [`io::Error`] of an operating-system failure.
///
/// ```
/// use std::error::Error as _;
///
/// // A dump path with a NUL byte fails validation: no OS error behind it.
/// let err = failstop::Config::new().dump_path("a\0b").validate().unwrap_err();
/// assert!(err.source().is_none());
/// ```
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
