//! What watching costs the process, with many quiet threads: the CPU share
//! of failstop's own threads (all threads whose name starts with
//! `failstop-`: the monitor, the reporter...) as a percentage of one core,
//! for several numbers of registered threads and several patterns of
//! progress, side by side.
//!
//! Patterns (every thread loops forever; default [`failstop::Config`]
//! settings: `stall_budget` 10 s, `cpu_budget` 1 s):
//!
//! - `touch50ms`, `touch500ms`, `touch2s`: `sleep(P); h.touch()` outside
//!   any scope, P = 50 ms, 500 ms, 2 s;
//! - `idle2s`: `h.with_idle(|| sleep(2 s)); h.touch()`: waiting inside an
//!   idle scope, waking every 2 s.
//!
//! Each cell runs in a child process of its own (this program re-executes
//! itself with `--child PATTERN N`): the child starts failstop, spawns N
//! threads with 64 KiB stacks, lets them all register at once (timed: the
//! `registration` table), waits a warm-up (3 s, so that registering is not
//! counted), then reads the CPU time of every `failstop-*` thread
//! (`/proc/self/task/TID/schedstat`, nanoseconds) at the start and the end
//! of a window (`--secs`, default 10 s). The threads' phases are spread
//! evenly over their period, so that they do not all wake at once. A cell
//! that cannot run (a `register()` that fails, a resource limit) shows why
//! instead of a figure.
//!
//! The child raises `RLIMIT_SIGPENDING` (each watched thread holds one POSIX
//! timer, which reserves a queued signal; raising the hard limit needs root
//! or `CAP_SYS_RESOURCE`) and checks `RLIMIT_NPROC`, `kernel.threads-max`,
//! `kernel.pid_max` and `vm.max_map_count` before it spawns the threads.
//!
//! ```text
//! cargo run --release --example monitor_cost
//! cargo run --release --example monitor_cost -- --threads 1000,4000 --patterns touch2s,idle2s --secs 5
//! ```
//!
//! The full table (3 thread counts x 4 patterns, 10 s windows) takes about
//! three minutes. Options:
//!
//! - `--threads 1000,4000,10000`: the thread counts (rows);
//! - `--patterns touch50ms,touch500ms,touch2s,idle2s`: the columns;
//! - `--secs 10`: the measuring window of each cell;
//! - `--warmup 3`: seconds between registering and measuring.
//!
//! The budget line counts the cells above 0.5 % of a core. A cell whose
//! whole process used more than 75 % of all cores (the threads' own
//! wake-ups: 10,000 threads every 50 ms on two cores) is marked with a
//! note: there the monitor competes for the CPU and its share says little. The figures are
//! CPU time, not wall time, so other load on the machine changes them
//! little (caches and migrations aside); a second table gives the CPU share
//! of the whole child process over the same window (the threads' own
//! sleeps and touches, and failstop's timer signals handled on them,
//! included).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// The budget for failstop's own threads, in percent of one core.
const BUDGET_PCT: f64 = 0.5;
/// A cell whose whole process uses more than this share of all cores is
/// marked: the machine is saturated and failstop's figure says little.
const SATURATED: f64 = 0.75;
/// Stack size of the watched threads.
const STACK: usize = 64 << 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    Touch(Duration),
    Idle(Duration),
}

const PATTERNS: [(&str, Pattern); 4] = [
    ("touch50ms", Pattern::Touch(Duration::from_millis(50))),
    ("touch500ms", Pattern::Touch(Duration::from_millis(500))),
    ("touch2s", Pattern::Touch(Duration::from_secs(2))),
    ("idle2s", Pattern::Idle(Duration::from_secs(2))),
];

fn pattern(name: &str) -> Option<Pattern> {
    PATTERNS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// The column heading of a pattern, as in the module docs.
fn heading(name: &str) -> String {
    match pattern(name) {
        Some(Pattern::Touch(p)) => format!("touch {}", human(p)),
        Some(Pattern::Idle(p)) => format!("idle {}", human(p)),
        None => name.to_string(),
    }
}

fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

fn die(msg: &str) -> ! {
    eprintln!("monitor_cost: {msg}");
    std::process::exit(2)
}

fn usage() -> ! {
    die("usage: monitor_cost [--threads 1000,4000,10000] [--patterns touch50ms,touch500ms,touch2s,idle2s] [--secs 10] \
         [--warmup 3]")
}

struct Options {
    threads: Vec<usize>,
    patterns: Vec<String>,
    secs: f64,
    warmup: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Options {
        threads: vec![1000, 4000, 10000],
        patterns: PATTERNS.iter().map(|(n, _)| n.to_string()).collect(),
        secs: 10.0,
        warmup: 3.0,
    };
    let mut child: Option<(String, usize)> = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage()).clone();
        match flag.as_str() {
            "--threads" => {
                o.threads = value()
                    .split(',')
                    .map(|s| s.trim().parse().ok().filter(|&n: &usize| n > 0).unwrap_or_else(|| usage()))
                    .collect()
            }
            "--patterns" => {
                o.patterns = value().split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = o.patterns.iter().find(|p| pattern(p).is_none()) {
                    die(&format!("unknown pattern {bad:?}; known: touch50ms, touch500ms, touch2s, idle2s"))
                }
            }
            "--secs" => o.secs = value().parse().ok().filter(|&s: &f64| s > 0.0).unwrap_or_else(|| usage()),
            "--warmup" => o.warmup = value().parse().ok().filter(|&s: &f64| s >= 0.0).unwrap_or_else(|| usage()),
            "--child" => {
                let p = value();
                let n = value().parse().unwrap_or_else(|_| usage());
                child = Some((p, n));
            }
            _ => usage(),
        }
    }
    match child {
        Some((p, n)) => run_child(pattern(&p).unwrap_or_else(|| usage()), n, &o),
        None => run_table(&o),
    }
}

// ---------------------------------------------------------------------------
// The parent: one child per cell, then the tables
// ---------------------------------------------------------------------------

/// What one child reported (its `key value` lines on stdout).
#[derive(Default)]
struct Cell {
    monitor_pct: Option<f64>,
    process_pct: Option<f64>,
    registered: Option<usize>,
    register_ms: Option<f64>,
    verdicts: Option<u64>,
    warnings: Option<u64>,
    error: Option<String>,
    by_thread: Option<String>,
}

fn run_table(o: &Options) {
    let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    let t0 = Instant::now();
    let mut cells: Vec<Vec<Cell>> = vec![];
    for &n in &o.threads {
        let mut row = vec![];
        for p in &o.patterns {
            eprint!("monitor_cost: {n} threads, {} ... ", heading(p));
            let _ = std::io::stderr().flush();
            let cell = run_cell(&exe, p, n, o);
            match (&cell.error, cell.monitor_pct) {
                (Some(e), _) => eprintln!("{e}"),
                (None, Some(pct)) => eprintln!("{pct:.2} % ({})", cell.by_thread.as_deref().unwrap_or("?")),
                (None, None) => eprintln!("no figure"),
            }
            row.push(cell);
        }
        cells.push(row);
    }
    let elapsed = t0.elapsed();

    let head = |first: &str| {
        let mut s = format!("| {first} |");
        for p in &o.patterns {
            s.push_str(&format!(" {} |", heading(p)));
        }
        s.push('\n');
        s.push('|');
        for _ in 0..=o.patterns.len() {
            s.push_str(" ---: |");
        }
        s
    };
    let mut notes: Vec<String> = vec![];
    let mut note = |text: &str| -> usize {
        let text = &generic(text);
        match notes.iter().position(|t| t == text) {
            Some(i) => i + 1,
            None => {
                notes.push(text.to_string());
                notes.len()
            }
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut over = 0;
    let mut measured = 0;
    println!(
        "CPU share of failstop's own threads (`failstop-*`), % of one core, over {} s windows after a {} s warm-up:",
        o.secs, o.warmup
    );
    println!();
    println!("{}", head("threads"));
    for (n, row) in o.threads.iter().zip(&cells) {
        let mut line = format!("| {n} |");
        for c in row {
            match (&c.error, c.monitor_pct) {
                (Some(e), _) => line.push_str(&format!(" {} [{}] |", failure(c, *n), note(e))),
                (None, Some(pct)) => {
                    measured += 1;
                    if pct > BUDGET_PCT {
                        over += 1;
                    }
                    let mut s = format!("{pct:.2}");
                    let busy = c.process_pct.unwrap_or(0.0);
                    if busy > SATURATED * cores as f64 * 100.0 {
                        s.push_str(&format!(
                            " [{}]",
                            note(&format!(
                                "the whole process used {busy:.0} % of a core, more than {:.0} % of this machine's {cores} cores: \
                                 the threads' own wake-ups saturate it, and failstop's share says little",
                                SATURATED * 100.0
                            ))
                        ));
                    }
                    if c.verdicts.unwrap_or(0) > 0 || c.warnings.unwrap_or(0) > 0 {
                        s.push_str(&format!(
                            " [{}]",
                            note(&format!(
                                "{} verdicts and {} warnings during the run",
                                c.verdicts.unwrap_or(0),
                                c.warnings.unwrap_or(0)
                            ))
                        ));
                    }
                    line.push_str(&format!(" {s} |"));
                }
                (None, None) => line.push_str(" ? |"),
            }
        }
        println!("{line}");
    }
    println!();
    println!(
        "Budget: {BUDGET_PCT} % of one core. {over} of {measured} measured cells exceed it{}.",
        match o.threads.len() * o.patterns.len() - measured {
            0 => String::new(),
            k => format!(" ({k} could not run)"),
        }
    );
    println!();
    println!("By failstop thread (% of one core):");
    println!();
    for (n, row) in o.threads.iter().zip(&cells) {
        for (p, c) in o.patterns.iter().zip(row) {
            if let (None, Some(b)) = (&c.error, &c.by_thread) {
                println!("- {n} threads, {}: {b}", heading(p));
            }
        }
    }
    println!();
    let table = |title: &str, cell: &dyn Fn(usize, &Cell) -> String| {
        println!("{title}");
        println!();
        println!("{}", head("threads"));
        for (n, row) in o.threads.iter().zip(&cells) {
            let line: String = row.iter().map(|c| format!(" {} |", cell(*n, c))).collect();
            println!("| {n} |{line}");
        }
    };
    table("CPU share of the whole child process (all threads), % of one core, same windows:", &|_, c| match c
        .process_pct
    {
        Some(p) if c.error.is_none() => format!("{p:.2}"),
        _ => "-".to_string(),
    });
    println!();
    table("Registering all threads at once (wall time, ms; registered / asked):", &|n, c| {
        let reg = c.registered.map_or("?".to_string(), |r| r.to_string());
        match c.register_ms {
            Some(ms) => format!("{ms:.0} ({reg}/{n})"),
            None => format!("- ({reg}/{n})"),
        }
    });
    if !notes.is_empty() {
        println!();
        for (i, t) in notes.iter().enumerate() {
            println!("[{}] {t}", i + 1);
        }
    }
    println!();
    println!(
        "{} cells in {:.0} s; {} cores; {}",
        o.threads.len() * o.patterns.len(),
        elapsed.as_secs_f64(),
        cores,
        kernel()
    );
}

/// `text` without the name of the thread it is about (`register("w17")`
/// -> `register(..)`), so that cells that failed alike share a note.
fn generic(text: &str) -> String {
    match text.split_once("register(\"").and_then(|(a, b)| Some((a, b.split_once("\")")?.1))) {
        Some((a, b)) => format!("{a}register(..){b}"),
        None => text.to_string(),
    }
}

/// The short text of a cell that could not run.
fn failure(c: &Cell, n: usize) -> String {
    match (&c.error, c.registered) {
        (Some(e), Some(r)) if e.starts_with("register failed") => format!("register failed ({r} of {n})"),
        (Some(e), _) if e.starts_with("register failed") => "register failed".into(),
        (Some(e), _) if e.starts_with("limit") => "limit".into(),
        _ => "failed".into(),
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or("Linux".into(), |r| format!("Linux {}", r.trim()))
}

/// Runs one cell in a child process and collects what it said.
fn run_cell(exe: &std::path::Path, p: &str, n: usize, o: &Options) -> Cell {
    let mut cmd = Command::new(exe);
    cmd.args(["--child", p, &n.to_string(), "--secs", &o.secs.to_string(), "--warmup", &o.warmup.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The child reads its settings from Config::new() only.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FAILSTOP_") {
            cmd.env_remove(k);
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Cell { error: Some(format!("spawn {exe:?}: {e}")), ..Cell::default() },
    };
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    // Spawning and registering 10,000 threads takes seconds on a busy
    // machine: a minute on top of the window and warm-up.
    let deadline = Instant::now() + Duration::from_secs_f64(o.secs + o.warmup + 60.0);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Cell { error: Some(format!("wait: {e}")), ..Cell::default() },
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let mut c = Cell::default();
    for l in out.lines() {
        let (k, v) = l.split_once(' ').unwrap_or((l, ""));
        match k {
            "monitor_pct" => c.monitor_pct = v.parse().ok(),
            "process_pct" => c.process_pct = v.parse().ok(),
            "registered" => c.registered = v.parse().ok(),
            "register_ms" => c.register_ms = v.parse().ok(),
            "verdicts" => c.verdicts = v.parse().ok(),
            "warnings" => c.warnings = v.parse().ok(),
            "error" => c.error = Some(v.to_string()),
            "by_thread" => c.by_thread = Some(v.to_string()),
            _ => {}
        }
    }
    let tail = || {
        let lines: Vec<&str> = err.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    };
    match status {
        None => c.error = Some(format!("child timed out (killed); stderr: {}", tail())),
        Some(s) if !s.success() && c.error.is_none() => {
            c.error = Some(format!("child ended with {s}; stderr: {}", tail()))
        }
        _ => {}
    }
    c
}

// ---------------------------------------------------------------------------
// The child: one cell
// ---------------------------------------------------------------------------

/// Prints `key value` on stdout, flushed.
fn say(key: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{key} {value}");
    let _ = out.flush();
}

/// Reports an error for this cell and ends the child (exit 0: the parent
/// shows the error in the cell).
fn cell_error(msg: &str) -> ! {
    say("error", msg.replace('\n', " "));
    std::process::exit(0)
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Raises RLIMIT_SIGPENDING to at least `need` and checks the limits that
/// would stop `n` threads from being spawned.
fn check_limits(n: usize) {
    let need = (n + 1024) as u64;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut lim) };
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
        let want = libc::rlimit { rlim_cur: need, rlim_max: lim.rlim_max.max(need) };
        // SAFETY: a valid rlimit. Raising the hard limit needs privilege;
        // without it, fall back to the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &want) } != 0 {
            let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            // SAFETY: as above; the soft limit up to the hard one.
            unsafe { libc::setrlimit(libc::RLIMIT_SIGPENDING, &soft) };
            if lim.rlim_max < need {
                cell_error(&format!(
                    "limit: RLIMIT_SIGPENDING hard limit {} < {need} (one queued signal per watched thread's timer); \
                     raise it (ulimit -i, or run as root)",
                    lim.rlim_max
                ));
            }
        }
    }
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) };
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
        let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &want) };
        if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max < need {
            cell_error(&format!(
                "limit: RLIMIT_NPROC {} < {need} (it counts threads of the whole user): raise it (ulimit -u)",
                lim.rlim_max
            ));
        }
    }
    for (path, per_thread, what) in [
        ("/proc/sys/kernel/threads-max", 1, "sysctl kernel.threads-max"),
        ("/proc/sys/kernel/pid_max", 1, "sysctl kernel.pid_max"),
        ("/proc/sys/vm/max_map_count", 2, "sysctl vm.max_map_count (a stack and its guard page per thread)"),
    ] {
        if let Some(max) = read_u64(path)
            && max < need * per_thread
        {
            cell_error(&format!("limit: {what} is {max}, {n} threads need more than {}: raise it", need * per_thread));
        }
    }
}

/// The CPU time of thread `tid` of this process, in ns: the first field of
/// its schedstat, else its thread CPU clock.
fn task_cpu_ns(tid: i32) -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        && let Some(ns) = s.split_whitespace().next().and_then(|f| f.parse().ok())
    {
        return Some(ns);
    }
    // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): valid for a thread of the
    // calling process.
    let clock = ((!tid) << 3) | 4 | 2;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer; a bad clock id is an error, not UB.
    (unsafe { libc::clock_gettime(clock, &mut ts) } == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time (ns) of every thread of this process whose comm starts with
/// `failstop-`, by tid.
fn failstop_threads() -> Vec<(i32, u64)> {
    let mut v = vec![];
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return v };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.starts_with("failstop-")
            && let Some(ns) = task_cpu_ns(tid)
        {
            v.push((tid, ns));
        }
    }
    v
}

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn run_child(p: Pattern, n: usize, o: &Options) -> ! {
    check_limits(n);
    let _wd = failstop::start(failstop::Config::new()).unwrap_or_else(|e| cell_error(&format!("start failed: {e}")));
    let period = match p {
        Pattern::Touch(d) | Pattern::Idle(d) => d,
    };
    let go = Arc::new(Barrier::new(n + 1));
    let done = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    for i in 0..n {
        let (go, done, ok, first_error) = (go.clone(), done.clone(), ok.clone(), first_error.clone());
        let spawned = std::thread::Builder::new().name(format!("w{i}")).stack_size(STACK).spawn(move || {
            go.wait();
            let h = match failstop::register(&format!("w{i}")) {
                Ok(h) => h,
                Err(e) => {
                    first_error.lock().unwrap().get_or_insert(e.to_string());
                    done.fetch_add(1, SeqCst);
                    return;
                }
            };
            ok.fetch_add(1, SeqCst);
            done.fetch_add(1, SeqCst);
            // Phases spread evenly over the period.
            let offset = period.mul_f64(i as f64 / n as f64);
            match p {
                Pattern::Touch(_) => {
                    std::thread::sleep(offset);
                    loop {
                        h.touch();
                        std::thread::sleep(period);
                    }
                }
                Pattern::Idle(_) => {
                    h.with_idle(|| std::thread::sleep(offset));
                    loop {
                        h.touch();
                        h.with_idle(|| std::thread::sleep(period));
                    }
                }
            }
        });
        if let Err(e) = spawned {
            cell_error(&format!(
                "limit: spawning thread {} of {n} failed: {e} (see ulimit -u, kernel.threads-max, vm.max_map_count)",
                i + 1
            ));
        }
    }
    let t = Instant::now();
    go.wait();
    while done.load(SeqCst) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let register_time = t.elapsed();
    let registered = ok.load(SeqCst);
    say("registered", registered);
    say("register_ms", format!("{:.1}", register_time.as_secs_f64() * 1e3));
    if registered < n {
        let e = first_error.lock().unwrap().clone().unwrap_or_default();
        cell_error(&format!("register failed: {e}"));
    }
    std::thread::sleep(Duration::from_secs_f64(o.warmup));

    let before = failstop_threads();
    let p0 = process_cpu_ns();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(o.secs));
    let after = failstop_threads();
    let p1 = process_cpu_ns();
    let wall = t0.elapsed().as_secs_f64();
    // A thread that appeared during the window counts from zero; one that
    // ended during it is lost (failstop's threads live as long as it runs).
    let used: u64 = after
        .iter()
        .map(|(tid, ns)| ns - before.iter().find(|(t, _)| t == tid).map_or(0, |(_, b)| (*b).min(*ns)))
        .sum();
    let s = failstop::stats();
    say("failstop_threads", after.len());
    // Which of failstop's threads used it, by name.
    let mut by_name: Vec<(String, u64)> = vec![];
    for (tid, ns) in &after {
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
        let used = ns - before.iter().find(|(t, _)| t == tid).map_or(0, |(_, b)| (*b).min(*ns));
        match by_name.iter_mut().find(|(n, _)| *n == comm.trim()) {
            Some((_, u)) => *u += used,
            None => by_name.push((comm.trim().to_string(), used)),
        }
    }
    let by_name: Vec<String> =
        by_name.iter().map(|(n, u)| format!("{n} {:.2}", *u as f64 / 1e9 / wall * 100.0)).collect();
    say("by_thread", by_name.join(", "));
    say("verdicts", s.verdicts);
    say("warnings", s.warnings);
    say("monitor_pct", format!("{:.4}", used as f64 / 1e9 / wall * 100.0));
    say("process_pct", format!("{:.4}", (p1 - p0) as f64 / 1e9 / wall * 100.0));
    std::process::exit(0)
}
