//! The live settings: what the signal handler and the fatal path read, as
//! atomics, stored by `engine::watchdog` before the handler is installed.
//!
//! The handler never reads the environment or a [`Config`](crate::Config):
//! every value it needs is here, set before [`install`] and valid until
//! after the handler is removed.
//!
//! [`install`]: ../../engine/handler/fn.install.html

use super::lifecycle::{Lifecycle, LifecycleCell};
use crate::config::{Action, Settings};
use crate::verdict::Budgets;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

/// [`Action`] as stored in [`LiveSettings::action`] (with `exit_code`).
const ACTION_ABORT: u32 = 0;
const ACTION_EXIT: u32 = 1;
const ACTION_UNHEALTHY: u32 = 2;
const ACTION_WARN: u32 = 3;

/// The settings of the running watchdog, as atomics (see the module doc).
pub(crate) struct LiveSettings {
    pub lifecycle: LifecycleCell,
    /// The process that started the watchdog (a forked child is not it).
    pub pid: AtomicI32,
    pub disabled: AtomicBool,
    pub signo: AtomicI32,
    pub cpu_budget_ns: AtomicU64,
    pub warn_after_ns: AtomicU64,
    pub stall_budget_ns: AtomicU64,
    pub poll_budget_ns: AtomicU64,
    pub period_ns: AtomicU64,
    pub dump_timeout_ns: AtomicU64,
    action: AtomicU32,
    exit_code: AtomicI32,
    pub wall_clock_timers: AtomicBool,
    pub abort_under_debugger: AtomicBool,
    pub panic_is_verdict: AtomicBool,
    /// The pre-abort hook, a `fn()` as usize (0 = none).
    hook: AtomicUsize,
}

/// The one instance.
pub(crate) static LIVE: LiveSettings = LiveSettings {
    lifecycle: LifecycleCell::new(Lifecycle::Stopped),
    pid: AtomicI32::new(0),
    disabled: AtomicBool::new(false),
    signo: AtomicI32::new(libc::SIGALRM),
    cpu_budget_ns: AtomicU64::new(0),
    warn_after_ns: AtomicU64::new(0),
    stall_budget_ns: AtomicU64::new(0),
    poll_budget_ns: AtomicU64::new(0),
    period_ns: AtomicU64::new(0),
    dump_timeout_ns: AtomicU64::new(0),
    action: AtomicU32::new(ACTION_ABORT),
    exit_code: AtomicI32::new(0),
    wall_clock_timers: AtomicBool::new(false),
    abort_under_debugger: AtomicBool::new(false),
    panic_is_verdict: AtomicBool::new(true),
    hook: AtomicUsize::new(0),
};

/// The default `poll_budget`, in `stall_budget`s.
pub(crate) const POLL_PER_STALL: u32 = 5;

/// What registering a thread needs, copied out of [`LIVE`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registration {
    pub disabled: bool,
    pub signo: libc::c_int,
    pub budgets: Budgets,
    pub wall_clock_timers: bool,
}

/// The timer period: the budget divided into at least 32 equal ticks, and
/// into more when that is needed for a tick at least every warning
/// threshold. The tick that first sees a thread's last progress comes at
/// most a period after it, and the budget is a whole number of periods from
/// there, so the last expiry comes exactly when the budget is used up: the
/// verdict comes by `budget + period` of CPU (and the kernel notices
/// CPU-timer expiries at its own ticks, a jiffy more), a 32nd of the budget
/// late at most. Ticks come only while a thread runs: at the default, 32
/// per CPU-second of a busy thread. With wall-clock timers, which tick
/// sleeping threads too, the budget is divided into four.
pub(crate) fn timer_period(cpu_budget: Duration, warn_after: Duration, wall_clock: bool) -> Duration {
    let per_budget: u128 = if wall_clock { 4 } else { 32 };
    let budget = cpu_budget.as_nanos().max(1);
    let n = per_budget.max(budget.div_ceil(warn_after.as_nanos().max(1)));
    Duration::from_nanos((budget / n) as u64).max(Duration::from_millis(1))
}

impl LiveSettings {
    /// Stores `s` (normal context, before the handler is installed).
    pub(crate) fn store(&self, s: &Settings, pid: libc::pid_t) {
        self.pid.store(pid, Relaxed);
        self.disabled.store(s.disabled, Relaxed);
        self.signo.store(s.signal.number(), Relaxed);
        self.cpu_budget_ns.store(s.cpu_budget.as_nanos() as u64, Relaxed);
        self.warn_after_ns.store(s.warn_after.as_nanos() as u64, Relaxed);
        self.stall_budget_ns.store(s.stall_budget.as_nanos() as u64, Relaxed);
        let poll = s.poll_budget.unwrap_or(s.stall_budget.saturating_mul(POLL_PER_STALL));
        self.poll_budget_ns.store(poll.as_nanos() as u64, Relaxed);
        self.period_ns.store(timer_period(s.cpu_budget, s.warn_after, s.wall_clock_timers).as_nanos() as u64, Relaxed);
        self.dump_timeout_ns.store(s.dump_timeout.as_nanos() as u64, Relaxed);
        let (code, exit) = match s.action {
            Action::Abort => (ACTION_ABORT, 0),
            Action::Exit(c) => (ACTION_EXIT, c),
            Action::Unhealthy => (ACTION_UNHEALTHY, 0),
            Action::Warn => (ACTION_WARN, 0),
        };
        self.action.store(code, Relaxed);
        self.exit_code.store(exit, Relaxed);
        self.wall_clock_timers.store(s.wall_clock_timers, Relaxed);
        self.abort_under_debugger.store(s.abort_under_debugger, Relaxed);
        self.panic_is_verdict.store(s.panic_is_verdict, Relaxed);
        self.hook.store(s.pre_abort_hook.map_or(0, |f| f as usize), Relaxed);
    }

    /// Whether a watchdog runs in this process. Async-signal-safe.
    pub(crate) fn running(&self) -> bool {
        self.lifecycle.get() == Lifecycle::Running
    }

    /// The configured action. Async-signal-safe.
    pub(crate) fn action(&self) -> Action {
        match self.action.load(Relaxed) {
            ACTION_ABORT => Action::Abort,
            ACTION_EXIT => Action::Exit(self.exit_code.load(Relaxed)),
            ACTION_UNHEALTHY => Action::Unhealthy,
            _ => Action::Warn,
        }
    }

    /// Whether the configured action ends the process. Async-signal-safe.
    pub(crate) fn fatal(&self) -> bool {
        self.action().is_fatal()
    }

    /// Whether a verdict closes the heartbeat gate (every mode but `warn`).
    pub(crate) fn closes_gate(&self) -> bool {
        self.action() != Action::Warn
    }

    /// The budgets the stuck rule judges with: the one place they are built.
    /// Async-signal-safe.
    pub(crate) fn budgets(&self) -> Budgets {
        Budgets {
            cpu_budget: self.cpu_budget_ns.load(Relaxed),
            warn_after: self.warn_after_ns.load(Relaxed),
            period: self.period_ns.load(Relaxed),
        }
    }

    /// The dump deadline, counted from the verdict.
    pub(crate) fn dump_timeout(&self) -> Duration {
        Duration::from_nanos(self.dump_timeout_ns.load(Relaxed))
    }

    /// The pre-abort hook, if one was configured. Async-signal-safe.
    pub(crate) fn pre_abort_hook(&self) -> Option<fn()> {
        let hook = self.hook.load(Relaxed);
        // SAFETY: a non-zero value was stored from a `fn()` by `store`, and
        // function pointers round-trip through usize on every target Rust
        // supports here.
        (hook != 0).then(|| unsafe { std::mem::transmute::<usize, fn()>(hook) })
    }

    /// What registration needs, if a watchdog runs in this very process
    /// (`pid` is the caller's).
    pub(crate) fn registration(&self, pid: libc::pid_t) -> Option<Registration> {
        if !self.running() || self.pid.load(Relaxed) != pid {
            return None;
        }
        Some(Registration {
            disabled: self.disabled.load(Relaxed),
            signo: self.signo.load(Relaxed),
            budgets: self.budgets(),
            wall_clock_timers: self.wall_clock_timers.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::timer_period;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_period_divides_the_budget_and_ticks_by_the_warning() {
        for (budget, warn, wall, want_ns) in [
            (1000 * MS, 100 * MS, false, 31_250_000),
            (100 * MS, 50 * MS, false, 3_125_000),
            (300 * MS, 5 * MS, false, 5_000_000),
            (1000 * MS, 100 * MS, true, 100_000_000),
            (1000 * MS, 400 * MS, true, 250_000_000),
            (10 * MS, 5 * MS, false, 1_000_000),
        ] {
            let p = timer_period(budget, warn, wall);
            assert_eq!(p.as_nanos(), want_ns, "budget {budget:?}, warn_after {warn:?}, wall {wall}");
            assert!(p <= warn, "a tick at least every warning threshold");
            if p > MS {
                assert_eq!(budget.as_nanos() % p.as_nanos(), 0, "the last expiry falls on the budget");
            }
        }
    }
}
