//! `libfailstop_preload.so` in real child processes: this test binary re-run
//! under `LD_PRELOAD` (its own calls to `poll`, `epoll_wait`, ... go through
//! the interposer), checking the rules of the zero-code mode: exported
//! symbols, unchanged results, `errno` and signal behaviour, hidden
//! failstop-caused `EINTR`s, threads that exit, fork, exec, bad variables.
//! The servers under load are in `tests/preload_servers.rs`.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::preload::{preload_lib, verdict_line};
use common::{Spec, gettid, spin_here_forever};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The tag in the high bits of the `sigval` of failstop's timers, as
/// `/proc/self/timers` prints it (`signal: N/fa115700...`).
const TIMER_SIGVAL_PREFIX: &str = "fa115700";

fn preload() -> String {
    preload_lib().to_str().expect("utf-8 path").to_string()
}

/// A child re-running `test` as `scenario` under the preload, with small budgets.
fn preloaded(test: &str, scenario: &str) -> Spec {
    Spec::scenario(test, scenario)
        .env("LD_PRELOAD", &preload())
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
}

// ---------------------------------------------------------------------------
// Helpers run in the children
// ---------------------------------------------------------------------------

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(e: i32) {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// failstop's timers in this process: (notify tid, clock id) per timer.
fn failstop_timers() -> Vec<(i32, i64)> {
    let text = std::fs::read_to_string("/proc/self/timers").expect("read /proc/self/timers");
    let mut out = Vec::new();
    let mut ours = false;
    let mut tid = 0;
    for l in text.lines() {
        if l.starts_with("ID:") {
            ours = false;
        } else if let Some(s) = l.strip_prefix("signal: ") {
            ours = s.split_once('/').is_some_and(|(_, v)| v.starts_with(TIMER_SIGVAL_PREFIX));
        } else if let Some(n) = l.strip_prefix("notify: signal/tid.") {
            tid = n.trim().parse().unwrap_or(0);
        } else if let Some(c) = l.strip_prefix("ClockID: ")
            && ours
        {
            out.push((tid, c.trim().parse().unwrap_or(0)));
        }
    }
    out
}

/// Whether the calling thread has a failstop timer (it is registered).
fn watched_here() -> bool {
    failstop_timers().iter().any(|t| t.0 == gettid())
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn write_byte(fd: i32) {
    // SAFETY: one byte from a valid buffer.
    assert_eq!(unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) }, 1);
}

fn read_byte(fd: i32) {
    let mut b = [0u8; 1];
    // SAFETY: one byte into a valid buffer.
    assert_eq!(unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) }, 1);
}

static SIGUSR1_SEEN: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    SIGUSR1_SEEN.fetch_add(1, Ordering::SeqCst);
}

/// Installs a SIGUSR1 handler with `SA_RESTART` (which `poll` and friends
/// ignore: they fail with EINTR anyway).
fn install_sigusr1() {
    // SAFETY: a plain handler that only bumps an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Sends SIGUSR1 to thread `tid` after `after`, from a helper thread that
/// never waits in an interposed call.
fn sigusr1_later(tid: i32, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        // SAFETY: signalling a thread of this process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR1) };
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// `__poll_chk` as the program sees it (the preload's when preloaded).
fn poll_chk() -> unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, libc::c_int, libc::size_t) -> libc::c_int {
    // SAFETY: looking up a glibc function by name.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__poll_chk".as_ptr()) };
    assert!(!p.is_null(), "__poll_chk not found");
    // SAFETY: glibc's __poll_chk has this signature.
    unsafe { std::mem::transmute(p) }
}

// ---------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------

#[test]
fn exports_only_the_interposed_calls() {
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(preload_lib())
        .output()
        .expect("run nm (binutils)");
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    names.sort();
    let expected = [
        "__poll_chk",
        "__ppoll_chk",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "poll",
        "ppoll",
        "pselect",
        "select",
    ];
    assert_eq!(names, expected, "the preload must export the interposed calls and nothing else (no failstop_* C ABI)");
}

// ---------------------------------------------------------------------------
// Results, errno and signal behaviour are unchanged
// ---------------------------------------------------------------------------

/// Every interposed call on ready, empty and invalid inputs; prints a
/// transcript (`T ...` lines) that must be the same with and without the
/// preload.
fn transcript() {
    let (r, w) = pipe();
    let t = |s: String| say!("T {s}");
    let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
    // SAFETY: (the whole block) valid pointers to locals, or deliberately
    // bad ones that the kernel rejects with EFAULT.
    unsafe {
        t(format!("poll-empty {} {}", libc::poll(&mut pfd, 1, 0), pfd.revents));
        write_byte(w);
        t(format!("poll-ready {} {}", libc::poll(&mut pfd, 1, 0), pfd.revents));
        let mut bad = libc::pollfd { fd: 9999, events: libc::POLLIN, revents: 0 };
        t(format!("poll-nval {} {}", libc::poll(&mut bad, 1, 0), bad.revents));
        t(format!("poll-efault {} {}", libc::poll(8 as *mut libc::pollfd, 1, 0), errno()));
        set_errno(4242);
        let n = libc::poll(&mut pfd, 1, 10);
        t(format!("poll-keeps-errno {n} {}", errno()));
        let chk = poll_chk();
        t(format!("poll-chk {}", chk(&mut pfd, 1, 0, std::mem::size_of::<libc::pollfd>())));

        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let invalid = libc::timespec { tv_sec: 0, tv_nsec: 2_000_000_000 };
        t(format!("ppoll-ready {}", libc::ppoll(&mut pfd, 1, &zero, std::ptr::null())));
        t(format!("ppoll-einval {} {}", libc::ppoll(&mut pfd, 1, &invalid, std::ptr::null()), errno()));

        let ep = libc::epoll_create1(0);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 77 };
        assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, r, &mut ev), 0);
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let n = libc::epoll_wait(ep, out.as_mut_ptr(), 4, 0);
        let (e0, d0) = (out[0].events, out[0].u64);
        t(format!("epoll_wait-ready {n} {e0} {d0}"));
        t(format!("epoll_wait-ebadf {} {}", libc::epoll_wait(-1, out.as_mut_ptr(), 4, 0), errno()));
        t(format!("epoll_wait-einval {} {}", libc::epoll_wait(ep, out.as_mut_ptr(), 0, 0), errno()));
        t(format!("epoll_pwait-ready {}", libc::epoll_pwait(ep, out.as_mut_ptr(), 4, 0, std::ptr::null())));
        t(format!("epoll_pwait2-ready {}", libc::epoll_pwait2(ep, out.as_mut_ptr(), 4, &zero, std::ptr::null())));
        t(format!(
            "epoll_pwait2-einval {} {}",
            libc::epoll_pwait2(ep, out.as_mut_ptr(), 4, &invalid, std::ptr::null()),
            errno()
        ));

        let mut set: libc::fd_set = std::mem::zeroed();
        libc::FD_SET(r, &mut set);
        let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
        let n = libc::select(r + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &mut tv);
        t(format!("select-ready {n} {}", libc::FD_ISSET(r, &set)));
        let n = libc::pselect(r + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &invalid, std::ptr::null());
        t(format!("pselect-einval {n} {}", errno()));

        read_byte(r);
        libc::FD_SET(r, &mut set);
        let mut tv = libc::timeval { tv_sec: 0, tv_usec: 30_000 };
        let n = libc::select(r + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &mut tv);
        t(format!("select-timeout {n} set {} tv {} {}", libc::FD_ISSET(r, &set), tv.tv_sec, tv.tv_usec));
        let short = libc::timespec { tv_sec: 0, tv_nsec: 30_000_000 };
        libc::FD_SET(r, &mut set);
        let n = libc::pselect(r + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &short, std::ptr::null());
        t(format!("pselect-timeout {n} set {} ts {} {}", libc::FD_ISSET(r, &set), short.tv_sec, short.tv_nsec));
        t(format!("epoll_wait-timeout {}", libc::epoll_wait(ep, out.as_mut_ptr(), 4, 30)));
        t(format!("ppoll-timeout {} ts {}", libc::ppoll(&mut pfd, 1, &short, std::ptr::null()), short.tv_nsec));

        // The application's own signal interrupts a wait: EINTR, as without us.
        install_sigusr1();
        let waker = sigusr1_later(gettid(), Duration::from_millis(100));
        let n = libc::poll(&mut pfd, 1, 5000);
        let e = errno();
        waker.join().unwrap();
        t(format!("poll-app-signal {n} {e} handled {}", SIGUSR1_SEEN.load(Ordering::SeqCst)));
        let waker = sigusr1_later(gettid(), Duration::from_millis(100));
        let n = libc::epoll_wait(ep, out.as_mut_ptr(), 4, 5000);
        let e = errno();
        waker.join().unwrap();
        t(format!("epoll_wait-app-signal {n} {e} handled {}", SIGUSR1_SEEN.load(Ordering::SeqCst)));

        // A sigmask that blocks the application's signal: no interruption;
        // the signal is handled once the mask is lifted, on return.
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        libc::sigaddset(&mut mask, libc::SIGUSR1);
        let waker = sigusr1_later(gettid(), Duration::from_millis(50));
        let long = libc::timespec { tv_sec: 0, tv_nsec: 400_000_000 };
        let n = libc::ppoll(&mut pfd, 1, &long, &mask);
        let seen = SIGUSR1_SEEN.load(Ordering::SeqCst);
        waker.join().unwrap();
        t(format!("ppoll-masked {n} handled {seen}"));
        libc::close(ep);
    }
    say!("watched {}", watched_here());
}

#[test]
fn results_errno_and_signals_are_unchanged() {
    if common::scenario().is_some() {
        transcript();
        common::child_exit(0);
    }
    let name = "results_errno_and_signals_are_unchanged";
    let plain = Spec::scenario(name, "plain").run();
    plain.assert_exit(0);
    // One case cannot be told apart (see the preload's `interpose` module):
    // an application signal handled in the same interruption as one of
    // failstop's, whose EINTR is then hidden. Budgets of a minute make the
    // timer's period two seconds of CPU, more than the transcript uses, so
    // that no tick after the first can coincide with the test's SIGUSR1s.
    let with =
        preloaded(name, "preloaded").env("FAILSTOP_CPU_BUDGET_MS", "60000").env("FAILSTOP_WARN_MS", "59000").run();
    with.assert_exit(0);
    let lines = |o: &common::Outcome| o.values("T");
    assert_eq!(
        lines(&plain),
        lines(&with),
        "transcripts differ\n--- plain\n{}\n--- preloaded\n{}",
        plain.describe(),
        with.describe()
    );
    // The transcript says what it should (so that equal cannot mean equally wrong).
    let t = lines(&with);
    let has = |l: &str| assert!(t.iter().any(|x| x == l), "no line {l:?} in\n{}", with.describe());
    has("poll-empty 0 0");
    has(&format!("poll-ready 1 {}", libc::POLLIN));
    has(&format!("poll-efault -1 {}", libc::EFAULT));
    has("poll-keeps-errno 1 4242");
    has(&format!("ppoll-einval -1 {}", libc::EINVAL));
    has(&format!("epoll_wait-ebadf -1 {}", libc::EBADF));
    has("select-timeout 0 set false tv 0 0");
    has(&format!("poll-app-signal -1 {} handled 1", libc::EINTR));
    has(&format!("epoll_wait-app-signal -1 {} handled 2", libc::EINTR));
    has("ppoll-masked 0 handled 3");
    assert_eq!(plain.value("watched"), "false", "{}", plain.describe());
    assert_eq!(with.value("watched"), "true", "the preloaded child was not registered\n{}", with.describe());
    assert!(with.stderr.is_empty(), "the preload wrote to stderr\n{}", with.describe());
}

// ---------------------------------------------------------------------------
// EINTR: failstop's hidden, the application's passed on
// ---------------------------------------------------------------------------

/// A seccomp filter that fails `timer_create` on CPU-time clocks (negative
/// clock ids) with EINVAL, as some sandboxes do: failstop then falls back to
/// wall-clock timers, whose ticks land in every idle wait.
fn forbid_cpu_clock_timers() {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter { code: code as u16, jt, jf, k };
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4), // arch
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, AUDIT_ARCH, 0, 4),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0), // nr
        jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, libc::SYS_timer_create as u32, 0, 2),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 16), // args[0], low half
        jump(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, 0x8000_0000, 1, 0),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32),
    ];
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
    // SAFETY: installing a seccomp filter on this process (inherited across exec).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _), 0, "seccomp");
    }
}

/// Re-executes this test binary as `scenario`, keeping the environment.
fn exec_self(test: &str, scenario: &str, extra_env: &[(&str, &str)]) -> ! {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]).env(common::SCENARIO_VAR, scenario);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let e = cmd.exec();
    panic!("exec: {e}");
}

/// Each interposed wait with `timeout_ms` on an empty pipe: (name, result,
/// errno, elapsed ms).
fn timed_waits(timeout_ms: i32) -> Vec<(&'static str, i32, i32, u128)> {
    let (r, _w) = pipe();
    let mut res = Vec::new();
    let ts = libc::timespec { tv_sec: 0, tv_nsec: timeout_ms as i64 * 1_000_000 };
    let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
    // SAFETY: valid pointers to locals.
    unsafe {
        let ep = libc::epoll_create1(0);
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 1 };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, r, &mut ev);
        let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
        let mut run = |name: &'static str, f: &mut dyn FnMut() -> i32| {
            set_errno(0);
            let t = Instant::now();
            let n = f();
            res.push((name, n, errno(), ms(t.elapsed())));
        };
        run("poll", &mut || libc::poll(&mut pfd, 1, timeout_ms));
        run("__poll_chk", &mut || poll_chk()(&mut pfd, 1, timeout_ms, std::mem::size_of::<libc::pollfd>()));
        run("ppoll", &mut || libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()));
        run("epoll_wait", &mut || libc::epoll_wait(ep, out.as_mut_ptr(), 4, timeout_ms));
        run("epoll_pwait", &mut || libc::epoll_pwait(ep, out.as_mut_ptr(), 4, timeout_ms, std::ptr::null()));
        run("epoll_pwait2", &mut || libc::epoll_pwait2(ep, out.as_mut_ptr(), 4, &ts, std::ptr::null()));
        run("select", &mut || {
            let mut set: libc::fd_set = std::mem::zeroed();
            libc::FD_SET(r, &mut set);
            let mut tv = libc::timeval { tv_sec: 0, tv_usec: timeout_ms as i64 * 1000 };
            libc::select(r + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &mut tv)
        });
        run("pselect", &mut || {
            let mut set: libc::fd_set = std::mem::zeroed();
            libc::FD_SET(r, &mut set);
            libc::pselect(r + 1, &mut set, std::ptr::null_mut(), std::ptr::null_mut(), &ts, std::ptr::null())
        });
        libc::close(ep);
    }
    res
}

#[test]
fn failstop_eintr_is_hidden_and_the_applications_is_not() {
    const TEST: &str = "failstop_eintr_is_hidden_and_the_applications_is_not";
    match common::scenario().as_deref() {
        // Not preloaded yet: forbid CPU-clock timers, then exec under the preload.
        Some("outer") => {
            forbid_cpu_clock_timers();
            exec_self(TEST, "inner", &[("LD_PRELOAD", &preload())]);
        }
        Some(_) => {
            let (r, _w) = pipe();
            let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
            // SAFETY: a valid pollfd. The first wait registers this thread.
            assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1) }, 0);
            let clocks: Vec<i64> = failstop_timers().iter().filter(|t| t.0 == gettid()).map(|t| t.1).collect();
            say!("timer-clocks {clocks:?}");
            // Control: a raw ppoll (not interposed) is interrupted by the ticks.
            let ts = libc::timespec { tv_sec: 2, tv_nsec: 0 };
            let t = Instant::now();
            // SAFETY: raw ppoll on a valid pollfd and timespec.
            let n = unsafe { libc::syscall(libc::SYS_ppoll, &mut pfd, 1, &ts, 0, 8) };
            say!("raw-ppoll {n} {} {}", errno(), ms(t.elapsed()));
            for (name, n, e, took) in timed_waits(600) {
                say!("wait {name} {n} {e} {took}");
            }
            // The application's own signal still interrupts.
            install_sigusr1();
            let waker = sigusr1_later(gettid(), Duration::from_millis(200));
            let t = Instant::now();
            // SAFETY: a valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 5000) };
            let e = errno();
            waker.join().unwrap();
            say!("app-signal {n} {e} {} handled {}", ms(t.elapsed()), SIGUSR1_SEEN.load(Ordering::SeqCst));
            common::child_exit(0);
        }
        None => {}
    }
    let o = Spec::scenario(TEST, "outer")
        .env("FAILSTOP_CPU_BUDGET_MS", "200")
        .env("FAILSTOP_WARN_MS", "25") // a wall-clock tick every 25 ms
        .run();
    o.assert_exit(0);
    assert!(
        o.stderr.is_empty(),
        "stderr should be empty (the fallback is only said through tracing)\n{}",
        o.describe()
    );
    // The fallback happened: the thread's timer is on CLOCK_MONOTONIC (1).
    assert_eq!(o.value("timer-clocks"), "[1]", "{}", o.describe());
    // ... and its ticks do interrupt a wait that is not interposed.
    let raw: Vec<String> = o.value("raw-ppoll").split(' ').map(str::to_string).collect();
    assert_eq!((raw[0].as_str(), raw[1].parse::<i32>().unwrap()), ("-1", libc::EINTR), "{}", o.describe());
    assert!(raw[2].parse::<u128>().unwrap() < 1500, "raw ppoll not interrupted early\n{}", o.describe());
    // Every interposed wait ran to its full timeout, neither shorter nor
    // (more than scheduling noise) longer.
    let waits = o.values("wait");
    assert_eq!(waits.len(), 8, "{}", o.describe());
    for w in &waits {
        let f: Vec<&str> = w.split(' ').collect();
        let took: u128 = f[3].parse().unwrap();
        assert_eq!((f[1], f[2]), ("0", "0"), "{} returned {} errno {}\n{}", f[0], f[1], f[2], o.describe());
        assert!((600..3000).contains(&took), "{} waited {took} ms for a 600 ms timeout\n{}", f[0], o.describe());
    }
    let app: Vec<String> = o.value("app-signal").split(' ').map(str::to_string).collect();
    assert_eq!((app[0].as_str(), app[1].parse::<i32>().unwrap()), ("-1", libc::EINTR), "{}", o.describe());
    let took: u128 = app[2].parse().unwrap();
    assert!((150..3000).contains(&took), "the application's signal came after {took} ms\n{}", o.describe());
    assert_eq!(app[4], "1", "{}", o.describe());
}

// ---------------------------------------------------------------------------
// Programs that never wait, threads that exit
// ---------------------------------------------------------------------------

fn thread_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn a_program_that_never_waits_registers_nothing() {
    if common::scenario().is_some() {
        say!("timers-before {}", failstop_timers().len());
        say!("failstop-threads {}", thread_names().iter().filter(|n| n.starts_with("failstop-")).count());
        // Busy for longer than the budget without ever waiting: never judged.
        common::spin_for_cpu(Duration::from_millis(900));
        say!("timers-after-spin {}", failstop_timers().len());
        let mut pfd = libc::pollfd { fd: -1, events: 0, revents: 0 };
        // A readiness check (timeout 0) registers nothing.
        // SAFETY: a valid pollfd (a negative fd is ignored by poll).
        unsafe { libc::poll(&mut pfd, 1, 0) };
        say!("timers-after-zero-poll {}", failstop_timers().len());
        // A wait that may block does.
        // SAFETY: as above.
        unsafe { libc::poll(&mut pfd, 1, 1) };
        say!("timers-after-poll {}", failstop_timers().len());
        common::child_exit(0);
    }
    let o = preloaded("a_program_that_never_waits_registers_nothing", "never-waits").run();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.value("timers-before"), "0", "{}", o.describe());
    assert_eq!(o.value("timers-after-spin"), "0", "{}", o.describe());
    // failstop's threads start with the first registration, not before.
    assert_eq!(o.value("failstop-threads"), "0", "{}", o.describe());
    assert_eq!(o.value("timers-after-zero-poll"), "0", "{}", o.describe());
    assert_eq!(o.value("timers-after-poll"), "1", "{}", o.describe());
}

/// failstop's threads in process `pid`, by name, read from outside.
fn failstop_threads_of(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|c| c.trim().to_string())
                .filter(|c| c.starts_with("failstop-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A preloaded program that registers nothing starts no failstop thread
/// (seen from outside, in `/proc/<pid>/task/*/comm`, while it runs: it
/// works, sleeps and checks readiness with zero timeouts); the same
/// program, once a wait registers it, has its monitor and reporter and
/// gets its verdict and dump.
#[test]
fn nothing_registered_no_failstop_thread_then_a_verdict_once_watched() {
    const TEST: &str = "nothing_registered_no_failstop_thread_then_a_verdict_once_watched";
    if common::scenario().is_some() {
        say!("idle pid {} tid {}", std::process::id(), gettid());
        // Two seconds of life that registers nothing: work, sleeps (not
        // interposed) and readiness checks (timeout 0).
        let until = Instant::now() + Duration::from_millis(2000);
        let mut pfd = libc::pollfd { fd: -1, events: 0, revents: 0 };
        while Instant::now() < until {
            common::spin_for_cpu(Duration::from_millis(20));
            // SAFETY: a valid pollfd (a negative fd is ignored).
            unsafe { libc::poll(&mut pfd, 1, 0) };
            std::thread::sleep(Duration::from_millis(30));
        }
        say!("idle-done threads {} timers {}", own_threads().len(), failstop_timers().len());
        // A wait that may block: the thread is registered, failstop's
        // threads start.
        // SAFETY: as above.
        unsafe { libc::poll(&mut pfd, 1, 1) };
        say!("watched {} threads {}", watched_here(), own_threads().join(","));
        say!("spin-start");
        spin_here_forever();
    }
    let mut child = preloaded(TEST, "idle").spawn();
    child.wait_for("idle", Duration::from_secs(20));
    let pid = child.pid();
    let mut looks = 0;
    let mut seen = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(900) {
        seen.extend(failstop_threads_of(pid));
        looks += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let last_look = Instant::now();
    seen.sort();
    seen.dedup();
    let o = child.finish();
    assert!(looks >= 10, "{looks} looks\n{}", o.describe());
    assert!(last_look < o.time_of("idle-done"), "looked too late: the child was registered\n{}", o.describe());
    assert!(seen.is_empty(), "failstop threads in a process that registers nothing: {seen:?}\n{}", o.describe());
    assert_eq!(o.value("idle-done"), "threads 0 timers 0", "{}", o.describe());
    let mut threads: Vec<String> = o.value("watched").split(' ').map(str::to_string).collect();
    assert_eq!(threads[0], "true", "{}", o.describe());
    threads = threads[2].split(',').map(str::to_string).collect();
    threads.sort();
    assert_eq!(threads, ["failstop-monito", "failstop-report"], "{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", common::CATCH_BOUND);
    let tid: i32 = o.value("idle").split(' ').nth(3).and_then(|t| t.parse().ok()).expect("tid");
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict\n{}", o.describe()));
    assert_eq!((v.kind.as_str(), v.tid), ("stuck", tid), "{}", o.describe());
    let dump = common::Dump::parse(&o.stderr);
    assert!(dump.written(), "no dump\n{}", o.describe());
    let (culprit, frames) = dump.symbolized_frames(tid).unwrap_or_else(|| panic!("no backtrace\n{}", o.describe()));
    assert!(culprit && frames.iter().any(|f| f.contains("spin_here_forever")), "{frames:?}\n{}", o.describe());
}

#[test]
fn exited_threads_free_their_slots() {
    /// More threads than this, one after the other, each getting a slot
    /// its predecessor's exit did not free, would be noticed.
    const SEQUENTIAL: usize = 1000;
    /// The slot of the calling thread's failstop timer, if it has one: the
    /// index in the low half of the timer's sigval (`signal: N/fa115700XXXXXXXX`
    /// in /proc/self/timers).
    fn slot_here() -> Option<u32> {
        let text = std::fs::read_to_string("/proc/self/timers").expect("read /proc/self/timers");
        let me = gettid();
        let mut slot = None;
        for l in text.lines() {
            if l.starts_with("ID:") {
                slot = None;
            } else if let Some(s) = l.strip_prefix("signal: ") {
                slot = s
                    .split_once('/')
                    .and_then(|(_, v)| v.strip_prefix(TIMER_SIGVAL_PREFIX))
                    .and_then(|i| u32::from_str_radix(i, 16).ok());
            } else if let Some(n) = l.strip_prefix("notify: signal/tid.")
                && n.trim().parse() == Ok(me)
                && slot.is_some()
            {
                return slot;
            }
        }
        None
    }
    if common::scenario().is_some() {
        let poll_once = || {
            let mut pfd = libc::pollfd { fd: -1, events: 0, revents: 0 };
            // SAFETY: a valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 1) };
            slot_here()
        };
        // 100 threads alive at once, each registered by its wait, each in
        // a slot of its own.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..100)
            .map(|_| {
                let rx = rx.clone();
                let ready = ready_tx.clone();
                std::thread::spawn(move || {
                    ready.send(poll_once()).unwrap();
                    let _ = rx.lock().unwrap().recv();
                })
            })
            .collect();
        let alive: Vec<Option<u32>> = (0..100).map(|_| ready_rx.recv().unwrap()).collect();
        let watched = alive.iter().flatten().count();
        let distinct = alive.iter().flatten().collect::<std::collections::BTreeSet<_>>().len();
        say!("alive-watched {watched} timers {}", failstop_timers().len());
        say!("alive-slots {distinct}");
        drop(tx);
        for t in threads {
            t.join().unwrap();
        }
        // Threads one after the other: each exit must free its slot for
        // the next. Which slot each one got (its timer's sigval) shows it
        // without exhausting the table (MAX_THREADS sequential threads,
        // 65,536 of them once the ceiling is raised): a slot freed at exit
        // is the first free one again, so they all share the same few
        // slots, and a leak on one exit in a thousand shows here (the
        // table would have caught only a leak on nearly every exit).
        let mut unwatched = 0;
        let mut slots = std::collections::BTreeSet::new();
        for _ in 0..SEQUENTIAL {
            match std::thread::spawn(poll_once).join().unwrap() {
                Some(slot) => {
                    slots.insert(slot);
                }
                None => unwatched += 1,
            }
        }
        say!("sequential {SEQUENTIAL} unwatched {unwatched}");
        say!("sequential-slots {}", slots.len());
        std::thread::sleep(Duration::from_millis(100));
        say!("timers-at-end {}", failstop_timers().len());
        common::child_exit(0);
    }
    let o = preloaded("exited_threads_free_their_slots", "threads").run();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.value("alive-watched"), "100 timers 100", "{}", o.describe());
    assert_eq!(o.value("alive-slots"), "100", "threads alive at once share no slot\n{}", o.describe());
    assert!(o.value("sequential").ends_with(" unwatched 0"), "{}", o.describe());
    // This assumes the registry hands out a freed slot again before an
    // untouched one (the first free slot, or the last freed); a registry
    // that cycles through the whole table would need MAX_THREADS + 1
    // sequential threads to show a leak.
    let used: usize = o.value("sequential-slots").parse().expect("a count");
    assert!(
        used <= 2,
        "{SEQUENTIAL} threads, one after the other, used {used} slots: an exit did not free its slot\n{}",
        o.describe()
    );
    assert_eq!(o.value("timers-at-end"), "0", "{}", o.describe());
    assert!(!o.stderr.contains("not watched"), "{}", o.describe());
}

// ---------------------------------------------------------------------------
// fork and exec
// ---------------------------------------------------------------------------

/// failstop's own threads in this process, by name.
fn own_threads() -> Vec<String> {
    thread_names().into_iter().filter(|n| n.starts_with("failstop-")).collect()
}

fn exit_text(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}

#[test]
fn a_forked_child_that_waits_gets_its_own_watchdog() {
    if common::scenario().is_some() {
        let (r, _w) = pipe();
        let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
        // SAFETY: a valid pollfd; registers this thread.
        unsafe { libc::poll(&mut pfd, 1, 1) };
        say!("parent-watched {} {}", watched_here(), gettid());
        // SAFETY: the child waits, reads /proc and spins; glibc resets its
        // allocator's locks in a forked child.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let forked_threads = own_threads().len();
            // The first wait that may block starts the child's watchdog and
            // registers the thread (the forking thread: its registration
            // from the parent is dropped first).
            for _ in 0..5 {
                // SAFETY: a valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 10) };
            }
            say!(
                "child pid {} tid {} threads-at-fork {forked_threads} own-threads {} watched {} timers {}",
                std::process::id(),
                gettid(),
                own_threads().len(),
                watched_here(),
                failstop_timers().len()
            );
            say!("child-spin");
            spin_here_forever();
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        say!("child-ended {}", exit_text(status));
        // The parent is still watched and still waits normally.
        // SAFETY: a valid pollfd.
        say!("parent-after {} {}", unsafe { libc::poll(&mut pfd, 1, 10) }, watched_here());
        common::child_exit(0);
    }
    let o = preloaded("a_forked_child_that_waits_gets_its_own_watchdog", "fork").run();
    o.assert_exit(0);
    let parent: Vec<String> = o.value("parent-watched").split(' ').map(str::to_string).collect();
    assert_eq!(parent[0], "true", "{}", o.describe());
    let child: Vec<String> = o.value("child").split(' ').map(str::to_string).collect();
    let (cpid, ctid) = (child[1].clone(), child[3].clone());
    assert_eq!(cpid, ctid, "the forking thread is the child's main thread\n{}", o.describe());
    assert_eq!(child[5], "0", "no failstop thread in the child at fork\n{}", o.describe());
    assert_eq!(child[7], "2", "its own monitor and reporter after its first wait\n{}", o.describe());
    assert_eq!(child[9], "true", "the thread has a timer of the child's own\n{}", o.describe());
    assert_eq!(child[11], "1", "only that timer: none inherited\n{}", o.describe());
    assert_eq!(o.value("child-ended"), format!("signal {}", libc::SIGABRT), "{}", o.describe());
    assert_eq!(o.value("parent-after"), "0 true", "{}", o.describe());
    // The child's dump (on the stderr it shares with the parent) is the
    // child's: its verdict names the child's thread and process.
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict\n{}", o.describe()));
    assert_eq!(v.kind, "stuck", "{}", o.describe());
    assert_eq!(v.tid.to_string(), ctid, "{}", o.describe());
    assert!(o.stderr.contains(&format!("failstop: pid {cpid}, ")), "{}", o.describe());
    let (ppid, _) = common::process_of(&v.line).unwrap_or_else(|| panic!("no process in {:?}", v.line));
    assert_eq!(ppid.to_string(), cpid, "{}", o.describe());
    o.assert_ended_within("child-spin", common::CATCH_BOUND);
}

#[test]
fn a_forked_child_that_does_not_wait_is_left_alone() {
    if common::scenario().is_some() {
        let (r, _w) = pipe();
        let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
        // SAFETY: a valid pollfd; registers this thread.
        unsafe { libc::poll(&mut pfd, 1, 1) };
        say!("parent-watched {}", watched_here());
        // SAFETY: the child only spins, forks, waits in waitpid and reads
        // /proc, then _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // Far over the 300 ms budget without a wait: nobody judges it.
            common::spin_for_cpu(Duration::from_millis(1500));
            // SAFETY: a grandchild that exits at once, waited for.
            let g = unsafe { libc::fork() };
            if g == 0 {
                // SAFETY: ends the grandchild.
                unsafe { libc::_exit(7) };
            }
            let mut st = 0;
            // SAFETY: our own child.
            let waited = unsafe { libc::waitpid(g, &mut st, 0) } == g && libc::WEXITSTATUS(st) == 7;
            let ok = waited && failstop_timers().is_empty() && own_threads().is_empty();
            // SAFETY: ends the forked child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        say!("child {}", exit_text(status));
        // SAFETY: a valid pollfd.
        say!("parent-after {} {}", unsafe { libc::poll(&mut pfd, 1, 10) }, watched_here());
        common::child_exit(0);
    }
    let o = preloaded("a_forked_child_that_does_not_wait_is_left_alone", "fork").run();
    o.assert_exit(0);
    o.assert_no_verdict();
    assert_eq!(o.value("parent-watched"), "true", "{}", o.describe());
    assert_eq!(o.value("child"), "exit 0", "{}", o.describe());
    assert_eq!(o.value("parent-after"), "0 true", "{}", o.describe());
    assert!(o.stderr.is_empty(), "{}", o.describe());
}

#[test]
fn an_exec_starts_its_own_watchdog() {
    const TEST: &str = "an_exec_starts_its_own_watchdog";
    match common::scenario().as_deref() {
        Some("before-exec") => {
            let mut pfd = libc::pollfd { fd: -1, events: 0, revents: 0 };
            // SAFETY: a valid pollfd; registers this thread.
            unsafe { libc::poll(&mut pfd, 1, 1) };
            say!("before-exec watched {} pid {}", watched_here(), std::process::id());
            exec_self(TEST, "after-exec", &[]);
        }
        Some(_) => {
            let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap().trim().to_string();
            say!("after-exec pid {} tid {} comm {comm}", std::process::id(), gettid());
            let mut pfd = libc::pollfd { fd: -1, events: 0, revents: 0 };
            // SAFETY: a valid pollfd; registers this thread in the new image.
            unsafe { libc::poll(&mut pfd, 1, 1) };
            say!("spin-start");
            spin_here_forever();
        }
        None => {}
    }
    let o = preloaded(TEST, "before-exec").run();
    o.assert_signal(libc::SIGABRT);
    let before: Vec<String> = o.value("before-exec").split(' ').map(str::to_string).collect();
    let after: Vec<String> = o.value("after-exec").split(' ').map(str::to_string).collect();
    assert_eq!(before[1], "true", "{}", o.describe());
    assert_eq!(before[3], after[1], "exec keeps the pid\n{}", o.describe());
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict\n{}", o.describe()));
    assert_eq!(v.kind, "stuck", "{}", o.describe());
    assert_eq!(v.tid.to_string(), after[3], "{}", o.describe());
    assert_eq!(v.name, after[5], "the thread is named from its comm\n{}", o.describe());
    o.assert_ended_within("spin-start", common::CATCH_BOUND);
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn a_bad_variable_stops_the_program_with_one_line() {
    let run = |k: &str, v: &str| Spec::program("/bin/true".into(), &[]).env("LD_PRELOAD", &preload()).env(k, v).run();
    for (k, v, allowed) in [
        ("FAILSTOP_CPU_BUDGET_MS", "soon", "allowed: a decimal integer"),
        ("FAILSTOP_ACTION", "kill", "allowed: "),
        ("FAILSTOP_CPU_BUDGT_MS", "500", "allowed: FAILSTOP_DISABLE"),
    ] {
        let o = run(k, v);
        o.assert_exit(2);
        let lines: Vec<&str> = o.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected\n{}", o.describe());
        assert!(lines[0].starts_with(&format!("failstop_preload: {k}=\"{v}\"")), "{}", o.describe());
        assert!(lines[0].contains(allowed), "{}", o.describe());
        assert!(lines[0].contains("exiting with status 2"), "{}", o.describe());
    }
    let o = run("FAILSTOP_CPU_BUDGET_MS", "500");
    o.assert_exit(0);
    assert!(o.stderr.is_empty(), "{}", o.describe());
    let o = run("FAILSTOP_DISABLE", "1");
    o.assert_exit(0);
    assert!(o.stderr.is_empty(), "{}", o.describe());
}

#[test]
fn a_program_that_takes_the_signal_over_is_not_watched() {
    if common::scenario().is_some() {
        // The program installs its own handler for the watchdog signal.
        // SAFETY: a plain handler that only bumps an atomic.
        unsafe { libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as usize) };
        let (r, w) = pipe();
        write_byte(w);
        let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
        // SAFETY: a valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1) };
        say!("poll {n} watched {} timers {}", watched_here(), failstop_timers().len());
        common::child_exit(0);
    }
    let o = preloaded("a_program_that_takes_the_signal_over_is_not_watched", "takeover")
        .env("FAILSTOP_SIGNAL", "SIGUSR1")
        .run();
    o.assert_exit(0);
    assert_eq!(o.value("poll"), "1 watched false timers 0", "{}", o.describe());
    assert!(o.stderr.contains(&format!("replaced failstop's handler of signal {}", libc::SIGUSR1)), "{}", o.describe());
}

#[test]
fn a_dump_does_not_interrupt_the_waits_of_other_threads() {
    if common::scenario().is_some() {
        let (r, _w) = pipe();
        let poller = std::thread::Builder::new()
            .name("poller".into())
            .spawn(move || {
                say!("tid poller {}", gettid());
                let mut pfd = libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 };
                // SAFETY: a valid pollfd. Nothing is ever written to the pipe.
                let n = unsafe { libc::poll(&mut pfd, 1, 30_000) };
                say!("poller-returned {n} {}", errno());
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let spinner = std::thread::Builder::new()
            .name("spinner".into())
            .spawn(|| {
                let mut pfd = libc::pollfd { fd: -1, events: 0, revents: 0 };
                // SAFETY: a valid pollfd; registers this thread.
                unsafe { libc::poll(&mut pfd, 1, 1) };
                say!("tid spinner {}", gettid());
                spin_here_forever();
            })
            .unwrap();
        poller.join().unwrap();
        spinner.join().unwrap();
        common::child_exit(0);
    }
    let o = preloaded("a_dump_does_not_interrupt_the_waits_of_other_threads", "dump").run();
    o.assert_signal(libc::SIGABRT);
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict\n{}", o.describe()));
    assert_eq!((v.kind.as_str(), v.name.as_str(), v.tid), ("stuck", "spinner", o.tid("spinner")), "{}", o.describe());
    // The dump's capture request did reach the waiting thread ...
    let poller = o.tid("poller");
    let head = format!("  thread {poller} \"poller\"");
    let block: Vec<&str> =
        o.stderr.lines().skip_while(|l| !l.starts_with(&head)).skip(1).take_while(|l| l.starts_with("    ")).collect();
    assert!(!block.is_empty(), "the poller is not in the dump\n{}", o.describe());
    assert!(block.iter().any(|l| l.trim_start().starts_with("#0 ")), "no frames for the poller\n{}", o.describe());
    // ... and its poll went on waiting instead of failing with EINTR.
    assert!(!o.has("poller-returned"), "the poller's wait was interrupted\n{}", o.describe());
}

// ---------------------------------------------------------------------------
// Dumps of programs built as distributions build them
// ---------------------------------------------------------------------------

/// `tests/c/fault_loop.c`, built once with -O2 -fomit-frame-pointer.
fn fault_loop() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_fault_loop("fault_loop", &[])).clone()
}

/// `tests/c/fault_loop.c` built also without unwind tables (no
/// `.eh_frame` for its functions): the DWARF unwinder cannot help, and the
/// frame-pointer walk is all there is.
fn fault_loop_without_unwind_tables() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            build_fault_loop("fault_loop_no_eh", &["-fno-asynchronous-unwind-tables", "-fno-unwind-tables"])
        })
        .clone()
}

fn build_fault_loop(name: &str, extra: &[&str]) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(out.parent().unwrap()).expect("mkdir");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let o = std::process::Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-O2", "-fomit-frame-pointer"])
        .args(extra)
        .arg(root.join("tests/c/fault_loop.c"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("run {cc}: {e} (a C compiler is needed; set CC)"));
    assert!(o.status.success(), "building {name} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn run_fault_loop(mode: &str) -> common::Outcome {
    run_program(fault_loop(), mode)
}

fn run_program(program: std::path::PathBuf, mode: &str) -> common::Outcome {
    Spec::program(program, &[mode])
        .env("LD_PRELOAD", &preload())
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_WARN_MS", "100")
        .env("FAILSTOP_DUMP_TIMEOUT_MS", "10000")
        .run()
}

/// The culprit's frame lines (`#i ...`) in the raw part of the dump, and
/// the lines that follow them up to the next thread.
fn culprit_block(stderr: &str) -> Vec<&str> {
    let mut lines = stderr.lines().skip_while(|l| !l.starts_with("> thread "));
    let head = lines.next().into_iter();
    head.chain(lines.take_while(|l| l.starts_with("    "))).collect()
}

/// Code without frame pointers whose frame-pointer register points at
/// text: with its unwind tables (as compilers emit them by default) the
/// DWARF unwinder follows the real chain to `main`, and no word of the
/// text is taken for a return address.
#[test]
fn a_spin_without_frame_pointers_is_unwound_to_main() {
    let o = run_fault_loop("text");
    o.assert_signal(libc::SIGABRT);
    let word = u64::from_ne_bytes(*b" text, n");
    assert!(!o.stderr.contains(&format!("{word:#x}")), "a word of the text became a frame\n{}", o.describe());
    let sym: Vec<&str> = o
        .stderr
        .lines()
        .skip_while(|l| *l != "failstop: symbolized backtraces:")
        .skip_while(|l| !l.starts_with("> thread "))
        .skip(1)
        .take_while(|l| l.starts_with("    #"))
        .collect();
    let function = |l: &&str| l.split_whitespace().nth(2).unwrap_or_default().to_string();
    let functions: Vec<String> = sym.iter().map(function).collect();
    assert_eq!(functions.first().map(String::as_str), Some("spin_over_text"), "{sym:?}\n{}", o.describe());
    assert_eq!(functions.get(1).map(String::as_str), Some("main"), "the caller is missing: {sym:?}\n{}", o.describe());
}

/// The same built without unwind tables: only the frame-pointer walk is
/// left, and the first "return address" outside every executable mapping
/// (a word of the text) ends it.
#[test]
fn a_walk_without_frame_pointers_ends_at_a_word_that_is_no_code() {
    let o = run_program(fault_loop_without_unwind_tables(), "text");
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", common::CATCH_BOUND);
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict\n{}", o.describe()));
    assert_eq!(v.kind, "stuck", "{}", o.describe());
    let block = culprit_block(&o.stderr);
    let frames: Vec<&str> = block.iter().copied().filter(|l| l.starts_with("    #")).collect();
    assert_eq!(frames.len(), 1, "only the interrupted pc: {frames:?}\n{}", o.describe());
    assert!(frames[0].contains(" fault_loop_no_eh+0x"), "{frames:?}\n{}", o.describe());
    // The frame-pointer register pointed at the text: the walk ends at a
    // word of it ("spin the", " text, n", ...), taken for no address.
    let text = b"spin the text, not a frame record: words, not addresses";
    let words: Vec<u64> = text.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
    let prefix = "    (the walk ends here: the next return address, ";
    let note = block.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{block:?}\n{}", o.describe()));
    let hex = note[prefix.len()..].split(',').next().unwrap_or_default();
    let word = u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("{note}"));
    assert!(words.contains(&word), "{note}: not a word of the text\n{}", o.describe());
    assert!(note.ends_with(", is in no executable mapping; the code there has no frame pointers)"), "{note}");
    assert!(!o.stderr.contains(&format!("{word:#x} ??")), "{}", o.describe());
    // The symbolized part has the same single frame.
    let sym: Vec<&str> = o
        .stderr
        .lines()
        .skip_while(|l| *l != "failstop: symbolized backtraces:")
        .skip_while(|l| !l.starts_with("> thread "))
        .skip(1)
        .take_while(|l| l.starts_with("    #"))
        .collect();
    assert!(!sym.is_empty() && sym.iter().all(|l| l.starts_with("    #0 ")), "{sym:?}\n{}", o.describe());
}

#[test]
fn a_thread_is_named_by_its_current_comm() {
    let o = run_fault_loop("rename");
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", common::CATCH_BOUND);
    let v = verdict_line(&o.stderr).unwrap_or_else(|| panic!("no verdict\n{}", o.describe()));
    assert_eq!(v.kind, "stuck", "{}", o.describe());
    assert_eq!(v.name, "mc-worker", "{}", o.describe());
    assert_eq!(v.registered.as_deref(), Some("fault_loop"), "{}", o.describe());
    let named = "\"mc-worker\" (registered as \"fault_loop\")";
    assert!(o.stderr.contains(&format!("> thread {} {named} state ", v.tid)), "{}", o.describe());
    assert!(o.stderr.contains(&format!("> thread {} {named}:\n", v.tid)), "the symbolized part\n{}", o.describe());
    assert!(o.stderr.contains(&format!("failstop: warning: thread {named} (tid {})", v.tid)), "{}", o.describe());
    assert!(common::without_process(&v.line).ends_with("; action: abort"), "{}", o.describe());
    assert_eq!(common::process_of(&v.line), Some((v.tid, "mc-worker".into())), "{}", o.describe());
}
