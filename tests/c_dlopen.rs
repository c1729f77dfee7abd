//! `libfailstop.so` loaded with `dlopen` and unloaded with `dlclose`:
//! `tests/c/dlopen_close.c` (not linked with failstop; every function comes
//! from `dlsym`) runs as a child. The library is linked with `-z nodelete`
//! (build.rs), so it stays mapped: a thread registered before the
//! `dlclose` that spins after it still gets its verdict, dump and SIGABRT;
//! stopped before the `dlclose`, the process ends cleanly.
//!
//! glibc also keeps a library mapped while threads have pending
//! thread-local destructors in it (Rust's std registers some), so these
//! runs pass even with the flag stripped; the flag itself, which makes the
//! guarantee unconditional, is checked on the ELF file.

use failstop_test_support as common;

use common::{Spec, c};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Compiles the C program once per test binary.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dlopen_close-{}", std::process::id()));
        let mut args: Vec<String> = c::STRICT.iter().map(|s| s.to_string()).collect();
        args.push(c::include_flag());
        args.push(format!("{}/tests/c/dlopen_close.c", c::ROOT));
        args.extend(["-ldl".into(), "-lpthread".into(), "-o".into(), out.display().to_string()]);
        c::compile(&args);
        out
    })
}

fn run(mode: &str) -> common::Outcome {
    let lib = c::shared_lib();
    Spec::program(program().to_path_buf(), &[lib.to_str().expect("utf-8 path"), mode])
        .env("FAILSTOP_CPU_BUDGET_MS", &common::BUDGET.as_millis().to_string())
        .env("FAILSTOP_WARN_MS", &common::WARN.as_millis().to_string())
        .env("FAILSTOP_DUMP_TIMEOUT_MS", &common::DUMP_TIMEOUT.as_millis().to_string())
        .run()
}

#[test]
fn shared_library_has_its_soname_and_nodelete() {
    let lib = c::shared_lib();
    let dynamic = c::readelf_dynamic(&lib);
    assert!(dynamic.contains("Library soname: [libfailstop.so.0]"), "{lib:?}:\n{dynamic}");
    let flags = dynamic
        .lines()
        .find(|l| l.contains("(FLAGS_1)"))
        .unwrap_or_else(|| panic!("no FLAGS_1 in {lib:?}:\n{dynamic}"));
    assert!(flags.split_whitespace().any(|w| w == "NODELETE"), "{lib:?} is not linked with -z nodelete: {flags}");
}

#[test]
fn a_thread_spinning_after_dlclose_is_still_aborted_with_a_dump() {
    let o = run("spin");
    o.assert_signal(libc::SIGABRT);
    let out = o.stdout();
    assert!(out.contains("STILL MAPPED\nDLCLOSED\nSPINNING"), "{}", o.describe());
    let first = o
        .stderr
        .lines()
        .find(|l| l.starts_with("failstop: stuck:") || l.starts_with("failstop: blocked:"))
        .unwrap_or("");
    assert!(first.starts_with("failstop: stuck: thread \"c-dl-spinner\""), "{}", o.describe());
    assert!(o.stderr.contains("failstop: dump written in "), "{}", o.describe());
    assert!(o.elapsed() < common::CATCH_BOUND, "took {:?}\n{}", o.elapsed(), o.describe());
}

#[test]
fn stop_then_dlclose_ends_cleanly() {
    let o = run("clean");
    o.assert_exit(0);
    assert!(o.stdout().contains("STILL MAPPED\nDLCLOSED\nCLEAN"), "{}", o.describe());
    o.assert_no_verdict();
}
