//! Group `preload_wait`: what `libfailstop_preload.so` adds to one wait.
//!
//! The bench runs itself under `LD_PRELOAD=libfailstop_preload.so` (it
//! re-executes itself with the variable set; the preload's constructor
//! starts the watchdog with the defaults) and calls, side by side in one
//! run, `epoll_wait` and `poll` as the program sees them (the preload's) and
//! the C library's own (looked up in libc.so.6's handle, which bypasses the
//! interposer), each on a ready descriptor (an eventfd holding a count:
//! level-triggered, so every call returns 1 at once), with a timeout that
//! may block: infinite (-1) and finite (1000 ms, where a retry after
//! failstop's `EINTR` needs the time the wait started).
//! The first interposed call registers the thread; every later one is the
//! steady path: the thread-local lookup, the idle scope and the touch.
//!
//! Criterion reports each call; after the group, `ROUNDS` interleaved rounds
//! print the cost per call, plain and preloaded, and their difference
//! (min / median / max over the rounds).
//!
//! Needs the preload built in the same profile: `cargo bench` at the
//! workspace root builds it (target/release/libfailstop_preload.so).

use criterion::{BenchmarkId, Criterion, criterion_group};
use std::hint::black_box;
use std::time::Instant;

/// Interleaved rounds for the printed figures.
const ROUNDS: usize = 1001;
/// Calls per round and kind.
const ROUND_CALLS: u64 = 5_000;

type EpollWait = unsafe extern "C" fn(libc::c_int, *mut libc::epoll_event, libc::c_int, libc::c_int) -> libc::c_int;
type Poll = unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, libc::c_int) -> libc::c_int;

/// Set in the re-executed bench.
const MARK: &str = "BENCH_PRELOAD_WAIT_CHILD";

/// `libfailstop_preload.so` of this profile.
fn preload_path() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile = exe.parent().and_then(|d| d.parent()).expect("profile directory");
    [profile.join("libfailstop_preload.so"), profile.join("deps/libfailstop_preload.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "libfailstop_preload.so not found in {profile:?}: run `cargo bench` at the workspace root \
                 (or `cargo build --release -p failstop-preload` first)"
            )
        })
}

/// Re-executes this bench under the preload (once), with the same arguments.
fn run_preloaded() -> ! {
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", preload_path())
        .env(MARK, "1")
        // The bench thread is registered by its first interposed wait and
        // then runs criterion's analysis and the plain calls without
        // touching: budgets far above a bench run.
        .env("FAILSTOP_CPU_BUDGET_MS", "3600000")
        .env("FAILSTOP_WARN_MS", "3000000")
        .env("FAILSTOP_STALL_BUDGET_MS", "3600000")
        .exec();
    panic!("re-executing the bench under LD_PRELOAD: {e}");
}

/// The C library's own function `name`, past any interposer.
fn libc_sym(name: &std::ffi::CStr) -> usize {
    // SAFETY: a NUL-terminated name; RTLD_NOLOAD only finds the loaded libc.
    let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    assert!(!h.is_null(), "libc.so.6 not loaded");
    // SAFETY: a live handle and a NUL-terminated name.
    let a = unsafe { libc::dlsym(h, name.as_ptr()) } as usize;
    assert_ne!(a, 0, "{name:?} not in libc.so.6");
    a
}

/// A level-triggered ready descriptor, and an epoll set watching it.
struct Ready {
    efd: libc::c_int,
    epfd: libc::c_int,
}

impl Ready {
    fn new() -> Ready {
        // SAFETY: plain system calls with valid arguments.
        unsafe {
            let efd = libc::eventfd(1, libc::EFD_CLOEXEC);
            let epfd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(efd >= 0 && epfd >= 0, "eventfd/epoll_create1");
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
            assert_eq!(libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, efd, &mut ev), 0);
            Ready { efd, epfd }
        }
    }
}

#[derive(Clone, Copy)]
struct Calls {
    plain_epoll: EpollWait,
    plain_poll: Poll,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    EpollInfinite,
    EpollFinite,
    PollInfinite,
    PollFinite,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::EpollInfinite, Kind::EpollFinite, Kind::PollInfinite, Kind::PollFinite];

    fn id(self) -> &'static str {
        match self {
            Kind::EpollInfinite => "epoll_wait_-1",
            Kind::EpollFinite => "epoll_wait_1000",
            Kind::PollInfinite => "poll_-1",
            Kind::PollFinite => "poll_1000",
        }
    }

    fn timeout(self) -> libc::c_int {
        match self {
            Kind::EpollInfinite | Kind::PollInfinite => -1,
            Kind::EpollFinite | Kind::PollFinite => 1000,
        }
    }
}

/// `n` calls of `kind`, preloaded or plain; returns ns per call.
#[inline(never)]
fn run(calls: Calls, r: &Ready, kind: Kind, preloaded: bool, n: u64) -> f64 {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    let mut pfd = libc::pollfd { fd: r.efd, events: libc::POLLIN, revents: 0 };
    let t = kind.timeout();
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: valid descriptors and out-pointers; the descriptor is ready,
        // so no call blocks.
        let got = unsafe {
            match (kind, preloaded) {
                (Kind::EpollInfinite | Kind::EpollFinite, true) => libc::epoll_wait(r.epfd, &mut ev, 1, t),
                (Kind::EpollInfinite | Kind::EpollFinite, false) => (calls.plain_epoll)(r.epfd, &mut ev, 1, t),
                (Kind::PollInfinite | Kind::PollFinite, true) => libc::poll(&mut pfd, 1, t),
                (Kind::PollInfinite | Kind::PollFinite, false) => (calls.plain_poll)(&mut pfd, 1, t),
            }
        };
        assert_eq!(black_box(got), 1, "the descriptor is ready");
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn preload_wait(c: &mut Criterion) {
    // SAFETY: the C library's functions of these names and signatures.
    let calls = unsafe {
        Calls {
            plain_epoll: std::mem::transmute::<usize, EpollWait>(libc_sym(c"epoll_wait")),
            plain_poll: std::mem::transmute::<usize, Poll>(libc_sym(c"poll")),
        }
    };
    assert_ne!(calls.plain_epoll as usize, libc::epoll_wait as *const () as usize, "epoll_wait is not interposed");
    let r = Ready::new();
    // The first wait that may block registers this thread.
    run(calls, &r, Kind::EpollInfinite, true, 1);

    let mut g = c.benchmark_group("preload_wait");
    for kind in Kind::ALL {
        for (preloaded, who) in [(false, "plain"), (true, "preload")] {
            g.bench_function(BenchmarkId::new(who, kind.id()), |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    run(calls, &r, kind, preloaded, iters);
                    t.elapsed()
                })
            });
        }
    }
    g.finish();

    let mut plain = vec![vec![]; Kind::ALL.len()];
    let mut pre = vec![vec![]; Kind::ALL.len()];
    let mut diff = vec![vec![]; Kind::ALL.len()];
    for round in 0..ROUNDS {
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            // Alternate which goes first.
            let (a, b) = if round % 2 == 0 {
                let a = run(calls, &r, kind, false, ROUND_CALLS);
                (a, run(calls, &r, kind, true, ROUND_CALLS))
            } else {
                let b = run(calls, &r, kind, true, ROUND_CALLS);
                (run(calls, &r, kind, false, ROUND_CALLS), b)
            };
            plain[k].push(a);
            pre[k].push(b);
            diff[k].push(b - a);
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[0], v[v.len() / 2], v[v.len() - 1])
    };
    println!("preload_wait: ns per call on a ready descriptor, {ROUNDS} interleaved rounds of {ROUND_CALLS} calls:");
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        let (_, p, _) = stats(&mut plain[k]);
        let (_, q, _) = stats(&mut pre[k]);
        let (lo, mid, hi) = stats(&mut diff[k]);
        println!(
            "  {:<16} plain {p:>7.1}  preload {q:>7.1}  added: median {mid:>6.1}  (min {lo:.1}, max {hi:.1})",
            kind.id()
        );
    }
}

criterion_group!(benches, preload_wait);

fn main() {
    if std::env::var_os(MARK).is_none() {
        run_preloaded();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
