//! `failstop symbolize` on a real dump: a C program built with `-g` is
//! stripped, run under the preload until it spins and is fail-stopped
//! (its frames in the dump are raw: module, offset, build-id, and the
//! in-process symbolizer names nothing), then its frames are resolved from
//! the unstripped file placed as `DIR/.build-id/xx/yyyy.debug`. A build-id
//! with no file anywhere stays as it was, with a note why.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::*;

/// The GNU build-id of `file`, from `readelf -n`.
fn build_id(file: &Path) -> String {
    let out = check(tool("readelf", "binutils").arg("-n").arg(file));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no build-id in {file:?}:\n{text}"))
        .trim()
        .to_string()
}

/// The 1-based line of `spin_loop.c` that contains `needle`.
fn source_line(needle: &str) -> usize {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/spin_loop.c")).unwrap();
    src.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle:?} not in spin_loop.c")) + 1
}

/// (scratch dir, stripped program, its build-id, the dump it left).
fn stripped_dump() -> (PathBuf, PathBuf, String, String) {
    preload();
    let dir = scratch("symbolize");
    let full = c_program("spin_loop", &dir, &[]);
    let stripped = dir.join("spin_stripped");
    check(tool("strip", "binutils").arg("-o").arg(&stripped).arg(&full));
    let id = build_id(&full);
    assert_eq!(build_id(&stripped), id, "strip kept the build-id");
    let debug = dir.join("debug/.build-id").join(&id[..2]).join(format!("{}.debug", &id[2..]));
    std::fs::create_dir_all(debug.parent().unwrap()).unwrap();
    std::fs::rename(&full, &debug).unwrap();

    let dump = dir.join("dump.txt");
    let end = run(Command::new(failstop())
        .args(["run", "--cpu-budget", "300ms", "--dump-timeout", "10s", "--dump-path"])
        .arg(&dump)
        .arg("--")
        .arg(&stripped)
        .env_remove("LD_PRELOAD"));
    assert_eq!(end.signal(), Some(libc::SIGABRT), "{}", end.transcript());
    let text =
        std::fs::read_to_string(&dump).unwrap_or_else(|e| panic!("no dump at {dump:?}: {e}\n{}", end.transcript()));
    (dir, stripped, id, text)
}

#[test]
fn a_stripped_binary_s_frames_get_function_file_and_line() {
    let (dir, _stripped, id, dump) = stripped_dump();
    // The dump's frames of the stripped program are raw, and the
    // in-process symbolizer could not name them.
    let raw = dump
        .lines()
        .find(|l| {
            l.trim_start().starts_with("#0 ")
                && l.contains("spin_stripped+0x")
                && l.ends_with(&format!("(build-id {id})"))
        })
        .unwrap_or_else(|| panic!("no raw frame #0 of spin_stripped with build-id {id}:\n{dump}"));
    let addr = raw.trim_start().split(' ').nth(1).unwrap().to_string();
    assert!(dump.contains(&format!("#0 {addr} ??")), "the in-process symbolizer named the stripped frame:\n{dump}");

    let out = run(Command::new(failstop())
        .arg("symbolize")
        .arg("--debug-dir")
        .arg(dir.join("debug"))
        .arg(dir.join("dump.txt")));
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    let spin = format!("#0 {addr} spin_forever at ");
    let line0 = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&spin))
        .unwrap_or_else(|| panic!("frame #0 not resolved:\n{}", out.transcript()));
    let want = format!("tests/c/spin_loop.c:{} (spin_stripped+0x", source_line("counter++"));
    assert!(line0.contains(&want), "{line0:?} does not say {want:?}");
    let call = format!("tests/c/spin_loop.c:{} (spin_stripped+0x", source_line("spin_forever();"));
    assert!(
        out.stdout.lines().any(|l| l.trim_start().starts_with("#1 ") && l.contains(" main at ") && l.contains(&call)),
        "frame #1 is not main at the call:\n{}",
        out.stdout
    );
    // Every other line is kept as it was.
    for l in dump.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(out.stdout.lines().any(|o| o == l), "line lost: {l:?}");
    }
    let used = format!(
        "failstop: symbolize: build-id {id}: {}",
        dir.join("debug/.build-id").join(&id[..2]).join(format!("{}.debug", &id[2..])).display()
    );
    assert!(out.stderr.contains(&used), "summary does not say {used:?}:\n{}", out.stderr);
}

#[test]
fn frames_nothing_resolves_stay_with_a_note() {
    let (_dir, stripped, id, dump) = stripped_dump();
    // No debug directory, and the program is gone: nothing has its build-id.
    std::fs::remove_file(&stripped).unwrap();
    let mut child = Command::new(failstop())
        .args(["symbolize", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(dump.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let raw: Vec<&str> =
        dump.lines().filter(|l| l.trim_start().starts_with('#') && l.ends_with(&format!("(build-id {id})"))).collect();
    assert!(!raw.is_empty(), "{dump}");
    for l in raw {
        let kept = stdout
            .lines()
            .find(|o| o.starts_with(l))
            .unwrap_or_else(|| panic!("frame {l:?} not kept as it was:\n{stdout}"));
        let note = format!("  [not symbolized: no file with build-id {id} here (looked at ");
        assert!(kept[l.len()..].starts_with(&note), "{kept:?}");
        assert!(kept.contains(&format!("{} (absent)", stripped.display())), "{kept:?}");
    }
}

#[test]
fn bad_input_is_named() {
    let out = run(Command::new(failstop()).args(["symbolize", "/nonexistent/dump.txt"]));
    assert_eq!(out.status.code(), Some(1), "{}", out.transcript());
    assert!(out.stderr.contains("cannot read /nonexistent/dump.txt: No such file"), "{}", out.transcript());
    let out = run(Command::new(failstop()).args(["symbolize"]));
    assert_eq!(out.status.code(), Some(2), "{}", out.transcript());
    assert!(out.stderr.contains("no DUMP given"), "{}", out.transcript());
    let out = run(Command::new(failstop()).args(["symbolize", "--debug-dir", "/nonexistent", "-"]));
    assert_eq!(out.status.code(), Some(2), "{}", out.transcript());
    assert!(out.stderr.contains("--debug-dir /nonexistent: not a directory"), "{}", out.transcript());
}
