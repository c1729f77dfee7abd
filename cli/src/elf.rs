//! ELF files for `symbolize`: their GNU build-id, their DWARF line tables
//! (addr2line over gimli) and their symbol tables, read with `object`.

use addr2line::gimli;
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};

/// Section data lives as long as the command: `symbolize` reads each file
/// once and exits, so the decompressed sections are leaked rather than
/// reference-counted (which would need gimli's `endian-reader` feature
/// and one more crate).
type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// One function of an address: its name and, with DWARF, its file and line.
pub(crate) struct Symbol {
    pub(crate) function: String,
    /// `file:line`, when the DWARF line table has it.
    pub(crate) location: Option<String>,
    /// From the symbol table: the offset into the function.
    pub(crate) symbol_offset: Option<u64>,
}

/// What one ELF file can tell about addresses of its image.
pub(crate) struct Debug {
    pub(crate) path: PathBuf,
    /// The supplementary file (`dwz`'s `.gnu_debugaltlink`) used, or why
    /// it was not: function names moved there are then missing.
    pub(crate) sup: Option<Result<PathBuf, String>>,
    dwarf: Option<addr2line::Context<Reader>>,
    /// Function symbols: (start, size, demangled name), sorted by start.
    symbols: Vec<(u64, u64, String)>,
}

/// `bytes` as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Debug {
    /// Reads the ELF file at `path`: its build-id, its DWARF (if any, with
    /// the supplementary file `dwz` moved shared parts to, looked for at
    /// the path the file names and by its build-id in `debug_dirs`) and its
    /// function symbols.
    pub(crate) fn load(path: &Path, debug_dirs: &[PathBuf]) -> Result<(Option<String>, Debug), String> {
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        let file = object::File::parse(&*data).map_err(|e| format!("not an ELF file ({e})"))?;
        let id = file.build_id().ok().flatten().map(hex);
        let endian = if file.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
        let has_dwarf = file.section_by_name(".debug_info").is_some_and(|s| s.size() > 0);
        let mut sup = None;
        let dwarf = if has_dwarf {
            let mut dwarf = gimli::Dwarf::load(|id| section(&file, id.name(), endian))?;
            if let Some(link) = file.section_by_name(".gnu_debugaltlink").and_then(|s| s.data().ok()) {
                sup = Some(load_sup(&mut dwarf, link, path, debug_dirs, endian));
            }
            Some(addr2line::Context::from_dwarf(dwarf).map_err(|e| format!("bad DWARF: {e}"))?)
        } else {
            None
        };
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((s.address(), s.size(), format!("{:#}", rustc_demangle::demangle(name))))
            })
            .collect();
        symbols.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        symbols.dedup_by_key(|s| s.0);
        Ok((id, Debug { path: path.to_path_buf(), sup, dwarf, symbols }))
    }

    /// Whether the file has DWARF (file and line), not only symbols.
    pub(crate) fn has_dwarf(&self) -> bool {
        self.dwarf.is_some()
    }

    /// Whether the file can name anything at all.
    pub(crate) fn is_useful(&self) -> bool {
        self.dwarf.is_some() || !self.symbols.is_empty()
    }

    /// The functions at `probe` (an address of the ELF image, as the dump's
    /// `module+offset`), innermost inlined one first; empty when nothing
    /// covers it.
    pub(crate) fn lookup(&self, probe: u64) -> Vec<Symbol> {
        let mut found: Vec<(Option<String>, Option<String>)> = Vec::new();
        if let Some(ctx) = &self.dwarf
            && let Ok(mut frames) = ctx.find_frames(probe).skip_all_loads()
        {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame.function.as_ref().and_then(|f| f.demangle().ok().map(|n| n.into_owned()));
                let location = frame.location.as_ref().and_then(|l| Some(format!("{}:{}", l.file?, l.line?)));
                if function.is_some() || location.is_some() {
                    found.push((function, location));
                }
            }
        }
        // A name DWARF lacks: the symbol table's for the outermost frame
        // (the function the address is in), none for an inlined one (the
        // symbol would name its caller).
        let n = found.len();
        let mut out: Vec<Symbol> = found
            .into_iter()
            .enumerate()
            .map(|(k, (function, location))| {
                let function = function
                    .or_else(|| if k + 1 == n { self.symbol(probe).map(|(name, _)| name) } else { None })
                    .unwrap_or_else(|| "??".to_string());
                Symbol { function, location, symbol_offset: None }
            })
            .collect();
        if out.is_empty()
            && let Some((function, offset)) = self.symbol(probe)
        {
            out.push(Symbol { function, location: None, symbol_offset: Some(offset) });
        }
        out
    }

    /// The function symbol covering `probe`, with the offset into it.
    fn symbol(&self, probe: u64) -> Option<(String, u64)> {
        let i = self.symbols.partition_point(|s| s.0 <= probe).checked_sub(1)?;
        let (start, size, name) = &self.symbols[i];
        if *size != 0 && probe >= start + size {
            return None;
        }
        Some((name.clone(), probe - start))
    }
}

/// Loads the supplementary DWARF file named by `link` (the contents of
/// `.gnu_debugaltlink`: a path, a NUL, the file's build-id) into `dwarf`:
/// the path as given (relative to `path`'s directory), else by build-id
/// under each of `debug_dirs`' `.build-id/`. Returns the file used.
fn load_sup(
    dwarf: &mut gimli::Dwarf<Reader>,
    link: &[u8],
    path: &Path,
    debug_dirs: &[PathBuf],
    endian: gimli::RunTimeEndian,
) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStrExt;
    let nul = link.iter().position(|&b| b == 0).ok_or("a malformed .gnu_debugaltlink")?;
    let named = Path::new(std::ffi::OsStr::from_bytes(&link[..nul]));
    let want = hex(&link[nul + 1..]);
    let mut candidates = vec![path.parent().unwrap_or(Path::new("/")).join(named)];
    if want.len() > 2 {
        for d in debug_dirs {
            candidates.push(d.join(".build-id").join(&want[..2]).join(format!("{}.debug", &want[2..])));
        }
    }
    for c in &candidates {
        let Ok(data) = std::fs::read(c) else { continue };
        let Ok(sup) = object::File::parse(&*data) else { continue };
        if sup.build_id().ok().flatten().map(hex).as_deref() != Some(want.as_str()) {
            continue;
        }
        dwarf.load_sup(|id| section(&sup, id.name(), endian))?;
        return Ok(c.clone());
    }
    Err(format!("its dwz supplementary file {} (build-id {want}) is not here: some names are missing", named.display()))
}

/// A DWARF section's bytes, decompressed (zlib, `SHF_COMPRESSED`); empty
/// when the file does not have it.
fn section(file: &object::File<'_>, name: &str, endian: gimli::RunTimeEndian) -> Result<Reader, String> {
    let bytes: Vec<u8> = match file.section_by_name(name) {
        None => Vec::new(),
        Some(s) => {
            let c = s.compressed_data().map_err(|e| format!("section {name}: {e}"))?;
            match c.format {
                object::CompressionFormat::None => c.data.to_vec(),
                object::CompressionFormat::Zlib => miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(
                    c.data,
                    usize::try_from(c.uncompressed_size).unwrap_or(usize::MAX),
                )
                .map_err(|e| format!("section {name}: bad zlib data ({e:?})"))?,
                other => {
                    return Err(format!(
                        "section {name} is compressed with {other:?}, which is not supported (zlib is)"
                    ));
                }
            }
        }
    };
    Ok(gimli::EndianSlice::new(Box::leak(bytes.into_boxed_slice()), endian))
}
