//! `failstop symbolize [--debug-dir DIR]... DUMP`: a dump with its raw
//! frames (`#0 0x56366c61f3ae redis-check-rdb+0x1613ae (build-id b2bc...)`)
//! given function, file and line, from the files of this machine whose
//! build-id matches: a debug file found by build-id
//! (`DIR/.build-id/xx/yyyy.debug`, then `/usr/lib/debug/.build-id/...`),
//! else the module itself at the path of the dump's module table. Frames
//! that nothing resolves stay as they are, with a note why.

use crate::elf::Debug;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `failstop help symbolize`.
pub(crate) const HELP: &str = "\
Usage: failstop symbolize [--debug-dir DIR]... DUMP

Rewrites the raw frames of a failstop dump (DUMP: a file, or - for standard input) with
function, file and line, on standard output; everything else is copied as it is. A frame
`#0 0xADDR MODULE+0xOFFSET (build-id HEX)` is looked up in the first file with that
build-id among:

  DIR/.build-id/HE/X.debug       for each --debug-dir DIR, in order (also DIR/HE/X.debug)
  /usr/lib/debug/.build-id/HE/X.debug   (Debian's -dbgsym and -dbg packages)
  the module's own file, at the path the dump's module table gives

preferring a file with DWARF (file and line) over one with only a symbol table (function
and offset). A debug file split by dwz (Debian's -dbgsym packages) needs its supplementary
file, looked for at the path it names, then by build-id in the same directories. A frame nothing resolves stays as it is, with a note why; a summary of what
was used goes to standard error.

Exit status: 0, also when frames stay unresolved; 1 when DUMP cannot be read; 2 for a
usage error.
";

/// The standard place of debug files by build-id.
const SYSTEM_DEBUG_DIR: &str = "/usr/lib/debug";

/// Runs `failstop symbolize ARGS`.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let mut debug_dirs: Vec<PathBuf> = Vec::new();
    let mut input: Option<OsString> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--debug-dir" {
            let Some(d) = it.next() else {
                return crate::usage_error("symbolize: --debug-dir needs a value; allowed: a directory");
            };
            debug_dirs.push(PathBuf::from(d));
        } else if let Some(d) = s.strip_prefix("--debug-dir=") {
            debug_dirs.push(PathBuf::from(d));
        } else if s == "-h" || s == "--help" {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        } else if s.starts_with('-') && s != "-" {
            return crate::usage_error(&format!(
                "symbolize: unknown option {s:?}; allowed: --debug-dir DIR, then DUMP (a file, or - for stdin)"
            ));
        } else if input.is_some() {
            return crate::usage_error(&format!("symbolize: a second DUMP {s:?}; allowed: one file, or -"));
        } else {
            input = Some(a);
        }
    }
    let Some(input) = input else {
        return crate::usage_error("symbolize: no DUMP given; allowed: a file, or - for standard input");
    };
    for d in &debug_dirs {
        if !d.is_dir() {
            return crate::usage_error(&format!("symbolize: --debug-dir {}: not a directory", d.display()));
        }
    }
    let mut bytes = Vec::new();
    let read = if input == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(&input).and_then(|mut f| f.read_to_end(&mut bytes)).map(|_| ())
    };
    if let Err(e) = read {
        eprintln!("failstop: symbolize: cannot read {}: {e}", Path::new(&input).display());
        return ExitCode::from(1);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut s = Symbolizer::new(debug_dirs, &text);
    let out = s.rewrite(&text);
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::from(1);
    }
    eprint!("{}", s.summary());
    ExitCode::SUCCESS
}

/// A raw frame line of a dump.
struct FrameLine<'a> {
    indent: &'a str,
    /// The frame's number (`#N`): 0 is the exact program counter, the
    /// others are return addresses.
    index: u64,
    addr: &'a str,
    module: &'a str,
    offset: u64,
    build_id: Option<&'a str>,
}

/// Parses `    #N 0xADDR MODULE+0xOFF[ (build-id HEX)]`.
fn parse_frame(line: &str) -> Option<FrameLine<'_>> {
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let rest = body.strip_prefix('#')?;
    let (index, rest) = rest.split_once(' ')?;
    let index: u64 = index.parse().ok()?;
    let (addr, rest) = rest.split_once(' ')?;
    if !addr.starts_with("0x") || u64::from_str_radix(&addr[2..], 16).is_err() {
        return None;
    }
    let (place, build_id) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (build-id ")) {
        Some((place, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) => (place, Some(id)),
        _ => (rest, None),
    };
    let (module, offset) = place.rsplit_once("+0x")?;
    let offset = u64::from_str_radix(offset, 16).ok()?;
    if module.is_empty() {
        return None;
    }
    Some(FrameLine { indent, index, addr, module, offset, build_id })
}

/// A module-table line: (build-id, path).
fn parse_module(line: &str) -> Option<(Option<String>, String)> {
    let rest = line.trim_start().strip_prefix("module base=")?;
    let (_, rest) = rest.split_once(" build-id=")?;
    let (id, rest) = rest.split_once(' ')?;
    let (_, path) = rest.split_once(' ')?; // after exec=...
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    let id = (id != "none").then(|| id.to_ascii_lowercase());
    Some((id, path.to_string()))
}

/// What became of one build-id (or module, without one).
enum Source {
    Found(Debug),
    Missing(String),
}

struct Symbolizer {
    debug_dirs: Vec<PathBuf>,
    /// The module table: build-id -> path, and basename -> path.
    by_id: HashMap<String, String>,
    by_name: HashMap<String, String>,
    cache: HashMap<String, Source>,
    /// Key order of first use, for the summary.
    order: Vec<String>,
    resolved: usize,
    unresolved: usize,
}

impl Symbolizer {
    fn new(mut debug_dirs: Vec<PathBuf>, text: &str) -> Symbolizer {
        debug_dirs.push(PathBuf::from(SYSTEM_DEBUG_DIR));
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        for (id, path) in text.lines().filter_map(parse_module) {
            let name = Path::new(&path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(id) = id {
                by_id.entry(id).or_insert_with(|| path.clone());
            }
            by_name.entry(name).or_insert(path);
        }
        Symbolizer { debug_dirs, by_id, by_name, cache: HashMap::new(), order: Vec::new(), resolved: 0, unresolved: 0 }
    }

    /// Every line of `text`, raw frames rewritten.
    fn rewrite(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() * 2);
        for line in text.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            match parse_frame(body) {
                Some(f) => {
                    out.push_str(&self.frame(&f, body));
                    out.push_str(nl);
                }
                None => out.push_str(line),
            }
        }
        out
    }

    /// One frame's lines (several when functions were inlined).
    fn frame(&mut self, f: &FrameLine<'_>, raw: &str) -> String {
        let key = match f.build_id {
            Some(id) => id.to_ascii_lowercase(),
            None => format!("module {}", f.module),
        };
        if !self.cache.contains_key(&key) {
            let source = self.find(f.build_id.map(str::to_ascii_lowercase).as_deref(), f.module);
            self.cache.insert(key.clone(), source);
            self.order.push(key.clone());
        }
        let place = format!("{}+{:#x}", f.module, f.offset);
        let debug = match &self.cache[&key] {
            Source::Found(d) => d,
            Source::Missing(why) => {
                self.unresolved += 1;
                return format!("{raw}  [not symbolized: {why}]");
            }
        };
        // A return address is looked up one byte back, inside its call.
        let probe = if f.index == 0 { f.offset } else { f.offset.saturating_sub(1) };
        let symbols = debug.lookup(probe);
        if symbols.is_empty() {
            self.unresolved += 1;
            let why = if debug.has_dwarf() {
                format!("no function at {place} in {}", debug.path.display())
            } else {
                format!(
                    "no symbol covers {place} in {} (a symbol table only, without local functions: a debug file \
                     with its build-id names them)",
                    debug.path.display()
                )
            };
            return format!("{raw}  [not symbolized: {why}]");
        }
        self.resolved += 1;
        let n = symbols.len();
        let mut lines = Vec::with_capacity(n);
        for (k, s) in symbols.into_iter().enumerate() {
            let mut line = format!("{}#{} {} {}", f.indent, f.index, f.addr, s.function);
            if let Some(off) = s.symbol_offset {
                line.push_str(&format!("+{off:#x}"));
            }
            if let Some(loc) = &s.location {
                line.push_str(&format!(" at {loc}"));
            }
            if k + 1 < n {
                line.push_str(" (inlined)");
            } else if s.location.is_none() && debug.has_dwarf() {
                line.push_str(&format!(" ({place}; no line information for it)"));
            } else if s.location.is_none() {
                line.push_str(&format!(" ({place}; no file:line: {} has no DWARF)", debug.path.display()));
            } else {
                line.push_str(&format!(" ({place})"));
            }
            lines.push(line);
        }
        lines.join("\n")
    }

    /// The best file for `build_id` (or, without one, the module table's
    /// file named `module`, unverified).
    fn find(&self, build_id: Option<&str>, module: &str) -> Source {
        let Some(id) = build_id else {
            return match self.by_name.get(module) {
                Some(path) => match Debug::load(Path::new(path), &self.debug_dirs) {
                    Ok((_, d)) if d.is_useful() => Source::Found(d),
                    Ok(_) => Source::Missing(format!("no build-id in the dump, and {path} has no symbols")),
                    Err(e) => Source::Missing(format!("no build-id in the dump, and {path}: {e}")),
                },
                None => Source::Missing(format!("no build-id in the dump, and no module {module} in its module table")),
            };
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        if id.len() > 2 {
            for d in &self.debug_dirs {
                candidates.push(d.join(".build-id").join(&id[..2]).join(format!("{}.debug", &id[2..])));
                candidates.push(d.join(&id[..2]).join(format!("{}.debug", &id[2..])));
            }
        }
        if let Some(path) = self.by_id.get(id) {
            candidates.push(PathBuf::from(path));
        }
        let mut looked = Vec::new();
        let mut symbols_only: Option<Debug> = None;
        for c in candidates {
            if !c.exists() {
                // Only the debug directories' files are worth naming.
                if c.to_string_lossy().contains(".build-id") || self.by_id.get(id).is_some_and(|p| Path::new(p) == c) {
                    looked.push(format!("{} (absent)", c.display()));
                }
                continue;
            }
            match Debug::load(&c, &self.debug_dirs) {
                Ok((Some(found), d)) if found == id => {
                    if d.has_dwarf() {
                        return Source::Found(d);
                    }
                    if d.is_useful() && symbols_only.is_none() {
                        symbols_only = Some(d);
                    } else {
                        looked.push(format!("{} (no symbols: stripped)", c.display()));
                    }
                }
                Ok((found, _)) => {
                    looked.push(format!("{} (build-id {})", c.display(), found.as_deref().unwrap_or("none")))
                }
                Err(e) => looked.push(format!("{} ({e})", c.display())),
            }
        }
        if let Some(d) = symbols_only {
            return Source::Found(d);
        }
        // Keep the note short: the system directory's path is implied.
        let looked: Vec<String> = looked.into_iter().collect();
        Source::Missing(format!(
            "no file with build-id {id} here{}",
            if looked.is_empty() { String::new() } else { format!(" (looked at {})", looked.join(", ")) }
        ))
    }

    /// What was used for each build-id, for standard error.
    fn summary(&self) -> String {
        let mut out =
            format!("failstop: symbolize: {} frames resolved, {} left as they were\n", self.resolved, self.unresolved);
        for key in &self.order {
            let what = match &self.cache[key] {
                Source::Found(d) => {
                    let sup = match &d.sup {
                        None => String::new(),
                        Some(Ok(p)) => format!(", with the dwz file {}", p.display()),
                        Some(Err(why)) => format!("; {why}"),
                    };
                    let kind = if d.has_dwarf() { "debug info" } else { "symbol table only" };
                    format!("{} ({kind}{sup})", d.path.display())
                }
                Source::Missing(why) => format!("not symbolized: {why}"),
            };
            let label = if key.starts_with("module ") { key.clone() } else { format!("build-id {key}") };
            out.push_str(&format!("failstop: symbolize: {label}: {what}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_modules_parse() {
        let f = parse_frame("    #3 0x56366c61f3ae redis-check-rdb+0x1613ae (build-id b2bcad6d)").unwrap();
        assert_eq!(
            (f.indent, f.index, f.addr, f.module, f.offset),
            ("    ", 3, "0x56366c61f3ae", "redis-check-rdb", 0x1613ae)
        );
        assert_eq!(f.build_id, Some("b2bcad6d"));
        let f = parse_frame("    #0 0x7f00 my prog+x+0x10").unwrap();
        assert_eq!((f.module, f.offset, f.build_id), ("my prog+x", 0x10, None));
        assert!(parse_frame("    #0 0x7f00 ??").is_none());
        assert!(parse_frame("    #0 0x5602eaee0844 demo::spin_forever at /x/demo.rs:89").is_none());
        assert!(parse_frame("failstop: stuck: thread").is_none());
        let m = parse_module(
            "    module base=0x7f bias=0x7f build-id=93AC exec=0x1-0x2,0x3-0x4 /usr/lib/my lib.so (deleted)",
        )
        .unwrap();
        assert_eq!(m, (Some("93ac".to_string()), "/usr/lib/my lib.so".to_string()));
        let m = parse_module("    module base=0x1 bias=0x1 build-id=none exec=0x1-0x2 [vdso]").unwrap();
        assert_eq!(m, (None, "[vdso]".to_string()));
    }
}
