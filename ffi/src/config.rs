//! `failstop_config` and `failstop_action`: the configuration a C program
//! passes to `failstop_start_with`, read field by field up to the
//! `struct_size` it was compiled with.

use crate::error::{FAILSTOP_E_NULL, fail, guarded, set_last_error};
use failstop::{Action, Config, Error, ErrorKind, Signal, Systemd, ffi_support};
use libc::{c_char, c_int};
use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

/// What failstop does on a verdict (`failstop_config.action`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum failstop_action {
    /// End the process with `abort()` (SIGABRT). The default.
    FAILSTOP_ACTION_ABORT = 0,
    /// End the process with `_exit(exit_code)`; `exit_code` in 1..=255.
    FAILSTOP_ACTION_EXIT = 1,
    /// Keep running, report unhealthy (`failstop_healthy()` returns 0) from then on.
    FAILSTOP_ACTION_UNHEALTHY = 2,
    /// Only report; keep running.
    FAILSTOP_ACTION_WARN = 3,
}

/// The configuration for `failstop_start_with`.
///
/// Always fill it with `failstop_config_init` first, then change fields:
/// `failstop_config_init` sets `struct_size` to the size of this struct as
/// the library knows it, which is how a program built against an older or
/// newer header keeps working (fields past `struct_size` take their
/// defaults; bytes of a larger struct that this library does not know must
/// be zero, or the call fails with `FAILSTOP_E_INVALID_CONFIG`).
///
/// Durations are in milliseconds; 0 means "the default" (the defaults are
/// those of the `FAILSTOP_*` variables: cpu budget 1000, warn 100,
/// stall budget 10000, dump timeout 2000).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct failstop_config {
    /// `sizeof(failstop_config)` as the caller knows it; set by `failstop_config_init`.
    pub struct_size: usize,
    /// CPU time a thread may use without progress before the `stuck` verdict (0 = 1000 ms).
    pub cpu_budget_ms: u64,
    /// CPU time since the last touch after which a warning is reported; less than the budget (0 = 100 ms).
    pub warn_after_ms: u64,
    /// Wall time without progress, CPU use or context switches before the `blocked` verdict (0 = 10000 ms).
    pub stall_budget_ms: u64,
    /// Hard deadline for the thread dump (0 = 2000 ms).
    pub dump_timeout_ms: u64,
    /// One of `failstop_action` (default `FAILSTOP_ACTION_ABORT`).
    pub action: i32,
    /// The exit status for `FAILSTOP_ACTION_EXIT`, in 1..=255 (0 would read
    /// as a clean exit to a supervisor; ignored for the other actions).
    pub exit_code: i32,
    /// The signal the per-thread timers deliver (0 = the default,
    /// `SIGRTMAX-3`, a real-time signal of failstop's own, which the
    /// application's `SIGALRM` never meets). Allowed:
    /// SIGALRM, SIGVTALRM, SIGPROF, SIGUSR1, SIGUSR2, SIGRTMIN..=SIGRTMAX.
    pub signal: i32,
    /// Non-zero: the `FAILSTOP_*` environment variables override these fields.
    pub apply_env: i32,
    /// Non-zero: start succeeds and watches nothing.
    pub disabled: i32,
    /// Non-zero: end the process on a verdict even under a debugger.
    pub abort_under_debugger: i32,
    /// A file the thread dump is also written to (NULL = standard error only).
    /// Copied by `failstop_start_with`; need not outlive the call.
    pub dump_path: *const c_char,
    /// Wall time without progress and without a byte read or written,
    /// while the thread only sleeps and wakes, before the `polling`
    /// verdict (0 = 5 × the stall budget).
    pub poll_budget_ms: u64,
    /// Non-zero: do not use systemd's service watchdog even when the
    /// service manager asked for it (`WATCHDOG_USEC`).
    pub systemd_off: i32,
    /// Non-zero: per-thread timers on the wall clock (judging CPU time
    /// still), for where CPU-time clocks cannot arm timers.
    pub wall_clock_timers: i32,
}

/// Fills `*cfg` with the defaults and sets `cfg->struct_size`. Does nothing
/// if `cfg` is NULL.
///
/// # Safety
///
/// `cfg` is NULL or points to writable memory for a `failstop_config`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn failstop_config_init(cfg: *mut failstop_config) {
    if cfg.is_null() {
        return;
    }
    // SAFETY: the caller guarantees `cfg` points to a writable
    // `failstop_config`; `write` does not read the old (maybe uninitialised) value.
    unsafe { cfg.write(default_config()) };
}

fn default_config() -> failstop_config {
    failstop_config {
        struct_size: size_of::<failstop_config>(),
        cpu_budget_ms: 0,
        warn_after_ms: 0,
        stall_budget_ms: 0,
        dump_timeout_ms: 0,
        action: failstop_action::FAILSTOP_ACTION_ABORT as i32,
        exit_code: 0,
        signal: 0,
        apply_env: 0,
        disabled: 0,
        abort_under_debugger: 0,
        dump_path: std::ptr::null(),
        poll_budget_ms: 0,
        systemd_off: 0,
        wall_clock_timers: 0,
    }
}

/// The largest `struct_size` accepted (a guard against an uninitialised field).
const MAX_STRUCT_SIZE: usize = 4096;

/// Reads the caller's struct: the fields it has, defaults for the others.
///
/// # Safety
///
/// `cfg` points to at least `(*cfg).struct_size` readable bytes.
unsafe fn read_config(cfg: *const failstop_config) -> Result<failstop_config, Error> {
    let ours = size_of::<failstop_config>();
    // SAFETY: every version of the struct starts with `struct_size`.
    let theirs = unsafe { std::ptr::addr_of!((*cfg).struct_size).read_unaligned() };
    if !(size_of::<usize>()..=MAX_STRUCT_SIZE).contains(&theirs) {
        return Err(ffi_support::error(
            ErrorKind::InvalidConfig,
            format!(
                "failstop_config.struct_size={theirs}: not a struct size; allowed: {} to {MAX_STRUCT_SIZE} \
                 (call failstop_config_init first)",
                size_of::<usize>()
            ),
        ));
    }
    let bytes = cfg.cast::<u8>();
    if theirs > ours {
        // SAFETY: the caller guarantees `theirs` readable bytes.
        let extra = unsafe { std::slice::from_raw_parts(bytes.add(ours), theirs - ours) };
        if extra.iter().any(|&b| b != 0) {
            return Err(ffi_support::error(
                ErrorKind::InvalidConfig,
                format!(
                    "failstop_config.struct_size={theirs}: the caller sets fields this library \
                     (struct size {ours}) does not know; allowed: those fields left zero, or a newer library"
                ),
            ));
        }
    }
    let mut out = default_config();
    // SAFETY: copies min(theirs, ours) bytes from the caller's struct (readable
    // per the contract) into `out`, a `failstop_config` of `ours` bytes; every
    // field is a plain integer or pointer, valid for any bit pattern.
    unsafe { std::ptr::copy_nonoverlapping(bytes, (&raw mut out).cast::<u8>(), theirs.min(ours)) };
    out.struct_size = ours;
    Ok(out)
}

fn ms_or(ms: u64, default: Duration) -> Duration {
    if ms == 0 { default } else { Duration::from_millis(ms) }
}

/// Builds a `Config` from the C struct.
///
/// # Safety
///
/// `c.dump_path` is NULL or a NUL-terminated string.
unsafe fn to_config(c: &failstop_config) -> Result<Config, Error> {
    let d = Config::new();
    let s = d.settings().clone();
    const ABORT: i32 = failstop_action::FAILSTOP_ACTION_ABORT as i32;
    const EXIT: i32 = failstop_action::FAILSTOP_ACTION_EXIT as i32;
    const UNHEALTHY: i32 = failstop_action::FAILSTOP_ACTION_UNHEALTHY as i32;
    const WARN: i32 = failstop_action::FAILSTOP_ACTION_WARN as i32;
    let action = match c.action {
        ABORT => Action::Abort,
        EXIT => Action::Exit(c.exit_code),
        UNHEALTHY => Action::Unhealthy,
        WARN => Action::Warn,
        n => {
            return Err(ffi_support::error(
                ErrorKind::InvalidConfig,
                format!(
                    "failstop_config.action={n}: not an action; allowed: FAILSTOP_ACTION_ABORT (0), \
                     FAILSTOP_ACTION_EXIT (1), FAILSTOP_ACTION_UNHEALTHY (2), FAILSTOP_ACTION_WARN (3)"
                ),
            ));
        }
    };
    let mut config = d
        .cpu_budget(ms_or(c.cpu_budget_ms, s.cpu_budget))
        .warn_after(ms_or(c.warn_after_ms, s.warn_after))
        .stall_budget(ms_or(c.stall_budget_ms, s.stall_budget))
        .dump_timeout(ms_or(c.dump_timeout_ms, s.dump_timeout))
        .action(action)
        .disabled(c.disabled != 0)
        .abort_under_debugger(c.abort_under_debugger != 0)
        .systemd(if c.systemd_off != 0 { Systemd::Off } else { Systemd::Auto })
        .wall_clock_timers(c.wall_clock_timers != 0);
    if c.poll_budget_ms != 0 {
        config = config.poll_budget(Duration::from_millis(c.poll_budget_ms));
    }
    if c.signal != 0 {
        config = config.signal(
            Signal::new(c.signal)
                .map_err(|e| ffi_support::error(e.kind(), format!("failstop_config.signal: {}", e.message())))?,
        );
    }
    if !c.dump_path.is_null() {
        // SAFETY: the caller guarantees a NUL-terminated string.
        let path = unsafe { CStr::from_ptr(c.dump_path) };
        config = config.dump_path(PathBuf::from(OsStr::from_bytes(path.to_bytes())));
    }
    if c.apply_env != 0 {
        config = config.with_env()?;
    }
    config.validate()?;
    Ok(config)
}

/// Starts the watchdog with `*cfg` (see `failstop_config`; fill it with
/// `failstop_config_init` first). With `cfg->apply_env` non-zero, the
/// `FAILSTOP_*` variables override the struct.
///
/// Returns `FAILSTOP_OK` or a negative `FAILSTOP_E_*` code:
/// `FAILSTOP_E_NULL` for a NULL `cfg`, `FAILSTOP_E_INVALID_CONFIG` for a bad
/// field (the message names it), `FAILSTOP_E_ALREADY_RUNNING`, and
/// `FAILSTOP_E_REENTERED` from a signal handler that interrupted
/// `failstop_start`, `failstop_start_with` or `failstop_stop` on the same
/// thread (not async-signal-safe: never call it from a signal handler).
///
/// # Safety
///
/// `cfg` is NULL or points to a `failstop_config` of `cfg->struct_size`
/// readable bytes whose `dump_path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn failstop_start_with(cfg: *const failstop_config) -> c_int {
    guarded("failstop_start_with", || {
        crate::watchdog::exclusive(|| {
            if cfg.is_null() {
                set_last_error("failstop: failstop_start_with: cfg is NULL");
                return FAILSTOP_E_NULL;
            }
            // SAFETY: non-null, and the caller guarantees `struct_size` readable bytes.
            let c = match unsafe { read_config(cfg) } {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            // SAFETY: the caller guarantees `dump_path` is NULL or NUL-terminated.
            match unsafe { to_config(&c) } {
                Ok(config) => crate::watchdog::start_config(config),
                Err(e) => fail(&e),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sizes_and_defaults() {
        let mut c = std::mem::MaybeUninit::<failstop_config>::uninit();
        // SAFETY: a valid out-pointer.
        unsafe { failstop_config_init(c.as_mut_ptr()) };
        // SAFETY: initialised by failstop_config_init.
        let c = unsafe { c.assume_init() };
        assert_eq!(c.struct_size, size_of::<failstop_config>());
        // SAFETY: a full struct, dump_path NULL.
        let config = unsafe { to_config(&read_config(&c).unwrap()) }.unwrap();
        assert_eq!(config.settings().cpu_budget, Config::new().settings().cpu_budget);

        // An older, shorter struct: missing fields take defaults.
        let mut old = c;
        old.struct_size = 16;
        old.cpu_budget_ms = 500;
        old.action = 99;
        // SAFETY: the struct is fully readable.
        let r = unsafe { read_config(&old) }.unwrap();
        assert_eq!(r.cpu_budget_ms, 500);
        assert_eq!(r.action, 0);

        // A bad struct_size and a bad action are invalid configs.
        let mut bad = c;
        bad.struct_size = 0;
        // SAFETY: the struct is fully readable.
        assert_eq!(unsafe { read_config(&bad) }.unwrap_err().kind(), ErrorKind::InvalidConfig);
        let mut bad = c;
        bad.action = 7;
        // SAFETY: dump_path NULL.
        let err = unsafe { to_config(&bad) }.unwrap_err();
        assert!(err.message().contains("failstop_config.action=7"), "{err}");
    }

    /// Every setting of `Config` that means something to a C program has a
    /// field; a program built before the last three fields existed gets
    /// their defaults.
    #[test]
    fn the_later_fields_reach_the_config_and_default_for_older_structs() {
        let mut c = default_config();
        c.poll_budget_ms = 45_000;
        c.systemd_off = 1;
        c.wall_clock_timers = 1;
        // SAFETY: a full struct, dump_path NULL.
        let config = unsafe { to_config(&read_config(&c).unwrap()) }.unwrap();
        let s = config.settings();
        assert_eq!(s.poll_budget, Some(Duration::from_secs(45)));
        assert_eq!(s.systemd, Systemd::Off);
        assert!(s.wall_clock_timers);

        let mut older = c;
        older.struct_size = std::mem::offset_of!(failstop_config, poll_budget_ms);
        // SAFETY: the struct is fully readable; dump_path NULL.
        let config = unsafe { to_config(&read_config(&older).unwrap()) }.unwrap();
        let d = Config::new();
        assert_eq!(config.settings().poll_budget, d.settings().poll_budget);
        assert_eq!(config.settings().systemd, Systemd::Auto);
        assert!(!config.settings().wall_clock_timers);
    }
}
