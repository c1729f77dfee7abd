//! `scripts/install.sh` and the pkg-config files: install the libraries this
//! test run built (`--from`, no second build; `libfailstop_preload.so` comes
//! from the workspace's `preload/` member, which `scripts/test.sh` builds
//! in the same run) into a temporary prefix, then
//! build a C program with exactly the command lines the README shows, with
//! `PKG_CONFIG_PATH` pointing at that prefix, and run it.

mod common;

use common::Spec;
use common::c::{self, run_ok as run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The README's build lines (section "Using it from C"), run verbatim.
const SHARED_LINE: &str = "cc app.c $(pkg-config --cflags --libs failstop) -o app";
const STATIC_LINE: &str = "cc app.c $(pkg-config --static --cflags --libs failstop-static) -o app";

fn install_script() -> PathBuf {
    Path::new(c::ROOT).join("scripts/install.sh")
}

/// `libfailstop_preload.so` as the workspace's build left it next to this
/// crate's libraries (`target/<profile>/`, or its copy in `deps/`).
fn preload_lib() -> PathBuf {
    let profile = c::shared_lib().parent().expect("dir").to_path_buf();
    let profile =
        if profile.ends_with("deps") { profile.parent().expect("profile dir").to_path_buf() } else { profile };
    [profile.join("libfailstop_preload.so"), profile.join("deps/libfailstop_preload.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "libfailstop_preload.so not found in {profile:?}: it is the preload/ member's; \
                 run the workspace's tests (scripts/test.sh, or cargo test --workspace)"
            )
        })
}

/// Installs this run's libraries into `<dir>/prefix`; returns the prefix.
fn install(dir: &Path) -> PathBuf {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).expect("mkdir stage");
    std::fs::copy(c::shared_lib(), stage.join("libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(c::static_lib(), stage.join("libfailstop.a")).expect("copy libfailstop.a");
    std::fs::copy(preload_lib(), stage.join("libfailstop_preload.so")).expect("copy libfailstop_preload.so");
    let prefix = dir.join("prefix");
    let out = run(Command::new("bash").arg(install_script()).arg("--prefix").arg(&prefix).arg("--from").arg(&stage));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("installed failstop {} into {}", env!("CARGO_PKG_VERSION"), prefix.display())),
        "{text}"
    );
    prefix
}

/// Runs `line` with `sh` in `dir`, where `app.c` is `tests/c/abi_smoke.c`,
/// finding failstop's .pc files under `prefix` only.
fn build_app(dir: &Path, prefix: &Path, line: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir app dir");
    std::fs::copy(Path::new(c::ROOT).join("tests/c/abi_smoke.c"), dir.join("app.c")).expect("copy app.c");
    run(Command::new("sh").args(["-c", line]).current_dir(dir).env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    dir.join("app")
}

/// The DT_NEEDED entries of an ELF file.
fn needed(elf: &Path) -> Vec<String> {
    c::readelf_dynamic(elf)
        .lines()
        .filter_map(|l| Some(l.split_once("Shared library: [")?.1.trim_end_matches(']').to_string()))
        .collect()
}

fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .unwrap_or_else(|e| panic!("run pkg-config: {e} (install it: apt-get install pkgconf; scripts/test.sh does)"));
    assert!(out.status.success(), "pkg-config {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn readme_shows_the_tested_lines() {
    let readme = std::fs::read_to_string(Path::new(c::ROOT).join("README.md")).expect("read README.md");
    for line in [SHARED_LINE, STATIC_LINE, "scripts/install.sh", "/usr/local/lib/libfailstop_preload.so"] {
        assert!(readme.contains(line), "README.md does not show `{line}`");
    }
}

#[test]
fn install_then_build_with_pkg_config() {
    let dir = c::temp_dir("install");
    let prefix = install(&dir);
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");

    // The layout.
    let real = format!("libfailstop.so.{version}");
    assert_eq!(std::fs::read_link(lib.join("libfailstop.so.0")).expect("libfailstop.so.0 link"), Path::new(&real));
    assert_eq!(
        std::fs::read_link(lib.join("libfailstop.so")).expect("libfailstop.so link"),
        Path::new("libfailstop.so.0")
    );
    assert_eq!(
        std::fs::read(lib.join(&real)).expect("read the installed .so"),
        std::fs::read(dir.join("stage/libfailstop.so")).expect("read the built .so")
    );
    assert!(lib.join("libfailstop.a").is_file());
    // The LD_PRELOAD library, where the README's systemd line points.
    assert_eq!(
        std::fs::read(lib.join("libfailstop_preload.so")).expect("read the installed preload library"),
        std::fs::read(dir.join("stage/libfailstop_preload.so")).expect("read the built preload library")
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("include/failstop.h")).expect("installed header"),
        std::fs::read_to_string(Path::new(c::ROOT).join("include/failstop.h")).expect("header")
    );

    // What pkg-config says.
    assert_eq!(pkg_config(&prefix, &["--modversion", "failstop"]), version);
    assert_eq!(pkg_config(&prefix, &["--modversion", "failstop-static"]), version);
    let libs = format!("-L{} -lfailstop", lib.display());
    assert_eq!(
        pkg_config(&prefix, &["--cflags", "--libs", "failstop"]),
        format!("-I{}/include {libs}", prefix.display())
    );
    assert_eq!(
        pkg_config(&prefix, &["--static", "--libs", "failstop"]),
        format!("{libs} {}", c::NATIVE_LIBS.join(" "))
    );

    // Shared: the program needs libfailstop.so.0 and finds the installed one.
    let app = build_app(&dir.join("shared"), &prefix, SHARED_LINE);
    let deps = needed(&app);
    assert!(deps.iter().any(|d| d == "libfailstop.so.0"), "{app:?} needs {deps:?}");
    let ldd = run(Command::new("ldd").arg(&app).env("LD_LIBRARY_PATH", &lib));
    let resolved = format!("libfailstop.so.0 => {}/libfailstop.so.0", lib.display());
    assert!(String::from_utf8_lossy(&ldd.stdout).contains(&resolved), "{}", String::from_utf8_lossy(&ldd.stdout));
    let o = Spec::program(app, &["smoke"]).env("LD_LIBRARY_PATH", lib.to_str().expect("utf-8 path")).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());

    // Static: the library is inside the program.
    let app = build_app(&dir.join("static"), &prefix, STATIC_LINE);
    let deps = needed(&app);
    assert!(!deps.iter().any(|d| d.starts_with("libfailstop")), "{app:?} needs {deps:?}");
    let o = Spec::program(app, &["smoke"]).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_refused_with_a_clear_error() {
    let dir = c::temp_dir("install-bad");
    let cases: &[(&[&str], &str)] = &[
        (&["--profile", "fast"], "--profile 'fast' is not allowed: release or debug"),
        (&["--prefix", "relative/dir"], "--prefix 'relative/dir' is not allowed: an absolute path"),
        (&["--prefix", "/with space"], "--prefix '/with space' is not allowed"),
        (&["--prefix"], "--prefix needs a value"),
        (&["--frob"], "unknown argument '--frob'"),
    ];
    for (args, message) in cases {
        let out = Command::new("bash").arg(install_script()).args(*args).output().expect("run install.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in:\n{stderr}");
    }
    // --from a directory without the libraries: refused, nothing installed.
    let prefix = dir.join("prefix");
    let out = Command::new("bash")
        .arg(install_script())
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(&dir)
        .output()
        .expect("run install.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}/libfailstop.so not found", dir.display())), "{stderr}");
    assert!(!prefix.exists(), "a refused install created {prefix:?}");
    // The C libraries but not the preload library: refused too.
    let stage = dir.join("c-only");
    std::fs::create_dir_all(&stage).expect("mkdir c-only");
    std::fs::copy(c::shared_lib(), stage.join("libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(c::static_lib(), stage.join("libfailstop.a")).expect("copy libfailstop.a");
    let out = Command::new("bash")
        .arg(install_script())
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(&stage)
        .output()
        .expect("run install.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}/libfailstop_preload.so not found", stage.display())), "{stderr}");
    assert!(!prefix.exists(), "a refused install created {prefix:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
