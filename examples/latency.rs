//! Measures failstop's fatal path over many child processes and prints min,
//! median and max:
//!
//! 1. time from a spin's start to the verdict and to the process's end,
//!    and from the verdict to the process's end (the fatal path alone:
//!    dump and action; `cpu_budget` given by `--budget-ms`, default 100 ms);
//! 2. how long the dump took, raw part and whole (symbolized), with
//!    `--threads N[,M...]` idle threads in the process (default 8,64,512);
//! 3. time from a block's start (a read on a pipe nobody writes, outside
//!    any idle scope) to the verdict and to the process's end (and from
//!    the verdict to the end), with
//!    `stall_budget` given by `--stall-ms` (default 1000 ms).
//!
//! ```text
//! cargo run --release --example latency -- --runs 20 --budget-ms 100 --threads 8,64,512 --stall-ms 1000
//! ```
//!
//! `--only spin` or `--only block` runs one kind of fault.
//!
//! Times are CLOCK_MONOTONIC, which is shared by the parent and the child:
//! the child prints the instant its spin starts, the parent notes the
//! instant `waitpid` returns.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Spin,
    Block,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Spin => "spin",
            Fault::Block => "block",
        }
    }
}

/// A read on a pipe nobody writes: 0% CPU, state S, forever.
#[inline(never)]
fn block() -> ! {
    let mut fds = [0; 2];
    // SAFETY: a valid two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    let mut b = [0u8; 1];
    loop {
        // SAFETY: a valid buffer of one byte on our own pipe.
        unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
    }
}

#[inline(never)]
fn spin() -> ! {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// The child: `threads` idle threads, one registered thread that spins or blocks.
fn child(fault: Fault, budget_ms: u64, stall_ms: u64, threads: usize) {
    let config = failstop::Config::new()
        .cpu_budget(Duration::from_millis(budget_ms))
        .warn_after(Duration::from_millis((budget_ms / 2).max(1)))
        .stall_budget(Duration::from_millis(stall_ms));
    let _wd = failstop::start(config).expect("start");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    for i in 0..threads {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("idle-{i}"))
            .spawn(move || {
                let h = failstop::register("idle").expect("register");
                let _ = h.with_idle(|| rx.lock().map(|r| r.recv()));
            })
            .expect("spawn");
    }
    std::thread::sleep(Duration::from_millis(200));
    let h = failstop::register(fault.name()).expect("register");
    h.touch();
    // Keep the idle threads waiting: the sender lives as long as the fault.
    std::mem::forget(tx);
    println!("START {}", monotonic_ns());
    match fault {
        Fault::Spin => spin(),
        Fault::Block => block(),
    }
}

struct Run {
    detect_ms: f64,
    verdict_ms: f64,
    dump_ms: f64,
    raw_ms: f64,
}

fn one(exe: &std::path::Path, fault: Fault, budget_ms: u64, stall_ms: u64, threads: usize) -> Result<Run, String> {
    let mut c = Command::new(exe)
        .args(["--child", fault.name(), &budget_ms.to_string(), &stall_ms.to_string(), &threads.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stderr = c.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut start = None;
    for line in BufReader::new(c.stdout.take().expect("stdout")).lines().map_while(Result::ok) {
        if let Some(v) = line.strip_prefix("START ") {
            start = v.parse::<u64>().ok();
        }
    }
    let status = c.wait().map_err(|e| e.to_string())?;
    let end = monotonic_ns();
    let err = err_reader.join().unwrap_or_default();
    if status.signal() != Some(libc::SIGABRT) {
        return Err(format!("child ended with {status:?}, not SIGABRT; stderr:\n{err}"));
    }
    let start = start.ok_or("the child never reached its fault")?;
    let dump_line = err.lines().find(|l| l.starts_with("failstop: dump written in ")).ok_or("no dump trailer")?;
    // "failstop: dump written in 12.3 ms (raw part 4.5 ms)"
    let nums: Vec<f64> = dump_line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty() && *s != ".")
        .filter_map(|s| s.parse().ok())
        .collect();
    let verdict_at: f64 = err
        .split("verdict at CLOCK_MONOTONIC ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .ok_or("no verdict time in the dump")?;
    Ok(Run {
        detect_ms: (end - start) as f64 / 1e6,
        verdict_ms: verdict_at - start as f64 / 1e6,
        dump_ms: nums.first().copied().unwrap_or(f64::NAN),
        raw_ms: nums.get(1).copied().unwrap_or(f64::NAN),
    })
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    let med = v[v.len() / 2];
    println!("{name:<44} min {:>8.1}  median {:>8.1}  max {:>8.1}  ms  ({} runs)", v[0], med, v[v.len() - 1], v.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let fault = if args.get(2).map(String::as_str) == Some("block") { Fault::Block } else { Fault::Spin };
        let num = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(0);
        child(fault, num(3), num(4), num(5) as usize);
        return;
    }
    let mut runs = 10usize;
    let mut budget = 100u64;
    let mut stall = 1000u64;
    let mut threads = vec![8usize, 64, 512];
    let mut faults = vec![Fault::Spin, Fault::Block];
    let mut it = args.iter().skip(1);
    let usage = "usage: latency [--runs N] [--budget-ms MS] [--stall-ms MS] [--threads N[,M..]] [--only spin|block]";
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        let bad = |what: &str| -> ! {
            eprintln!("latency: {a} {v:?}: expected {what}\n{usage}");
            std::process::exit(2)
        };
        match a.as_str() {
            "--runs" => runs = v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| bad("a count > 0")),
            "--budget-ms" => budget = v.parse().ok().filter(|&n| n >= 4).unwrap_or_else(|| bad("milliseconds >= 4")),
            "--stall-ms" => stall = v.parse().ok().filter(|&n| n >= 8).unwrap_or_else(|| bad("milliseconds >= 8")),
            "--threads" => {
                threads = v
                    .split(',')
                    .map(|t| t.parse::<usize>().unwrap_or_else(|_| bad("thread counts, e.g. 8,64")))
                    .collect()
            }
            "--only" => {
                faults = match v.as_str() {
                    "spin" => vec![Fault::Spin],
                    "block" => vec![Fault::Block],
                    _ => bad("spin or block"),
                }
            }
            _ => {
                eprintln!("{usage}");
                std::process::exit(2)
            }
        }
    }
    let exe = std::env::current_exe().expect("current_exe");
    // failstop's timer period: the budget in at least 32 equal parts, none
    // longer than warn_after (here budget/2).
    let warn = (budget / 2).max(1);
    let period = budget as f64 / (budget.div_ceil(warn)).max(32) as f64;
    println!("failstop fatal path: cpu_budget {budget} ms (timer period {period:.3} ms), stall_budget {stall} ms");
    for fault in faults {
        // The block is measured with the first thread count only: the dump
        // times are the spin's business.
        let counts = if fault == Fault::Spin { &threads[..] } else { &threads[..1] };
        for &t in counts {
            let mut verdict = vec![];
            let mut end = vec![];
            let mut after = vec![];
            let mut dump = vec![];
            let mut raw = vec![];
            for _ in 0..runs {
                match one(&exe, fault, budget, stall, t) {
                    Ok(r) => {
                        verdict.push(r.verdict_ms);
                        end.push(r.detect_ms);
                        after.push(r.detect_ms - r.verdict_ms);
                        dump.push(r.dump_ms);
                        raw.push(r.raw_ms);
                    }
                    Err(e) => {
                        eprintln!("run failed: {e}");
                        std::process::exit(1);
                    }
                }
            }
            let f = fault.name();
            summary(&format!("{f} start -> verdict ({} threads)", t + 4), verdict);
            summary(&format!("{f} start -> process end ({} threads)", t + 4), end);
            summary(&format!("{f} verdict -> process end ({} threads)", t + 4), after);
            summary(&format!("dump, symbolized ({} threads)", t + 4), dump);
            summary(&format!("dump, raw part only ({} threads)", t + 4), raw);
        }
    }
}
