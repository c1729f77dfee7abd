//! Warnings: a thread that uses `warn_after` of CPU since its last touch
//! gets one stderr block and one `tracing` WARN event carrying its own
//! backtrace; within an episode the interval doubles; at most 5 a minute
//! are reported and the rest are counted as suppressed.

use failstop_test_support as common;

use common::Spec;
use std::time::Duration;

/// About `ms` of CPU, ticking (alive for the verdict) but never touching.
#[inline(never)]
fn busy_without_touching(h: &failstop::ThreadHandle, ms: u64) {
    let start = cpu_ms();
    let mut x = 0u64;
    while cpu_ms() - start < ms {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        h.tick();
    }
}

fn cpu_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[test]
fn warnings_double_are_rate_limited_and_reach_tracing() {
    if std::env::var("FSTEST_SCENARIO").is_ok() {
        tracing_subscriber::fmt().with_writer(std::io::stdout).with_ansi(false).init();
        let c = failstop::Config::new()
            .warn_after(Duration::from_millis(100))
            .cpu_budget(Duration::from_secs(20))
            .with_env()
            .expect("config");
        let _wd = failstop::start(c).expect("start");
        let h = failstop::register("warned").expect("register");
        // Episode 1: 2 s of CPU without a touch: warnings due at 100, 200,
        // 400, 800 and 1600 ms (measured from the tick that saw the touch).
        h.touch();
        busy_without_touching(&h, 2000);
        // Episode 2: the warning clock restarts; more warnings are due, but
        // the 5-a-minute limit is reached.
        h.touch();
        busy_without_touching(&h, 500);
        std::thread::sleep(Duration::from_millis(1500)); // let the reporter drain
        let s = failstop::stats();
        println!("STATS warnings {} suppressed {} verdicts {}", s.warnings, s.suppressed_warnings, s.verdicts);
        std::process::exit(0);
    }
    let name = "warnings_double_are_rate_limited_and_reach_tracing";
    let o = Spec::scenario(name, name).run();
    let (stdout, stderr) = (o.stdout(), o.stderr.clone());
    assert_eq!(o.status.code(), Some(0), "{stderr}");

    // Five stderr blocks, each with the thread's own backtrace.
    let blocks: Vec<&str> = stderr.split("failstop: warning: thread \"warned\"").skip(1).collect();
    assert_eq!(blocks.len(), 5, "{stderr}");
    for b in &blocks {
        assert!(b.contains("busy_without_touching"), "the backtrace names the busy function:\n{b}");
    }
    // The figures double within the first episode: ~100, 200, 400, 800, 1600 ms.
    let figures: Vec<f64> = blocks
        .iter()
        .filter_map(|b| b.strip_prefix(" (tid ")?.split(") has used ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(figures.len(), 5, "{stderr}");
    for (f, want) in figures.iter().zip([100.0, 200.0, 400.0, 800.0, 1600.0]) {
        assert!(*f >= want * 0.85 && *f < want + 150.0, "warning at {f} ms, expected about {want}: {figures:?}");
    }
    // The same warnings as tracing WARN events with their fields.
    let events: Vec<&str> = stdout.lines().filter(|l| l.contains("WARN") && l.contains("kind=\"warning\"")).collect();
    assert_eq!(events.len(), 5, "{stdout}");
    assert!(events.iter().all(|e| e.contains("thread=warned") && e.contains("cpu_ms=")), "{events:#?}");
    // The limit: more were due in the second episode; they were counted.
    let stats = stdout.lines().find(|l| l.starts_with("STATS")).unwrap_or("");
    assert!(stats.starts_with("STATS warnings 5 suppressed "), "{stats}");
    let suppressed: u64 = stats.split_whitespace().nth(4).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(suppressed >= 1, "{stats}");
    assert!(stats.ends_with("verdicts 0"), "{stats}");
}

/// `ThreadHandle::set_context`: the warning and the dump say what the
/// thread was doing when it was caught (the last context set), and a
/// context cleared with `""` is said nowhere.
#[test]
fn the_context_a_thread_set_is_in_its_warning_and_its_dump() {
    if std::env::var("FSTEST_SCENARIO").is_ok() {
        let c = failstop::Config::new().warn_after(Duration::from_millis(100)).cpu_budget(Duration::from_millis(600));
        let _wd = failstop::start(c).expect("start");
        let quiet = std::thread::spawn(|| {
            let h = failstop::register("quiet").expect("register");
            h.set_context("said and then cleared");
            h.set_context("");
            std::thread::sleep(Duration::from_secs(30));
        });
        std::thread::spawn(|| {
            let h = failstop::register("cruncher").expect("register");
            h.touch();
            h.set_context("loading the index");
            h.set_context("crunching numbers");
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        let _ = quiet.join();
        std::process::exit(3);
    }
    let o = Spec::scenario("the_context_a_thread_set_is_in_its_warning_and_its_dump", "context").run();
    o.assert_signal(libc::SIGABRT);
    assert!(
        o.stderr.lines().any(|l| l.starts_with("failstop: warning: thread \"cruncher\"")
            && l.contains("since its loop last came around (context \"crunching numbers\");")),
        "{}",
        o.describe()
    );
    let entry = o.stderr.split("> thread ").nth(1).unwrap_or_else(|| panic!("no culprit entry\n{}", o.describe()));
    assert!(entry.lines().next().is_some_and(|l| l.contains(" \"cruncher\" state ")), "{entry}");
    assert_eq!(entry.lines().nth(1), Some("    context: \"crunching numbers\""), "{}", o.stderr);
    assert_eq!(o.stderr.matches("\n    context: ").count(), 1, "only the cruncher has a context\n{}", o.stderr);
    assert!(!o.stderr.contains("said and then cleared") && !o.stderr.contains("loading the index"), "{}", o.stderr);
}

/// A warning's backtrace is short, as Rust's are: it ends where the
/// thread's own code began (the thread's start machinery is one line that
/// says what was left out), while the dump keeps every frame;
/// `RUST_BACKTRACE=full` prints every frame in the warning too.
#[test]
fn warnings_print_short_backtraces_unless_rust_backtrace_is_full() {
    if std::env::var("FSTEST_SCENARIO").is_ok() {
        let c = failstop::Config::new().warn_after(Duration::from_millis(100)).cpu_budget(Duration::from_millis(400));
        let _wd = failstop::start(c).expect("start");
        std::thread::spawn(|| {
            let h = failstop::register("warned").expect("register");
            h.touch();
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .join()
        .unwrap();
        std::process::exit(3);
    }
    let name = "warnings_print_short_backtraces_unless_rust_backtrace_is_full";
    let warning = |o: &common::Outcome| -> String {
        let w = o.stderr.split("failstop: warning: thread \"warned\"").nth(1).unwrap_or_default();
        w.split("\nfailstop: ").next().unwrap_or_default().to_string()
    };
    let short = Spec::scenario(name, "short").env("RUST_BACKTRACE", "1").run();
    short.assert_signal(libc::SIGABRT);
    let w = warning(&short);
    assert!(w.contains("warnings_print_short_backtraces"), "the thread's own frame is shown:\n{w}");
    assert!(!w.contains("__rust_begin_short_backtrace") && !w.contains("start_thread"), "{w}");
    assert!(w.contains("more lines of the thread's start; the dump has every frame"), "{w}");
    let dump = short.stderr.split("symbolized backtraces").nth(1).unwrap_or_default();
    assert!(dump.contains("start_thread"), "the dump keeps every frame\n{}", short.describe());

    let full = Spec::scenario(name, "full").env("RUST_BACKTRACE", "full").run();
    full.assert_signal(libc::SIGABRT);
    let w = warning(&full);
    assert!(w.contains("__rust_begin_short_backtrace") && w.contains("start_thread"), "{w}");
    assert!(!w.contains("more lines of the thread's start"), "{w}");
}
