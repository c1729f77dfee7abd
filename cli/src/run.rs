//! `failstop run [OPTIONS] -- PROGRAM [ARGS...]`: checks the settings with
//! the library's own parser, puts `libfailstop_preload.so` in front of
//! `LD_PRELOAD`, and `exec`s PROGRAM (same PID, no process in between).

use crate::duration;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints `failstop: <message>` and that the program was not started;
/// returns the usage status.
fn refuse(message: &str) -> ExitCode {
    eprintln!("failstop: {message}");
    eprintln!("failstop: run: the program was not started (see `failstop help run`)");
    ExitCode::from(crate::EXIT_USAGE)
}

/// The preload library's file name.
pub(crate) const PRELOAD_FILE: &str = "libfailstop_preload.so";

/// What an option's value is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `300ms`, `1s`, `2min`: given to the variable in milliseconds.
    Duration,
    /// `--flag` alone means true; `--flag=VALUE` takes the library's booleans.
    Bool,
    /// Passed as given; the library checks it.
    Text,
}

/// One option of `run` and the `FAILSTOP_*` variable it sets.
struct Setting {
    option: &'static str,
    var: &'static str,
    kind: Kind,
    /// The value's name in the help.
    value: &'static str,
}

/// An option for every variable in `failstop::ENV_VARS` (a unit test
/// checks that none is missing).
const SETTINGS: &[Setting] = &[
    Setting { option: "cpu-budget", var: "FAILSTOP_CPU_BUDGET_MS", kind: Kind::Duration, value: "DURATION" },
    Setting { option: "warn-after", var: "FAILSTOP_WARN_MS", kind: Kind::Duration, value: "DURATION" },
    Setting { option: "stall-budget", var: "FAILSTOP_STALL_BUDGET_MS", kind: Kind::Duration, value: "DURATION" },
    Setting { option: "poll-budget", var: "FAILSTOP_POLL_BUDGET_MS", kind: Kind::Duration, value: "DURATION" },
    Setting { option: "dump-timeout", var: "FAILSTOP_DUMP_TIMEOUT_MS", kind: Kind::Duration, value: "DURATION" },
    Setting { option: "action", var: "FAILSTOP_ACTION", kind: Kind::Text, value: "ACTION" },
    Setting { option: "signal", var: "FAILSTOP_SIGNAL", kind: Kind::Text, value: "SIGNAL" },
    Setting { option: "dump-path", var: "FAILSTOP_DUMP_PATH", kind: Kind::Text, value: "PATH" },
    Setting { option: "systemd", var: "FAILSTOP_SYSTEMD", kind: Kind::Text, value: "auto|off" },
    Setting { option: "disable", var: "FAILSTOP_DISABLE", kind: Kind::Bool, value: "" },
    Setting { option: "abort-under-debugger", var: "FAILSTOP_ABORT_UNDER_DEBUGGER", kind: Kind::Bool, value: "" },
    Setting { option: "panic-is-verdict", var: "FAILSTOP_PANIC_IS_VERDICT", kind: Kind::Bool, value: "" },
];

/// `failstop help run`.
pub(crate) fn help() -> String {
    let mut out = String::from(
        "Usage: failstop run [OPTIONS] [--] PROGRAM [ARGS...]\n\n\
         Runs PROGRAM with libfailstop_preload.so in LD_PRELOAD and the FAILSTOP_* variables the\n\
         options set. The settings are checked first, with the library's own parser: a bad one\n\
         is reported (naming the option and what it allows) with exit status 2, and PROGRAM is\n\
         not started. failstop then execs PROGRAM: same PID, no process left in between, so a\n\
         supervisor sees PROGRAM itself. FAILSTOP_* variables already in the environment apply\n\
         too; an option overrides its variable.\n\nOptions:\n",
    );
    for s in SETTINGS {
        let left = match s.kind {
            Kind::Bool => format!("--{}[=BOOL]", s.option),
            _ => format!("--{} {}", s.option, s.value),
        };
        let var = failstop::ENV_VARS.iter().find(|v| v.name == s.var);
        let meaning = var.map_or("", |v| v.meaning.trim_end_matches('.'));
        let (allowed, unit) = match s.kind {
            Kind::Duration => ("300ms, 1s, 1.5s, 2min (1ms to 1440min)".to_string(), " ms"),
            _ => (var.map_or(String::new(), |v| v.allowed.to_string()), ""),
        };
        let default = var.map_or("", |v| v.default);
        let unit = if default.bytes().all(|b| b.is_ascii_digit()) { unit } else { "" };
        out.push_str(&format!(
            "  {left}\n      sets {} (default {default}{unit}): {meaning}\n      allowed: {allowed}\n",
            s.var
        ));
    }
    out.push_str(&format!(
        "  {}\n      the preload library (default: the first of {})\n\
         \nLD_PRELOAD: libfailstop_preload.so is put in front of any LD_PRELOAD already set (which is\n\
         kept), so that the program's waits reach failstop's interposer first, whatever the other\n\
         preloaded libraries wrap; an earlier libfailstop_preload.so in it is dropped (a library\n\
         preloaded twice would start two watchdogs).\n\
         \nRefused (status 2), since the preload could not reach them and they would run\n\
         unprotected: a statically linked program, a set-user-ID or set-group-ID one, one of\n\
         the other ELF class.\n\
         \nExit status: the program's own; 2 for a bad option or setting (the program is not\n\
         started); 126 when PROGRAM cannot be executed, 127 when it is not found.\n",
        "--preload PATH",
        preload_candidates().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ));
    out
}

/// Runs `failstop run ARGS`: returns only on an error (the program runs in
/// this process's place).
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let mut preload: Option<PathBuf> = None;
    // (setting, the value as given, the value for the variable)
    let mut given: Vec<(&'static Setting, OsString, OsString)> = Vec::new();
    let mut rest = args.into_iter();
    let mut program: Option<OsString> = None;
    while let Some(arg) = rest.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            program = rest.next();
            break;
        }
        if bytes == b"-h" || bytes == b"--help" {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        let Some(long) = bytes.strip_prefix(b"--") else {
            if bytes.starts_with(b"-") {
                return refuse(&format!(
                    "run: unknown option {arg:?}; allowed: the --options of `failstop help run`, then -- PROGRAM"
                ));
            }
            program = Some(arg);
            break;
        };
        let (name, inline) = match long.iter().position(|&b| b == b'=') {
            Some(i) => (&long[..i], Some(OsStr::from_bytes(&long[i + 1..]).to_os_string())),
            None => (long, None),
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if name == "preload" {
            let Some(value) = inline.or_else(|| rest.next()) else {
                return refuse("run: --preload needs a value; allowed: the path of libfailstop_preload.so");
            };
            preload = Some(PathBuf::from(value));
            continue;
        }
        let Some(setting) = SETTINGS.iter().find(|s| s.option == name) else {
            let known: Vec<String> = SETTINGS.iter().map(|s| format!("--{}", s.option)).collect();
            return refuse(&format!(
                "run: unknown option --{name}; allowed: {}, --preload, then -- PROGRAM [ARGS...]",
                known.join(", ")
            ));
        };
        let raw = match (setting.kind, inline) {
            (Kind::Bool, None) => OsString::from("1"),
            (_, Some(v)) => v,
            (_, None) => match rest.next() {
                Some(v) => v,
                None => return refuse(&format!("run: --{name} needs a value ({})", setting.value)),
            },
        };
        let value = if setting.kind == Kind::Duration {
            let Some(text) = raw.to_str() else {
                return refuse(&format!("run: --{name} {raw:?}: not valid UTF-8; allowed: {}", duration::ALLOWED));
            };
            match duration::parse_ms(text) {
                Ok(ms) => OsString::from(ms.to_string()),
                Err(why) => {
                    return refuse(&format!("run: --{name} {text:?}: {why}; allowed: {}", duration::ALLOWED));
                }
            }
        } else {
            raw.clone()
        };
        given.retain(|(s, _, _)| s.option != setting.option);
        given.push((setting, raw, value));
    }
    let Some(program) = program else {
        return refuse("run: no program given; usage: failstop run [OPTIONS] -- PROGRAM [ARGS...]");
    };
    let program_args: Vec<OsString> = rest.collect();

    // The environment the program will get, checked by the library's parser.
    let mut env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(n, _)| !given.iter().any(|(s, _, _)| n.as_bytes() == s.var.as_bytes())).collect();
    for (s, _, value) in &given {
        env.push((OsString::from(s.var), value.clone()));
    }
    if let Err(err) = failstop::Config::new().with_vars(env.iter().cloned()) {
        return refuse(&format!("run: {}", name_options(err.message(), &given)));
    }

    let preload = match preload {
        Some(p) => match check_preload(&p) {
            Ok(p) => p,
            Err(why) => return refuse(&format!("run: --preload {}: {why}", p.display())),
        },
        None => match find_preload() {
            Ok(p) => p,
            Err(why) => return refuse(&format!("run: {why}")),
        },
    };
    let Some(resolved) = resolve_program(&program) else {
        eprintln!("failstop: run: {program:?}: not found (in PATH, or as a path)");
        return ExitCode::from(127);
    };
    if let Err(why) = check_program(&resolved, &preload) {
        return refuse(&format!("run: {}: {why}", resolved.display()));
    }
    let ld_preload = ld_preload_value(&preload, std::env::var_os("LD_PRELOAD"));

    let mut command = std::process::Command::new(&resolved);
    command.arg0(&program).args(&program_args).env("LD_PRELOAD", ld_preload);
    for (s, _, value) in &given {
        command.env(s.var, value);
    }
    let err = command.exec();
    eprintln!("failstop: run: cannot execute {}: {err}", resolved.display());
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}

/// The library's message with each variable an option set named by its
/// option too: `--cpu-budget "5ms" (FAILSTOP_CPU_BUDGET_MS="5")`.
fn name_options(message: &str, given: &[(&'static Setting, OsString, OsString)]) -> String {
    let mut out = message.to_string();
    for (s, raw, value) in given {
        let from = format!("{}={:?}", s.var, value);
        let to = format!("--{} {:?} ({from})", s.option, raw);
        out = out.replacen(&from, &to, 1);
    }
    if out == message && !given.iter().any(|(s, _, _)| message.contains(s.var)) {
        out.push_str(" (from the environment)");
    }
    out
}

/// The multiarch directory of this target (`x86_64-linux-gnu`), as Debian
/// names it.
fn multiarch() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i386",
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        other => other,
    };
    let abi = if cfg!(all(target_arch = "arm", target_abi = "eabihf")) { "gnueabihf" } else { "gnu" };
    format!("{arch}-linux-{abi}")
}

/// Where the preload library may be, beside this command, in order:
/// the build tree (`target/<profile>/`, where cargo puts both), then
/// `PREFIX/lib/<multiarch>/` (Debian), `PREFIX/lib64/`, `PREFIX/lib/`
/// (`scripts/install.sh`) for a command in `PREFIX/bin/`.
pub(crate) fn preload_candidates() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else { return Vec::new() };
    let Some(dir) = exe.parent() else { return Vec::new() };
    let mut out = vec![dir.join(PRELOAD_FILE)];
    if let Some(prefix) = dir.parent() {
        for lib in [format!("lib/{}", multiarch()), "lib64".to_string(), "lib".to_string()] {
            out.push(prefix.join(lib).join(PRELOAD_FILE));
        }
    }
    out
}

/// The first of [`preload_candidates`] that exists.
pub(crate) fn find_preload() -> Result<PathBuf, String> {
    let candidates = preload_candidates();
    for c in &candidates {
        if c.is_file() {
            return check_preload(c);
        }
    }
    let exe = std::env::current_exe().map(|e| e.display().to_string()).unwrap_or_else(|_| "failstop".into());
    Err(format!(
        "{PRELOAD_FILE} not found beside {exe} (looked for {}); give its path with --preload PATH",
        candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// `path` made absolute (the program may change directory before it
/// starts children), if it is a readable file whose path `LD_PRELOAD` can
/// carry.
fn check_preload(path: &Path) -> Result<PathBuf, String> {
    let abs = std::fs::canonicalize(path).map_err(|e| format!("cannot use it: {e}"))?;
    std::fs::File::open(&abs).map_err(|e| format!("cannot read {}: {e}", abs.display()))?;
    if !abs.is_file() {
        return Err(format!("{} is not a file; allowed: the path of {PRELOAD_FILE}", abs.display()));
    }
    if abs.as_os_str().as_bytes().iter().any(|&b| b == b':' || b == b' ') {
        return Err(format!(
            "{} contains ':' or ' ', which LD_PRELOAD takes as separators; allowed: a path without them",
            abs.display()
        ));
    }
    Ok(abs)
}

/// `LD_PRELOAD` for the program: ours first, then the entries already
/// there but any earlier `libfailstop_preload.so`.
fn ld_preload_value(ours: &Path, existing: Option<OsString>) -> OsString {
    let mut out = ours.as_os_str().as_bytes().to_vec();
    if let Some(existing) = existing {
        for entry in existing.as_bytes().split(|&b| b == b':' || b == b' ') {
            if entry.is_empty() || Path::new(OsStr::from_bytes(entry)).file_name() == Some(OsStr::new(PRELOAD_FILE)) {
                continue;
            }
            out.push(b':');
            out.extend_from_slice(entry);
        }
    }
    OsString::from(OsStr::from_bytes(&out))
}

/// PROGRAM as `execvp` would find it: a name with a `/` as is, else the
/// first executable file of that name in `PATH`.
fn resolve_program(program: &OsStr) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Refuses a program the dynamic loader would start without the preload,
/// which would then run unprotected while the operator believes it is
/// protected: a statically linked one, one of another ELF class, or a
/// set-user-ID / set-group-ID one (secure-execution mode ignores
/// `LD_PRELOAD` paths with a slash). A script (`#!`) is fine: its
/// interpreter is loaded with the preload.
fn check_program(program: &Path, preload: &Path) -> Result<(), String> {
    let Ok(meta) = program.metadata() else { return Ok(()) }; // exec reports it
    let mode = meta.permissions().mode();
    // SAFETY: geteuid and getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    use std::os::unix::fs::MetadataExt;
    if (mode & 0o4000 != 0 && meta.uid() != euid) || (mode & 0o2000 != 0 && meta.gid() != egid) {
        return Err("set-user-ID or set-group-ID: the dynamic loader would ignore LD_PRELOAD (secure-execution \
                    mode) and the program would run unprotected; allowed: a program that is not set-ID, or run \
                    failstop as that user"
            .to_string());
    }
    let Some(head) = elf_head(program) else { return Ok(()) };
    if !head.dynamic {
        return Err("statically linked (no program interpreter): LD_PRELOAD has no effect on it and it would run \
                    unprotected; allowed: a dynamically linked program"
            .to_string());
    }
    if let Some(ours) = elf_head(preload)
        && ours.class != head.class
    {
        return Err(format!(
            "a {}-bit program, and {} is {}-bit: the dynamic loader would skip the preload and the program would \
             run unprotected; allowed: a {}-bit program, or --preload with a {}-bit build",
            head.class,
            preload.display(),
            ours.class,
            ours.class,
            head.class
        ));
    }
    Ok(())
}

/// What `run` needs of an ELF file's header.
struct ElfHead {
    /// 32 or 64.
    class: u32,
    /// Whether it has a program interpreter (`PT_INTERP`): dynamically linked.
    dynamic: bool,
}

/// The ELF header and program headers of a little-endian ELF file; `None`
/// for anything else (a script, another byte order).
fn elf_head(path: &Path) -> Option<ElfHead> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 64];
    f.read_exact(&mut h).ok()?;
    if &h[..4] != b"\x7fELF" || h[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let (class, phoff, phentsize, phnum) = match h[4] {
        1 => (32, u64::from(u32_at(&h, 0x1c)), u16_at(&h, 0x2a), u16_at(&h, 0x2c)),
        2 => (64, u64_at(&h, 0x20), u16_at(&h, 0x36), u16_at(&h, 0x38)),
        _ => return None,
    };
    if phentsize < 4 || phnum == 0 {
        return Some(ElfHead { class, dynamic: false });
    }
    let mut table = vec![0u8; usize::from(phentsize) * usize::from(phnum)];
    f.seek(SeekFrom::Start(phoff)).ok()?;
    f.read_exact(&mut table).ok()?;
    const PT_INTERP: u32 = 3;
    let dynamic = table.chunks_exact(usize::from(phentsize)).any(|ph| u32_at(ph, 0) == PT_INTERP);
    Some(ElfHead { class, dynamic })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_has_an_option() {
        for v in failstop::ENV_VARS {
            assert!(SETTINGS.iter().any(|s| s.var == v.name), "no `run` option sets {}", v.name);
        }
        for s in SETTINGS {
            assert!(failstop::ENV_VARS.iter().any(|v| v.name == s.var), "{} is not a failstop variable", s.var);
        }
    }

    #[test]
    fn ld_preload_ours_first_and_once() {
        let ours = Path::new("/usr/lib/x/libfailstop_preload.so");
        assert_eq!(ld_preload_value(ours, None), OsString::from("/usr/lib/x/libfailstop_preload.so"));
        let kept = ld_preload_value(ours, Some("/a/libother.so /old/libfailstop_preload.so:libz.so".into()));
        assert_eq!(kept, OsString::from("/usr/lib/x/libfailstop_preload.so:/a/libother.so:libz.so"));
    }

    #[test]
    fn options_named_in_messages() {
        let s = &SETTINGS[0];
        let given = vec![(s, OsString::from("5ms"), OsString::from("5"))];
        let m = name_options("FAILSTOP_CPU_BUDGET_MS=\"5\": must be greater than warn_after=100ms", &given);
        assert!(m.starts_with("--cpu-budget \"5ms\" (FAILSTOP_CPU_BUDGET_MS=\"5\"): must"), "{m}");
        assert!(name_options("FAILSTOP_ACTION=\"x\": unknown action", &[]).ends_with("(from the environment)"));
    }

    #[test]
    fn elf_heads() {
        let me = elf_head(&std::env::current_exe().unwrap()).expect("this test is ELF");
        assert_eq!(me.class, 64);
        assert!(me.dynamic);
        assert!(elf_head(Path::new("/etc/passwd")).is_none());
    }
}
