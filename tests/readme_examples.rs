//! The manual's examples (README.md and docs/*.md) work as pasted into a
//! new project.
//!
//! Each block a reader is told to paste carries a marker on the line above
//! its fence: `<!-- readme-example: PROJECT FILE -->`. The blocks of one
//! PROJECT become the files of a fresh project outside this checkout (so
//! that this repository's own `.cargo/config.toml` does not apply), next to
//! a link `failstop` to this checkout, which is where the README's path
//! dependency `../failstop` points:
//!
//! - `rust` (Using it from Rust): `Cargo.toml`, `.cargo/config.toml` and
//!   `src/main.rs`: built (it runs forever), with the frame pointers of the
//!   pasted config;
//! - `tokio` (Async Rust: tokio): `Cargo.toml` and `src/main.rs`: built and
//!   run (it starts both runtimes and exits 0);
//! - `c` (Using it from C, without installing): `app.c` and `build.sh`: the
//!   shell lines are run verbatim in a copy of this repository's layout
//!   (`include/`, `target/release/`) that holds the libraries this test run
//!   built, in place of the block's first line `cargo build --release`; both
//!   programs must start and exit 0 with no `LD_LIBRARY_PATH`.
//!
//! The Cargo projects are built by cargo from crates.io with a target
//! directory under this checkout's `target/`, shared between runs.

use failstop_test_support as common;

use common::c;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MARKER: &str = "<!-- readme-example: ";

/// A marked block of the README.
struct Block {
    project: String,
    file: String,
    /// The fence's info string (`rust,no_run`, `toml`, `c`, `sh`).
    info: String,
    text: String,
}

fn readme_blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for (name, text) in common::doc_files() {
        blocks_of(&name, &text, &mut blocks);
    }
    blocks
}

/// The marked blocks of one file of the manual (`name`: its path).
fn blocks_of(name: &str, readme: &str, blocks: &mut Vec<Block>) {
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(rest) = line.strip_prefix(MARKER) else { continue };
        let spec = rest.strip_suffix(" -->").unwrap_or_else(|| panic!("{name}:{}: marker without ` -->`", n + 1));
        let (project, file) =
            spec.split_once(' ').unwrap_or_else(|| panic!("{name}:{}: marker needs PROJECT FILE: {line}", n + 1));
        let (_, fence) = lines.next().unwrap_or_else(|| panic!("{name}:{}: marker at the end", n + 1));
        let info = fence
            .strip_prefix("```")
            .unwrap_or_else(|| panic!("{name}:{}: the line after a marker must open a fence: {fence:?}", n + 2));
        let mut text = String::new();
        loop {
            let (_, l) = lines.next().unwrap_or_else(|| panic!("{name}:{}: unterminated block", n + 2));
            if l == "```" {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        if info.starts_with("rust") {
            // rustdoc hides these lines, GitHub shows them: a reader would
            // paste them. The blocks must be whole programs without them.
            for l in text.lines() {
                assert!(
                    !(l == "#" || l.starts_with("# ")),
                    "{name}: {project} {file} has a rustdoc hidden line, which a reader would paste: {l:?}"
                );
            }
        }
        blocks.push(Block { project: project.into(), file: file.into(), info: info.into(), text });
    }
}

/// The files of `project`; panics unless they are exactly `expected`, each
/// from one block.
fn project_files(project: &str, expected: &[&str]) -> BTreeMap<String, Block> {
    let mut files = BTreeMap::new();
    for b in readme_blocks().into_iter().filter(|b| b.project == project) {
        let file = b.file.clone();
        assert!(files.insert(file.clone(), b).is_none(), "the manual: two blocks for {project} {file}");
    }
    let found: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(found, want, "the manual: the marked blocks of {project}");
    files
}

/// `<tmp>/failstop-readme-<checkout hash>/`, with the link `failstop` to
/// this checkout. Outside the checkout on purpose (see the module doc).
fn base_dir() -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c::ROOT.hash(&mut h);
    let base = std::env::temp_dir().join(format!("failstop-readme-{:016x}", h.finish()));
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir {base:?}: {e}"));
    let link = base.join("failstop");
    match std::os::unix::fs::symlink(c::ROOT, &link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let to = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{link:?} is not a link: {e}"));
            assert_eq!(to, Path::new(c::ROOT), "{link:?} points elsewhere");
        }
        Err(e) => panic!("symlink {link:?}: {e}"),
    }
    base
}

/// A fresh directory `<base>/<name>` with `files` written into it.
fn write_project(name: &str, files: &BTreeMap<String, String>) -> PathBuf {
    let dir = base_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (file, text) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap_or_else(|e| panic!("mkdir for {path:?}: {e}"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }
    dir
}

/// What `cargo new` writes above `[dependencies]`, then the README's block.
fn manifest(package: &str, readme_toml: &str) -> String {
    format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n{readme_toml}")
}

fn target_dir() -> PathBuf {
    Path::new(c::ROOT).join("target/readme-examples")
}

/// `cargo <args>` in `dir` as a user would run it: none of the variables
/// cargo sets for this test, nor RUSTFLAGS (which would override the
/// project's `.cargo/config.toml`).
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&program);
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k.starts_with("RUSTFLAGS") || k == "RUSTDOCFLAGS" {
            cmd.env_remove(k);
        }
    }
    cmd.env("CARGO_TARGET_DIR", target_dir()).env("CARGO_TERM_COLOR", "never");
    c::run_ok(&mut cmd)
}

/// Builds the Cargo project `name` (package `readme-<name>`) made of the
/// README's blocks; returns its binary and cargo's verbose output.
fn build_cargo_project(name: &str, expected: &[&str]) -> (PathBuf, String) {
    let package = format!("readme-{name}");
    let files: BTreeMap<String, String> = project_files(name, expected)
        .into_iter()
        .map(|(file, b)| {
            let text = if file == "Cargo.toml" { manifest(&package, &b.text) } else { b.text };
            (file, text)
        })
        .collect();
    let dir = write_project(name, &files);
    // This package and failstop (so that its build is in the log and
    // leaves no artifact of an earlier build): the other dependencies'
    // builds are reused.
    cargo(&dir, &["clean", "-p", &package, "-p", "failstop"]);
    let out = cargo(&dir, &["build", "-v"]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let bin = target_dir().join("debug").join(&package);
    assert!(bin.is_file(), "{bin:?} not built:\n{log}");
    (bin, log)
}

/// The rustc command line cargo printed for `crate_name`'s binary.
fn rustc_line<'a>(log: &'a str, crate_name: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains("Running `") && l.contains(&format!("--crate-name {crate_name} ")))
        .unwrap_or_else(|| panic!("no rustc line for {crate_name} in:\n{log}"))
}

#[test]
fn rust_quick_start_builds_as_pasted() {
    let files = project_files("rust", &["Cargo.toml", ".cargo/config.toml", "src/main.rs"]);
    assert!(files["src/main.rs"].info.starts_with("rust"), "src/main.rs is a {} block", files["src/main.rs"].info);
    let started = std::time::SystemTime::now() - Duration::from_secs(2);
    let (_, log) = build_cargo_project("rust", &["Cargo.toml", ".cargo/config.toml", "src/main.rs"]);
    // The pasted .cargo/config.toml is in effect.
    let line = rustc_line(&log, "readme_rust");
    assert!(line.contains("force-frame-pointers=yes"), "the README's config did not give frame pointers: {line}");
    // A Rust user builds failstop as an rlib only: this build leaves no C
    // library in the user's target directory (that is the failstop-ffi
    // crate's product).
    let failstop = rustc_line(&log, "failstop");
    assert!(failstop.contains("--crate-type lib") && !failstop.contains("cdylib"), "{failstop}");
    let mut c_libs = Vec::new();
    let mut dirs = vec![target_dir()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            } else if name.starts_with("libfailstop")
                && (name.contains(".so") || name.ends_with(".a"))
                && e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= started)
            {
                c_libs.push(e.path());
            }
        }
    }
    assert!(c_libs.is_empty(), "a Rust user's target/ has C libraries: {c_libs:?}");
}

#[test]
fn tokio_example_builds_as_pasted_and_runs() {
    let (bin, _) = build_cargo_project("tokio", &["Cargo.toml", "src/main.rs"]);
    let o = common::Spec::program(bin, &[]).run();
    o.assert_exit(0);
}

/// Runs `cmd`, killing it after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let pid = child.id() as i32;
    let start = Instant::now();
    let watchdog = std::thread::spawn(move || child.wait_with_output().expect("wait"));
    while !watchdog.is_finished() {
        if start.elapsed() > limit {
            // SAFETY: a plain kill of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = watchdog.join().unwrap();
            panic!(
                "{cmd:?} ran over {limit:?}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    watchdog.join().unwrap()
}

#[test]
fn c_program_without_installing_builds_and_runs_as_pasted() {
    let files = project_files("c", &["app.c", "build.sh"]);
    let script = &files["build.sh"].text;
    let (first, rest) = script.split_once('\n').expect("build.sh has lines");
    assert_eq!(first, "cargo build --release", "the block's first line builds the library");

    // This repository's layout, with this run's libraries as cargo would
    // have left them in target/release.
    let mut layout = BTreeMap::new();
    layout.insert("app.c".to_string(), files["app.c"].text.clone());
    layout.insert(
        "include/failstop.h".to_string(),
        std::fs::read_to_string(Path::new(c::ROOT).join("include/failstop.h")).expect("read the header"),
    );
    let dir = write_project("c", &layout);
    let release = dir.join("target/release");
    std::fs::create_dir_all(&release).expect("mkdir target/release");
    std::fs::copy(c::shared_lib(), release.join("libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(c::static_lib(), release.join("libfailstop.a")).expect("copy libfailstop.a");

    let mut cmd = Command::new("sh");
    cmd.args(["-e", "-x", "-c", rest]).current_dir(&dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FAILSTOP_") {
            cmd.env_remove(k);
        }
    }
    // The shared program must find libfailstop.so.0 through its rpath.
    cmd.env_remove("LD_LIBRARY_PATH");
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the README's lines failed ({:?}):\n{stdout}\n{stderr}", out.status);
    assert_eq!(
        stdout.matches("100 turns, healthy: 1\n").count(),
        2,
        "both programs (shared, static) must run to the end:\n{stdout}\n{stderr}"
    );
    // The shared one loads libfailstop.so.0 through its rpath; the static
    // one has the library inside.
    let dynamic = c::readelf_dynamic(&dir.join("app"));
    assert!(dynamic.contains("Shared library: [libfailstop.so.0]"), "{dynamic}");
    assert!(dynamic.contains(&format!("[{}]", release.display())), "no rpath to {release:?}:\n{dynamic}");
    let dynamic = c::readelf_dynamic(&dir.join("app-static"));
    assert!(!dynamic.contains("libfailstop"), "{dynamic}");
    let _ = std::fs::remove_dir_all(&dir);
}
