//! The C ABI from C: `tests/c/abi_smoke.c` is compiled with the system C
//! compiler (`cc`, or `$CC`) against `include/failstop.h` and the static
//! library cargo built next to this test binary (`target/<profile>/libfailstop.a`,
//! or `target/<profile>/deps/libfailstop.a`, whichever is newer),
//! then run as a child process.

use failstop_test_support as common;

use common::{Spec, c};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Compiles the C program once per test binary.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("abi_smoke-{}", std::process::id()));
        c::build_static("tests/c/abi_smoke.c", &out, &[])
    })
}

#[test]
fn smoke_from_c() {
    let o = Spec::program(program().to_path_buf(), &["smoke"]).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());
}

#[test]
fn spinning_c_thread_is_aborted_with_a_dump() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dump = dir.join(format!("c-abi-spin-{}.dump", std::process::id()));
    let _ = std::fs::remove_file(&dump);
    let o = Spec::program(program().to_path_buf(), &["spin"])
        .env("FAILSTOP_CPU_BUDGET_MS", "300")
        .env("FAILSTOP_DUMP_PATH", dump.to_str().expect("utf-8 path"))
        .env("FAILSTOP_DUMP_TIMEOUT_MS", &common::DUMP_TIMEOUT.as_millis().to_string())
        .run();
    o.assert_signal(libc::SIGABRT);
    assert!(o.stdout().contains("SPINNING"), "{}", o.describe());
    let text = std::fs::read_to_string(&dump).unwrap_or_else(|e| panic!("read {dump:?}: {e}\n{}", o.describe()));
    let first = text.lines().next().unwrap_or("");
    assert!(first.starts_with("failstop: stuck: thread \"c-spinner\""), "dump starts with:\n{text}\n{}", o.describe());
    assert!(o.stderr.contains("failstop: stuck: thread \"c-spinner\""), "{}", o.describe());
    let _ = std::fs::remove_file(&dump);
}

/// The shared library: a C program linked with `-lfailstop` records the
/// SONAME `libfailstop.so.0`, and runs when only that name is on the
/// library path.
#[test]
fn smoke_from_c_against_the_shared_library() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("c-abi-so-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("link")).expect("mkdir");
    std::fs::create_dir_all(dir.join("run")).expect("mkdir");
    let so = c::shared_lib();
    std::fs::copy(&so, dir.join("link/libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(&so, dir.join("run/libfailstop.so.0")).expect("copy libfailstop.so.0");
    let exe = dir.join("abi_smoke_so");
    let mut args: Vec<String> = c::STRICT.iter().map(|s| s.to_string()).collect();
    args.push(c::include_flag());
    args.push(format!("{}/tests/c/abi_smoke.c", c::ROOT));
    args.push(format!("-L{}", dir.join("link").display()));
    args.extend(["-lfailstop".into(), "-lpthread".into(), "-o".into(), exe.display().to_string()]);
    c::compile(&args);
    let o = Spec::program(exe, &["smoke"]).env("LD_LIBRARY_PATH", dir.join("run").to_str().expect("utf-8 path")).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());
    let _ = std::fs::remove_dir_all(&dir);
}
