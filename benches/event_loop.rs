//! Group `event_loop`: what failstop costs a busy service.
//!
//! One loop per core, each item about 1 µs of work followed by a `touch` and
//! a `tick` (the way a server marks progress), in three modes measured in the
//! same run:
//!
//! - `without`: no watchdog, the loop does the work only;
//! - `watchdog`: the watchdog runs with the defaults, the loops are registered
//!   and touch and tick per item;
//! - `watchdog_warn_10ms`: the same with `warn_after` 10 ms, so the CPU timer
//!   of each loop fires every 10 ms of its CPU time: the cost of the timer
//!   signals themselves.
//!
//! Criterion reports the time per item in each mode. After the group, the
//! three modes are also run interleaved (`ROUNDS` rounds of a fixed number of
//! items, the modes in turn) and the throughput ratios to `without` are
//! printed, min / median / max, so that drifts of a noisy machine hit every
//! mode alike. Goal: at least 0.99, ideally 0.995.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

mod common;

/// Interleaved rounds for the printed ratios.
const ROUNDS: usize = 15;
/// Items per loop in one interleaved round (about 0.3 s of work).
const ROUND_ITEMS: u64 = 300_000;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Without,
    Watchdog,
    WatchdogWarn10ms,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Without, Mode::Watchdog, Mode::WatchdogWarn10ms];

    fn id(self) -> &'static str {
        match self {
            Mode::Without => "without",
            Mode::Watchdog => "watchdog",
            Mode::WatchdogWarn10ms => "watchdog_warn_10ms",
        }
    }

    fn start(self) -> Option<failstop::Watchdog> {
        let config = match self {
            Mode::Without => return None,
            Mode::Watchdog => failstop::Config::new(),
            Mode::WatchdogWarn10ms => failstop::Config::new().warn_after(Duration::from_millis(10)),
        };
        Some(failstop::start(config).expect("start"))
    }
}

/// About one microsecond of integer work per call of `item(rounds)`, with
/// `rounds` from `calibrate`.
#[inline(never)]
fn item(rounds: u32, seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn calibrate() -> u32 {
    let rounds = 1000;
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        black_box(item(rounds, i));
    }
    let per_item = t.elapsed().as_nanos() as f64 / n as f64;
    ((rounds as f64) * 1000.0 / per_item).round().max(1.0) as u32
}

/// Runs `items` items on each of `loops` threads in `mode` (the watchdog must
/// already run for the watchdog modes); returns the wall time.
fn run(mode: Mode, loops: usize, items: u64, rounds: u32) -> Duration {
    let barrier = Arc::new(Barrier::new(loops + 1));
    let threads: Vec<_> = (0..loops)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let h = match mode {
                    Mode::Without => None,
                    _ => Some(failstop::register("loop").expect("register")),
                };
                barrier.wait();
                let mut acc = 0u64;
                match &h {
                    None => {
                        for i in 0..items {
                            acc = acc.wrapping_add(item(rounds, i));
                        }
                    }
                    Some(h) => {
                        for i in 0..items {
                            acc = acc.wrapping_add(item(rounds, i));
                            h.touch();
                            h.tick();
                        }
                    }
                }
                black_box(acc);
                barrier.wait();
            })
        })
        .collect();
    barrier.wait();
    let t = Instant::now();
    barrier.wait();
    let wall = t.elapsed();
    for t in threads {
        t.join().expect("loop thread");
    }
    wall
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn event_loop(c: &mut Criterion) {
    let rounds = calibrate();
    let loops = cores();
    let mut g = c.benchmark_group("event_loop");
    g.throughput(criterion::Throughput::Elements(loops as u64));
    for mode in Mode::ALL {
        let _wd = mode.start();
        g.bench_function(BenchmarkId::from_parameter(mode.id()), |b| {
            b.iter_custom(|iters| run(mode, loops, iters, rounds))
        });
    }
    g.finish();

    // The same, interleaved, for the ratios.
    let mut per_mode: Vec<Vec<f64>> = vec![vec![]; Mode::ALL.len()];
    for _ in 0..ROUNDS {
        for (k, mode) in Mode::ALL.into_iter().enumerate() {
            let _wd = mode.start();
            let wall = run(mode, loops, ROUND_ITEMS, rounds);
            per_mode[k].push((loops as u64 * ROUND_ITEMS) as f64 / wall.as_secs_f64());
        }
    }
    println!("event_loop, {loops} loops, {rounds} xorshift rounds per item (about 1 µs), {ROUNDS} interleaved rounds:");
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&per_mode[0]);
    for (k, mode) in Mode::ALL.into_iter().enumerate() {
        // Round by round (each mode against `without` of the same round),
        // and the ratio of the medians.
        let mut ratios: Vec<f64> = per_mode[k].iter().zip(&per_mode[0]).map(|(m, w)| m / w).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "  {:<20} median {:>8.0} items/s  ratio of medians {:.4}  per round: min {:.4} median {:.4} max {:.4}",
            mode.id(),
            median(&per_mode[k]),
            median(&per_mode[k]) / base,
            ratios[0],
            ratios[ROUNDS / 2],
            ratios[ROUNDS - 1]
        );
    }
}

criterion_group!(benches, event_loop);
criterion_main!(benches);
