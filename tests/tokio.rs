//! failstop::tokio on real runtimes of both flavours, in child processes: a
//! task that spins, sleeps, or holds a std Mutex across a slow call is
//! reported with its own async fn in the culprit's backtrace (stderr and
//! `tracing` events); a busy, healthy runtime and the blocking pool are
//! never judged.
//!
//! The children print every `tracing` event as one stdout line
//! `EVENT level=<L> <field>=<value>...` (frames joined by " | ").

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Outcome, Spec, gettid, scenario};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const STALL: Duration = Duration::from_millis(1000);
/// The spin case's budget: warnings at 100, 200, 400 and 800 ms of CPU come
/// well before the verdict, even when the reporter is slow to start.
const SPIN_BUDGET: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------------------
// In the child
// ---------------------------------------------------------------------------

/// Prints each `tracing` event as one line.
struct EventLines;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}").replace('\n', " | ");
        let _ = write!(self.0, " {}={v}", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        say!("EVENT level={}{}", event.metadata().level(), f.0);
    }
}

fn runtime(flavor: &str) -> tokio::runtime::Runtime {
    let mut b = match flavor {
        "multi" => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    failstop::tokio::watch(&mut b).enable_time().build().expect("runtime")
}

/// Starts failstop and the event printer; returns the watchdog.
fn start(config: failstop::Config) -> failstop::Watchdog {
    tracing_subscriber::registry().with(EventLines).init();
    failstop::start(config.with_env().expect("config")).expect("start")
}

/// The offending task of the spin case.
async fn spin_in_task() {
    say!("culprit {}", gettid());
    say!("blocking-start");
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// The offending task of the sleep case.
async fn sleep_in_task() {
    say!("culprit {}", gettid());
    say!("blocking-start");
    std::thread::sleep(Duration::from_secs(3600));
}

/// The offending task of the mutex case: holds the lock across a slow call.
async fn hold_lock_across_slow_call(shared: Arc<Mutex<u64>>) {
    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
    say!("culprit {}", gettid());
    say!("blocking-start");
    std::thread::sleep(Duration::from_secs(3600));
    *guard += 1;
}

/// Tasks that need the lock.
async fn wait_for_lock(shared: Arc<Mutex<u64>>) -> u64 {
    *shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Light healthy load until the process ends: a ticking timer.
async fn ticker() {
    let mut n = 0u64;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        n = std::hint::black_box(n + 1);
    }
}

/// Ends the child once the dump file is complete (warn mode: the offending
/// task never returns, and on the current-thread runtime it holds the only
/// thread that could).
fn exit_after_dump(path: std::path::PathBuf) {
    std::thread::spawn(move || {
        let written = common::wait_for_dump_file(&path);
        say!("dump-file-complete {written}");
        common::say_stats();
        common::child_exit(0);
    });
}

/// The fault scenarios: `<flavor>-<fault>`.
fn run_fault(scenario: &str) {
    let (flavor, fault) = scenario.split_once('-').expect("scenario");
    if let Some(first) = fault.strip_prefix("first-") {
        run_first(flavor, first);
    }
    let dump = std::env::var("FSTEST_DUMP").expect("FSTEST_DUMP");
    let action = if fault == "spin" { failstop::Action::Warn } else { failstop::Action::Abort };
    let budget = if fault == "spin" { SPIN_BUDGET } else { common::BUDGET };
    let _wd = start(common::small_config().cpu_budget(budget).stall_budget(STALL).action(action).dump_path(&dump));
    if fault == "spin" {
        exit_after_dump(dump.into());
    }
    let rt = runtime(flavor);
    failstop::tokio::block_on(&rt, async move {
        tokio::spawn(ticker());
        // Let the workers park once (they are watched from then on), serve
        // some load, and the reporter load its symbols.
        tokio::time::sleep(Duration::from_millis(500)).await;
        match fault {
            "spin" => drop(tokio::spawn(failstop::tokio::with_context("the culprit task", spin_in_task()))),
            "sleep" => drop(tokio::spawn(failstop::tokio::with_context("the culprit task", sleep_in_task()))),
            "mutex" => {
                let shared = Arc::new(Mutex::new(0));
                drop(tokio::spawn(hold_lock_across_slow_call(shared.clone())));
                tokio::time::sleep(Duration::from_millis(300)).await;
                // A blocking-pool thread waits for the lock too: never judged.
                let s = shared.clone();
                drop(tokio::task::spawn_blocking(move || *s.lock().unwrap_or_else(|p| p.into_inner())));
                for _ in 0..4 {
                    drop(tokio::spawn(wait_for_lock(shared.clone())));
                }
            }
            other => panic!("unknown fault {other}"),
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .expect("block_on");
    say!("not caught");
    common::child_exit(3);
}

// ---------------------------------------------------------------------------
// In the parent
// ---------------------------------------------------------------------------

/// The `EVENT` lines of a kind (`warning`, `stuck`, `blocked`) with their
/// arrival times.
fn events<'a>(o: &'a Outcome, kind: &str) -> Vec<(Instant, &'a str)> {
    let needle = format!(" kind=\"{kind}\"");
    o.lines
        .iter()
        .filter(|(_, l)| l.starts_with("SCENARIO EVENT ") && l.contains(&needle))
        .map(|(t, l)| (*t, l.as_str()))
        .collect()
}

/// The culprit's block of the dump's symbolized part.
fn culprit_frames(stderr: &str, tid: i32) -> String {
    let sym = stderr.split("failstop: symbolized backtraces:\n").nth(1).unwrap_or("");
    let head = format!("> thread {tid} \"");
    let start = sym.find(&head).unwrap_or_else(|| panic!("no symbolized block for culprit {tid}:\n{stderr}"));
    sym[start..].lines().skip(1).take_while(|l| l.starts_with("    #")).collect::<Vec<_>>().join("\n")
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Runs one fault scenario and checks what every fault has in common.
/// Returns the outcome and the culprit's tid and name.
fn fault(test: &str, scenario: &str, function: &str, kind: &str) -> (Outcome, i32, String) {
    let dump = common::temp_path(scenario);
    let o = Spec::scenario(test, scenario).env("FSTEST_DUMP", dump.to_str().expect("path")).run();
    assert!(!o.has("not caught"), "{}", o.describe());
    let tid: i32 = o.value("culprit").parse().expect("tid");
    let multi = scenario.starts_with("multi");
    // The verdict line names the thread that ran the offending task.
    let verdict = o
        .stderr
        .lines()
        .find(|l| l.starts_with(&format!("failstop: {kind}: thread \"")))
        .unwrap_or_else(|| panic!("no {kind} verdict\n{}", o.describe()));
    let name = verdict.split('"').nth(1).expect("name").to_string();
    assert!(verdict.contains(&format!("(tid {tid})")), "the verdict names another thread: {verdict}\n{}", o.describe());
    if multi {
        assert!(name.starts_with("tokio-rt-worker-"), "{verdict}");
    } else {
        assert_eq!(name, "tokio-current-thread", "{verdict}");
    }
    // The culprit's own frames name the async fn.
    let frames = culprit_frames(&o.stderr, tid);
    assert!(
        frames.contains(&format!("{function}::{{{{closure}}}}")),
        "`{function}::{{{{closure}}}}` not in the culprit's frames:\n{frames}\n{}",
        o.describe()
    );
    // The verdict's tracing event, with the same frames.
    let ev = events(&o, kind);
    assert_eq!(ev.len(), 1, "one {kind} event expected\n{}", o.describe());
    let e = ev[0].1;
    assert!(e.starts_with("SCENARIO EVENT level=ERROR "), "{e}");
    for f in [format!(" tid={tid} "), format!(" thread={name} "), " cpu_ms=".into(), " wall_ms=".into()] {
        assert!(e.contains(&f), "`{f}` missing in the verdict event {e}");
    }
    assert!(e.contains(&format!("{function}::{{{{closure}}}}")), "frames missing in the verdict event {e}");
    let start = o.time_of("blocking-start");
    eprintln!("FIGURE {scenario}: blocking start to {kind} event {} ms", ms(ev[0].0 - start));
    // A task wrapped in `with_context` names itself in the culprit's entry,
    // and only there.
    let entry = o
        .stderr
        .split(&format!("> thread {tid} \""))
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .unwrap_or_else(|| panic!("no culprit entry\n{}", o.describe()));
    if function != "hold_lock_across_slow_call" {
        assert_eq!(entry, "    context: \"the culprit task\"", "{}", o.stderr);
        assert_eq!(o.stderr.matches("    context: ").count(), 1, "{}", o.stderr);
    } else {
        assert!(!o.stderr.contains("    context: "), "{}", o.stderr);
    }
    (o, tid, name)
}

fn spin(test: &str, scenario: &str) {
    let (o, tid, name) = fault(test, scenario, "spin_in_task", "stuck");
    o.assert_exit(0);
    assert_eq!(o.value("dump-file-complete"), "true", "{}", o.describe());
    // Warnings first, at warn_after, with the culprit's own frames.
    let block = o
        .stderr
        .split(&format!("failstop: warning: thread \"{name}\" (tid {tid})"))
        .nth(1)
        .unwrap_or_else(|| panic!("no warning for the culprit\n{}", o.describe()));
    let block: String = block.lines().skip(1).take_while(|l| l.starts_with("    #")).collect::<Vec<_>>().join("\n");
    assert!(block.contains("spin_in_task::{{closure}}"), "{block}");
    let warnings = events(&o, "warning");
    assert!(!warnings.is_empty(), "{}", o.describe());
    let w = warnings[0].1;
    assert!(w.starts_with("SCENARIO EVENT level=WARN ") && w.contains(&format!(" tid={tid} ")), "{w}");
    assert!(w.contains("spin_in_task::{{closure}}"), "{w}");
    let stuck = events(&o, "stuck")[0];
    assert!(stuck.1.contains(" action=\"warn\""), "{}", stuck.1);
    assert!(warnings[0].0 <= stuck.0, "the warning comes before the verdict");
    let start = o.time_of("blocking-start");
    eprintln!("FIGURE {scenario}: blocking start to first warning event {} ms", ms(warnings[0].0 - start));
    // The stuck dump (warn mode): the verdict line, the culprit first.
    let d = common::Dump::parse(&o.stderr);
    let v = d.verdict();
    assert_eq!((v.name.as_str(), v.tid, v.action.as_str()), (name.as_str(), tid, "warn"), "{}", o.stderr);
    assert_eq!(v.budget_ms, SPIN_BUDGET.as_millis() as u64);
    assert!(v.not_before_budget(), "verdict before the budget: {v:?}");
    let threads = d.threads();
    assert!(threads[0].0 && threads[0].1 == tid, "the culprit is listed first\n{}", o.stderr);
    assert!(d.written(), "{}", o.stderr);
}

fn blocked(test: &str, scenario: &str, function: &str) {
    let (o, _, _) = fault(test, scenario, function, "blocked");
    o.assert_signal(libc::SIGABRT);
    let e = events(&o, "blocked")[0].1;
    assert!(e.contains(" action=\"abort\""), "{e}");
    // Caught at the stall budget plus sampling slack, on a noisy machine.
    let took = o.ended - o.time_of("blocking-start");
    assert!(took >= STALL && took < Duration::from_secs(15), "took {took:?}\n{}", o.describe());
}

macro_rules! fault_tests {
    ($($name:ident: $scenario:literal => $check:expr;)*) => {$(
        #[test]
        fn $name() {
            if let Some(s) = scenario() {
                run_fault(&s);
            }
            ($check)(stringify!($name), $scenario);
        }
    )*};
}

fault_tests! {
    multi_thread_spinning_task_is_warned_then_stuck: "multi-spin" => spin;
    current_thread_spinning_task_is_warned_then_stuck: "current-spin" => spin;
    multi_thread_sleeping_task_is_blocked: "multi-sleep" => |t, s| blocked(t, s, "sleep_in_task");
    current_thread_sleeping_task_is_blocked: "current-sleep" => |t, s| blocked(t, s, "sleep_in_task");
    multi_thread_mutex_held_across_slow_call_is_blocked: "multi-mutex" => |t, s| blocked(t, s, "hold_lock_across_slow_call");
    current_thread_mutex_held_across_slow_call_is_blocked: "current-mutex" => |t, s| blocked(t, s, "hold_lock_across_slow_call");
    multi_thread_first_task_spinning_before_any_park_is_stuck: "multi-first-spin" => first_task;
    multi_thread_first_task_sleeping_before_any_park_is_blocked: "multi-first-sleep" => first_task;
    current_thread_first_task_spinning_before_any_park_is_stuck: "current-first-spin" => first_task;
    current_thread_first_task_sleeping_before_any_park_is_blocked: "current-first-sleep" => first_task;
}

// ---------------------------------------------------------------------------
// The very first task blocks, before any worker parked
// ---------------------------------------------------------------------------

/// How long each pool thread of the "first task" runtimes waits at its
/// start: the tasks spawned at once after `build()` are then queued before
/// any worker looks for work, so a worker takes one before its first park
/// (what happens by chance on a loaded machine).
const SLOW_THREAD_START: Duration = Duration::from_millis(300);
/// How long a "first task" child waits for the verdict.
const FIRST_WAIT: Duration = Duration::from_secs(8);

/// A runtime whose pool threads start slowly (see [`SLOW_THREAD_START`]),
/// with `workers` workers (0: current-thread).
fn slow_start_runtime(workers: usize) -> tokio::runtime::Runtime {
    let mut b = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    // After `watch`, which sets its own thread-start hook: this one calls
    // failstop's first, as the module doc asks.
    failstop::tokio::watch(&mut b)
        .on_thread_start(|| {
            failstop::tokio::on_start();
            std::thread::sleep(SLOW_THREAD_START);
        })
        .enable_time()
        .build()
        .expect("runtime")
}

/// `<flavor>-first-<fault>`: the runtime's very first task spins or sleeps
/// (`std::thread::sleep`), spawned at once after `build()`, with action
/// abort.
fn run_first(flavor: &str, fault: &str) -> ! {
    let dump = std::env::var("FSTEST_DUMP").expect("FSTEST_DUMP");
    let _wd = start(common::small_config().stall_budget(STALL).dump_path(&dump));
    let rt = slow_start_runtime(if flavor == "multi" { 2 } else { 0 });
    match fault {
        "spin" => drop(rt.spawn(failstop::tokio::with_context("the culprit task", spin_in_task()))),
        "sleep" => drop(rt.spawn(failstop::tokio::with_context("the culprit task", sleep_in_task()))),
        other => panic!("unknown fault {other}"),
    }
    failstop::tokio::block_on(&rt, async { tokio::time::sleep(FIRST_WAIT).await }).expect("block_on");
    say!("not caught");
    common::child_exit(3);
}

/// The verdict on a worker whose very first task blocks: its kind, the
/// worker's name (a multi-thread worker that never parked has no index
/// yet), the end by SIGABRT, within the budget plus 3 s.
fn first_task(test: &str, scenario: &str) {
    let (kind, function, budget) = if scenario.ends_with("spin") {
        ("stuck", "spin_in_task", common::BUDGET)
    } else {
        ("blocked", "sleep_in_task", STALL)
    };
    let (o, _, name) = fault(test, scenario, function, kind);
    o.assert_signal(libc::SIGABRT);
    let expected = if scenario.starts_with("multi") { "tokio-rt-worker-?" } else { "tokio-current-thread" };
    assert_eq!(name, expected, "{}", o.describe());
    let e = events(&o, kind)[0];
    assert!(e.1.contains(" action=\"abort\""), "{}", e.1);
    // The verdict's event comes after the dump, the end right after it:
    // both within the budget plus 3 s of the task's start.
    let start = o.time_of("blocking-start");
    let ended = o.ended - start;
    assert!(
        e.0 <= o.ended && ended < budget + Duration::from_secs(3),
        "ended {ended:?} after the start\n{}",
        o.describe()
    );
    eprintln!("FIGURE {scenario}: blocking start to the end {} ms", ms(ended));
}

/// The slow-but-living first task of a one-worker runtime: 4 s of polls
/// that each sleep 5 ms and burn 2 ms of CPU, yielding between them (the
/// worker never parks: its progress is the scheduler loop coming around).
/// Over 4 s that is about 1.1 s of CPU, far beyond the 300 ms budget had
/// the progress not been seen.
async fn slow_but_living_task() {
    say!("watched-during-slow-task {}", failstop::stats().registered);
    let until = Instant::now() + Duration::from_secs(4);
    let mut polls = 0u64;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
        common::spin_for_cpu(Duration::from_millis(2));
        polls += 1;
        tokio::task::yield_now().await;
    }
    say!("slow-polls {polls}");
    say!("watched-after-slow-task {}", failstop::stats().registered);
}

fn run_first_slow() {
    let _wd = start(common::small_config().warn_after(Duration::from_millis(200)).stall_budget(STALL));
    let rt = slow_start_runtime(1);
    let task = rt.spawn(slow_but_living_task());
    failstop::tokio::block_on(&rt, task).expect("block_on").expect("task");
    common::say_stats();
    common::child_exit(0);
}

#[test]
fn multi_thread_slow_but_living_first_task_gets_no_verdict() {
    if scenario().is_some() {
        run_first_slow();
    }
    let o = Spec::scenario("multi_thread_slow_but_living_first_task_gets_no_verdict", "slow").run();
    o.assert_exit(0);
    assert!(!o.stderr.contains("failstop:"), "a slow but living task was reported:\n{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.stat("warnings"), 0, "{}", o.describe());
    // The worker was watched all along: it never parked.
    assert_eq!(o.value("watched-during-slow-task"), "1", "{}", o.describe());
    assert_eq!(o.value("watched-after-slow-task"), "1", "{}", o.describe());
    let polls: u64 = o.value("slow-polls").parse().expect("polls");
    eprintln!("FIGURE slow first task: {polls} polls in 4 s");
    assert!(polls >= 200, "the task did not run as planned: {polls} polls\n{}", o.describe());
}

/// Blocking-pool threads that start at the same time as the workers (their
/// closures spawned at once after `build()`, spinning and sleeping for
/// longer than every budget) are never judged.
fn run_first_blocking_pool() {
    let _wd = start(common::small_config().stall_budget(STALL));
    let rt = slow_start_runtime(2);
    let spin = rt.spawn_blocking(|| common::spin_for_cpu(Duration::from_millis(1500)));
    let sleep = rt.spawn_blocking(|| std::thread::sleep(Duration::from_millis(2500)));
    drop(rt.spawn(ticker()));
    failstop::tokio::block_on(&rt, async {
        let _ = spin.await;
        let _ = sleep.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .expect("block_on");
    common::say_stats();
    common::child_exit(0);
}

#[test]
fn multi_thread_blocking_pool_started_with_the_workers_is_never_judged() {
    if scenario().is_some() {
        run_first_blocking_pool();
    }
    let o = Spec::scenario("multi_thread_blocking_pool_started_with_the_workers_is_never_judged", "early-pool").run();
    o.assert_exit(0);
    assert!(!o.stderr.contains("failstop:"), "the blocking pool was judged:\n{}", o.describe());
    assert_eq!(o.stat("warnings"), 0, "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
}

// ---------------------------------------------------------------------------
// Healthy runtimes and the blocking pool
// ---------------------------------------------------------------------------

/// Many short polls back to back (the workers never run out of work and do
/// not park), timers, a channel ping-pong and bursts of tiny tasks, for
/// `wall`.
async fn busy_healthy_load(wall: Duration) {
    let deadline = tokio::time::Instant::now() + wall;
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        tasks.push(tokio::spawn(async move {
            let mut x = i;
            while tokio::time::Instant::now() < deadline {
                common::work_for(Duration::from_micros(50));
                x = std::hint::black_box(x.wrapping_add(1));
                tokio::task::yield_now().await;
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_millis(1));
        while tokio::time::Instant::now() < deadline {
            iv.tick().await;
        }
    }));
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
    tasks.push(tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v + 1).await.is_err() {
                break;
            }
        }
    }));
    tasks.push(tokio::spawn(async move {
        let mut v = 0;
        while tokio::time::Instant::now() < deadline {
            let _ = ping_tx.send(v).await;
            v = pong_rx.recv().await.unwrap_or(v);
        }
    }));
    tasks.push(tokio::spawn(async move {
        while tokio::time::Instant::now() < deadline {
            let burst: Vec<_> = (0..100u64).map(|i| tokio::spawn(async move { std::hint::black_box(i * i) })).collect();
            for t in burst {
                let _ = t.await;
            }
        }
    }));
    for t in tasks {
        let _ = t.await;
    }
}

const BUSY_WALL: Duration = Duration::from_secs(4);

fn run_busy(flavor: &str) {
    let c = failstop::Config::new()
        .warn_after(Duration::from_millis(20))
        .cpu_budget(Duration::from_millis(100))
        .stall_budget(Duration::from_millis(300))
        .dump_timeout(common::DUMP_TIMEOUT);
    let _wd = start(c);
    let rt = runtime(flavor);
    let m = rt.metrics();
    let workers = m.num_workers();
    failstop::tokio::block_on(&rt, async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let busy_before: Duration = (0..workers).map(|i| m.worker_total_busy_duration(i)).sum();
        let parks_before: u64 = (0..workers).map(|i| m.worker_park_count(i)).sum();
        let t0 = Instant::now();
        busy_healthy_load(BUSY_WALL).await;
        let wall = t0.elapsed();
        let busy: Duration = (0..workers).map(|i| m.worker_total_busy_duration(i)).sum::<Duration>() - busy_before;
        let parks = (0..workers).map(|i| m.worker_park_count(i)).sum::<u64>() - parks_before;
        say!("busy-permille {}", busy.as_millis() * 1000 / (wall.as_millis() * workers as u128).max(1));
        say!("parks {parks}");
        say!("registered {}", failstop::stats().registered);
    })
    .expect("block_on");
    common::say_stats();
    common::child_exit(0);
}

fn check_busy(test: &str, flavor: &str, workers: u64) {
    let o = Spec::scenario(test, flavor).run();
    o.assert_exit(0);
    assert!(!o.stderr.contains("failstop:"), "a healthy runtime was reported:\n{}", o.describe());
    assert!(!o.stdout().contains("SCENARIO EVENT"), "{}", o.describe());
    assert_eq!(o.stat("warnings"), 0, "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.value("registered"), workers.to_string(), "{}", o.describe());
    // The workers were busy nearly all the time: what they did between
    // parks is what the sampler's touches covered.
    let permille: u64 = o.value("busy-permille").parse().expect("permille");
    eprintln!("FIGURE busy {flavor}: busy {permille}/1000 of the wall time, parks {}", o.value("parks"));
    assert!(permille >= 800, "the load did not keep the workers busy: {permille}/1000\n{}", o.describe());
}

#[test]
fn multi_thread_busy_healthy_runtime_reports_nothing() {
    if scenario().is_some() {
        run_busy("multi");
    }
    check_busy("multi_thread_busy_healthy_runtime_reports_nothing", "multi", 2);
}

#[test]
fn current_thread_busy_healthy_runtime_reports_nothing() {
    if scenario().is_some() {
        run_busy("current");
    }
    check_busy("current_thread_busy_healthy_runtime_reports_nothing", "current", 1);
}

/// `spawn_blocking` closures (and on the multi-thread runtime a
/// `block_in_place` closure) that spin and sleep for longer than every
/// budget, with `action` abort: nothing is reported.
fn run_blocking_pool(flavor: &str) {
    let _wd = start(common::small_config().stall_budget(STALL));
    let rt = runtime(flavor);
    failstop::tokio::block_on(&rt, async {
        tokio::spawn(ticker());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let spin = tokio::task::spawn_blocking(|| common::spin_for_cpu(Duration::from_millis(1500)));
        let sleep = tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2500)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        say!("registered-during-spawn-blocking {}", failstop::stats().registered);
        let _ = spin.await;
        let _ = sleep.await;
        if flavor == "multi" {
            tokio::spawn(async {
                tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(2500)));
                tokio::task::block_in_place(|| common::spin_for_cpu(Duration::from_millis(1000)));
            })
            .await
            .expect("block_in_place task");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .expect("block_on");
    common::say_stats();
    common::child_exit(0);
}

fn check_blocking_pool(test: &str, flavor: &str, workers: u64) {
    let o = Spec::scenario(test, flavor).run();
    o.assert_exit(0);
    assert!(!o.stderr.contains("failstop:"), "the blocking pool was judged:\n{}", o.describe());
    assert_eq!(o.stat("warnings"), 0, "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    // Only the workers are registered, not the pool's threads.
    assert_eq!(o.value("registered-during-spawn-blocking"), workers.to_string(), "{}", o.describe());
}

#[test]
fn multi_thread_blocking_pool_is_never_judged() {
    if scenario().is_some() {
        run_blocking_pool("multi");
    }
    check_blocking_pool("multi_thread_blocking_pool_is_never_judged", "multi", 2);
}

#[test]
fn current_thread_blocking_pool_is_never_judged() {
    if scenario().is_some() {
        run_blocking_pool("current");
    }
    check_blocking_pool("current_thread_blocking_pool_is_never_judged", "current", 1);
}

/// A current-thread runtime is watched only inside failstop::tokio::block_on:
/// after it returns, and under a plain `Runtime::block_on` (which says so in
/// a WARN event), the thread may block for longer than every budget.
fn run_outside_block_on() {
    let _wd = start(common::small_config().stall_budget(STALL));
    let rt = runtime("current");
    failstop::tokio::block_on(&rt, async { tokio::time::sleep(Duration::from_millis(100)).await }).expect("block_on");
    say!("registered-after-block-on {}", failstop::stats().registered);
    std::thread::sleep(Duration::from_millis(2500));
    common::spin_for_cpu(Duration::from_millis(600));
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::thread::sleep(Duration::from_millis(2500));
    });
    common::say_stats();
    common::child_exit(0);
}

#[test]
fn current_thread_outside_failstop_block_on_is_never_judged() {
    if scenario().is_some() {
        run_outside_block_on();
    }
    let o = Spec::scenario("current_thread_outside_failstop_block_on_is_never_judged", "outside").run();
    o.assert_exit(0);
    assert!(!o.stderr.contains("failstop:"), "{}", o.describe());
    assert_eq!(o.value("registered-after-block-on"), "0", "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert!(
        o.stdout().contains("level=WARN") && o.stdout().contains("driven by Runtime::block_on"),
        "the unwatched runtime is said once\n{}",
        o.describe()
    );
}

/// The example, as docs/rust.md runs it: the sleeping task is named.
#[test]
fn example_reports_the_sleeping_task() {
    let exe = common::demo_path().with_file_name("tokio_blocking");
    let o = Spec::program(exe, &["--flavor", "current", "--fault", "sleep", "--healthy-ms", "300"]).run();
    o.assert_signal(libc::SIGABRT);
    assert!(o.stderr.contains("failstop: blocked: thread \"tokio-current-thread\""), "{}", o.describe());
    let sym = o.stderr.split("failstop: symbolized backtraces:").nth(1).unwrap_or("");
    let culprit = sym.split("\n  thread ").next().unwrap_or("");
    assert!(culprit.contains("tokio_blocking::sleep_on_the_worker::{{closure}}"), "{}", o.describe());
}
