//! The module map: which file (and build) each code address belongs to,
//! built without the dynamic loader's lock and without `malloc`.
//!
//! # Async-signal-safety contract
//!
//! The dump runs while another thread may hold the malloc lock or the
//! loader's lock (spinning inside a `dl_iterate_phdr` callback, say), so this
//! module never calls `dl_iterate_phdr`, `dladdr`, the allocator or `std::fs`
//! after construction. [`ModuleMap::new_boxed`] allocates once, in normal
//! context; after that [`ModuleMap::refresh`], [`ModuleMap::lookup`],
//! [`ModuleMap::write_frame`] and [`ModuleMap::write_modules`] only issue
//! system calls (`open`/`read`/`close` of `/proc/self/maps`, and the
//! validated reads of [`read_mem`](crate::os::stackwalk::read_mem)) and touch the map's own memory, so they
//! are async-signal-safe and may run on the fatal path. They need
//! [`stackwalk::init`](crate::os::stackwalk::init) to have run where
//! `process_vm_readv` is unavailable (see [`read_mem`](crate::os::stackwalk::read_mem)).
//!
//! Build-ids are read from the ELF images in memory (ELF header at the load
//! base → program headers → `PT_NOTE` segments → `NT_GNU_BUILD_ID`), each
//! read validated, so a module unmapped under our feet yields no build-id
//! rather than a fault.

//!
//! Files: `maps` parses `/proc/self/maps` lines, `elf` reads the images;
//! this file holds the map itself and uses both.

mod elf;
mod maps;

use std::io;

use crate::os::fmt::FixedBuf;
use maps::{LineSplitter, MapsLine, parse_maps_line};

/// Most modules a map holds; more are counted in [`ModuleMap::overflow`].
pub(crate) const MAX_MODULES: usize = 256;
/// Longest path kept per module (longer ones are truncated, and told apart
/// by a hash of the full path).
pub(crate) const MAX_PATH: usize = 256;
/// Executable mappings kept per module.
pub(crate) const MAX_EXEC: usize = 4;
/// Longest build-id kept (GNU build-ids are 20 bytes; 64 covers every hash).
pub(crate) const MAX_BUILD_ID: usize = 64;
/// Executable mappings kept that belong to no file (JIT code, `[vsyscall]`).
pub(crate) const MAX_ANON_EXEC: usize = 64;

/// One file-backed module (an executable or shared object), or `[vdso]`.
pub(crate) struct Module {
    path: [u8; MAX_PATH],
    path_len: usize,
    /// The path did not fit in `path`.
    path_truncated: bool,
    /// FNV-1a of the full path, to tell truncated paths apart.
    path_hash: u64,
    /// The maps line ended in " (deleted)".
    deleted: bool,
    /// Lowest start of a mapping with file offset 0 (the ELF header).
    base: usize,
    has_base: bool,
    /// Lowest start of any mapping of this path, minus its file offset:
    /// the fallback base when no offset-0 mapping exists.
    fallback_base: usize,
    /// Load bias: runtime address minus ELF virtual address.
    bias: usize,
    exec: [(usize, usize); MAX_EXEC],
    n_exec: usize,
    /// Executable mappings beyond [`MAX_EXEC`] (not searchable).
    exec_overflow: usize,
    build_id: [u8; MAX_BUILD_ID],
    build_id_len: usize,
}

impl Module {
    /// The path as in `/proc/self/maps` (without " (deleted)"; possibly
    /// truncated to [`MAX_PATH`] bytes).
    pub(crate) fn path(&self) -> &[u8] {
        &self.path[..self.path_len]
    }

    /// The last component of the path.
    pub(crate) fn basename(&self) -> &[u8] {
        let p = self.path();
        match p.iter().rposition(|&c| c == b'/') {
            Some(i) => &p[i + 1..],
            None => p,
        }
    }

    /// Load base: where file offset 0 is mapped.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Load bias: subtract from a runtime address to get the address in the
    /// ELF file's own numbering (what addr2line/llvm-symbolizer take).
    pub(crate) fn bias(&self) -> usize {
        self.bias
    }

    /// The GNU build-id, if the image has one.
    pub(crate) fn build_id(&self) -> Option<&[u8]> {
        (self.build_id_len > 0).then(|| &self.build_id[..self.build_id_len])
    }

    /// True when the file was deleted (or replaced) after mapping.
    #[cfg(test)]
    pub(crate) fn deleted(&self) -> bool {
        self.deleted
    }

    /// The executable address ranges `[start, end)`.
    pub(crate) fn exec_ranges(&self) -> &[(usize, usize)] {
        &self.exec[..self.n_exec]
    }

    fn contains(&self, addr: usize) -> bool {
        self.exec_ranges().iter().any(|&(s, e)| s <= addr && addr < e)
    }

    fn same_path(&self, path: &[u8], hash: u64) -> bool {
        self.path_hash == hash && self.path_len == path.len().min(MAX_PATH) && self.path() == &path[..self.path_len]
    }

    fn reset(&mut self, path: &[u8], hash: u64, deleted: bool) {
        let n = path.len().min(MAX_PATH);
        self.path[..n].copy_from_slice(&path[..n]);
        self.path_len = n;
        self.path_truncated = n < path.len();
        self.path_hash = hash;
        self.deleted = deleted;
        self.base = 0;
        self.has_base = false;
        self.fallback_base = usize::MAX;
        self.bias = 0;
        self.n_exec = 0;
        self.exec_overflow = 0;
        self.build_id_len = 0;
    }

    fn add_mapping(&mut self, m: &MapsLine<'_>) {
        // The load base is the file's offset-0 mapping just below its code.
        // /proc/self/maps is sorted by address, so that is the last offset-0
        // mapping seen before the first executable one. Another mapping of
        // the same file (a symbolizer reading it, say) is not the image.
        if m.offset == 0 && self.n_exec == 0 && self.exec_overflow == 0 {
            self.base = m.start;
            self.has_base = true;
        }
        self.fallback_base = self.fallback_base.min(m.start.wrapping_sub(m.offset as usize));
        if m.exec {
            if self.n_exec < MAX_EXEC {
                self.exec[self.n_exec] = (m.start, m.end);
                self.n_exec += 1;
            } else {
                self.exec_overflow += 1;
            }
        }
    }
}

/// The modules of this process, in a fixed-size table.
pub(crate) struct ModuleMap {
    modules: [Module; MAX_MODULES],
    len: usize,
    /// Modules that did not fit at the last refresh.
    overflow: usize,
    page_size: usize,
    /// Line assembly buffer for reading `/proc/self/maps`.
    lines: LineSplitter,
    /// Executable mappings of no file, `[start, end)`.
    anon_exec: [(usize, usize); MAX_ANON_EXEC],
    anon_exec_len: usize,
    /// Anonymous executable mappings that did not fit: then every address
    /// counts as possibly executable.
    anon_exec_overflow: bool,
}

impl ModuleMap {
    /// Allocates an empty map (the only allocation this module makes).
    /// Normal context only; call [`refresh`](Self::refresh) to fill it.
    pub(crate) fn new_boxed() -> Box<ModuleMap> {
        // SAFETY: sysconf has no preconditions.
        let ps = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page_size = if ps > 0 { ps as usize } else { 4096 };
        // Build on the heap directly: the map is ~100 KiB, too big to move
        // through a (possibly small) stack.
        let layout = std::alloc::Layout::new::<ModuleMap>();
        // SAFETY: the layout is non-zero-sized. Every field of ModuleMap
        // (integers, bools, byte arrays, tuples of integers) is valid when
        // all-zero, so the zeroed allocation is a valid ModuleMap and
        // Box::from_raw takes ownership with the matching layout.
        let mut map = unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<ModuleMap>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        };
        map.page_size = page_size;
        map
    }

    /// The modules found at the last refresh.
    pub(crate) fn modules(&self) -> &[Module] {
        &self.modules[..self.len]
    }

    /// Modules dropped at the last refresh because the table was full.
    #[cfg(test)]
    pub(crate) fn overflow(&self) -> usize {
        self.overflow
    }

    /// Re-reads `/proc/self/maps` and the build-ids. Never allocates:
    /// async-signal-safe (see the module docs).
    ///
    /// On error the map holds whatever was parsed before it.
    pub(crate) fn refresh(&mut self) -> io::Result<()> {
        self.len = 0;
        self.overflow = 0;
        self.anon_exec_len = 0;
        self.anon_exec_overflow = false;
        self.lines.clear();
        let fd = crate::os::sys::Fd::open(c"/proc/self/maps", libc::O_RDONLY, 0)?;
        let mut res = Ok(());
        loop {
            let n = match crate::os::sys::read_some(fd.raw(), self.lines.space()) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            };
            // Split borrows: the splitter hands out lines of its own buffer
            // while we update the module table.
            let ModuleMap { lines, modules, len, overflow, anon_exec, anon_exec_len, anon_exec_overflow, .. } = self;
            let mut anon = AnonExec { ranges: anon_exec, len: anon_exec_len, overflow: anon_exec_overflow };
            lines.commit(n, |line| {
                if let Some(m) = parse_maps_line(line) {
                    add_line(modules, len, overflow, &m);
                    anon.add(&m);
                }
            });
        }
        let ModuleMap { lines, modules, len, overflow, anon_exec, anon_exec_len, anon_exec_overflow, .. } = self;
        let mut anon = AnonExec { ranges: anon_exec, len: anon_exec_len, overflow: anon_exec_overflow };
        lines.finish(|line| {
            if let Some(m) = parse_maps_line(line) {
                add_line(modules, len, overflow, &m);
                anon.add(&m);
            }
        });
        // Keep only modules with code: data files (locale archives, fonts,
        // caches) mapped by the program are not interesting here.
        compact(&mut self.modules, &mut self.len, |m| m.n_exec > 0 || m.exec_overflow > 0);
        let page = self.page_size;
        for m in &mut self.modules[..self.len] {
            if !m.has_base {
                m.base = m.fallback_base;
            }
            let image = elf::read_image(m.base, page, &mut m.build_id);
            m.bias = image.bias;
            m.build_id_len = image.build_id_len;
        }
        res
    }

    /// The module whose code contains `addr`, and `addr - bias`: the address
    /// to hand to addr2line / llvm-symbolizer together with the module file.
    ///
    /// An address just past the end of a code mapping also matches (a return
    /// address after a call that ends the segment).
    pub(crate) fn lookup(&self, addr: usize) -> Option<(&Module, usize)> {
        let m = self
            .modules()
            .iter()
            .find(|m| m.contains(addr))
            .or_else(|| self.modules().iter().find(|m| addr > 0 && m.contains(addr - 1)))?;
        Some((m, addr.wrapping_sub(m.bias)))
    }

    /// Whether `addr` may be a return address: it lies in (or just past
    /// the end of) an executable mapping at the last refresh. When the map
    /// could not hold every executable mapping, every address may be.
    /// Async-signal-safe.
    pub(crate) fn is_executable(&self, addr: usize) -> bool {
        let in_range = |&(s, e): &(usize, usize)| s <= addr && addr <= e;
        self.lookup(addr).is_some()
            || self.anon_exec[..self.anon_exec_len].iter().any(in_range)
            || self.anon_exec_overflow
            || self.modules().iter().any(|m| m.exec_overflow > 0)
            || self.overflow > 0
    }

    /// How many of `frames` to print: all up to the first return address
    /// (any frame after frame 0, the interrupted program counter) that lies
    /// in no executable mapping. Such a frame comes from code built without
    /// frame pointers, where the walk took a word of data (often text) for
    /// a return address; everything after it is as bogus. Needs a refreshed
    /// map. Async-signal-safe.
    pub(crate) fn plausible_frames(&self, frames: &[usize]) -> usize {
        frames.iter().skip(1).position(|&a| !self.is_executable(a)).map_or(frames.len(), |i| i + 1)
    }

    /// Appends one frame: `0x55d0c3a1b2c3 demo+0x1b2c3 (build-id 4f3a...)`,
    /// or `0x55d0c3a1b2c3 ??` when no module contains the address. The offset
    /// is `addr - bias`. No newline. Async-signal-safe.
    pub(crate) fn write_frame<const N: usize>(&self, out: &mut FixedBuf<N>, addr: usize) {
        out.push_hex(addr as u64);
        match self.lookup(addr) {
            Some((m, off)) => {
                out.push_str(" ");
                out.push_sanitized(m.basename());
                out.push_str("+");
                out.push_hex(off as u64);
                if let Some(id) = m.build_id() {
                    out.push_str(" (build-id ");
                    out.push_hex_bytes(id);
                    out.push_str(")");
                }
            }
            None => out.push_str(" ??"),
        }
    }

    /// Appends the module table, one line per module:
    /// `module base=0x.. bias=0x.. build-id=<hex|none> exec=0x..-0x..[,..] <full path>[ (deleted)]`
    /// (the path last, as it may contain spaces), then a line counting
    /// modules that did not fit, if any. Async-signal-safe.
    pub(crate) fn write_modules<const N: usize>(&self, out: &mut FixedBuf<N>) {
        for m in self.modules() {
            out.push_str("module base=");
            out.push_hex(m.base as u64);
            out.push_str(" bias=");
            out.push_hex(m.bias as u64);
            out.push_str(" build-id=");
            match m.build_id() {
                Some(id) => out.push_hex_bytes(id),
                None => out.push_str("none"),
            }
            out.push_str(" exec=");
            for (i, &(s, e)) in m.exec_ranges().iter().enumerate() {
                if i > 0 {
                    out.push_str(",");
                }
                out.push_hex(s as u64);
                out.push_str("-");
                out.push_hex(e as u64);
            }
            out.push_str(" ");
            out.push_sanitized(m.path());
            if m.path_truncated {
                out.push_str("...");
            }
            if m.deleted {
                out.push_str(" (deleted)");
            }
            out.push_str("\n");
        }
        if self.overflow > 0 {
            out.push_str("modules omitted (table full): ");
            out.push_u64(self.overflow as u64);
            out.push_str("\n");
        }
    }
}

/// The anonymous executable mappings being collected by a refresh.
struct AnonExec<'a> {
    ranges: &'a mut [(usize, usize); MAX_ANON_EXEC],
    len: &'a mut usize,
    overflow: &'a mut bool,
}

impl AnonExec<'_> {
    fn add(&mut self, m: &MapsLine<'_>) {
        if !m.exec || m.path.first() == Some(&b'/') || m.path == b"[vdso]" {
            return; // a module's (the module table has it)
        }
        if *self.len < MAX_ANON_EXEC {
            self.ranges[*self.len] = (m.start, m.end);
            *self.len += 1;
        } else {
            *self.overflow = true;
        }
    }
}

/// Adds one parsed maps line to the table.
fn add_line(modules: &mut [Module; MAX_MODULES], len: &mut usize, overflow: &mut usize, m: &MapsLine<'_>) {
    let path = m.path;
    let file_backed = path.first() == Some(&b'/');
    if !file_backed && path != b"[vdso]" {
        return; // anonymous, [stack], [heap], [vvar], [vsyscall]...
    }
    let hash = fnv1a(path);
    // Mappings of one file are usually adjacent: try the last module first.
    let found = if *len > 0 && modules[*len - 1].same_path(path, hash) {
        Some(*len - 1)
    } else {
        modules[..*len].iter().position(|x| x.same_path(path, hash))
    };
    let idx = match found {
        Some(i) => i,
        None => {
            if *len == MAX_MODULES {
                // Make room by dropping data-only files seen so far (a file's
                // code mapping normally directly follows its header mapping,
                // so keep the most recent module).
                let keep_last = *len - 1;
                let mut i = 0;
                compact(modules, len, |x| {
                    let keep = x.n_exec > 0 || x.exec_overflow > 0 || i == keep_last;
                    i += 1;
                    keep
                });
            }
            if *len == MAX_MODULES {
                *overflow += 1;
                return;
            }
            modules[*len].reset(path, hash, m.deleted);
            *len += 1;
            *len - 1
        }
    };
    modules[idx].add_mapping(m);
}

/// Keeps the modules for which `keep` is true, in order. No allocation.
fn compact(modules: &mut [Module; MAX_MODULES], len: &mut usize, mut keep: impl FnMut(&Module) -> bool) {
    let mut w = 0;
    for r in 0..*len {
        if keep(&modules[r]) {
            if w != r {
                modules.swap(w, r);
            }
            w += 1;
        }
    }
    *len = w;
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h ^= c as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::elf::*;
    use super::maps::*;
    use super::*;

    const SAMPLE: &str = "\
55d0c3a00000-55d0c3a1f000 r--p 00000000 08:01 1234567                    /usr/bin/demo
55d0c3a1f000-55d0c3b00000 r-xp 0001f000 08:01 1234567                    /usr/bin/demo
55d0c4000000-55d0c4021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000001000 r--p 00000000 08:01 42                         /opt/my app/lib foo.so (deleted)
7f0000001000-7f0000002000 r-xp 00001000 08:01 42                         /opt/my app/lib foo.so (deleted)
7f0000002000-7f0000003000 rw-p 00000000 00:00 0 
7f0000003000-7f0000004000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_lines() {
        let lines: Vec<_> = SAMPLE.lines().map(|l| parse_maps_line(l.as_bytes()).unwrap()).collect();
        assert_eq!(
            lines[1],
            MapsLine {
                start: 0x55d0c3a1f000,
                end: 0x55d0c3b00000,
                read: true,
                exec: true,
                offset: 0x1f000,
                inode: 1234567,
                path: b"/usr/bin/demo",
                deleted: false
            }
        );
        assert_eq!(lines[2].path, b"[heap]");
        assert_eq!(lines[3].path, b"/opt/my app/lib foo.so");
        assert!(lines[3].deleted && !lines[3].exec);
        assert!(lines[4].exec);
        assert_eq!(lines[5].path, b"");
        assert_eq!(lines[6].path, b"");
        assert_eq!(lines[6].inode, 0);
        assert_eq!(lines[8].path, b"[vdso]");
        assert_eq!(lines[9].start, 0xffffffffff600000);
        assert!(parse_maps_line(b"").is_none());
        assert!(parse_maps_line(b"zz-10 r-xp 0 0 0").is_none());
        assert!(parse_maps_line(b"10-20 r-xp 0 08:01").is_none());
    }

    fn split_all(text: &[u8], cut: &[usize]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new_boxed();
        let mut out = Vec::new();
        let mut prev = 0;
        for &c in cut.iter().chain(std::iter::once(&text.len())) {
            s.feed(&text[prev..c], |l| out.push(l.to_vec()));
            prev = c;
        }
        s.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_across_chunks() {
        let text = SAMPLE.as_bytes();
        let want: Vec<Vec<u8>> = SAMPLE.lines().map(|l| l.as_bytes().to_vec()).collect();
        // Every single cut point, including inside the path with spaces and
        // right at newlines, and a few multi-cut splits.
        for c in 0..=text.len() {
            assert_eq!(split_all(text, &[c]), want, "cut at {c}");
        }
        assert_eq!(split_all(text, &[1, 2, 3, 100, 101, 300]), want);
        // No trailing newline.
        let t = &text[..text.len() - 1];
        assert_eq!(split_all(t, &[50]), want);
    }

    #[test]
    fn over_long_line_is_truncated() {
        let mut text = Vec::new();
        text.extend_from_slice(b"1000-2000 r-xp 00000000 08:01 7 /");
        text.extend(std::iter::repeat_n(b'x', 3 * LINE_BUF));
        text.push(b'\n');
        text.extend_from_slice(b"3000-4000 r-xp 00000000 08:01 8 /short\n");
        for cut in [10, CHUNK, LINE_BUF + 5] {
            let lines = split_all(&text, &[cut]);
            assert_eq!(lines.len(), 2);
            assert!(lines[0].len() == KEEP && lines[0].starts_with(b"1000-2000 r-xp"));
            assert_eq!(lines[1], b"3000-4000 r-xp 00000000 08:01 8 /short");
        }
    }

    #[test]
    fn table_from_sample() {
        let mut map = ModuleMap::new_boxed();
        let ModuleMap { modules, len, overflow, .. } = &mut *map;
        for l in SAMPLE.lines() {
            add_line(modules, len, overflow, &parse_maps_line(l.as_bytes()).unwrap());
        }
        let paths: Vec<&[u8]> = map.modules().iter().map(|m| m.path()).collect();
        assert_eq!(paths, [&b"/usr/bin/demo"[..], b"/opt/my app/lib foo.so", b"[vdso]"]);
        let demo = &map.modules()[0];
        assert_eq!(demo.base, 0x55d0c3a00000);
        assert_eq!(demo.exec_ranges(), [(0x55d0c3a1f000, 0x55d0c3b00000)]);
        assert!(map.modules()[1].deleted());
        assert_eq!(map.modules()[1].basename(), b"lib foo.so");
    }

    #[test]
    fn table_overflow_is_counted() {
        let mut map = ModuleMap::new_boxed();
        let ModuleMap { modules, len, overflow, .. } = &mut *map;
        for i in 0..MAX_MODULES + 10 {
            let line = format!(
                "{:x}-{:x} r-xp 00000000 08:01 {i} /lib/m{i}.so",
                0x10000 * (i + 1),
                0x10000 * (i + 1) + 0x1000
            );
            add_line(modules, len, overflow, &parse_maps_line(line.as_bytes()).unwrap());
        }
        assert_eq!((map.modules().len(), map.overflow()), (MAX_MODULES, 10));
        let mut out = FixedBuf::<{ 1 << 16 }>::new();
        map.write_modules(&mut out);
        assert!(out.as_str().contains("modules omitted (table full): 10"));
    }

    // --- the live process ------------------------------------------------------

    /// The build-id of an ELF file on disk, from its PT_NOTE segments.
    fn build_id_on_disk(path: &std::path::Path) -> Option<Vec<u8>> {
        let f = std::fs::read(path).unwrap();
        assert_eq!(&f[..4], b"\x7fELF");
        let phoff = u64_at(&f, 32) as usize;
        let phentsize = u16_at(&f, 54) as usize;
        let phnum = u16_at(&f, 56) as usize;
        for i in 0..phnum {
            let ph = &f[phoff + i * phentsize..];
            if u32_at(ph, 0) != PT_NOTE {
                continue;
            }
            let (off, size) = (u64_at(ph, 8) as usize, u64_at(ph, 32) as usize);
            let align = if u64_at(ph, 48) == 8 { 8 } else { 4 };
            let pad = |n: usize| (n + align - 1) & !(align - 1);
            let notes = &f[off..off + size];
            let mut p = 0;
            while p + 12 <= notes.len() {
                let (namesz, descsz, ty) =
                    (u32_at(notes, p) as usize, u32_at(notes, p + 4) as usize, u32_at(notes, p + 8));
                let name = &notes[p + 12..p + 12 + namesz];
                let desc_at = p + 12 + pad(namesz);
                if ty == NT_GNU_BUILD_ID && name == b"GNU\0" {
                    return Some(notes[desc_at..desc_at + descsz].to_vec());
                }
                p = desc_at + pad(descsz);
            }
        }
        None
    }

    fn live_map() -> Box<ModuleMap> {
        crate::os::stackwalk::init().unwrap();
        let mut map = ModuleMap::new_boxed();
        map.refresh().unwrap();
        map
    }

    #[test]
    fn finds_self_and_libc_with_build_ids() {
        let map = live_map();
        let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
        let me = map
            .modules()
            .iter()
            .find(|m| m.path() == exe.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|| panic!("{} not in the map", exe.display()));
        let on_disk = build_id_on_disk(&exe);
        assert!(on_disk.is_some(), "test binary has no build-id");
        assert_eq!(me.build_id().map(<[u8]>::to_vec), on_disk);

        // libc: found through the address of a libc function.
        let (libc_m, off) = map.lookup(libc::getpid as *const () as usize).expect("libc");
        assert!(
            String::from_utf8_lossy(libc_m.basename()).starts_with("libc"),
            "{:?}",
            String::from_utf8_lossy(libc_m.path())
        );
        assert_eq!(off, libc::getpid as *const () as usize - libc_m.bias());
        let libc_path =
            std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(libc_m.path()));
        assert_eq!(libc_m.build_id().map(<[u8]>::to_vec), build_id_on_disk(libc_path));

        // The test executable is a PIE (bias = base) or ET_EXEC (bias 0).
        assert!(me.bias() == me.base() || me.bias() == 0);

        // vdso, when the kernel maps one.
        if let Some(v) = map.modules().iter().find(|m| m.path() == b"[vdso]") {
            assert_eq!(v.bias(), v.base());
        }

        // readelf agrees, if installed.
        if let Ok(o) = std::process::Command::new("readelf").arg("-n").arg(&exe).output() {
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(line) = text.lines().find(|l| l.contains("Build ID:")) {
                let mut hex = FixedBuf::<256>::new();
                hex.push_hex_bytes(me.build_id().unwrap());
                assert_eq!(line.split("Build ID:").nth(1).unwrap().trim(), hex.as_str());
            }
        }
    }

    #[inline(never)]
    fn a_known_function() -> usize {
        std::hint::black_box(1)
    }

    #[test]
    fn lookup_own_function() {
        let map = live_map();
        let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
        let addr = a_known_function as *const () as usize;
        let (m, off) = map.lookup(addr).expect("own code");
        assert_eq!(m.path(), exe.as_os_str().as_encoded_bytes());
        assert_eq!(off, addr - m.bias());

        // The symbolizer agrees that addr - bias is that function: the
        // symbol address the backtrace crate reports, minus the bias, is the
        // file's own address for it.
        let mut sym = None;
        backtrace::resolve(addr as *mut _, |s| sym = s.addr().map(|a| a as usize));
        if let Some(s) = sym {
            assert_eq!(s - m.bias(), off);
        }

        let mut out = FixedBuf::<512>::new();
        map.write_frame(&mut out, addr);
        let s = out.as_str();
        let mut want = FixedBuf::<512>::new();
        want.push_hex(addr as u64);
        want.push_str(" ");
        want.push_bytes(m.basename());
        want.push_str("+");
        want.push_hex(off as u64);
        want.push_str(" (build-id ");
        assert!(s.starts_with(want.as_str()), "{s}");
        assert!(s.ends_with(')'), "{s}");

        let mut out = FixedBuf::<64>::new();
        map.write_frame(&mut out, 8);
        assert_eq!(out.as_str(), "0x8 ??");

        let mut table = FixedBuf::<{ 1 << 16 }>::new();
        map.write_modules(&mut table);
        assert!(
            table.as_str().lines().any(|l| l.ends_with(exe.to_str().unwrap()) && l.contains(" bias=")),
            "{}",
            table.as_str()
        );
    }

    #[test]
    fn refresh_is_stable() {
        let mut map = live_map();
        type Snap = Vec<(Vec<u8>, usize, usize, Option<Vec<u8>>)>;
        let snap = |m: &ModuleMap| -> Snap {
            m.modules()
                .iter()
                .map(|x| (x.path().to_vec(), x.base(), x.bias(), x.build_id().map(<[u8]>::to_vec)))
                .collect()
        };
        let a = snap(&map);
        map.refresh().unwrap();
        let b = snap(&map);
        // Other tests may load or unload libraries concurrently; compare the
        // modules present both times.
        for x in &a {
            if let Some(y) = b.iter().find(|y| y.0 == x.0) {
                assert_eq!(x, y);
            }
        }
        assert!(a.len() >= 2 && b.len() >= 2);
    }
}
