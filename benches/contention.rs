//! Group `contention`: `ThreadHandle::touch` from 1, 2, 8 and 64 threads at
//! once on this machine, side by side with `shared_counter`, a design
//! failstop rejected (every thread bumps one shared atomic counter).
//!
//! Each sample spreads `iters` touches over the threads and reports the
//! threads' summed CPU time, so the figure is the CPU cost of one touch
//! whatever the number of threads and cores. With cache-padded per-thread
//! slots it stays flat; with a shared counter it grows as soon as two
//! threads run at the same time (the cache line bounces between cores).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crossbeam_utils::CachePadded;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::Duration;

mod common;

const THREADS: [usize; 4] = [1, 2, 8, 64];

/// Runs `iters` calls of `op` spread over `n` fresh threads, started together;
/// returns their summed CPU time. `setup` runs on each thread first (not timed); `op` is inlined.
fn on_threads<S, T, F>(n: usize, iters: u64, setup: S, op: F) -> Duration
where
    S: Fn() -> T + Send + Sync + 'static,
    T: 'static,
    F: Fn(&T) + Copy + Send + 'static,
{
    let setup = Arc::new(setup);
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (setup, barrier) = (setup.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    let state = setup();
                    barrier.wait();
                    let t0 = common::thread_cpu();
                    for _ in 0..common::share(iters, n, i) {
                        op(black_box(&state));
                    }
                    common::thread_cpu() - t0
                })
                .expect("spawn")
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("bench thread")).sum()
}

fn contention(c: &mut Criterion) {
    let _wd = failstop::start(failstop::Config::new()).expect("start");
    let shared = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let mut g = c.benchmark_group("contention");
    for n in THREADS {
        g.bench_with_input(BenchmarkId::new("failstop", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                on_threads(n, iters, || failstop::register("bench").expect("register"), |h| h.touch())
            })
        });
        g.bench_with_input(BenchmarkId::new("shared_counter", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let shared = shared.clone();
                on_threads(
                    n,
                    iters,
                    move || shared.clone(),
                    |c| {
                        c.fetch_add(1, Relaxed);
                    },
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
