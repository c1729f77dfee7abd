//! A small service watched by failstop: an event loop, a worker pool and a
//! heartbeat that beats only while `failstop::healthy()`.
//!
//! ```text
//! cargo run --example demo -- --fault spin               # caught: dump, then SIGABRT
//! cargo run --example demo -- --fault spin-holding-lock  # the spinner is blamed, not the waiter
//! cargo run --example demo -- --fault slow               # long but living work: never flagged
//! cargo run --example demo -- --fault none --seconds 5   # runs 5 s, exits 0
//! ```
//!
//! Options: `--fault spin|spin-holding-lock|slow|none` (default spin),
//! `--after <ms>` (when the fault starts, default 1500), `--seconds N` (run
//! N seconds then exit 0, default 10). `FAILSTOP_*` variables apply.

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Spin,
    SpinHoldingLock,
    Slow,
    None,
}

struct Options {
    fault: Fault,
    after: Duration,
    seconds: u64,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options { fault: Fault::Spin, after: Duration::from_millis(1500), seconds: 10 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--fault" => {
                o.fault = match value("--fault")?.as_str() {
                    "spin" => Fault::Spin,
                    "spin-holding-lock" => Fault::SpinHoldingLock,
                    "slow" => Fault::Slow,
                    "none" => Fault::None,
                    other => return Err(format!("--fault {other:?}: allowed: spin, spin-holding-lock, slow, none")),
                }
            }
            "--after" => {
                let v = value("--after")?;
                o.after = Duration::from_millis(v.parse().map_err(|_| format!("--after {v:?}: a number of ms"))?);
            }
            "--seconds" => {
                let v = value("--seconds")?;
                o.seconds = v.parse().map_err(|_| format!("--seconds {v:?}: a whole number of seconds"))?;
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn say(what: std::fmt::Arguments<'_>) {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = T0.get_or_init(Instant::now).elapsed();
    println!("demo [{:>6.3}s] {what}", t.as_secs_f64());
}

/// About `micros` µs of CPU work.
fn work(micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    let mut x = 0u64;
    while Instant::now() < until {
        for i in 0..200u64 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
    }
    x
}

/// The fault: a loop that never makes progress.
#[inline(never)]
fn spin_forever() -> ! {
    let mut x = 0u64;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

/// The fault with a lock held: others wait on it (harmless), the spinner is blamed.
#[inline(never)]
fn spin_forever_holding(lock: &Mutex<u64>) -> ! {
    let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
    say(format_args!("worker-0: spinning while holding the shared lock"));
    spin_forever()
}

/// Long but living work: seconds of CPU, with a tick every few ms.
#[inline(never)]
fn slow_but_living(h: &failstop::ThreadHandle, total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until {
        work(3_000);
        h.tick();
    }
}

fn worker(i: usize, jobs: Arc<Mutex<Receiver<u64>>>, shared: Arc<Mutex<u64>>, fault: Fault, fault_at: Instant) {
    let h = failstop::register(&format!("worker-{i}")).expect("register worker");
    let mut faulted = false;
    loop {
        h.set_context("waiting for a job");
        let job =
            h.with_idle(|| jobs.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(Duration::from_millis(100)));
        h.touch();
        match job {
            Ok(n) => {
                h.set_context("serving a job"); // what a dump says this thread was doing
                black_box(work(200 + n % 300));
                // Every job updates a shared counter under the lock: waiting
                // for it is harmless, so a waiter is never blamed.
                *h.with_harmless(|| shared.lock().unwrap_or_else(|p| p.into_inner())) += 1;
                h.tick();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if i == 0 && !faulted && Instant::now() >= fault_at {
            faulted = true;
            match fault {
                Fault::Spin => {
                    h.set_context("the injected fault: spin_forever()");
                    say(format_args!("worker-0: FAULT spin: entering spin_forever()"));
                    spin_forever()
                }
                Fault::SpinHoldingLock => {
                    h.set_context("the injected fault: spin_forever_holding()");
                    say(format_args!("worker-0: FAULT spin-holding-lock"));
                    spin_forever_holding(&shared)
                }
                Fault::Slow => {
                    say(format_args!("worker-0: slow but living work: 4 s of CPU with a tick every 3 ms"));
                    slow_but_living(&h, Duration::from_secs(4));
                    say(format_args!("worker-0: slow work done"));
                }
                Fault::None => {}
            }
        }
    }
}

fn event_loop(requests: Receiver<u64>, jobs: Sender<u64>) {
    let h = failstop::register("event-loop").expect("register event loop");
    loop {
        let r = h.with_idle(|| requests.recv_timeout(Duration::from_millis(50)));
        h.touch();
        match r {
            Ok(n) => {
                black_box(work(50));
                if jobs.send(n).is_err() {
                    return;
                }
                h.tick();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn heartbeat() {
    let mut n = 0u64;
    loop {
        thread::sleep(Duration::from_millis(500));
        if failstop::healthy() {
            n += 1;
            say(format_args!("heartbeat #{n}: healthy, telling the peers we are alive"));
        } else {
            say(format_args!("heartbeat: gate closed, NOT beating: the peers will take over"));
        }
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("demo: {e}");
            }
            eprintln!("usage: demo [--fault spin|spin-holding-lock|slow|none] [--after MS] [--seconds N]");
            return ExitCode::from(2);
        }
    };
    let config = match failstop::Config::new().with_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let s = config.settings();
    say(format_args!(
        "starting: fault {:?} after {} ms; cpu_budget {} ms, warn_after {} ms, action {:?}",
        o.fault,
        o.after.as_millis(),
        s.cpu_budget.as_millis(),
        s.warn_after.as_millis(),
        s.action
    ));
    let _wd = match failstop::start(config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    let fault_at = Instant::now() + o.after;
    let (req_tx, req_rx) = mpsc::channel();
    let (job_tx, job_rx) = mpsc::channel();
    let jobs = Arc::new(Mutex::new(job_rx));
    let shared = Arc::new(Mutex::new(0u64));
    thread::Builder::new().name("heartbeat".into()).spawn(heartbeat).expect("spawn");
    thread::Builder::new().name("event-loop".into()).spawn(move || event_loop(req_rx, job_tx)).expect("spawn");
    for i in 0..2 {
        let (jobs, shared) = (jobs.clone(), shared.clone());
        thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || worker(i, jobs, shared, o.fault, fault_at))
            .expect("spawn");
    }
    let end = Instant::now() + Duration::from_secs(o.seconds);
    let mut n = 0u64;
    while Instant::now() < end {
        // Requests arrive every 2 ms.
        let _ = req_tx.send(n);
        n += 1;
        thread::sleep(Duration::from_millis(2));
    }
    let st = failstop::stats();
    say(format_args!(
        "done after {} s: {n} requests, healthy {}, warnings {}, suppressed {}, verdicts {}",
        o.seconds,
        failstop::healthy(),
        st.warnings,
        st.suppressed_warnings,
        st.verdicts
    ));
    ExitCode::SUCCESS
}
