//! A spinning registered thread is caught: dump, then SIGABRT.

#[macro_use]
mod common;

use common::{CATCH_BOUND, Dump, Spec, gettid, small_config, spawn_spinner, task_tids};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// Four extra threads (two registered and idle, two unregistered), then a
/// registered thread spins: caught, every thread of the process is listed.
fn scenario_spin_with_peers() {
    let _wd = failstop::start(small_config()).expect("start");
    let ready = Arc::new(Barrier::new(5));
    for i in 0..4 {
        let ready = ready.clone();
        std::thread::Builder::new()
            .name(format!("peer-{i}"))
            .spawn(move || {
                let _h = if i % 2 == 0 {
                    let h = failstop::register(&format!("peer-{i}")).expect("register peer");
                    h.touch();
                    Some(h)
                } else {
                    None
                };
                say!("tid peer-{i} {}", gettid());
                ready.wait();
                loop {
                    match &_h {
                        Some(h) => h.with_idle(|| std::thread::sleep(Duration::from_millis(50))),
                        None => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .expect("spawn peer");
    }
    ready.wait();
    say!("tid main {}", gettid());
    // Every thread there is now (failstop's own included): none exits before the dump.
    for tid in task_tids() {
        say!("task {tid}");
    }
    spawn_spinner("spinner").join().ok();
}

#[test]
fn spin_in_registered_thread_is_caught() {
    if common::scenario().is_some() {
        scenario_spin_with_peers();
        common::child_exit(0);
    }
    let o = Spec::scenario("spin_in_registered_thread_is_caught", "spin").run();
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    let spinner = o.tid("spinner");
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", spinner, "abort", "spin_here_forever");

    let listed: Vec<i32> = dump.threads().iter().map(|t| t.1).collect();
    let tasks: Vec<i32> = o.values("task").iter().map(|t| t.parse().unwrap()).collect();
    assert!(tasks.len() >= 7, "main, 4 peers, monitor, reporter at least: {tasks:?}\n{}", o.describe());
    for tid in tasks.iter().chain([spinner].iter()) {
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

/// The spinner holds a mutex; one registered waiter spins on `try_lock`
/// inside `harmless` (with a head start of CPU time, so it would reach the
/// budget first if it were judged), another blocks in `lock` inside
/// `with_harmless`. The spinner is blamed.
fn scenario_spin_holding_lock() {
    let _wd = failstop::start(small_config()).expect("start");
    let lock = Arc::new(Mutex::new(0u64));
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (waiting_tx, waiting_rx) = std::sync::mpsc::channel::<()>();

    let spinner = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let h = failstop::register("spinner").expect("register");
            say!("tid spinner {}", gettid());
            h.touch();
            let _held = lock.lock().unwrap();
            held_tx.send(()).unwrap();
            held_tx.send(()).unwrap();
            waiting_rx.recv().unwrap();
            // The waiter has spun (harmless) for a while already.
            std::thread::sleep(Duration::from_millis(150));
            h.touch();
            say!("spin-start");
            common::spin_here_forever();
        })
    };
    held_rx.recv().unwrap();
    {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let h = failstop::register("busy-waiter").expect("register");
            say!("tid busy-waiter {}", gettid());
            h.touch();
            let _g = h.harmless();
            waiting_tx.send(()).unwrap();
            loop {
                if let Ok(g) = lock.try_lock() {
                    drop(g);
                    say!("busy-waiter got the lock");
                    return;
                }
                std::hint::spin_loop();
            }
        });
    }
    held_rx.recv().unwrap();
    {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let h = failstop::register("waiter").expect("register");
            say!("tid waiter {}", gettid());
            h.touch();
            let g = h.with_harmless(|| lock.lock().unwrap());
            drop(g);
            say!("waiter got the lock");
        });
    }
    spinner.join().ok();
}

#[test]
fn spin_holding_lock_blames_the_spinner() {
    if common::scenario().is_some() {
        scenario_spin_holding_lock();
        common::child_exit(0);
    }
    let o = Spec::scenario("spin_holding_lock_blames_the_spinner", "lock").run();
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    let dump = Dump::parse(&o.stderr);
    dump.assert_stuck("spinner", o.tid("spinner"), "abort", "spin_here_forever");
    assert!(!o.has("busy-waiter got"), "{}", o.describe());
    for who in ["busy-waiter", "waiter"] {
        let tid = o.tid(who);
        let t = dump.threads().into_iter().find(|t| t.1 == tid).unwrap_or_else(|| panic!("{who} not listed"));
        assert!(!t.0, "{who} marked as culprit\n{}", o.describe());
        assert!(t.3.contains(" registered harmless"), "{who} not shown harmless: {t:?}");
    }
    assert_eq!(o.stderr.matches("failstop: stuck:").count(), 1, "{}", o.describe());
}
