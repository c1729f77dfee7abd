//! `include/failstop.h` is what cbindgen 0.29.4 (the version it was
//! generated with, a dev-dependency of this crate: nothing to install)
//! generates from this crate's sources (`ffi/src`) with `ffi/cbindgen.toml`:
//! regenerate it in memory and compare byte for byte.
//!
//! After a change to the C ABI, regenerate the header with
//!
//! ```sh
//! FAILSTOP_BLESS_HEADER=1 cargo test -p failstop-ffi --test c_header
//! ```
//!
//! and review it with `git diff include/failstop.h`.

use std::path::{Path, PathBuf};

const BLESS: &str = "FAILSTOP_BLESS_HEADER";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// What cbindgen makes of the crate `failstop-ffi` at `dir`, as
/// `cbindgen --config cbindgen.toml --crate failstop-ffi` in `dir` would.
fn generate(dir: &Path) -> String {
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap_or_else(|e| panic!("{e}"));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_crate_and_name(dir, "failstop-ffi")
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate the header: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}

#[test]
fn header_is_current() {
    let path = workspace_root().join("include/failstop.h");
    let generated = generate(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(generated.contains("failstop_start"), "cbindgen generated a header without failstop_start:\n{generated}");

    if std::env::var_os(BLESS).is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        eprintln!("{BLESS}=1: wrote {path:?}; review it with `git diff include/failstop.h`");
        return;
    }

    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    if generated != committed {
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "include/failstop.h is not what cbindgen {} generates from the sources \
             (committed {} lines, generated {}; first difference at line {}):\n  \
             committed: {:?}\n  generated: {:?}\n\
             regenerate it with:\n    {BLESS}=1 cargo test -p failstop-header\n\
             and review the change with `git diff include/failstop.h`",
            cbindgen::VERSION,
            committed.lines().count(),
            generated.lines().count(),
            first + 1,
            committed.lines().nth(first),
            generated.lines().nth(first),
        );
    }
}
