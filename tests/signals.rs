//! An application that uses SIGALRM itself, with SIGALRM chosen as the
//! watchdog signal (`FAILSTOP_SIGNAL=SIGALRM`; the default, `SIGRTMAX-3`,
//! is failstop's alone): the two share the handler, ours chains the rest.
//! `tests/own_signals.rs` covers the default signal and the issue-16 cases.

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{CATCH_BOUND, Dump, Spec, small_config, spawn_spinner, work_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static ALARMS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_alarm(_sig: libc::c_int) {
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

/// `small_config` with SIGALRM shared with the application.
fn shared_config() -> failstop::Config {
    small_config().signal(failstop::Signal::SIGALRM)
}

fn install_app_handler() {
    common::set_handler(libc::SIGALRM, on_alarm, libc::SA_RESTART, false);
}

fn current_sigalrm_handler() -> usize {
    // SAFETY: query only, valid out-pointer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGALRM, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Arms `alarm(1)` and waits until the application's handler ran.
fn one_alarm() -> bool {
    let before = ALARMS.load(Ordering::SeqCst);
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(1) };
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if ALARMS.load(Ordering::SeqCst) > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn app_alarm_handler_keeps_working_and_spin_is_still_caught() {
    if common::scenario().is_some() {
        install_app_handler();
        let _wd = failstop::start(shared_config()).expect("start");
        // A registered thread keeps the watchdog's SIGALRM timer ticking meanwhile.
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let h = failstop::register("worker").expect("register");
                while !stop.load(Ordering::Relaxed) {
                    h.touch();
                    work_for(Duration::from_millis(1));
                }
            })
        };
        for _ in 0..3 {
            one_alarm();
        }
        say!("alarms {}", ALARMS.load(Ordering::SeqCst));
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
        spawn_spinner("spinner").join().ok();
        common::child_exit(0);
    }
    let o = Spec::scenario("app_alarm_handler_keeps_working_and_spin_is_still_caught", "alarm").run();
    let alarms: usize = o.value("alarms").parse().unwrap();
    assert!(alarms >= 3, "the application's SIGALRM handler ran {alarms} times, expected 3\n{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    o.assert_ended_within("spin-start", CATCH_BOUND);
    Dump::parse(&o.stderr).assert_stuck("spinner", o.tid("spinner"), "abort", "spin_here_forever");
}

#[test]
fn dropping_the_watchdog_restores_the_app_handler() {
    if common::scenario().is_some() {
        install_app_handler();
        let app = on_alarm as *const () as usize;
        assert_eq!(current_sigalrm_handler(), app);
        let wd = failstop::start(shared_config()).expect("start");
        say!("replaced-while-running {}", current_sigalrm_handler() != app);
        drop(wd);
        say!("restored {}", current_sigalrm_handler() == app);
        say!("alarm-after-drop {}", one_alarm());
        // Again, with a thread registered across the stop.
        let wd = failstop::start(shared_config()).expect("restart");
        let h = failstop::register("held").expect("register");
        h.touch();
        drop(wd);
        drop(h);
        say!("restored-again {}", current_sigalrm_handler() == app);
        common::child_exit(0);
    }
    let o = Spec::scenario("dropping_the_watchdog_restores_the_app_handler", "restore").run();
    o.assert_exit(0);
    assert_eq!(o.value("replaced-while-running"), "true", "{}", o.describe());
    assert_eq!(o.value("restored"), "true", "{}", o.describe());
    assert_eq!(o.value("alarm-after-drop"), "true", "{}", o.describe());
    assert_eq!(o.value("restored-again"), "true", "{}", o.describe());
}
