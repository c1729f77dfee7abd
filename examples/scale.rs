//! Memory and time per watched thread, with many threads.
//!
//! Spawns `--threads N` threads (default 1,024) that first run unwatched,
//! then register and run again, and prints what registering added per
//! thread (after a first registration that starts failstop's own threads,
//! measured apart): resident memory (VmRSS) and address space (VmSize), the POSIX
//! timers, and how long registering took. Every thread uses more CPU than
//! one timer period while registered, so failstop's handler has run on it
//! and what that touched counts in the resident figure.
//!
//! Each thread's stack has reached 16 KiB deep before it registers, as the
//! stack of any thread that formats a message or calls into libc has: the
//! kernel writes a signal frame below the interrupted stack pointer (up to
//! 3.5 KiB with AVX-512 state), and on a stack that never went that deep
//! the first tick would make one more page of the thread's own stack
//! resident. That page is the thread's, not failstop's; `--shallow` leaves
//! the stacks shallow and shows it.
//!
//! ```text
//! cargo run --release --example scale -- --threads 1024
//! ```

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// `VmRSS` and `VmSize` of this process, in KiB.
fn vm() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        let l = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        l[name.len()..].trim().trim_end_matches(" kB").trim().parse().expect("a number of kB")
    };
    (field("VmRSS:"), field("VmSize:"))
}

fn timers() -> usize {
    std::fs::read_to_string("/proc/self/timers").map_or(0, |t| t.lines().filter(|l| l.starts_with("ID:")).count())
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Makes `bytes` of the calling thread's stack resident (a thread's stack
/// reaches that deep as soon as it formats a message or calls into libc).
#[inline(never)]
fn touch_stack(bytes: usize) {
    let mut probe = [0u8; 16 << 10];
    let n = bytes.min(probe.len());
    for b in probe[..n].iter_mut().step_by(512) {
        *b = 1;
    }
    std::hint::black_box(&mut probe);
}

/// Uses `cpu` of CPU time, calling `touch` every 100 µs of it.
fn work(cpu: Duration, touch: impl Fn()) {
    let end = thread_cpu() + cpu;
    while thread_cpu() < end {
        let t = thread_cpu() + Duration::from_micros(100);
        while thread_cpu() < t {
            std::hint::spin_loop();
        }
        touch();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: scale [--threads N] [--shallow]");
        std::process::exit(2)
    };
    let mut n = 1024usize;
    let mut shallow = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => {
                let v = it.next().unwrap_or_else(|| usage());
                n = v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
                    eprintln!("scale: --threads {v:?}: expected a count > 0");
                    std::process::exit(2)
                });
            }
            "--shallow" => shallow = true,
            _ => usage(),
        }
    }
    // warn_after 5 ms: the timer period is 5 ms of CPU, so the 10 ms each
    // thread works below takes signals.
    let period = Duration::from_millis(5);
    let _wd = failstop::start(failstop::Config::new().warn_after(period)).expect("start");
    // The watchdog's first registration starts failstop's threads and
    // prepares its unwinder and symbols (once per process): it is made and
    // measured apart, so that the figures below are what each thread adds.
    let (rss_a, vsz_a) = vm();
    drop(failstop::register("first").expect("register"));
    // The reporter loads the symbols in the background: let it finish.
    std::thread::sleep(Duration::from_secs(1));
    let (rss_b, vsz_b) = vm();
    let phase = Arc::new(Barrier::new(n + 1));
    let registered = Arc::new(AtomicUsize::new(0));
    let (rss0, vsz0) = vm();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (phase, registered) = (phase.clone(), registered.clone());
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    if !shallow {
                        touch_stack(16 << 10);
                    }
                    // The name is made before the unwatched figure, so that
                    // the allocator's first use by this thread counts there.
                    let name = format!("t{i}");
                    work(2 * period, || ());
                    phase.wait(); // unwatched: measured
                    phase.wait(); // go
                    let h = failstop::register(&name).unwrap_or_else(|e| {
                        eprintln!("{e}");
                        std::process::exit(1)
                    });
                    registered.fetch_add(1, SeqCst);
                    h.with_idle(|| phase.wait()); // all registered
                    work(2 * period, || h.touch());
                    // Waiting is idle time (not judged).
                    h.with_idle(|| {
                        phase.wait(); // watched: measured
                        phase.wait(); // leave
                    });
                })
                .expect("spawn")
        })
        .collect();
    phase.wait();
    let (rss1, vsz1) = vm();
    let timers1 = timers();
    let t = Instant::now();
    phase.wait();
    while registered.load(SeqCst) < n {
        std::thread::yield_now();
    }
    let register_time = t.elapsed();
    phase.wait();
    phase.wait();
    let (rss2, vsz2) = vm();
    let timers2 = timers();
    phase.wait();
    for t in threads {
        t.join().expect("thread");
    }
    let per = |a: u64, b: u64| (b as f64 - a as f64) / n as f64;
    println!(
        "the first registration (failstop's threads, unwinder and symbols, once per process): VmRSS +{:.1} MiB, \
         VmSize +{:.1} MiB",
        (rss_b as f64 - rss_a as f64) / 1024.0,
        (vsz_b as f64 - vsz_a as f64) / 1024.0
    );
    let depth = if shallow { "shallow stacks" } else { "stacks 16 KiB deep" };
    println!("{n} threads (256 KiB stacks, {depth}), each using {} ms of CPU per phase:", 2 * period.as_millis());
    println!("  unwatched threads: VmRSS +{:.1} KiB, VmSize +{:.1} KiB per thread", per(rss0, rss1), per(vsz0, vsz1));
    println!(
        "  registering added:  VmRSS +{:.1} KiB, VmSize +{:.1} KiB, POSIX timers +{:.2} per thread",
        per(rss1, rss2),
        per(vsz1, vsz2),
        (timers2 as f64 - timers1 as f64) / n as f64
    );
    println!(
        "  {n} threads registered at once in {:.1} ms ({:.1} µs each, wall)",
        register_time.as_secs_f64() * 1e3,
        register_time.as_secs_f64() * 1e6 / n as f64
    );
}
