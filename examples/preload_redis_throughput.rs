//! The cost of `libfailstop_preload.so` on a real server: redis-server's
//! requests per second (redis-benchmark) with and without the preload,
//! alternated in one run so that both see the same machine.
//!
//! ```sh
//! cargo build --release          # builds target/release/libfailstop_preload.so
//! cargo run --release --example preload_redis_throughput -- --rounds 6 --requests 200000
//! ```
//!
//! Each round starts a fresh redis-server (no persistence) plain and one
//! under the preload with the default budgets, in alternating order (ABBA),
//! runs `redis-benchmark -t set,get -c 50 -n <requests>` against each, and
//! prints the ratio preload/plain per round, then min/median/max.
//! Needs Debian's redis-server and redis-tools.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    rounds: usize,
    requests: u64,
    clients: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { rounds: 6, requests: 200_000, clients: 50 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let bad = |what: &str| format!("{k} {v:?}: {what}");
        match k.as_str() {
            "--rounds" => a.rounds = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("a count from 1"))?,
            "--requests" => a.requests = v.parse().ok().filter(|&n| n >= 1000).ok_or_else(|| bad("at least 1000"))?,
            "--clients" => a.clients = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("a count from 1"))?,
            _ => return Err(format!("unknown option {k}; allowed: --rounds N, --requests N, --clients N")),
        }
    }
    Ok(a)
}

/// `libfailstop_preload.so` next to this example's profile directory.
fn preload_lib() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile = exe.parent().and_then(|d| d.parent()).ok_or("no target directory")?;
    [profile.join("libfailstop_preload.so"), profile.join("deps/libfailstop_preload.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| format!("libfailstop_preload.so not found in {profile:?}: run `cargo build --release` first"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn start_redis(port: u16, preload: Option<&PathBuf>) -> Child {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    for (k, _) in std::env::vars() {
        if k.starts_with("FAILSTOP_") {
            cmd.env_remove(k);
        }
    }
    if let Some(p) = preload {
        cmd.env("LD_PRELOAD", p);
    }
    let child = cmd.spawn().expect("start redis-server (apt-get install redis-server redis-tools)");
    let until = Instant::now() + Duration::from_secs(20);
    while !redis_cli(port, &["ping"]).starts_with("PONG") {
        assert!(Instant::now() < until, "redis-server did not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Requests per second of SET and GET.
fn bench(port: u16, a: &Args) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-q", "--csv", "-t", "set,get"])
        .args(["-n", &a.requests.to_string(), "-c", &a.clients.to_string()])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |test: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("no {test} figure in redis-benchmark's output:\n{text}"))
    };
    (rps("SET"), rps("GET"))
}

fn one(preload: Option<&PathBuf>, a: &Args) -> (f64, f64) {
    let port = free_port();
    let mut child = start_redis(port, preload);
    let r = bench(port, a);
    redis_cli(port, &["shutdown", "nosave"]);
    let st = child.wait().expect("wait redis-server");
    assert!(st.success(), "redis-server ended with {st:?}");
    r
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    (v[0], median, v[n - 1])
}

fn main() {
    let a = parse_args().unwrap_or_else(|e| {
        eprintln!("preload_redis_throughput: {e}");
        std::process::exit(2)
    });
    let lib = preload_lib().unwrap_or_else(|e| {
        eprintln!("preload_redis_throughput: {e}");
        std::process::exit(2)
    });
    println!("preload: {}", lib.display());
    println!(
        "{} rounds, redis-benchmark -t set,get -c {} -n {}, default FAILSTOP_* settings",
        a.rounds, a.clients, a.requests
    );
    println!("round  order           plain SET/s  preload SET/s  ratio   plain GET/s  preload GET/s  ratio");
    let (mut set, mut get) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let preload_first = round % 2 == 1;
        let (p, w) = if preload_first {
            let w = one(Some(&lib), &a);
            (one(None, &a), w)
        } else {
            let p = one(None, &a);
            (p, one(Some(&lib), &a))
        };
        let (rs, rg) = (w.0 / p.0, w.1 / p.1);
        set.push(rs);
        get.push(rg);
        println!(
            "{:>5}  {:<14} {:>12.0} {:>14.0} {:>6.3} {:>13.0} {:>14.0} {:>6.3}",
            round + 1,
            if preload_first { "preload,plain" } else { "plain,preload" },
            p.0,
            w.0,
            rs,
            p.1,
            w.1,
            rg
        );
    }
    for (name, v) in [("SET", set), ("GET", get)] {
        let (min, med, max) = stats(v);
        println!("ratio preload/plain {name}: min {min:.3}  median {med:.3}  max {max:.3}");
    }
}
