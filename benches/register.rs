//! Group `register`: what joining and leaving the watch costs.
//!
//! - `register_unregister`: `failstop::register` and dropping the handle on
//!   one thread (takes a slot off the free list, creates the thread's
//!   CPU-clock timer; then undoes both);
//! - `start_1024_waiting`: `failstop::start` while 1,024 threads wait to
//!   register, until all of them are registered (the time a service with a
//!   big thread pool takes to become watched; the first registration starts
//!   failstop's threads and prepares the unwinder).

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const WAITING: usize = 1024;

/// One `start` with `WAITING` threads released as soon as it returns;
/// returns the time from `start` to the last registration.
fn start_with_waiting_threads() -> Duration {
    let go = Arc::new(AtomicBool::new(false));
    let registered = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Barrier::new(WAITING + 1));
    let threads: Vec<_> = (0..WAITING)
        .map(|_| {
            let (go, registered, done) = (go.clone(), registered.clone(), done.clone());
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    while !go.load(SeqCst) {
                        std::thread::park();
                    }
                    let h = failstop::register("pool").expect("register");
                    h.touch();
                    registered.fetch_add(1, SeqCst);
                    let _idle = h.idle();
                    done.wait();
                })
                .expect("spawn")
        })
        .collect();
    let t = Instant::now();
    let wd = failstop::start(failstop::Config::new()).expect("start");
    go.store(true, SeqCst);
    for th in &threads {
        th.thread().unpark();
    }
    while registered.load(SeqCst) < WAITING {
        std::thread::yield_now();
    }
    let took = t.elapsed();
    done.wait();
    for th in threads {
        th.join().expect("pool thread");
    }
    drop(wd);
    took
}

fn register(c: &mut Criterion) {
    let mut g = c.benchmark_group("register");
    {
        let _wd = failstop::start(failstop::Config::new()).expect("start");
        // On a spawned thread, as in a service: finding the main thread's
        // stack bounds reads /proc/self/maps, which would dominate.
        let (to_worker, jobs) = std::sync::mpsc::channel::<u64>();
        let (to_bench, results) = std::sync::mpsc::channel::<Duration>();
        let worker = std::thread::spawn(move || {
            for iters in jobs {
                let t = Instant::now();
                for _ in 0..iters {
                    drop(failstop::register("bench").expect("register"));
                }
                to_bench.send(t.elapsed()).expect("bench gone");
            }
        });
        g.bench_function("register_unregister", |b| {
            b.iter_custom(|iters| {
                to_worker.send(iters).expect("worker gone");
                results.recv().expect("worker gone")
            })
        });
        drop(to_worker);
        worker.join().expect("worker");
    }
    g.sample_size(10);
    g.bench_function("start_1024_waiting", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| start_with_waiting_threads()).sum())
    });
    g.finish();
}

criterion_group!(benches, register);
criterion_main!(benches);
