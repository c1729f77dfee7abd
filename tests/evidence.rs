//! The monitor's evidence: where it comes from (`/proc`) and what happens
//! when it cannot be had.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, gettid, small_config};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const STALL: Duration = Duration::from_millis(1000);
/// The documented default: 5 × the stall budget.
const POLL: Duration = Duration::from_millis(5000);

/// `unshare` (util-linux), for a mount namespace without `/proc`.
fn unshare() -> &'static Path {
    let p = Path::new("/usr/bin/unshare");
    assert!(p.exists(), "{p:?} not found: apt-get install util-linux (.ci/run installs it)");
    p
}

/// Without `/proc` (a sandbox or chroot that does not mount it) the
/// blocked and deaf rules could never fire: start refuses, naming `/proc`
/// and how to mount it, instead of running half-blind.
#[test]
fn start_without_proc_fails_naming_it() {
    if common::scenario().is_some() {
        let gone = !Path::new("/proc/self/stat").exists();
        say!("proc-gone {gone}");
        match failstop::start(small_config()) {
            Ok(_wd) => say!("started"),
            Err(e) => {
                say!("kind {:?}", e.kind());
                say!("message {e}");
            }
        }
        common::child_exit(0);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let exe = exe.to_str().expect("utf-8 path");
    // A private mount namespace whose /proc is unmounted, then this test
    // binary as the scenario child.
    let o = Spec::program(
        unshare().to_path_buf(),
        &[
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "umount -l /proc && exec \"$0\" \"$@\"",
            exe,
            "start_without_proc_fails_naming_it",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
    )
    .env(common::SCENARIO_VAR, "noproc")
    .run();
    o.assert_exit(0);
    assert_eq!(o.value("proc-gone"), "true", "the child still had /proc\n{}", o.describe());
    assert!(!o.has("started"), "start succeeded without /proc\n{}", o.describe());
    assert_eq!(o.value("kind"), "Os", "{}", o.describe());
    let msg = o.value("message");
    assert!(msg.contains("/proc/self/task/<tid>/stat cannot be read"), "{msg}");
    assert!(msg.contains("mount -t proc proc /proc"), "{msg}");
}

/// Opens `/dev/null` until the process has no descriptor left; returns how
/// many it took (they stay open).
fn use_up_descriptors() -> usize {
    let mut n = 0;
    // SAFETY: open with a static path; the descriptors are leaked on purpose.
    while unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) } >= 0 {
        n += 1;
    }
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EMFILE));
    n
}

/// A thread that blocks after the process used up its descriptors (a leak,
/// a deadlocked server that keeps accepting) is still convicted: the
/// monitor's `/proc` reads take a reserved descriptor, and a read that
/// fails anyway is no evidence of life. The dump lists the culprit with its
/// frames and the module table.
#[test]
fn a_block_with_every_descriptor_in_use_is_convicted() {
    if common::scenario().is_some() {
        let lim = libc::rlimit { rlim_cur: 64, rlim_max: 64 };
        // SAFETY: a valid rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let _wd = failstop::start(small_config().stall_budget(STALL)).expect("start");
        let mut fds = [0; 2];
        // SAFETY: a valid out-array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let rd = fds[0];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let h = failstop::register("reader").expect("register");
            say!("tid reader {}", gettid());
            h.touch();
            rx.recv().expect("go");
            say!("blocking-start");
            let mut b = [0u8; 1];
            // SAFETY: reading into a valid buffer; nobody ever writes.
            unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) };
        });
        std::thread::sleep(Duration::from_millis(200));
        say!("took {}", use_up_descriptors());
        tx.send(()).expect("go");
        std::thread::sleep(Duration::from_secs(20));
        common::child_exit(0);
    }
    let o = Spec::scenario("a_block_with_every_descriptor_in_use_is_convicted", "emfile").run();
    let d = o.describe();
    o.assert_signal(libc::SIGABRT);
    let took = o.ended.saturating_duration_since(o.time_of("blocking-start"));
    eprintln!("FIGURE emfile block: fault to end {} ms", took.as_millis());
    assert!(took < STALL + Duration::from_secs(4), "{took:?}\n{d}");
    let tid = o.tid("reader");
    let first = o.stderr.lines().find(|l| l.starts_with("failstop: blocked: ")).unwrap_or_default();
    assert!(first.starts_with(&format!("failstop: blocked: thread \"reader\" (tid {tid}) made no progress")), "{d}");
    assert!(o.stderr.contains(&format!("> thread {tid} \"reader\" state S")), "the culprit's entry\n{d}");
    assert!(o.stderr.contains("failstop: modules (path, load base, bias, build-id):"), "{d}");
    assert!(!o.stderr.contains(" 0 threads;"), "{d}");
}

static READY: AtomicBool = AtomicBool::new(false);

/// `while (!ready) usleep(1000);` outside any scope: it context-switches
/// (not blocked) and uses little CPU (the stuck rule would take minutes).
/// The polling rule convicts it after `poll_budget` (5 × `stall_budget`).
#[test]
fn a_hang_that_polls_is_convicted() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().stall_budget(STALL)).expect("start");
        let t = std::thread::spawn(|| {
            let h = failstop::register("poller").expect("register");
            say!("tid poller {}", gettid());
            h.touch();
            say!("polling-start");
            while !READY.load(Ordering::Relaxed) {
                // SAFETY: usleep has no memory arguments.
                unsafe { libc::usleep(1000) };
            }
        });
        std::thread::sleep(POLL + Duration::from_secs(15));
        READY.store(true, Ordering::Relaxed);
        t.join().expect("join");
        common::child_exit(0);
    }
    let o = Spec::scenario("a_hang_that_polls_is_convicted", "poll").run();
    let d = o.describe();
    o.assert_signal(libc::SIGABRT);
    let took = o.ended.saturating_duration_since(o.time_of("polling-start"));
    eprintln!("FIGURE polling hang: fault to end {} ms (poll_budget {} ms)", took.as_millis(), POLL.as_millis());
    assert!(took >= POLL, "convicted before poll_budget: {took:?}\n{d}");
    assert!(took < POLL + Duration::from_secs(4), "{took:?}\n{d}");
    let tid = o.tid("poller");
    let first = o.stderr.lines().find(|l| l.starts_with("failstop: polling: ")).unwrap_or_default();
    let head = format!("failstop: polling: thread \"poller\" (tid {tid}) made no progress for ");
    assert!(first.starts_with(&head), "{d}");
    assert!(
        common::without_process(first).ends_with(
            "ms and read or wrote no byte while it only slept and woke (poll_budget 5000 ms); action: abort"
        ),
        "{d}"
    );
}

/// The polling rule's slow-but-living side: sleeps in 10 ms steps for 3 s
/// between touches (three times the stall budget, under the poll budget),
/// and a reader of data trickling in at a byte per 200 ms that touches only
/// every 7 s (longer than the poll budget, but bytes move).
#[test]
fn sleeping_between_touches_and_trickling_data_are_living() {
    if common::scenario().is_some() {
        let _wd = failstop::start(small_config().stall_budget(STALL)).expect("start");
        let mut fds = [0; 2];
        // SAFETY: a valid out-array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (rd, wr) = (fds[0], fds[1]);
        let sleeper = std::thread::spawn(|| {
            let h = failstop::register("sleeper").expect("register");
            for _ in 0..4 {
                h.touch();
                for _ in 0..300 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            h.touch();
        });
        let writer = std::thread::spawn(move || {
            for _ in 0..80 {
                std::thread::sleep(Duration::from_millis(200));
                // SAFETY: one byte from a valid buffer.
                assert_eq!(unsafe { libc::write(wr, b"x".as_ptr().cast(), 1) }, 1);
            }
        });
        let reader = std::thread::spawn(move || {
            let h = failstop::register("trickle").expect("register");
            let mut b = [0u8; 1];
            for _ in 0..2 {
                h.touch();
                for _ in 0..35 {
                    // SAFETY: reading into a valid buffer.
                    assert_eq!(unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) }, 1);
                }
            }
            h.touch();
        });
        let start = Instant::now();
        for t in [sleeper, writer, reader] {
            t.join().expect("join");
        }
        say!("ran-ms {}", start.elapsed().as_millis());
        common::say_stats();
        common::child_exit(0);
    }
    let o = Spec::scenario("sleeping_between_touches_and_trickling_data_are_living", "living").run();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert!(!o.stderr.contains("failstop: polling"), "{}", o.describe());
    assert_eq!(o.stat("verdicts"), 0, "{}", o.describe());
    assert_eq!(o.value("healthy"), "true", "{}", o.describe());
}
