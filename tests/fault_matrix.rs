//! The fault matrix: each way a thread can lock up, in its own child
//! process, must end in the right verdict (`stuck` or `blocked`) naming the
//! right thread, within a stated bound, with the action (`abort`) completed.
//! The checks and the bounds are in `common/matrix.rs`; the faults that
//! need a custom global allocator (the allocator's lock) live in
//! `tests/locks.rs`, with the dynamic loader's lock. RELIABILITY.md lists
//! the measured figures (the `MATRIX` lines, `--nocapture`).

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::matrix::{self, Kind, STALL, fault_start};
use common::{Dump, gettid, scenario, small_config, spawn_spinner, spin_here_forever, task_tids};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

fn start() -> failstop::Watchdog {
    failstop::start(small_config().stall_budget(STALL)).expect("start")
}

/// Runs the child's side of a fault and never returns.
fn child(f: fn()) -> ! {
    let _wd = start();
    f();
    // A fault that ends is a broken scenario: the parent sees exit 3.
    common::child_exit(3)
}

/// Registers the calling thread as `name` and prints its tid.
fn register(name: &str) -> failstop::ThreadHandle {
    let h = failstop::register(name).expect("register");
    say!("tid {name} {}", gettid());
    h
}

/// The culprit's symbolized frames.
fn culprit_frames(o: &common::Outcome, tid: i32) -> String {
    let dump = Dump::parse(&o.stderr);
    let (marked, frames) =
        dump.symbolized_frames(tid).unwrap_or_else(|| panic!("no symbolized block for {tid}\n{}", o.describe()));
    assert!(marked, "the culprit's symbolized block is not marked\n{}", o.describe());
    frames.join("\n")
}

// ---------------------------------------------------------------------------
// A CPU spin
// ---------------------------------------------------------------------------

/// Four extra threads (two registered and idle, two unregistered), then a
/// registered thread spins: caught, every thread of the process is listed.
fn spin_with_peers() {
    let ready = Arc::new(Barrier::new(5));
    for i in 0..4 {
        let ready = ready.clone();
        std::thread::Builder::new()
            .name(format!("peer-{i}"))
            .spawn(move || {
                let h = (i % 2 == 0).then(|| {
                    let h = failstop::register(&format!("peer-{i}")).expect("register peer");
                    h.touch();
                    h
                });
                say!("tid peer-{i} {}", gettid());
                ready.wait();
                loop {
                    match &h {
                        Some(h) => h.with_idle(|| std::thread::sleep(Duration::from_millis(50))),
                        None => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .expect("spawn peer");
    }
    ready.wait();
    // Every thread there is now (failstop's own included): none exits before the dump.
    for tid in task_tids() {
        say!("task {tid}");
    }
    spawn_spinner("spinner").join().ok();
}

#[test]
fn cpu_spin() {
    if scenario().is_some() {
        child(spin_with_peers);
    }
    let (o, f) = matrix::run("cpu_spin", Kind::Stuck, &["spinner"]);
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", f.tid, "abort", "spin_here_forever");
    let listed: Vec<i32> = dump.threads().iter().map(|t| t.1).collect();
    let tasks: Vec<i32> = o.values("task").iter().map(|t| t.parse().unwrap()).collect();
    assert!(tasks.len() >= 7, "main, 4 peers, monitor, reporter at least: {tasks:?}\n{}", o.describe());
    for tid in tasks.iter().chain([f.tid].iter()) {
        assert!(listed.contains(tid), "thread {tid} missing from the dump (listed {listed:?})\n{}", o.describe());
    }
    // Registered peers are shown as registered and idle, the others as unregistered.
    for i in 0..4 {
        let tid = o.tid(&format!("peer-{i}"));
        let line = dump.threads().into_iter().find(|t| t.1 == tid).unwrap();
        if i % 2 == 0 {
            assert_eq!(line.2, format!("peer-{i}"), "{}", o.describe());
            assert!(line.3.contains(" registered"), "{line:?}");
        } else {
            assert!(line.3.contains(" unregistered"), "{line:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// A spin while holding a lock that other registered threads wait on
// ---------------------------------------------------------------------------

/// The spinner holds a mutex. Three registered threads wait for it: one
/// spins on `try_lock` inside `harmless` (with a head start of CPU time, so
/// it would reach the budget first if it were judged), one blocks in `lock`
/// inside `with_harmless`, and one blocks in `lock` with no scope at all
/// (it would be `blocked` after the stall budget; the spinner's verdict
/// comes first). The spinner is blamed.
fn spin_holding_lock() {
    let lock = Arc::new(Mutex::new(0u64));
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (waiting_tx, waiting_rx) = std::sync::mpsc::channel::<()>();
    let spinner = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let h = register("spinner");
            h.touch();
            let _held = lock.lock().unwrap();
            for _ in 0..3 {
                held_tx.send(()).unwrap();
            }
            waiting_rx.recv().unwrap();
            // The busy waiter has spun (harmless) for a while already.
            std::thread::sleep(Duration::from_millis(150));
            h.touch();
            fault_start();
            spin_here_forever();
        })
    };
    held_rx.recv().unwrap();
    let l = lock.clone();
    std::thread::spawn(move || {
        let h = register("busy-waiter");
        h.touch();
        let _g = h.harmless();
        waiting_tx.send(()).unwrap();
        loop {
            if let Ok(g) = l.try_lock() {
                drop(g);
                say!("busy-waiter got the lock");
                return;
            }
            std::hint::spin_loop();
        }
    });
    held_rx.recv().unwrap();
    let l = lock.clone();
    std::thread::spawn(move || {
        let h = register("waiter");
        h.touch();
        drop(h.with_harmless(|| l.lock().unwrap()));
        say!("waiter got the lock");
    });
    held_rx.recv().unwrap();
    std::thread::spawn(move || {
        let h = register("plain-waiter");
        h.touch();
        drop(lock.lock().unwrap());
        say!("plain-waiter got the lock");
    });
    spinner.join().ok();
}

#[test]
fn spin_while_holding_a_lock_others_wait_on() {
    if scenario().is_some() {
        child(spin_holding_lock);
    }
    let (o, f) = matrix::run("spin_while_holding_a_lock_others_wait_on", Kind::Stuck, &["spinner"]);
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", f.tid, "abort", "spin_here_forever");
    assert!(!o.stdout().contains("got the lock"), "{}", o.describe());
    for (who, shown) in
        [("busy-waiter", " registered harmless"), ("waiter", " registered harmless"), ("plain-waiter", " registered")]
    {
        let tid = o.tid(who);
        let t = dump.threads().into_iter().find(|t| t.1 == tid).unwrap_or_else(|| panic!("{who} not listed"));
        assert!(!t.0, "{who} marked as culprit\n{}", o.describe());
        assert!(t.3.contains(shown), "{who} not shown as{shown}: {t:?}");
    }
}

// ---------------------------------------------------------------------------
// AB/BA deadlocks: std Mutex, and a futex lock of our own
// ---------------------------------------------------------------------------

/// A lock for the AB/BA deadlock.
trait AbLock: Send + Sync + 'static {
    type Guard<'a>;
    fn new() -> Self;
    fn take(&self) -> Self::Guard<'_>;
}

impl AbLock for Mutex<u32> {
    type Guard<'a> = std::sync::MutexGuard<'a, u32>;
    fn new() -> Self {
        Mutex::new(0)
    }
    fn take(&self) -> Self::Guard<'_> {
        self.lock().unwrap()
    }
}

/// Two registered threads take two locks in opposite order, each holding
/// one when it asks for the other. Each touches right before its second
/// lock: the fault starts there.
fn deadlock<L: AbLock>() {
    let a = Arc::new(L::new());
    let b = Arc::new(L::new());
    let barrier = Arc::new(Barrier::new(2));
    let second = {
        let (a, b, barrier) = (a.clone(), b.clone(), barrier.clone());
        std::thread::spawn(move || {
            let h = register("second");
            h.touch();
            let _gb = b.take();
            barrier.wait();
            h.touch();
            let _ga = a.take();
        })
    };
    let h = register("first");
    h.touch();
    let _ga = a.take();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(50));
    h.touch();
    fault_start();
    let _gb = b.take();
    let _ = second.join();
}

#[test]
fn std_mutex_deadlock() {
    if scenario().is_some() {
        child(deadlock::<Mutex<u32>>);
    }
    let (o, _) = matrix::run("std_mutex_deadlock", Kind::Blocked, &["first", "second"]);
    assert!(o.stderr.contains("syscall: futex"), "{}", o.describe());
}

/// A minimal futex lock (0 free, 1 taken): what a C program or a
/// hand-rolled spinlock-with-sleep does, without std's Mutex.
struct FutexLock(AtomicU32);

impl AbLock for FutexLock {
    type Guard<'a> = FutexGuard<'a>;
    fn new() -> Self {
        FutexLock(AtomicU32::new(0))
    }
    fn take(&self) -> FutexGuard<'_> {
        self.lock()
    }
}

impl FutexLock {
    #[inline(never)]
    fn lock(&self) -> FutexGuard<'_> {
        while self.0.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            // SAFETY: FUTEX_WAIT on a live, aligned u32 of ours; sleeps while it is 1.
            unsafe {
                libc::syscall(libc::SYS_futex, self.0.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 1, 0usize)
            };
        }
        FutexGuard(self)
    }
}

struct FutexGuard<'a>(&'a FutexLock);

impl Drop for FutexGuard<'_> {
    fn drop(&mut self) {
        self.0.0.store(0, Ordering::Release);
        // SAFETY: FUTEX_WAKE on a live, aligned u32 of ours.
        unsafe { libc::syscall(libc::SYS_futex, self.0.0.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1) };
    }
}

#[test]
fn futex_lock_deadlock() {
    if scenario().is_some() {
        child(deadlock::<FutexLock>);
    }
    let (o, f) = matrix::run("futex_lock_deadlock", Kind::Blocked, &["first", "second"]);
    assert!(o.stderr.contains("syscall: futex"), "{}", o.describe());
    // glibc's syscall() has no frame pointer: the walk resumes at the caller
    // of FutexLock::lock, the lock's `take`.
    assert!(culprit_frames(&o, f.tid).contains("FutexLock as fault_matrix::AbLock>::take"), "{}", o.describe());
}

// ---------------------------------------------------------------------------
// System calls that never return
// ---------------------------------------------------------------------------

/// A registered thread blocks in read() on a pipe nobody writes.
#[inline(never)]
fn read_forever(fd: i32) {
    let mut b = [0u8; 1];
    // SAFETY: reading into a valid one-byte buffer.
    unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
}

#[test]
fn blocked_read_on_a_pipe_nobody_writes() {
    if scenario().is_some() {
        child(|| {
            let mut fds = [0; 2];
            // SAFETY: valid out-array.
            unsafe { libc::pipe(fds.as_mut_ptr()) };
            let h = register("reader");
            h.touch();
            fault_start();
            read_forever(fds[0]);
        });
    }
    let (o, f) = matrix::run("blocked_read_on_a_pipe_nobody_writes", Kind::Blocked, &["reader"]);
    assert!(o.stderr.contains("syscall: read (nr"), "the dump names the syscall:\n{}", o.stderr);
    assert!(o.stderr.contains("state S (sleeping)"), "{}", o.stderr);
    // The culprit's frames were captured by signal (the verdict is fatal).
    // glibc has no frame pointers, so the walk from inside read() resumes
    // at the caller of `read_forever`: this test's own function.
    assert!(culprit_frames(&o, f.tid).contains("blocked_read_on_a_pipe_nobody_writes"), "{}", o.describe());
}

extern "C" fn pause_forever(_: *mut libc::c_void) -> libc::c_int {
    loop {
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
    }
}

/// What `vfork()` does, on a stack of the child's own: the calling thread
/// waits in uninterruptible sleep (D) until the child execs or exits, which
/// this child never does. Needs no privilege.
#[inline(never)]
fn vfork_child_that_never_exits() {
    let stack = Box::leak(vec![0u8; 64 * 1024].into_boxed_slice());
    // SAFETY: the child runs `pause_forever` on its own stack (the top of
    // `stack`, 16-byte aligned) and never returns; CLONE_VM|CLONE_VFORK is
    // posix_spawn's mechanism.
    unsafe {
        let top = stack.as_mut_ptr().add(stack.len() & !15).cast();
        libc::clone(pause_forever, top, libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD, std::ptr::null_mut());
    }
}

#[test]
fn d_state_syscall_that_never_returns() {
    if scenario().is_some() {
        child(|| {
            let h = register("vforker");
            h.touch();
            fault_start();
            vfork_child_that_never_exits();
        });
    }
    let (o, _) = matrix::run("d_state_syscall_that_never_returns", Kind::Blocked, &["vforker"]);
    assert!(o.stderr.contains("state D (disk sleep"), "{}", o.stderr);
    assert!(o.stderr.contains("syscall: clone (nr") || o.stderr.contains("syscall: clone3"), "{}", o.stderr);
    assert!(o.stderr.contains("cannot run a signal handler"), "{}", o.stderr);
}

// ---------------------------------------------------------------------------
// Threads failstop's handler cannot run on
// ---------------------------------------------------------------------------

/// The deaf verdict's note in the dump: why no frames came from the
/// culprit's own handler; and its frames, read by the ptrace helper
/// instead, name `function`.
fn assert_deaf_note(o: &common::Outcome, tid: i32, function: &str) {
    assert!(
        o.stderr.contains("failstop's signal handler cannot run on the culprit: it blocks the watchdog signal"),
        "{}",
        o.describe()
    );
    assert!(o.stderr.contains(": frames read by a ptrace helper process instead)"), "{}", o.describe());
    let frames = culprit_frames(o, tid);
    assert!(frames.contains(function), "`{function}` not in the deaf culprit's frames:\n{frames}\n{}", o.describe());
    if let Some(l) = o.stderr.lines().find(|l| l.starts_with("failstop: dump written in ")) {
        println!("deaf culprit, frames by ptrace: {l}");
    }
}

#[test]
fn stuck_with_every_signal_blocked() {
    if scenario().is_some() {
        child(|| {
            let h = register("deaf");
            h.touch();
            common::block_every_signal();
            fault_start();
            spin_here_forever();
        });
    }
    let (o, f) = matrix::run("stuck_with_every_signal_blocked", Kind::Deaf, &["deaf"]);
    assert_deaf_note(&o, f.tid, "spin_here_forever");
}

/// The application's own signal handler never returns.
#[inline(never)]
extern "C" fn spin_in_the_apps_signal_handler(_: libc::c_int) {
    spin_here_forever();
}

/// Installs [`spin_in_the_apps_signal_handler`] for `sig`, masking every
/// signal while it runs if `mask_everything`.
fn install_spinning_handler(sig: libc::c_int, mask_everything: bool) {
    common::set_handler(sig, spin_in_the_apps_signal_handler, 0, mask_everything);
}

/// A registered thread sends itself `sig`, whose handler spins.
fn stuck_in_handler_of(sig: libc::c_int) {
    let h = register("handler");
    h.touch();
    fault_start();
    // SAFETY: signalling the calling thread.
    unsafe { libc::pthread_kill(libc::pthread_self(), sig) };
}

/// The handler (SIGUSR1) masks nothing else: failstop's tick interrupts it
/// and the usual verdict names the handler in the culprit's own frames.
#[test]
fn stuck_inside_its_own_signal_handler() {
    if scenario().is_some() {
        child(|| {
            install_spinning_handler(libc::SIGUSR1, false);
            stuck_in_handler_of(libc::SIGUSR1);
        });
    }
    let (o, f) = matrix::run("stuck_inside_its_own_signal_handler", Kind::Stuck, &["handler"]);
    assert!(culprit_frames(&o, f.tid).contains("spin_in_the_apps_signal_handler"), "{}", o.describe());
}

/// The handler masks every signal while it runs: failstop's ticks stay
/// pending, the monitor's deaf rule convicts the thread.
#[test]
fn stuck_inside_a_signal_handler_that_masks_everything() {
    if scenario().is_some() {
        child(|| {
            install_spinning_handler(libc::SIGUSR1, true);
            stuck_in_handler_of(libc::SIGUSR1);
        });
    }
    let (o, f) = matrix::run("stuck_inside_a_signal_handler_that_masks_everything", Kind::Deaf, &["handler"]);
    assert_deaf_note(&o, f.tid, "spin_in_the_apps_signal_handler");
}

/// The application's own handler of the watchdog signal (SIGALRM, chosen
/// as the watchdog signal here, which failstop then shares and chains to)
/// spins: while it runs, the kernel masks SIGALRM on that thread, so
/// failstop's ticks cannot be handled either (HAProxy's issue #2947 was a
/// 15-minute freeze of this kind).
#[test]
fn stuck_inside_the_apps_handler_of_the_watchdog_signal() {
    if scenario().is_some() {
        install_spinning_handler(libc::SIGALRM, false); // before start: failstop chains to it
        let _wd = failstop::start(small_config().stall_budget(STALL).signal(failstop::Signal::SIGALRM)).expect("start");
        stuck_in_handler_of(libc::SIGALRM);
        common::child_exit(3)
    }
    let (o, f) = matrix::run("stuck_inside_the_apps_handler_of_the_watchdog_signal", Kind::Deaf, &["handler"]);
    assert_deaf_note(&o, f.tid, "spin_in_the_apps_signal_handler");
}

// ---------------------------------------------------------------------------
// Threads that exit while the dump runs; two verdicts at once
// ---------------------------------------------------------------------------

/// 32 threads (half registered) exit the moment the gate closes, which is
/// when the verdict is latched, right before the dump: they leave while it
/// lists them, asks them for frames and reads their /proc entries. Two
/// more keep starting short-lived registered threads throughout.
fn exits_during_dump() {
    let ready = Arc::new(Barrier::new(33));
    for i in 0..32 {
        let ready = ready.clone();
        std::thread::spawn(move || {
            let _h = (i % 2 == 0).then(|| register(&format!("leaver-{i}")));
            ready.wait();
            while failstop::healthy() {
                std::thread::sleep(Duration::from_millis(1));
            }
            say!("left {i}");
        });
    }
    for _ in 0..2 {
        std::thread::spawn(|| {
            loop {
                let _ = std::thread::spawn(|| {
                    if let Ok(h) = failstop::register("short") {
                        h.touch();
                    }
                })
                .join();
            }
        });
    }
    ready.wait();
    spawn_spinner("spinner").join().ok();
}

#[test]
fn threads_exit_while_the_dump_runs() {
    if scenario().is_some() {
        child(exits_during_dump);
    }
    let (o, f) = matrix::run("threads_exit_while_the_dump_runs", Kind::Stuck, &["spinner"]);
    Dump::parse(&o.stderr).assert_stuck("spinner", f.tid, "abort", "spin_here_forever");
    // The leavers saw the gate close and left before the process ended,
    // that is while the dump was being written (it is written between the
    // latch, which closes the gate, and the abort).
    assert!(!o.values("left").is_empty(), "no thread left during the dump\n{}", o.describe());
    // The dump's capture requests wake the sleeping leavers, which leave
    // right after answering: between the dump's listing and their entries.
    let gone = o.stderr.lines().filter(|l| l.ends_with(" exited while the dump was written")).count();
    assert!(gone >= 1, "no thread shown as exited during the dump\n{}", o.describe());
    println!("MATRIX threads_exit_while_the_dump_runs: {gone} threads left during the dump");
}

/// Two registered threads start spinning at the same moment.
fn two_at_once() {
    let go = Arc::new(Barrier::new(3));
    let spinners: Vec<_> = ["spinner-a", "spinner-b"]
        .into_iter()
        .map(|name| {
            let go = go.clone();
            std::thread::spawn(move || {
                let h = register(name);
                h.touch();
                go.wait();
                h.touch();
                spin_here_forever();
            })
        })
        .collect();
    go.wait();
    fault_start();
    for s in spinners {
        let _ = s.join();
    }
}

#[test]
fn two_threads_stuck_at_the_same_moment() {
    if scenario().is_some() {
        child(two_at_once);
    }
    // One dump, one action (matrix::check asserts exactly one verdict line
    // and one dump); the culprit is one of the two.
    let (o, f) = matrix::run("two_threads_stuck_at_the_same_moment", Kind::Stuck, &["spinner-a", "spinner-b"]);
    Dump::parse(&o.stderr).assert_stuck(&f.name, f.tid, "abort", "spin_here_forever");
    let other = if f.name == "spinner-a" { "spinner-b" } else { "spinner-a" };
    let t = Dump::parse(&o.stderr).threads().into_iter().find(|t| t.2 == other).expect("the other spinner is listed");
    assert!(!t.0 && t.3.starts_with("R (running) registered"), "{t:?}\n{}", o.describe());
}
