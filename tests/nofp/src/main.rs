//! A registered thread spins in `spin_without_frame_pointers`, called from
//! `caller_of_the_spin`; the watchdog must end the process with a dump
//! whose culprit frames name both. Built without frame pointers.

use std::hint::black_box;
use std::time::Duration;

#[inline(never)]
fn spin_without_frame_pointers(seed: u64) -> u64 {
    let mut x = seed;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
        if black_box(x) == 42 {
            return x;
        }
    }
}

#[inline(never)]
fn caller_of_the_spin(seed: u64) -> u64 {
    // Work after the call: not a tail call, so this frame stays.
    black_box(spin_without_frame_pointers(black_box(seed))).wrapping_add(black_box(1))
}

fn main() {
    let config = failstop::Config::new().cpu_budget(Duration::from_millis(300)).with_env().expect("config");
    let _wd = failstop::start(config).expect("start");
    let t = std::thread::Builder::new()
        .name("nofp-spinner".into())
        .spawn(|| {
            let h = failstop::register("nofp-spinner").expect("register");
            h.touch();
            println!("SPINNING");
            caller_of_the_spin(7)
        })
        .expect("spawn");
    let _ = t.join();
    std::process::exit(4); // not reached: the stuck verdict ends the process
}
