//! systemd's service watchdog: `WATCHDOG=1` while [`healthy`](crate::healthy),
//! `WATCHDOG=trigger` on a verdict.
//!
//! # What it does
//!
//! When the service manager asked for a watchdog (`WatchdogSec=` in the unit:
//! systemd then sets `WATCHDOG_USEC`, `WATCHDOG_PID` and `NOTIFY_SOCKET`),
//! the monitor thread sends `WATCHDOG=1` every `WATCHDOG_USEC / 2` (but not
//! more often than every millisecond) for as long as the heartbeat gate is
//! open, also while it writes a `warn`-mode dump. The pings come from the
//! monitor itself, so they prove that the monitor runs: if the monitor
//! hangs, the pings stop and systemd ends the service. The watchdog is
//! watched.
//!
//! On a verdict whose action closes the gate (`abort`, `exit:N`,
//! `unhealthy`; not `warn`), the monitor stops pinging and
//!
//! 1. sends `STATUS=failstop: <verdict> thread "<name>" (tid N)` before it
//!    writes the dump, so `systemctl status` and the journal's
//!    "Watchdog request (last status: ...)" line name the culprit;
//! 2. sends `WATCHDOG=trigger` once the dump is written, right before it lets
//!    the action go. Not earlier: systemd answers a trigger at once with the
//!    unit's `WatchdogSignal=` (default `SIGABRT`) to the whole process, which
//!    would cut the dump short and put an arbitrary thread in the core
//!    file. With a fatal action the process then ends by failstop's own
//!    `SIGABRT` on the culprit (or `_exit`) or by systemd's signal,
//!    whichever lands first; with `unhealthy`, systemd ends it.
//!
//! No trigger is sent when a debugger is attached and failstop spares the
//! process (`abort_under_debugger` off); the pings have stopped all the
//! same, so systemd still acts after `WatchdogSec=`.
//!
//! `READY=1`, `STOPPING=1` and the rest of the protocol are the
//! application's business: readiness means "my service accepts work",
//! which only the application knows. failstop never sends them.
//!
//! After [`Watchdog::stop`](crate::Watchdog::stop) (or its drop) nothing
//! pings any more: under `WatchdogSec=` the service must exit soon after or
//! ping by itself.
//!
//! # When it is on
//!
//! [`Systemd::Auto`] (the default; `FAILSTOP_SYSTEMD=off` turns it off) and
//! `WATCHDOG_USEC` and `NOTIFY_SOCKET` set, and `WATCHDOG_PID` unset or equal
//! to this process's pid (a child that inherited the variables stays
//! quiet). The variables are read once, by `start`. A malformed
//! `WATCHDOG_USEC`, `WATCHDOG_PID` or `NOTIFY_SOCKET`, or a socket that cannot
//! be reached, makes `start` fail: a watchdog that was asked for but cannot
//! be fed would end the service after `WatchdogSec=` for no visible reason.
//! The variables are left in the environment (changing it is not
//! thread-safe); `WATCHDOG_PID` keeps children from using them.
//!
//! # Protocol and implementation
//!
//! sd_notify: one datagram per message, newline-separated `KEY=VALUE` lines,
//! to the `AF_UNIX` `SOCK_DGRAM` socket named by `NOTIFY_SOCKET`: a path, or
//! an abstract name when it starts with `@` (the `@` stands for a NUL byte).
//! Other address kinds (`vsock:`) are refused.
//!
//! Written with `libc` rather than a crate: the `sd-notify` and `libsystemd`
//! crates create a socket and build the message in a `String` on every call,
//! and the fatal path must not allocate (another thread may hold the
//! allocator's lock). Here the address is built and the socket
//! (`SOCK_DGRAM | SOCK_CLOEXEC`) connected at start, in normal context;
//! afterwards sending is one `send(MSG_NOSIGNAL | MSG_DONTWAIT)` of a stack
//! buffer. `MSG_DONTWAIT`: a full queue on systemd's side drops one message
//! instead of stalling the monitor (systemd reads its socket promptly). A
//! connection refused (the socket was re-created) is re-connected once with
//! the saved address. Failures are never logged from the monitor; they are
//! counted and reported once by `stop`.

use crate::config::Systemd;
use crate::error::{Error, ErrorKind};
use crate::os::fmt::FixedBuf;
use crate::os::sys::{self, syscall};
use crate::state::gate;
use crate::state::latch::{self, CULPRIT_SLOT, CULPRIT_TID};
use crate::state::slots::{self, NAME_LEN};
use crate::verdict::VerdictKind;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering::*};
use std::time::Duration;

/// Messages that could not be sent (reported and reset by [`report_failures`]).
static FAILURES: AtomicU64 = AtomicU64::new(0);
/// The errno of the last failure.
static LAST_ERRNO: AtomicI32 = AtomicI32::new(0);

/// The shortest ping interval, whatever `WATCHDOG_USEC` says.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Where to send and how often, as read from the environment.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    addr: libc::sockaddr_un,
    addr_len: libc::socklen_t,
    /// `WATCHDOG_USEC` as given.
    usec: u64,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("socket", &self.shown()).field("usec", &self.usec).finish()
    }
}

impl Target {
    /// The socket as `NOTIFY_SOCKET` spells it (`@` for the leading NUL).
    fn shown(&self) -> String {
        let off = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        let used = &self.addr.sun_path[..self.addr_len as usize - off];
        let b: Vec<u8> = used.iter().map(|&c| c as u8).collect();
        let b = b.strip_suffix(b"\0").unwrap_or(&b);
        match b.split_first() {
            Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
            _ => String::from_utf8_lossy(b).into_owned(),
        }
    }

    /// Half the watchdog timeout, at least [`MIN_INTERVAL`].
    pub(crate) fn interval(&self) -> Duration {
        (Duration::from_micros(self.usec) / 2).max(MIN_INTERVAL)
    }

    /// The address bytes in use (`sun_path` up to `addr_len`).
    #[cfg(test)]
    fn path_bytes(&self) -> Vec<u8> {
        let off = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        self.addr.sun_path[..self.addr_len as usize - off].iter().map(|&c| c as u8).collect()
    }
}

fn invalid(var: &str, value: &OsString, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!(
            "{var}={:?}: {why} (set by systemd for WatchdogSec=; FAILSTOP_SYSTEMD=off makes failstop ignore it)",
            value.to_string_lossy()
        ),
    )
}

/// A decimal integer of digits only (no sign, no spaces).
fn parse_decimal(v: &OsString) -> Option<u64> {
    let b = v.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Decides from the environment (through `get`) whether and where to ping,
/// for the process `pid`. `Ok(None)`: systemd did not ask this process.
pub(crate) fn parse_env(pid: libc::pid_t, get: impl Fn(&str) -> Option<OsString>) -> Result<Option<Target>, Error> {
    let Some(usec) = get("WATCHDOG_USEC") else { return Ok(None) };
    if let Some(wpid) = get("WATCHDOG_PID") {
        let Some(p) = parse_decimal(&wpid).filter(|&p| p > 0 && p <= i32::MAX as u64) else {
            return Err(invalid("WATCHDOG_PID", &wpid, "not a process id; allowed: a positive decimal integer"));
        };
        if p != pid as u64 {
            return Ok(None); // meant for another process (our parent, say)
        }
    }
    let usec_v = match parse_decimal(&usec) {
        Some(u) if u > 0 && u < u64::MAX => u,
        _ => {
            return Err(invalid(
                "WATCHDOG_USEC",
                &usec,
                "not a watchdog timeout; allowed: a decimal number of microseconds from 1 to 18446744073709551614",
            ));
        }
    };
    let Some(sock) = get("NOTIFY_SOCKET") else { return Ok(None) };
    let name = sock.as_bytes();
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let off = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let room = addr.sun_path.len() - 1; // a NUL before a path, or after it
    let (bytes, start, len) = match name.first() {
        Some(b'/') => (name, 0, off + name.len() + 1),
        Some(b'@') if name.len() > 1 => (&name[1..], 1, off + name.len()),
        _ => {
            return Err(invalid(
                "NOTIFY_SOCKET",
                &sock,
                "not a unix socket path or abstract name; allowed: /path or @name (other kinds, like vsock:, are not supported)",
            ));
        }
    };
    if bytes.len() > room {
        return Err(invalid("NOTIFY_SOCKET", &sock, &format!("too long; allowed: at most {room} bytes")));
    }
    for (d, &s) in addr.sun_path[start..].iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    Ok(Some(Target { addr, addr_len: len as libc::socklen_t, usec: usec_v }))
}

/// The notifier the monitor owns: a connected socket and the ping schedule.
pub(crate) struct Notifier {
    fd: sys::Fd,
    target: Target,
    interval_ns: u64,
    next_ping: u64,
    /// Set on a gate-closing verdict: no `WATCHDOG=1` from then on.
    stopped: bool,
}

/// Reads the environment once and connects, unless `mode` is off or systemd
/// did not ask for a watchdog. Normal context (start).
pub(crate) fn from_env(mode: Systemd) -> Result<Option<Notifier>, Error> {
    if mode == Systemd::Off {
        return Ok(None);
    }
    match parse_env(sys::getpid(), |k| std::env::var_os(k))? {
        Some(t) => Notifier::connect(t).map(Some),
        None => Ok(None),
    }
}

impl Notifier {
    /// Opens a `SOCK_DGRAM | SOCK_CLOEXEC` socket connected to `target`.
    pub(crate) fn connect(target: Target) -> Result<Notifier, Error> {
        let what = || {
            format!(
                "systemd watchdog: connecting to NOTIFY_SOCKET={:?} (FAILSTOP_SYSTEMD=off to run without it)",
                target.shown()
            )
        };
        let fd = sys::Fd::socket(libc::AF_UNIX, libc::SOCK_DGRAM).map_err(|e| Error::os(&what(), e))?;
        let n = Notifier { fd, target, interval_ns: target.interval().as_nanos() as u64, next_ping: 0, stopped: false };
        n.connect_again().map_err(|e| Error::os(&what(), e))?;
        Ok(n)
    }

    /// (Re)connects to the saved address. Allocation-free.
    fn connect_again(&self) -> std::io::Result<()> {
        let addr = (&self.target.addr as *const libc::sockaddr_un).cast::<libc::sockaddr>();
        syscall!(connect(self.fd.raw(), addr, self.target.addr_len)).map(|_| ())
    }

    /// Sends one datagram; counts a failure. Allocation-free, never blocks.
    fn send(&self, msg: &[u8]) {
        let mut reconnected = false;
        loop {
            // SAFETY: the pointer and length describe `msg`; the socket is ours.
            let n = unsafe {
                libc::send(self.fd.raw(), msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
            };
            if n >= 0 {
                return;
            }
            // Building an io::Error from errno does not allocate.
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno == libc::EINTR {
                continue;
            }
            if !reconnected && matches!(errno, libc::ECONNREFUSED | libc::ENOTCONN) && self.connect_again().is_ok() {
                reconnected = true;
                continue;
            }
            LAST_ERRNO.store(errno, Relaxed);
            FAILURES.fetch_add(1, Relaxed);
            return;
        }
    }

    /// Sends `WATCHDOG=1` if one is due and the gate is open; returns how
    /// long until the next one is due. Monitor thread; allocation-free.
    pub(crate) fn ping_if_due(&mut self, now: u64) -> Duration {
        if self.stopped || !gate::healthy() {
            return Duration::MAX;
        }
        if now >= self.next_ping {
            self.send(b"WATCHDOG=1");
            self.next_ping = now + self.interval_ns;
        }
        Duration::from_nanos(self.next_ping - now)
    }

    /// A gate-closing verdict: stops the pings for good and sends the
    /// culprit as `STATUS=`. Fatal path (monitor); allocation-free.
    pub(crate) fn announce_verdict(&mut self) {
        self.stopped = true;
        let mut b = FixedBuf::<160>::new();
        b.push_str("STATUS=failstop: ");
        b.push_str(latch::latched().unwrap_or(VerdictKind::Stuck).as_str());
        b.push_str(" thread \"");
        let mut name = [0u8; NAME_LEN];
        let n = slots::slot(CULPRIT_SLOT.load(Relaxed)).map_or(0, |s| s.name_into(&mut name));
        b.push_escaped(&name[..n]);
        b.push_str("\" (tid ");
        b.push_i64(CULPRIT_TID.load(Relaxed) as i64);
        b.push_str(")");
        self.send(b.as_bytes());
    }

    /// Asks systemd to act now (`WATCHDOG=trigger`). Fatal path (monitor);
    /// allocation-free.
    pub(crate) fn trigger(&mut self) {
        self.stopped = true;
        self.send(b"WATCHDOG=trigger");
    }
}

/// Logs, once, how many messages could not be sent since the last call.
/// Normal context (stop).
pub(crate) fn report_failures() {
    let n = FAILURES.swap(0, Relaxed);
    if n > 0 {
        let err = std::io::Error::from_raw_os_error(LAST_ERRNO.load(Relaxed));
        tracing::warn!(
            failures = n,
            "failstop: {n} message(s) to systemd's NOTIFY_SOCKET could not be sent (last: {err})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pid: libc::pid_t, vars: &[(&str, &str)]) -> Result<Option<Target>, Error> {
        let m: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        parse_env(pid, |k| m.get(k).cloned())
    }

    #[test]
    fn path_socket() {
        let t = parse(7, &[("NOTIFY_SOCKET", "/run/systemd/notify"), ("WATCHDOG_USEC", "30000000")]).unwrap().unwrap();
        assert_eq!(t.path_bytes(), b"/run/systemd/notify\0");
        assert_eq!(t.addr.sun_family, libc::AF_UNIX as libc::sa_family_t);
        assert_eq!(t.interval(), Duration::from_secs(15));
        assert_eq!(format!("{t:?}"), r#"Target { socket: "/run/systemd/notify", usec: 30000000 }"#);
    }

    #[test]
    fn abstract_socket() {
        let vars = [("NOTIFY_SOCKET", "@/org/test/notify"), ("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "7")];
        let t = parse(7, &vars).unwrap().unwrap();
        assert_eq!(t.path_bytes(), b"\0/org/test/notify"); // no trailing NUL: it would be part of the name
        assert_eq!(t.interval(), Duration::from_millis(200));
        assert_eq!(t.shown(), "@/org/test/notify");
    }

    #[test]
    fn tiny_timeout_floors_the_interval() {
        let t = parse(7, &[("NOTIFY_SOCKET", "/s"), ("WATCHDOG_USEC", "1")]).unwrap().unwrap();
        assert_eq!(t.interval(), MIN_INTERVAL);
    }

    #[test]
    fn other_pid_or_missing_vars_disable() {
        let base = [("NOTIFY_SOCKET", "/s"), ("WATCHDOG_USEC", "400000")];
        assert!(parse(7, &[base[0], base[1], ("WATCHDOG_PID", "8")]).unwrap().is_none());
        assert!(parse(7, &base[..1]).unwrap().is_none());
        assert!(parse(7, &base[1..]).unwrap().is_none());
        assert!(parse(7, &[]).unwrap().is_none());
        // Meant for another process: its values are not ours to judge.
        assert!(parse(7, &[("WATCHDOG_USEC", "soon"), ("WATCHDOG_PID", "8")]).unwrap().is_none());
        // No watchdog asked for: NOTIFY_SOCKET alone (Type=notify) is not looked at.
        assert!(parse(7, &[("NOTIFY_SOCKET", "vsock:2:1")]).unwrap().is_none());
    }

    #[test]
    fn bad_values_are_errors() {
        for usec in ["", "0", "-5", " 400000", "4e5", "1.5", "18446744073709551615", "99999999999999999999"] {
            let e = parse(7, &[("NOTIFY_SOCKET", "/s"), ("WATCHDOG_USEC", usec)]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig);
            assert!(e.message().contains("WATCHDOG_USEC") && e.message().contains(&format!("{usec:?}")), "{e}");
        }
        // Checked even without a socket: the variable is broken either way.
        assert!(parse(7, &[("WATCHDOG_USEC", "x")]).is_err());
        for pid in ["", "0", "-1", "abc", "99999999999"] {
            let e = parse(7, &[("NOTIFY_SOCKET", "/s"), ("WATCHDOG_USEC", "1000"), ("WATCHDOG_PID", pid)]).unwrap_err();
            assert!(e.message().contains("WATCHDOG_PID"), "{e}");
        }
        let long = format!("/{}", "x".repeat(107));
        for sock in ["", "@", "relative/path", "vsock:2:1234", long.as_str()] {
            let e = parse(7, &[("NOTIFY_SOCKET", sock), ("WATCHDOG_USEC", "1000")]).unwrap_err();
            assert!(e.message().contains("NOTIFY_SOCKET"), "{e}");
        }
        let fits = format!("/{}", "x".repeat(106));
        assert!(parse(7, &[("NOTIFY_SOCKET", fits.as_str()), ("WATCHDOG_USEC", "1000")]).unwrap().is_some());
        let abs = format!("@{}", "x".repeat(107));
        assert!(parse(7, &[("NOTIFY_SOCKET", abs.as_str()), ("WATCHDOG_USEC", "1000")]).unwrap().is_some());
    }

    #[test]
    fn pings_and_trigger_reach_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("failstop-sd-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let rx = std::os::unix::net::UnixDatagram::bind(&dir).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let sock = dir.to_str().unwrap();
        let t = parse(7, &[("NOTIFY_SOCKET", sock), ("WATCHDOG_USEC", "400000")]).unwrap().unwrap();
        let mut n = Notifier::connect(t).unwrap();
        assert_eq!(n.ping_if_due(1_000), Duration::from_millis(200));
        assert_eq!(n.ping_if_due(1_000 + 50_000_000), Duration::from_millis(150)); // not due: nothing sent
        n.trigger();
        assert_eq!(n.ping_if_due(u64::MAX / 2), Duration::MAX);
        let mut buf = [0u8; 64];
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
        let k = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=trigger");
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn unreachable_socket_is_an_error() {
        let t =
            parse(7, &[("NOTIFY_SOCKET", "/nonexistent/failstop/notify"), ("WATCHDOG_USEC", "1000")]).unwrap().unwrap();
        let e = Notifier::connect(t).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Os);
        assert!(e.message().contains("NOTIFY_SOCKET=\"/nonexistent/failstop/notify\""), "{e}");
    }
}
