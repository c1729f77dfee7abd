//! `failstop::sync::Mutex` (a futex mutex that records its owner's tid)
//! side by side with `std::sync::Mutex`, in one run:
//!
//! - group `lock_unlock`: an uncontended lock, `+= 1`, unlock of a
//!   `Mutex<u64>` (`std`, `failstop`);
//! - group `contended`: the same from 2 threads at once on one mutex; the
//!   figure is wall time per operation (both threads' operations counted);
//! - group `tid_source`: what the owner's tid costs where it comes from:
//!   failstop's `const` thread-local cache, and the system calls a cache
//!   checked against the pid (`getpid`) or no cache (`gettid`) would add;
//! - then interleaved rounds of the uncontended case, and the ratio of
//!   failstop's time to std's.
//!
//! Goal: failstop within 1.2x of std uncontended (a store on lock and on
//! unlock more).

use criterion::{Criterion, criterion_group, criterion_main};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

mod common;

/// Interleaved rounds for the printed ratio, and operations per round.
const ROUNDS: usize = 31;
const ROUND_OPS: u64 = 2_000_000;

/// The two locks behind one interface.
trait Lock: Send + Sync + 'static {
    fn new() -> Self;
    fn bump(&self);
}

impl Lock for std::sync::Mutex<u64> {
    fn new() -> Self {
        std::sync::Mutex::new(0)
    }

    #[inline]
    fn bump(&self) {
        *self.lock().unwrap() += 1;
    }
}

impl Lock for failstop::sync::Mutex<u64> {
    fn new() -> Self {
        failstop::sync::Mutex::new(0)
    }

    #[inline]
    fn bump(&self) {
        *self.lock().unwrap() += 1;
    }
}

/// `iters` uncontended lock and unlock of `m`: the wall time.
fn uncontended<L: Lock>(m: &L, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        black_box(m).bump();
    }
    t.elapsed()
}

/// `iters` lock and unlock of one mutex spread over 2 fresh threads,
/// started together: the wall time until both are done.
fn contended<L: Lock>(iters: u64) -> Duration {
    const N: usize = 2;
    let m = Arc::new(L::new());
    let start = Arc::new(Barrier::new(N + 1));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (m, start) = (m.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..common::share(iters, N, i) {
                    black_box(&*m).bump();
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for th in threads {
        th.join().expect("bench thread");
    }
    t.elapsed()
}

thread_local! {
    /// The same cache as failstop's (`src/sync/futex.rs`).
    static TID: Cell<libc::pid_t> = const { Cell::new(0) };
}

fn sync_mutex(c: &mut Criterion) {
    let std_m = <std::sync::Mutex<u64> as Lock>::new();
    let fs_m = <failstop::sync::Mutex<u64> as Lock>::new();

    let mut g = c.benchmark_group("lock_unlock");
    g.bench_function("std", |b| b.iter_custom(|iters| uncontended(&std_m, iters)));
    g.bench_function("failstop", |b| b.iter_custom(|iters| uncontended(&fs_m, iters)));
    g.finish();

    let mut g = c.benchmark_group("contended");
    g.bench_function("std", |b| b.iter_custom(contended::<std::sync::Mutex<u64>>));
    g.bench_function("failstop", |b| b.iter_custom(contended::<failstop::sync::Mutex<u64>>));
    g.finish();

    let mut g = c.benchmark_group("tid_source");
    // SAFETY: gettid has no preconditions.
    TID.set(unsafe { libc::gettid() });
    g.bench_function("thread_local_cache", |b| b.iter(|| black_box(TID.get())));
    // SAFETY: getpid has no preconditions.
    g.bench_function("getpid", |b| b.iter(|| black_box(unsafe { libc::getpid() })));
    // SAFETY: gettid has no preconditions.
    g.bench_function("gettid", |b| b.iter(|| black_box(unsafe { libc::gettid() })));
    g.finish();

    // Interleaved, for the ratio: each round times both locks.
    let (mut std_ns, mut fs_ns, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let s = uncontended(&std_m, ROUND_OPS).as_nanos() as f64 / ROUND_OPS as f64;
        let f = uncontended(&fs_m, ROUND_OPS).as_nanos() as f64 / ROUND_OPS as f64;
        std_ns.push(s);
        fs_ns.push(f);
        ratios.push(f / s);
    }
    for v in [&mut std_ns, &mut fs_ns, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    let m = ROUNDS / 2;
    println!("sync_mutex: uncontended lock, += 1, unlock of a Mutex<u64>, {ROUNDS} interleaved rounds of {ROUND_OPS}:");
    println!(
        "  std::sync::Mutex       median {:>6.2} ns  (min {:.2}, max {:.2})",
        std_ns[m],
        std_ns[0],
        std_ns[ROUNDS - 1]
    );
    println!(
        "  failstop::sync::Mutex  median {:>6.2} ns  (min {:.2}, max {:.2})",
        fs_ns[m],
        fs_ns[0],
        fs_ns[ROUNDS - 1]
    );
    println!(
        "  ratio failstop/std     of medians {:.3}  per round: min {:.3} median {:.3} max {:.3}",
        fs_ns[m] / std_ns[m],
        ratios[0],
        ratios[m],
        ratios[ROUNDS - 1]
    );
}

criterion_group!(benches, sync_mutex);
criterion_main!(benches);
