//! [`Systemd`]: whether failstop talks to systemd's watchdog.

use std::fmt;

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
