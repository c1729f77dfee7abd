//! The stuck-thread rule as a pure function of counter snapshots.
//!
//! The signal handler feeds [`judge`] what it observes at each tick of the
//! thread's CPU-time timer: the thread's progress counters, whether it is in
//! an idle or harmless scope, and its CPU clock. [`Tracker`] is the state the
//! rule keeps between ticks. Nothing here allocates, locks or makes a system
//! call, so it is async-signal-safe and testable without signals.
//!
//! CPU time since progress is measured from the first tick that *saw* the
//! progress, so it under-counts by up to one timer period. Timer expiries
//! are noticed at the next scheduler tick, so two readings `k` periods apart
//! can differ by a little less than `k` periods; a strict comparison would
//! then wait one more period. The rule therefore accepts `budget - period/8`
//! of measured CPU ([`Budgets::tolerance`]): the verdict comes by `budget`
//! plus one period of CPU after the last progress, and never before
//! `budget - period/8` (1.25% of the budget at the default settings).

/// The kinds of verdict. One text form each, from [`Display`](std::fmt::Display):
/// `stuck` (a thread used CPU without progress: judged by its own timer's
/// handler, or, when that handler cannot run on it, by the monitor),
/// `blocked` (no progress, no CPU, no context switch: judged by the
/// monitor), `vanished` (a registered thread ended without unregistering)
/// and `polling` (no progress and no byte moved while only sleeping and
/// waking): the last three judged by the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerdictKind {
    /// `stuck`, reached in the thread's own timer handler.
    Stuck,
    /// `blocked`, reached by the monitor.
    Blocked,
    /// `stuck`, reached by the monitor: the thread burned CPU without
    /// progress while failstop's handler could not run on it.
    Deaf,
    /// `vanished`, reached by the monitor: a registered thread is gone (or
    /// a zombie, or unwound by a panic) without unregistering: the loop it
    /// kept moving no longer runs.
    Vanished,
    /// `polling`, reached by the monitor: a thread that makes no progress
    /// and moves no byte while it only sleeps and wakes (a `usleep` loop
    /// waiting for a flag that never comes).
    Polling,
    /// `stalled`, reached by the reporter: failstop's own monitor thread
    /// stopped coming around, so nothing judges the threads any more.
    Stalled,
}

impl VerdictKind {
    /// The kind as stored in an atomic (never 0, which means "none").
    pub(crate) const fn code(self) -> u32 {
        match self {
            VerdictKind::Stuck => 1,
            VerdictKind::Blocked => 2,
            VerdictKind::Deaf => 3,
            VerdictKind::Vanished => 4,
            VerdictKind::Polling => 5,
            VerdictKind::Stalled => 6,
        }
    }

    /// The kind a [`code`](Self::code) stands for; `None` for 0 (no
    /// verdict) or anything else.
    pub(crate) const fn from_code(code: u32) -> Option<VerdictKind> {
        match code {
            1 => Some(VerdictKind::Stuck),
            2 => Some(VerdictKind::Blocked),
            3 => Some(VerdictKind::Deaf),
            4 => Some(VerdictKind::Vanished),
            5 => Some(VerdictKind::Polling),
            6 => Some(VerdictKind::Stalled),
            _ => None,
        }
    }

    /// The word the dump, the warnings and the `tracing` events use.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Stuck | VerdictKind::Deaf => "stuck",
            VerdictKind::Blocked => "blocked",
            VerdictKind::Vanished => "vanished",
            VerdictKind::Polling => "polling",
            VerdictKind::Stalled => "stalled",
        }
    }
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rule remembers between two ticks of one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tracker {
    /// `touch` counter seen at the last tick.
    pub seen_touch: u64,
    /// `tick` counter seen at the last tick.
    pub seen_tick: u64,
    /// CPU clock when progress (touch or tick) was last observed.
    pub progress_cpu: u64,
    /// CPU clock when a touch was last observed (the warning clock).
    pub touch_cpu: u64,
    /// CPU since the last touch at which the next warning is due.
    pub warn_next: u64,
    /// The thread made its first progress mark: from now on it is judged.
    pub armed: bool,
    /// A verdict was reached and no progress was seen since.
    pub convicted: bool,
}

/// What one tick observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    pub touch_seq: u64,
    pub tick_seq: u64,
    /// Inside an idle or harmless scope.
    pub scoped: bool,
    /// The thread's CPU clock, in ns.
    pub cpu: u64,
}

/// The budgets, in ns of thread CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budgets {
    pub cpu_budget: u64,
    pub warn_after: u64,
    /// The timer period.
    pub period: u64,
}

impl Budgets {
    /// Slack for timer-expiry jitter (see the module doc).
    pub(crate) fn tolerance(&self) -> u64 {
        self.period / 8
    }
}

/// What the tick should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Nothing,
    /// CPU since the last touch passed the (doubling) warning threshold.
    Warn {
        cpu_since_touch: u64,
    },
    /// CPU since the last progress reached the budget.
    Stuck {
        cpu_since_progress: u64,
    },
}

impl Tracker {
    /// A tracker for a thread registered with its CPU clock at `cpu`.
    pub(crate) fn new(cpu: u64, b: Budgets) -> Self {
        Tracker { progress_cpu: cpu, touch_cpu: cpu, warn_next: b.warn_after, ..Default::default() }
    }
}

/// Applies one observation to the tracker and decides.
pub(crate) fn judge(t: &mut Tracker, o: Observation, b: Budgets) -> Decision {
    let touched = o.touch_seq != t.seen_touch;
    let ticked = o.tick_seq != t.seen_tick;
    t.seen_touch = o.touch_seq;
    t.seen_tick = o.tick_seq;
    if touched {
        t.touch_cpu = o.cpu;
        t.warn_next = b.warn_after;
    }
    if touched || ticked {
        t.progress_cpu = o.cpu;
        t.armed = true;
        t.convicted = false;
    }
    if o.scoped || !t.armed {
        // CPU used inside a scope, or before the loop started, counts for nothing.
        t.progress_cpu = o.cpu;
        t.touch_cpu = o.cpu;
        t.warn_next = b.warn_after;
        return Decision::Nothing;
    }
    if t.convicted {
        return Decision::Nothing;
    }
    let since_progress = o.cpu.saturating_sub(t.progress_cpu);
    if since_progress + b.tolerance() >= b.cpu_budget {
        t.convicted = true;
        return Decision::Stuck { cpu_since_progress: since_progress };
    }
    let since_touch = o.cpu.saturating_sub(t.touch_cpu);
    if since_touch + b.tolerance() >= t.warn_next {
        t.warn_next = t.warn_next.saturating_mul(2);
        return Decision::Warn { cpu_since_touch: since_touch };
    }
    Decision::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const B: Budgets = Budgets { cpu_budget: 1000 * MS, warn_after: 100 * MS, period: 100 * MS };

    /// Drives a tracker with one tick every `period` ms of CPU.
    struct Sim {
        b: Budgets,
        t: Tracker,
        touch: u64,
        tick: u64,
        cpu: u64,
        scoped: bool,
    }

    impl Sim {
        fn new() -> Self {
            Self::with(B)
        }
        fn with(b: Budgets) -> Self {
            Sim { b, t: Tracker::new(0, b), touch: 0, tick: 0, cpu: 0, scoped: false }
        }
        fn run(&mut self, ms: u64) -> Decision {
            self.cpu += ms * MS;
            judge(
                &mut self.t,
                Observation { touch_seq: self.touch, tick_seq: self.tick, scoped: self.scoped, cpu: self.cpu },
                self.b,
            )
        }
    }

    #[test]
    fn not_judged_before_first_progress() {
        let mut s = Sim::new();
        for _ in 0..100 {
            assert_eq!(s.run(100), Decision::Nothing);
        }
    }

    #[test]
    fn spin_is_stuck_within_budget_plus_one_period() {
        let mut s = Sim::new();
        s.touch += 1;
        assert_eq!(s.run(100), Decision::Nothing); // sees the touch: the spin starts here at the latest
        let mut spun = 0;
        loop {
            spun += 100;
            match s.run(100) {
                Decision::Stuck { cpu_since_progress } => {
                    assert_eq!(cpu_since_progress, 1000 * MS);
                    break;
                }
                _ => assert!(spun < 1000),
            }
        }
        // Real CPU since the touch (which could be just after the previous tick) is at most budget + period.
        assert!(spun + 100 <= 1000 + 100);
        // One verdict per episode.
        assert_eq!(s.run(100), Decision::Nothing);
        // Progress clears the conviction; a new spin is judged again.
        s.tick += 1;
        assert_eq!(s.run(100), Decision::Nothing);
        let mut again = false;
        for _ in 0..11 {
            if matches!(s.run(100), Decision::Stuck { .. }) {
                again = true;
            }
        }
        assert!(again);
    }

    #[test]
    fn expiry_jitter_does_not_cost_a_period() {
        // The tick that saw the touch was noticed 3 ms late; later ones on time.
        let mut t = Tracker::new(0, B);
        let mut obs =
            |cpu_ms: u64| judge(&mut t, Observation { touch_seq: 1, tick_seq: 0, scoped: false, cpu: cpu_ms * MS }, B);
        assert_eq!(obs(103), Decision::Nothing);
        for k in 2..=10 {
            assert!(!matches!(obs(k * 100), Decision::Stuck { .. }), "too early at tick {k}");
        }
        // 997 ms measured (1000 + up to one period since the real touch): due now.
        assert!(matches!(obs(1100), Decision::Stuck { .. }));
    }

    #[test]
    fn warnings_double_within_an_episode() {
        let mut s = Sim::with(Budgets { period: 10 * MS, ..B });
        s.touch += 1;
        s.run(10);
        let mut warned_at = vec![];
        for i in 1..=90u64 {
            s.tick += 1; // ticks keep it alive: no verdict, but no touch either
            if let Decision::Warn { .. } = s.run(10) {
                warned_at.push(i * 10);
            }
        }
        assert_eq!(warned_at, vec![100, 200, 400, 800]);
    }

    #[test]
    fn ticks_are_progress_for_the_verdict() {
        let mut s = Sim::with(Budgets { period: 50 * MS, ..B });
        s.touch += 1;
        s.run(10);
        for _ in 0..200 {
            s.tick += 1;
            assert!(!matches!(s.run(50), Decision::Stuck { .. }));
        }
    }

    #[test]
    fn scopes_are_never_judged_and_reset_the_clocks() {
        let mut s = Sim::new();
        s.touch += 1;
        s.run(10);
        s.run(900);
        s.scoped = true;
        for _ in 0..50 {
            assert_eq!(s.run(100), Decision::Nothing);
        }
        s.scoped = false;
        // 900 ms before the scope do not add up with what follows: no
        // verdict until a whole budget has passed outside the scope.
        for _ in 0..9 {
            assert!(!matches!(s.run(100), Decision::Stuck { .. }));
        }
        assert!(matches!(s.run(100), Decision::Stuck { .. }));
    }

    #[test]
    fn slow_but_living_work_never_stuck() {
        // 0.8 of the budget between progress marks, forever.
        let mut s = Sim::new();
        for _ in 0..1000 {
            s.touch += 1;
            for _ in 0..8 {
                assert!(!matches!(s.run(100), Decision::Stuck { .. }));
            }
        }
    }
}
