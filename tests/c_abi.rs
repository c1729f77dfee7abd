//! The C ABI from C: `tests/c/abi_smoke.c` is compiled with the system C
//! compiler (`cc`, or `$CC`) against `include/failstop.h` and the static
//! library cargo built next to this test binary (`target/<profile>/libfailstop.a`,
//! or `target/<profile>/deps/libfailstop.a`, whichever is newer),
//! then run as a child process.

mod common;

use common::Spec;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The libraries a Rust static library needs (`rustc --print native-static-libs`).
const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// `target/<profile>/<file>` (e.g. `libfailstop.a`), found from this test
/// binary (`target/<profile>/deps/c_abi-*`).
fn built_lib(file: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let profile = deps.parent().expect("profile dir");
    // `cargo build` updates both; `cargo test` only the one in deps/. Take
    // the newer, so that the C program links what this test was built with.
    [profile.join(file), deps.join(file)]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!("{file} not found next to {exe:?}: Cargo.toml's [lib] crate-type must include staticlib and cdylib")
        })
}

fn static_lib() -> PathBuf {
    built_lib("libfailstop.a")
}

/// Compiles the C program once per test binary.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("abi_smoke-{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let root = Path::new(MANIFEST_DIR);
        let result = Command::new(&cc)
            .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-g", "-fno-omit-frame-pointer"])
            .arg(format!("-I{}", root.join("include").display()))
            .arg(root.join("tests/c/abi_smoke.c"))
            .arg(static_lib())
            .args(NATIVE_LIBS)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("run {cc}: {e} (a C compiler is needed; set CC)"));
        assert!(
            result.status.success(),
            "{cc} failed on tests/c/abi_smoke.c ({:?}):\n{}{}",
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
        out
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
    let so = built_lib("libfailstop.so");
    std::fs::copy(&so, dir.join("link/libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(&so, dir.join("run/libfailstop.so.0")).expect("copy libfailstop.so.0");
    let exe = dir.join("abi_smoke_so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let root = Path::new(MANIFEST_DIR);
    let result = Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(root.join("tests/c/abi_smoke.c"))
        .arg(format!("-L{}", dir.join("link").display()))
        .args(["-lfailstop", "-lpthread"])
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(result.status.success(), "{cc} failed: {}", String::from_utf8_lossy(&result.stderr));
    let o = Spec::program(exe, &["smoke"]).env("LD_LIBRARY_PATH", dir.join("run").to_str().expect("utf-8 path")).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());
    let _ = std::fs::remove_dir_all(&dir);
}
