//! The dump survives: written whole where the operator will look,
//! whatever stderr, the file system or the descriptor table do. Each test
//! runs a real child; the comment on each says which case of the issue it
//! is.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Dump, Spec, small_config, spawn_spinner};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Asserts that `text` holds one whole fatal stuck dump of the spinner
/// `tid`: the verdict line, every thread (at least the spinner and the main
/// thread), the module table, the symbolized part and the closing line.
fn assert_whole(text: &str, tid: i32, what: &str) {
    let dump = Dump::parse(text);
    dump.assert_stuck("spinner", tid, "abort", "spin_here_forever");
    let threads = dump.threads();
    assert!(threads.len() >= 2, "{what}: every thread expected, got {threads:?}\n{text}");
    assert!(!text.contains(" 0 threads;"), "{what}: no thread listed\n{text}");
    let modules = text.find("failstop: modules (path, load base, bias, build-id):");
    let m = modules.unwrap_or_else(|| panic!("{what}: no module table\n{text}"));
    assert!(
        text[m..].lines().nth(1).is_some_and(|l| l.starts_with("    module base=")),
        "{what}: empty module table\n{text}"
    );
}

/// The path of the one file in `dir` (the dump), or a panic naming what is there.
fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir).expect("read dir").map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one dump file expected in {dir:?}: {files:?}");
    files.into_iter().next().unwrap()
}

fn fresh_dir(tag: &str) -> PathBuf {
    let p = common::temp_path(tag);
    std::fs::create_dir_all(&p).expect("create dir");
    p
}

/// In a child: a pipe as fd 2, `nonblock` with `O_NONBLOCK` set on its
/// write end (the application's choice), its capacity made one page.
/// Returns the read end.
fn pipe_as_stderr(nonblock: bool) -> std::os::fd::OwnedFd {
    let (r, w) = std::io::pipe().expect("pipe");
    // SAFETY: fcntl and dup2 on descriptors this child owns.
    unsafe {
        assert!(libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ");
        if nonblock {
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
        }
        assert_eq!(libc::dup2(w.as_raw_fd(), 2), 2, "dup2");
    }
    std::os::fd::OwnedFd::from(r)
}

/// In a child: fd 2 an O_NONBLOCK pipe of one page, read by a process of
/// its own (outside the test's process group, so that it outlives the
/// child) that takes 1 KiB every 20 ms (50 KiB/s) into the file `copy`,
/// until the pipe's end.
fn slow_reader_as_stderr(copy: &str) {
    let (r, w) = std::io::pipe().expect("pipe");
    let out = std::fs::File::create(copy).expect("create copy");
    // SAFETY: fork in a child that has only its test threads; the forked
    // process makes system calls only (read, write, nanosleep, _exit).
    unsafe {
        assert!(libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) >= 0, "F_SETPIPE_SZ");
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::setpgid(0, 0);
            libc::close(w.as_raw_fd());
            let mut buf = [0u8; 1024];
            loop {
                let n = libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
                if n == 0 {
                    libc::_exit(0);
                }
                if n > 0 {
                    libc::write(out.as_raw_fd(), buf.as_ptr().cast(), n as usize);
                }
                let t = libc::timespec { tv_sec: 0, tv_nsec: 20_000_000 };
                libc::nanosleep(&t, std::ptr::null_mut());
            }
        }
        libc::fcntl(w.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
        assert_eq!(libc::dup2(w.as_raw_fd(), 2), 2, "dup2");
    }
    drop(r);
    drop(w);
    drop(out);
}

/// Fills the pipe whose write end is fd 2 without blocking and without
/// touching fd 2's flags (a second description of the pipe, opened
/// through /proc, is made non-blocking instead).
fn fill_stderr_pipe() {
    let other = std::fs::OpenOptions::new().write(true).open("/proc/self/fd/2").expect("reopen the pipe");
    // SAFETY: our own descriptor.
    unsafe { libc::fcntl(other.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let chunk = [b'x'; 512];
    // SAFETY: writes of a valid buffer to our own descriptor.
    while unsafe { libc::write(other.as_raw_fd(), chunk.as_ptr().cast(), chunk.len()) } > 0 {}
}

/// Case 1: stderr a full pipe nobody reads. The dump file still gets the
/// whole dump (it used to be 0 bytes: the sink blocked on stderr first),
/// and the process ends by its action within the deadline.
#[test]
fn a_full_stderr_pipe_nobody_reads_costs_the_file_nothing() {
    if common::scenario().is_some() {
        let dir = std::env::var("FSTEST_DIR").unwrap();
        let read_end = pipe_as_stderr(false);
        fill_stderr_pipe();
        std::mem::forget(read_end); // held, never read
        let config = small_config().dump_timeout(Duration::from_secs(2)).dump_path(format!("{dir}/dump"));
        let _wd = failstop::start(config).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let dir = fresh_dir("full-pipe");
    let o = Spec::scenario("a_full_stderr_pipe_nobody_reads_costs_the_file_nothing", "full-pipe")
        .env("FSTEST_DIR", dir.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    let took = o.ended - o.time_of("spin-start");
    common::figure(&format!(
        "dump_survives: blocked stderr: the child ended {took:?} after the spin started (dump_timeout 2 s)"
    ));
    assert!(took < Duration::from_secs(15), "{took:?}\n{}", o.describe());
    let text = std::fs::read_to_string(only_file(&dir)).unwrap();
    assert_whole(&text, o.tid("spinner"), "the dump file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Case 2: stderr an O_NONBLOCK pipe read slowly. Each write that would
/// block used to be dropped (0.8 KB got through); now the writer waits in
/// poll until the deadline, and the slow reader gets the whole dump.
#[test]
fn a_slow_reader_of_a_nonblocking_stderr_gets_the_whole_dump() {
    if common::scenario().is_some() {
        let copy = std::env::var("FSTEST_COPY").unwrap();
        slow_reader_as_stderr(&copy);
        let _wd = failstop::start(small_config()).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let copy = common::temp_path("slow-reader");
    let o = Spec::scenario("a_slow_reader_of_a_nonblocking_stderr_gets_the_whole_dump", "slow-reader")
        .env("FSTEST_COPY", copy.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    let took = o.ended - o.time_of("spin-start");
    // The reader, in its own process, copies until the pipe's end.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while std::time::Instant::now() < until {
        text = std::fs::read_to_string(&copy).unwrap_or_default();
        if text.contains("failstop: dump written in ") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    common::figure(&format!(
        "dump_survives: slow stderr (50 KiB/s): the child ended {took:?} after the spin started; the reader got {} bytes",
        text.len()
    ));
    assert_whole(&text, o.tid("spinner"), "the slow stderr");
    let _ = std::fs::remove_file(&copy);
}

/// Case 3: a FIFO with no reader as the dump path. Its open used to block
/// (no dump anywhere); now it fails at once (ENXIO), stderr says so and
/// has the whole dump.
#[test]
fn a_fifo_with_no_reader_as_dump_path_costs_stderr_nothing() {
    if common::scenario().is_some() {
        let fifo = std::env::var("FSTEST_FIFO").unwrap();
        let _wd = failstop::start(small_config().dump_path(fifo)).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let dir = fresh_dir("fifo");
    let fifo = dir.join("dump.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let o = Spec::scenario("a_fifo_with_no_reader_as_dump_path_costs_stderr_nothing", "fifo")
        .env("FSTEST_FIFO", fifo.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    assert_whole(&o.stderr, o.tid("spinner"), "stderr");
    assert!(o.stderr.contains("failstop: the dump file could not be opened (ENXIO"), "{}", o.describe());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Case 4: every descriptor in use at the verdict. The dump file, the
/// thread list and the module table still work.
#[test]
fn every_descriptor_in_use_costs_the_dump_nothing() {
    if common::scenario().is_some() {
        let dir = std::env::var("FSTEST_DIR").unwrap();
        let _wd = failstop::start(small_config().dump_path(format!("{dir}/dump"))).expect("start");
        let lim = libc::rlimit { rlim_cur: 128, rlim_max: 128 };
        // SAFETY: a valid rlimit; lowering our own limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::Builder::new()
            .name("spinner".into())
            .spawn(move || {
                let h = failstop::register("spinner").unwrap();
                say!("tid spinner {}", common::gettid());
                // Use up every descriptor, then spin.
                // SAFETY: dup of stdin; the copies are leaked on purpose.
                while unsafe { libc::dup(0) } >= 0 {}
                h.touch();
                say!("spin-start");
                let _ = tx.send(());
                common::spin_here_forever();
            })
            .unwrap();
        rx.recv().unwrap();
        t.join().ok();
        common::child_exit(0);
    }
    let dir = fresh_dir("nofile");
    let o = Spec::scenario("every_descriptor_in_use_costs_the_dump_nothing", "nofile")
        .env("FSTEST_DIR", dir.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    assert_whole(&o.stderr, o.tid("spinner"), "stderr");
    let text = std::fs::read_to_string(only_file(&dir)).unwrap();
    assert_whole(&text, o.tid("spinner"), "the dump file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mount for a test, unmounted (and its directory removed) on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &Path, args: &[&str]) -> Mount {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test mounts file systems: run it as root (CI does)");
        let st = std::process::Command::new("mount")
            .args(args)
            .arg(dir)
            .status()
            .unwrap_or_else(|e| panic!("mount (Debian package `mount`): {e}"));
        assert!(st.success(), "mount {args:?} {dir:?}: {st}");
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Case 5, a full file system: the write fails (ENOSPC) at verdict time;
/// stderr says so in one line and has the whole dump.
#[test]
fn a_full_file_system_is_said_on_stderr() {
    if common::scenario().is_some() {
        let dir = std::env::var("FSTEST_DIR").unwrap();
        let _wd = failstop::start(small_config().dump_path(format!("{dir}/dump"))).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let dir = fresh_dir("tmpfs-full");
    let _m = Mount::new(&dir, &["-t", "tmpfs", "-o", "size=64k", "tmpfs"]);
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(dir.join("filler")).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
    let o = Spec::scenario("a_full_file_system_is_said_on_stderr", "tmpfs-full")
        .env("FSTEST_DIR", dir.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    assert_whole(&o.stderr, o.tid("spinner"), "stderr");
    let lines: Vec<&str> = o.stderr.lines().filter(|l| l.contains("dump file could not be written")).collect();
    assert_eq!(lines.len(), 1, "{}", o.describe());
    assert!(lines[0].contains("ENOSPC"), "{}", o.describe());
}

/// Case 5, a read-only mount and a missing directory: start fails, naming
/// FAILSTOP_DUMP_PATH and the reason (start used to succeed, and no dump
/// was ever kept).
#[test]
fn an_unwritable_dump_path_fails_start() {
    if common::scenario().is_some() {
        let config = failstop::Config::new().with_env().unwrap();
        match failstop::start(config) {
            Ok(_) => say!("started"),
            Err(e) => say!("error {e}"),
        }
        common::child_exit(0);
    }
    let ro = fresh_dir("ro");
    let _m = Mount::new(&ro, &["-o", "bind,ro", ro.to_str().unwrap()]);
    for (path, why) in [
        (ro.join("dump").to_str().unwrap().to_string(), "Read-only file system"),
        (ro.join("missing/dump").to_str().unwrap().to_string(), "cannot be used"),
    ] {
        let o =
            Spec::scenario("an_unwritable_dump_path_fails_start", "unwritable").env("FAILSTOP_DUMP_PATH", &path).run();
        o.assert_exit(0);
        let e = o.value("error");
        assert!(e.contains("FAILSTOP_DUMP_PATH") && e.contains(why), "{e}\n{}", o.describe());
    }
}

/// Case 6: a relative path is made absolute at start, before the daemon's
/// `chdir`.
#[test]
fn a_relative_dump_path_is_resolved_at_start() {
    if common::scenario().is_some() {
        let dir = std::env::var("FSTEST_DIR").unwrap();
        std::env::set_current_dir(&dir).unwrap();
        let _wd = failstop::start(small_config().dump_path("rel.dump")).expect("start");
        std::env::set_current_dir("/").unwrap();
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let dir = fresh_dir("relative");
    let o = Spec::scenario("a_relative_dump_path_is_resolved_at_start", "relative")
        .env("FSTEST_DIR", dir.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    let text = std::fs::read_to_string(dir.join("rel.dump")).unwrap_or_else(|e| panic!("{e}\n{}", o.describe()));
    assert_whole(&text, o.tid("spinner"), "the dump file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Case 7: an existing file is never truncated: a restart loop keeps the
/// first crash's dump; the next dump gets a new name (`.1`); `%p` names a
/// file by pid.
#[test]
fn an_earlier_dump_is_never_overwritten() {
    if common::scenario().is_some() {
        let path = std::env::var("FSTEST_DUMP_PATH").unwrap();
        say!("pid {}", std::process::id());
        let _wd = failstop::start(small_config().dump_path(path)).expect("start");
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let dir = fresh_dir("kept");
    let first = dir.join("dump");
    std::fs::write(&first, "the first crash's dump\n").unwrap();
    let o = Spec::scenario("an_earlier_dump_is_never_overwritten", "kept")
        .env("FSTEST_DUMP_PATH", first.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    assert_eq!(std::fs::read_to_string(&first).unwrap(), "the first crash's dump\n");
    let text = std::fs::read_to_string(dir.join("dump.1")).unwrap_or_else(|e| panic!("{e}\n{}", o.describe()));
    assert_whole(&text, o.tid("spinner"), "dump.1");
    // %p: the pid.
    let pattern = dir.join("dump-%p");
    let o = Spec::scenario("an_earlier_dump_is_never_overwritten", "kept")
        .env("FSTEST_DUMP_PATH", pattern.to_str().unwrap())
        .run();
    o.assert_signal(libc::SIGABRT);
    let named = dir.join(format!("dump-{}", o.value("pid")));
    let text = std::fs::read_to_string(&named).unwrap_or_else(|e| panic!("{named:?}: {e}\n{}", o.describe()));
    assert_whole(&text, o.tid("spinner"), "dump-%p");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Case 8: the application ends while the dump is being written
// ---------------------------------------------------------------------------

/// Asserts that `o` ended by `SIGABRT` with one whole blocked dump on
/// stderr naming one of `workers`, every thread listed, after the
/// application's sleep was cut short (so that it did try to end the
/// process its own way meanwhile).
fn assert_ended_by_the_verdict(o: &common::Outcome, workers: &[&str], what: &str) {
    assert!(o.has("deadlocking"), "{what}: the workers did not start\n{}", o.describe());
    assert!(o.has("interrupted"), "{what}: the application's sleep was never cut short\n{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    let text = &o.stderr;
    let dump = Dump::parse(text);
    let verdict = dump.raw[0];
    assert!(verdict.starts_with("failstop: blocked: thread \"worker-"), "{what}: {verdict}\n{}", o.describe());
    let threads = dump.threads();
    for w in workers {
        let tid = o.tid(w);
        assert!(threads.iter().any(|t| t.1 == tid && t.2 == *w), "{what}: {w} ({tid}) not listed\n{text}");
    }
    assert!(threads.len() > workers.len(), "{what}: every thread expected, got {threads:?}\n{text}");
    assert!(text.contains("failstop: modules (path, load base, bias, build-id):"), "{what}: no module table\n{text}");
    assert!(dump.written(), "{what}: no closing `dump written` line\n{text}");
    let took = o.ended - o.time_of("deadlocking");
    common::figure(&format!("dump_survives: {what}: ended by SIGABRT {took:?} after the deadlock began"));
    assert!(took < Duration::from_secs(20), "{what}: {took:?}\n{}", o.describe());
}

/// The C program of `tests/c/exit_midway.c`, linked with the shared library.
fn exit_midway_program() -> &'static Path {
    static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("exit-midway-{}", std::process::id()));
        common::c::build_static("tests/c/exit_midway.c", &out, &["-pthread"])
    })
}

fn exit_midway(mode: &str) -> common::Outcome {
    Spec::program(exit_midway_program().to_path_buf(), &[mode])
        .env("FAILSTOP_STALL_BUDGET_MS", "1000")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "5000")
        .run()
}

/// Case 8, C: main's sleep returns EINTR (the dump's capture request) and
/// main returns 5. The process used to end with status 5, no dump.
#[test]
fn a_c_main_that_returns_mid_dump_ends_by_the_verdict() {
    let o = exit_midway("return");
    assert_ended_by_the_verdict(&o, &["worker-a", "worker-b"], "return from main");
}

/// Case 8, C: a thread calls `exit(6)` when its sleep is cut short.
#[test]
fn a_c_thread_that_calls_exit_mid_dump_ends_by_the_verdict() {
    let o = exit_midway("exit");
    assert_ended_by_the_verdict(&o, &["worker-a", "worker-b"], "exit(6)");
}

/// Case 8, C: main calls `failstop_stop()` and returns 7 when its sleep is
/// cut short: a stop during a fatal verdict does not cancel it.
#[test]
fn a_c_stop_mid_dump_does_not_cancel_the_verdict() {
    let o = exit_midway("stop");
    assert_ended_by_the_verdict(&o, &["worker-a", "worker-b"], "failstop_stop()");
}

/// The Rust scenario of case 8: `FSTEST_FAULT` `deadlock` (two registered
/// workers on two `std::sync::Mutex` in opposite order) or `spin` (one
/// registered spinner); main's `nanosleep` is cut short by the dump's
/// capture request, and main drops its `Watchdog` (which stops the
/// watchdog) and exits 5.
fn rust_main_ends_mid_dump() -> ! {
    let config = small_config().stall_budget(Duration::from_secs(1)).dump_timeout(Duration::from_secs(5));
    let wd = failstop::start(config).expect("start");
    if std::env::var("FSTEST_FAULT").unwrap() == "spin" {
        spawn_spinner("spinner");
    } else {
        let a = std::sync::Arc::new(std::sync::Mutex::new(()));
        let b = std::sync::Arc::new(std::sync::Mutex::new(()));
        let both = std::sync::Arc::new(std::sync::Barrier::new(2));
        for (name, first, second) in [("worker-a", a.clone(), b.clone()), ("worker-b", b.clone(), a.clone())] {
            let both = both.clone();
            std::thread::spawn(move || {
                let h = failstop::register(name).expect("register");
                h.touch();
                say!("tid {name} {}", common::gettid());
                let _one = first.lock().unwrap();
                both.wait();
                let _two = second.lock().unwrap(); // never returns
                drop(h);
            });
        }
        say!("deadlocking");
    }
    let ts = libc::timespec { tv_sec: 30, tv_nsec: 0 };
    // SAFETY: a plain sleep with a valid timespec.
    if unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) } == 0 {
        common::child_exit(0);
    }
    say!("interrupted");
    drop(wd);
    common::child_exit(5);
}

/// Case 8, Rust, blocked: the process used to end with 5 when the monitor
/// was stopped before it acted.
#[test]
fn a_rust_main_that_drops_its_watchdog_mid_dump_ends_by_the_blocked_verdict() {
    if common::scenario().is_some() {
        rust_main_ends_mid_dump();
    }
    let o = Spec::scenario("a_rust_main_that_drops_its_watchdog_mid_dump_ends_by_the_blocked_verdict", "drop-mid-dump")
        .env("FSTEST_FAULT", "deadlock")
        .run();
    assert_ended_by_the_verdict(&o, &["worker-a", "worker-b"], "Rust, blocked: drop(Watchdog), exit(5)");
}

/// Case 8, Rust, stuck: the culprit acts from its own handler after the
/// dump, and the stop must not end the process before it does.
#[test]
fn a_rust_main_that_drops_its_watchdog_mid_dump_ends_by_the_stuck_verdict() {
    if common::scenario().is_some() {
        rust_main_ends_mid_dump();
    }
    let o = Spec::scenario("a_rust_main_that_drops_its_watchdog_mid_dump_ends_by_the_stuck_verdict", "drop-mid-dump")
        .env("FSTEST_FAULT", "spin")
        .run();
    assert!(o.has("interrupted"), "the application's sleep was never cut short\n{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    let took = o.ended - o.time_of("spin-start");
    common::figure(&format!(
        "dump_survives: Rust, stuck: drop(Watchdog), exit(5): ended by SIGABRT {took:?} after the spin began"
    ));
    assert!(took < Duration::from_secs(20), "{took:?}\n{}", o.describe());
    assert_whole(&o.stderr, o.tid("spinner"), "stderr");
}

/// Case 8, in `warn` mode: a dump outside a fatal verdict asks only running
/// threads for their frames (a signal would cut a sleeping thread's system
/// call short), so the application's 4 s sleep runs to its end and the
/// process exits 0, as without failstop, after a whole dump.
#[test]
fn in_warn_mode_the_dump_does_not_cut_a_sleep_short() {
    let o = Spec::program(exit_midway_program().to_path_buf(), &["return", "4"])
        .env("FAILSTOP_STALL_BUDGET_MS", "1000")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_ACTION", "warn")
        .run();
    assert!(!o.has("interrupted"), "the dump cut the application's sleep short\n{}", o.describe());
    o.assert_exit(0);
    let dump = Dump::parse(&o.stderr);
    assert!(dump.raw[0].starts_with("failstop: blocked: thread \"worker-"), "{}", o.describe());
    assert!(
        o.stderr.contains("not asked: it sleeps in a system call and a signal would interrupt it (non-fatal mode)"),
        "{}",
        o.describe()
    );
    assert!(dump.written(), "no closing `dump written` line\n{}", o.describe());
}
