//! Uses every public item of failstop's Rust API once, so that a program
//! written against it builds on every platform: CI type-checks this file
//! for FreeBSD, where `start` returns `ErrorKind::Unsupported` (and for
//! aarch64 Linux). On Linux with glibc it runs: it starts a watchdog,
//! registers this thread, marks progress and scopes, and stops.
//!
//! ```sh
//! cargo run --example api_surface
//! cargo check --example api_surface --target x86_64-unknown-freebsd
//! ```
//!
//! (`failstop::tokio`, behind the `tokio` feature, is checked for the other
//! targets with `cargo check --lib --features tokio`.)

use failstop::limits::{MAX_THREADS, WARN_BURST, WARN_WINDOW};
use failstop::{Action, Config, ENV_VARS, EnvVar, Error, ErrorKind, Settings, Signal, Stats, Systemd};
use failstop::{HarmlessGuard, IdleGuard, ThreadHandle, Watchdog};
use std::time::Duration;

fn hook() {}

fn config() -> Config {
    let c = Config::new()
        .disabled(false)
        .cpu_budget(Duration::from_millis(800))
        .warn_after(Duration::from_millis(200))
        .stall_budget(Duration::from_secs(5))
        .poll_budget(Duration::from_secs(30))
        .action(Action::Exit(3))
        .action(Action::Unhealthy)
        .action(Action::Warn)
        .action(Action::Abort)
        .signal(Signal::default_signal())
        .dump_path(std::env::temp_dir().join("api_surface.dump"))
        .dump_timeout(Duration::from_secs(2))
        .abort_under_debugger(false)
        .panic_is_verdict(true)
        .systemd(Systemd::Off)
        .systemd(Systemd::Auto)
        .wall_clock_timers(false);
    // SAFETY: `hook` does nothing, which is async-signal-safe and bounded.
    unsafe { c.pre_abort_hook(hook) }
}

fn describe(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::InvalidConfig => "invalid configuration",
        ErrorKind::AlreadyRunning => "already running",
        ErrorKind::NotRunning => "not running",
        ErrorKind::AlreadyRegistered => "already registered",
        ErrorKind::ResourceLimit => "resource limit",
        ErrorKind::Unsupported => "unsupported platform",
        ErrorKind::Os => "OS error",
        _ => "other",
    }
}

fn work(h: &ThreadHandle) {
    h.touch();
    h.tick();
    h.set_context("api_surface");
    {
        let _idle: IdleGuard<'_> = h.idle();
    }
    {
        let _waiting: HarmlessGuard<'_> = h.harmless();
    }
    let n = h.with_idle(|| 1) + h.with_harmless(|| 1);
    println!("thread {} ({h:?}): {n} scopes, {} of failstop's signals", h.tid(), h.signal_count());
}

fn main() -> Result<(), Error> {
    let c = config();
    c.validate()?;
    let s: &Settings = c.settings();
    println!(
        "budgets: cpu {:?}, warn {:?}, stall {:?}, poll {:?}; action {} (fatal: {}); signal {}; dump {:?} within {:?}; \
         abort under a debugger {}; panic is a verdict {}; disabled {}",
        s.cpu_budget,
        s.warn_after,
        s.stall_budget,
        s.poll_budget,
        s.action,
        s.action.is_fatal(),
        s.signal.number(),
        s.dump_path,
        s.dump_timeout,
        s.abort_under_debugger,
        s.panic_is_verdict,
        s.disabled
    );
    let parsed = Signal::parse("SIGRTMIN+3").map(|s| Signal::new(s.number()).map(|s| s.number()));
    println!("SIGRTMIN+3 is {parsed:?}");
    let vars: Vec<&EnvVar> = ENV_VARS.iter().collect();
    for v in &vars {
        println!("{} (default {:?}; allowed: {}): {:.40}...", v.name, v.default, v.allowed, v.meaning);
    }
    println!("up to {MAX_THREADS} threads; {WARN_BURST} warnings per {WARN_WINDOW:?}");

    let checked = Config::new().with_vars([("FAILSTOP_CPU_BUDGET_MS", "900")])?;
    println!("with_vars: cpu_budget {:?}", checked.settings().cpu_budget);
    let wd: Watchdog = match failstop::start(c.with_env()?) {
        Ok(wd) => wd,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            println!("{}: {}", describe(&e), e.message());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = failstop::start_from_env() {
        println!("a second start: {} ({e})", describe(&e));
    }
    let h = failstop::register("api-surface")?;
    work(&h);
    let lock = failstop::sync::Mutex::new(0u32);
    *lock.lock().unwrap() += 1;
    if let Ok(mut g) = lock.try_lock() {
        *g += 1;
    }
    lock.clear_poison();
    println!("lock poisoned: {}, value {}", lock.is_poisoned(), lock.into_inner().unwrap());
    let st: Stats = failstop::stats();
    println!(
        "healthy {}; {} registered, {} warnings ({} suppressed), {} verdicts",
        failstop::healthy(),
        st.registered,
        st.warnings,
        st.suppressed_warnings,
        st.verdicts
    );
    drop(h);
    wd.stop();
    Ok(())
}
