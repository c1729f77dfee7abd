//! A tokio runtime watched by failstop, with a task that blocks a worker.
//!
//! ```sh
//! cargo run --example tokio_blocking -- --flavor multi --fault sleep
//! ```
//!
//! The runtime serves a healthy load (timers, channels, many short tasks)
//! for `--healthy-ms` (default 1000), then one task blocks its worker:
//!
//! - `spin`: `spin_on_the_worker` loops on the CPU (`stuck`, with warnings first);
//! - `sleep`: `sleep_on_the_worker` calls `std::thread::sleep` (`blocked`);
//! - `mutex`: `update_under_lock` holds a `std::sync::Mutex` across a slow
//!   call while `read_under_lock` tasks wait for it (`blocked`);
//! - `none`: the healthy load only, for `--seconds` (nothing is reported).
//!
//! `--flavor multi|current` picks the runtime. The budgets are failstop's
//! defaults except `cpu_budget` 500 ms and `stall_budget` 2 s, and every
//! `FAILSTOP_*` variable applies on top (`FAILSTOP_ACTION=warn` for a dry
//! run). `tracing` events go to stdout with the seconds since start, so the
//! time from the blocking task's start to the warning and the verdict can
//! be read off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The spinning task's async fn.
async fn spin_on_the_worker() {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// The sleeping task's async fn: `std::thread::sleep` in async code.
async fn sleep_on_the_worker() {
    std::thread::sleep(Duration::from_secs(3600));
}

/// Holds the lock across a slow call.
async fn update_under_lock(shared: Arc<Mutex<u64>>) {
    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
    std::thread::sleep(Duration::from_secs(3600));
    *guard += 1;
}

/// Waits for the lock.
async fn read_under_lock(shared: Arc<Mutex<u64>>) -> u64 {
    *shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Healthy load: many short tasks, timers and a channel, for `for_how_long`.
async fn healthy_load(for_how_long: Duration) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        while let Some(v) = rx.recv().await {
            sum = sum.wrapping_add(v);
        }
        sum
    });
    let deadline = tokio::time::Instant::now() + for_how_long;
    let mut round = 0u64;
    while tokio::time::Instant::now() < deadline {
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut x = i;
                for _ in 0..200 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                let _ = tx.send(x).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        if round.is_multiple_of(8) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        round += 1;
    }
    drop(tx);
    let _ = consumer.await;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut flavor = "multi".to_string();
    let mut fault = "sleep".to_string();
    let mut healthy_ms = 1000u64;
    let mut seconds = 5u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--flavor" => flavor = value("--flavor")?,
            "--fault" => fault = value("--fault")?,
            "--healthy-ms" => healthy_ms = value("--healthy-ms")?.parse()?,
            "--seconds" => seconds = value("--seconds")?.parse()?,
            _ => return Err(format!("unknown argument {a:?}; see the example's doc").into()),
        }
    }
    if !matches!(fault.as_str(), "spin" | "sleep" | "mutex" | "none") {
        return Err(format!("--fault {fault:?}: expected spin, sleep, mutex or none").into());
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .init();
    let config = failstop::Config::new()
        .cpu_budget(Duration::from_millis(500))
        .stall_budget(Duration::from_secs(2))
        .with_env()?;
    let _watchdog = failstop::start(config)?;

    let mut builder = match flavor.as_str() {
        "multi" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        "current" => tokio::runtime::Builder::new_current_thread(),
        other => return Err(format!("--flavor {other:?}: expected multi or current").into()),
    };
    let rt = failstop::tokio::watch(&mut builder).enable_time().build()?;
    failstop::tokio::block_on(&rt, async move {
        healthy_load(Duration::from_millis(healthy_ms)).await;
        tracing::info!(fault = %fault, "the blocking task starts");
        match fault.as_str() {
            "spin" => drop(tokio::spawn(spin_on_the_worker())),
            "sleep" => drop(tokio::spawn(sleep_on_the_worker())),
            "mutex" => {
                let shared = Arc::new(Mutex::new(0));
                drop(tokio::spawn(update_under_lock(shared.clone())));
                tokio::time::sleep(Duration::from_millis(100)).await;
                for _ in 0..4 {
                    drop(tokio::spawn(read_under_lock(shared.clone())));
                }
            }
            _ => {}
        }
        healthy_load(Duration::from_secs(seconds)).await;
    })?;
    tracing::info!(stats = ?failstop::stats(), "done");
    Ok(())
}
