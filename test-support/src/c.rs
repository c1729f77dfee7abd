//! Building C programs against the C library (`failstop-ffi`, built for
//! this test run's profile: see [`built_lib`]) (`tests/c_abi.rs`,
//! `tests/c_dlopen.rs`, `tests/c_echo_server.rs`, `tests/install.rs`).
//!
//! The C compiler is `$CC`, or `cc`. Programs are built with [`STRICT`]
//! warnings: `-Wall -Wextra -Werror`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The crate's root directory.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

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

/// `target/<profile>/<file>` (e.g. `libfailstop.a`), the C library of
/// the `failstop-ffi` crate (`ffi/`), built for the profile of this test
/// binary (`target/<profile>/deps/<test>-*`).
///
/// `cargo test` does not build a `cdylib`/`staticlib` crate's library for
/// another crate's tests, so the first call runs `cargo build -p
/// failstop-ffi` itself (cargo releases its lock while tests run), and the
/// C programs link what the sources are now. A build failure fails the test.
pub fn built_lib(file: &str) -> PathBuf {
    built_by("failstop-ffi", file)
}

/// `file` of the workspace member `package` in this test run's profile
/// directory (`target/<profile>/`), built first by `cargo build -p
/// package` with this profile and target directory, once per package and
/// process: a test of one member does not build another member's
/// `cdylib` (cargo releases its lock while tests run). A build failure
/// fails the test.
pub fn built_by(package: &str, file: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, Result<(), String>)>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.ancestors().find(|p| p.file_name().is_some_and(|n| n == "deps")).expect("deps dir");
    let profile_dir = deps.parent().expect("profile dir");
    let target_dir = profile_dir.parent().expect("target dir");
    let profile = profile_dir.file_name().and_then(OsStr::to_str).expect("profile name");
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|(p, _)| p == package) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let cargo_profile = if profile == "debug" { "dev" } else { profile };
        let result = Command::new(&cargo)
            .args(["build", "-p", package, "--profile", cargo_profile, "--target-dir"])
            .arg(target_dir)
            .current_dir(ROOT)
            .output()
            .map_err(|e| format!("{cargo}: {e}"))
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "cargo build -p {package} --profile {cargo_profile} failed ({}):\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            });
        built.push((package.to_string(), result));
    }
    if let Some((_, Err(e))) = built.iter().find(|(p, _)| p == package) {
        panic!("{e}");
    }
    let path = profile_dir.join(file);
    assert!(path.is_file(), "{path:?} missing after building {package}");
    path
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
    let dir = super::target_tmp().join(format!("{tag}-{}-{nanos}", std::process::id()));
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
