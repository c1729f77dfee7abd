//! `failstop symbolize` on a real dump: a C program built with `-g` is
//! stripped, run under the preload until it spins and is fail-stopped
//! (its frames in the dump are raw: module, offset, build-id, and the
//! in-process symbolizer names nothing), then its frames are resolved from
//! the unstripped file placed as `DIR/.build-id/xx/yyyy.debug`. A build-id
//! with no file anywhere stays as it was, with a note why. A debug file
//! that `dwz` split (its shared parts in a supplementary file named by
//! `.gnu_debugaltlink`, as Debian's -dbgsym packages are) gets the names
//! kept there.

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
/// `strip_flag`: `--strip-all` (no symbol table either) or `--strip-debug`.
/// With `dwz`, the debug file's shared parts are moved into
/// `dir/common.debug` (`dwz -m`, with a second build of the program to
/// share them with).
fn stripped_dump(strip_flag: &str, dwz: bool) -> (PathBuf, PathBuf, String, String) {
    preload();
    let dir = scratch("symbolize");
    let full = c_program("spin_loop", &dir, &[]);
    if dwz {
        let second = dir.join("second");
        std::fs::create_dir_all(&second).unwrap();
        let other = c_program("spin_loop", &second, &["-DSECOND_BUILD"]);
        let common = dir.join("common.debug");
        check(tool("dwz", "dwz").arg("-m").arg(&common).arg("-M").arg(&common).arg(&full).arg(&other));
        assert!(common.is_file(), "dwz made no {common:?}");
    }
    let stripped = dir.join("spin_stripped");
    check(tool("strip", "binutils").arg(strip_flag).arg("-o").arg(&stripped).arg(&full));
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

/// The raw address of frame #0 of the stripped program in `dump`.
fn frame0_addr(dump: &str, id: &str) -> String {
    let raw = dump
        .lines()
        .find(|l| {
            l.trim_start().starts_with("#0 ")
                && l.contains("spin_stripped+0x")
                && l.ends_with(&format!("(build-id {id})"))
        })
        .unwrap_or_else(|| panic!("no raw frame #0 of spin_stripped with build-id {id}:\n{dump}"));
    raw.trim_start().split(' ').nth(1).unwrap().to_string()
}

/// The lines of frame #0 at `addr` in `out`: the inlined `spin_inline`
/// (named `inlined`), then `spin_forever` at the inlined call.
fn assert_frame0(out: &str, addr: &str, inlined: &str) {
    let lines: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with(&format!("#0 {addr} "))).collect();
    let loop_line = source_line("counter++");
    let call_line = source_line("spin_inline();");
    assert!(
        lines.len() >= 2
            && lines[0].trim_start()
                == format!("#0 {addr} {inlined} at {}:{loop_line} (inlined)", source_path().display())
            && lines[1].trim_start().starts_with(&format!(
                "#0 {addr} spin_forever at {}:{call_line} (spin_stripped+0x",
                source_path().display()
            )),
        "frame #0 is not {inlined} (inlined) in spin_forever:\n{}",
        lines.join("\n")
    );
}

fn source_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/spin_loop.c")
}

#[test]
fn a_stripped_binary_s_frames_get_function_file_and_line() {
    let (dir, _stripped, id, dump) = stripped_dump("--strip-all", false);
    // The dump's frames of the stripped program are raw, and the
    // in-process symbolizer could not name them.
    let addr = frame0_addr(&dump, &id);
    assert!(dump.contains(&format!("#0 {addr} ??")), "the in-process symbolizer named the stripped frame:\n{dump}");

    let out = run(Command::new(failstop())
        .arg("symbolize")
        .arg("--debug-dir")
        .arg(dir.join("debug"))
        .arg(dir.join("dump.txt")));
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    assert_frame0(&out.stdout, &addr, "spin_inline");
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
    let (_dir, stripped, id, dump) = stripped_dump("--strip-all", false);
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

#[test]
fn a_dwz_supplementary_file_gives_the_names_kept_there() {
    let (dir, _stripped, id, dump) = stripped_dump("--strip-all", true);
    let addr = frame0_addr(&dump, &id);
    let common = dir.join("common.debug");
    let symbolize = || {
        run(Command::new(failstop())
            .arg("symbolize")
            .arg("--debug-dir")
            .arg(dir.join("debug"))
            .arg(dir.join("dump.txt")))
    };
    let out = symbolize();
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    assert_frame0(&out.stdout, &addr, "spin_inline");
    assert!(out.stderr.contains(&format!("(debug info, with the dwz file {})", common.display())), "{}", out.stderr);

    // Without it, the inlined function's name (moved there by dwz) is
    // missing: said, and not replaced by its caller's.
    std::fs::rename(&common, dir.join("moved.debug")).unwrap();
    let out = symbolize();
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    assert_frame0(&out.stdout, &addr, "??");
    let note = format!("its dwz supplementary file {} (build-id ", common.display());
    assert!(out.stderr.contains(&note) && out.stderr.contains("is not here: some names are missing"), "{}", out.stderr);
}

#[test]
fn a_symbol_table_alone_gives_function_and_offset() {
    let (dir, stripped, id, dump) = stripped_dump("--strip-debug", false);
    let addr = frame0_addr(&dump, &id);
    // No debug directory: the program's own file, which has a symbol table.
    let out = run(Command::new(failstop()).arg("symbolize").arg(dir.join("dump.txt")));
    assert_eq!(out.status.code(), Some(0), "{}", out.transcript());
    let want = format!("#0 {addr} spin_forever+0x");
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&want))
        .unwrap_or_else(|| panic!("frame #0 is not spin_forever+OFFSET:\n{}", out.transcript()));
    assert!(line.contains(" (spin_stripped+0x"), "{line:?}");
    assert!(line.ends_with(&format!("; no file:line: {} has no DWARF)", stripped.display())), "{line:?}");
    assert!(
        out.stderr.contains(&format!("build-id {id}: {} (symbol table only)", stripped.display())),
        "{}",
        out.stderr
    );
}
