//! `include/failstop.h` is what the pinned cbindgen generates from the
//! sources: regenerate it into a temporary file and compare.
//!
//! The pinned cbindgen lives at `target/tools/bin/cbindgen`; `.ci/run`
//! installs it. The test fails (it does not skip) when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cbindgen version the committed header was generated with.
const CBINDGEN_VERSION: &str = "0.29.4";

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn install_hint() -> String {
    format!(
        "install the pinned cbindgen with:\n    \
         cargo install cbindgen --version {CBINDGEN_VERSION} --locked --root {MANIFEST_DIR}/target/tools"
    )
}

fn cbindgen() -> PathBuf {
    let bin = Path::new(MANIFEST_DIR).join("target/tools/bin/cbindgen");
    assert!(bin.is_file(), "the pinned cbindgen {CBINDGEN_VERSION} is missing at {bin:?}; {}", install_hint());
    let out = Command::new(&bin).arg("--version").output().unwrap_or_else(|e| panic!("run {bin:?}: {e}"));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        version,
        format!("cbindgen {CBINDGEN_VERSION}"),
        "{bin:?} is not the pinned version; {}",
        install_hint()
    );
    bin
}

#[test]
fn header_is_current() {
    let bin = cbindgen();
    let root = Path::new(MANIFEST_DIR);
    let fresh = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("failstop-{}.h", std::process::id()));
    let out = Command::new(&bin)
        .current_dir(root)
        .args(["--config", "cbindgen.toml", "--crate", "failstop", "--quiet", "--output"])
        .arg(&fresh)
        .output()
        .unwrap_or_else(|e| panic!("run {bin:?}: {e}"));
    assert!(out.status.success(), "cbindgen failed ({:?}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let generated = std::fs::read_to_string(&fresh).expect("read the generated header");
    let _ = std::fs::remove_file(&fresh);
    let committed = std::fs::read_to_string(root.join("include/failstop.h")).expect("read include/failstop.h");
    if generated != committed {
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "include/failstop.h is out of date (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\n\
             regenerate it with:\n    {} --config cbindgen.toml --crate failstop --output include/failstop.h\n\
             and review the change with `git diff include/failstop.h`",
            first + 1,
            committed.lines().nth(first),
            generated.lines().nth(first),
            bin.display()
        );
    }
}
