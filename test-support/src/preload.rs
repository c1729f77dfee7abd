//! Shared by the tests that run programs under `LD_PRELOAD`: where
//! `libfailstop_preload.so` is, a free port for a server, and how to read
//! the verdict line of a dump.

use std::path::PathBuf;

/// A TCP port free on 127.0.0.1 now (the kernel's choice), for a server a
/// test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().unwrap().port()
}

/// `libfailstop_preload.so` as built by this `cargo test` (or `cargo build`):
/// `target/<profile>/libfailstop_preload.so` or its copy in `deps/`,
/// whichever is newer. The root package's `default-members` make a plain
/// `cargo test` build it.
pub fn preload_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.ancestors().find(|p| p.file_name().is_some_and(|n| n == "deps")).expect("deps dir");
    let profile = deps.parent().expect("profile dir");
    let file = "libfailstop_preload.so";
    [profile.join(file), deps.join(file)]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "{file} not found next to {exe:?}: run `cargo test` at the workspace root \
                 (or `cargo build -p failstop-preload` first)"
            )
        })
}

/// The verdict line of a dump: `failstop: <kind>: thread "<name>" (tid N) ...`,
/// or `thread "<name>" (registered as "<registered>") (tid N) ...` when the
/// thread's `comm` changed after it registered.
#[derive(Debug, PartialEq, Eq)]
pub struct VerdictLine {
    pub kind: String,
    /// The thread's `comm` when the dump was written.
    pub name: String,
    /// The name it registered under, when not `name`.
    pub registered: Option<String>,
    pub tid: i32,
    pub line: String,
}

/// Finds the one verdict line (`stuck` or `blocked`) in `text`.
pub fn verdict_line(text: &str) -> Option<VerdictLine> {
    let mut found = text.lines().filter_map(|l| {
        let (kind, rest) = l.strip_prefix("failstop: ")?.split_once(": thread \"")?;
        if kind != "stuck" && kind != "blocked" {
            return None;
        }
        let (names, rest) = rest.split_once(" (tid ")?;
        let (tid, _) = rest.split_once(')')?;
        let (name, registered) = match names.strip_suffix("\")").and_then(|n| n.split_once("\" (registered as \"")) {
            Some((n, r)) => (n.to_string(), Some(r.to_string())),
            None => (names.strip_suffix('"')?.to_string(), None),
        };
        Some(VerdictLine { kind: kind.into(), name, registered, tid: tid.parse().ok()?, line: l.into() })
    });
    let first = found.next();
    assert!(found.next().is_none(), "more than one verdict line in:\n{text}");
    first
}

/// The figure of a verdict line, in ms: CPU without progress (`stuck`:
/// "used X ms of CPU") or wall time without progress (`blocked`: "made no
/// progress for X ms").
pub fn verdict_ms(v: &VerdictLine) -> f64 {
    let after = if v.kind == "stuck" { " used " } else { " made no progress for " };
    let rest = v.line.split_once(after).map(|(_, r)| r).unwrap_or_else(|| panic!("no figure in {:?}", v.line));
    rest.split_once(" ms").and_then(|(n, _)| n.parse().ok()).unwrap_or_else(|| panic!("bad figure in {:?}", v.line))
}
