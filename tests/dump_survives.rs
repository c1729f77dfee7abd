//! The dump survives (issue 15): written whole where the operator will look,
//! whatever stderr, the file system or the descriptor table do. Each test
//! runs a real child; the comment on each says which case of the issue it
//! is.

#[macro_use]
mod common;

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
    println!("blocked stderr: the child ended {took:?} after the spin started (dump_timeout 2 s)");
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
    println!(
        "slow stderr (50 KiB/s): the child ended {took:?} after the spin started; the reader got {} bytes",
        text.len()
    );
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
        let config = failstop::Config::new().from_env().unwrap();
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
