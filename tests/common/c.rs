//! Building C programs against the library cargo built for this test run
//! (`tests/c_abi.rs`, `tests/c_dlopen.rs`, `tests/c_echo_server.rs`,
//! `tests/install.rs`).
//!
//! The C compiler is `$CC`, or `cc`. Programs are built with [`STRICT`]
//! warnings: `-Wall -Wextra -Werror`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate's root directory.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The libraries a Rust static library needs (`rustc --print native-static-libs`).
pub const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// Warnings are errors, the language is C11, frame pointers for full
/// backtraces in dumps, debug info for symbols.
pub const STRICT: &[&str] = &["-Wall", "-Wextra", "-Werror", "-std=c11", "-g", "-fno-omit-frame-pointer"];

/// `-I<root>/include`, for `#include "failstop.h"`.
pub fn include_flag() -> String {
    format!("-I{}", Path::new(ROOT).join("include").display())
}

/// The C compiler: `$CC`, or `cc`.
pub fn cc_name() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// `target/<profile>/<file>` (e.g. `libfailstop.a`), found from this test
/// binary (`target/<profile>/deps/<test>-*`).
pub fn built_lib(file: &str) -> PathBuf {
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

/// The static library this test run built.
pub fn static_lib() -> PathBuf {
    built_lib("libfailstop.a")
}

/// The shared library this test run built.
pub fn shared_lib() -> PathBuf {
    built_lib("libfailstop.so")
}

/// A fresh directory under the target's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
    dir
}

/// Runs `cmd` to its end; panics with its output unless it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the C compiler with `args`; panics with its output if it fails
/// (warnings included: every build here uses `-Werror`).
pub fn compile<I, S>(args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cc = cc_name();
    if let Err(e) = Command::new(&cc).arg("--version").output() {
        panic!("run {cc}: {e} (a C compiler is needed; set CC)");
    }
    run_ok(Command::new(&cc).args(args));
}

/// The dynamic section of an ELF file, as `readelf -d` prints it.
pub fn readelf_dynamic(elf: &Path) -> String {
    String::from_utf8_lossy(&run_ok(Command::new("readelf").arg("-d").arg(elf)).stdout).into_owned()
}

/// Compiles `source` (relative to the crate root) with [`STRICT`] warnings,
/// the header, `extra` flags, and links it statically against this run's
/// `libfailstop.a`; returns the program's path.
pub fn build_static(source: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args: Vec<std::ffi::OsString> = STRICT.iter().map(Into::into).collect();
    args.extend(extra.iter().map(Into::into));
    args.push(include_flag().into());
    args.push(Path::new(ROOT).join(source).into());
    args.push(static_lib().into());
    args.extend(NATIVE_LIBS.iter().map(Into::into));
    args.push("-o".into());
    args.push(out.into());
    compile(args);
    out.to_path_buf()
}
