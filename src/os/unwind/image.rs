//! Module preparation: the DWARF call-frame information (`.eh_frame_hdr`
//! and `.eh_frame`) of one loaded ELF image, copied out of the mapped image
//! into owned buffers. **Normal context only** (it allocates).
//!
//! The sections are found from the image in memory, as the dynamic loader
//! and the C++ runtime find them: the ELF header at the module's base, its
//! program headers, `PT_GNU_EH_FRAME` (the `.eh_frame_hdr` section, whose
//! header points at `.eh_frame`), and the `PT_LOAD` segment that holds
//! `.eh_frame` (its end bounds the walk over the section's entries). Every
//! read is validated ([`read_mem`]), so a module unmapped meanwhile is
//! skipped rather than faulting. Reading the mapped image rather than the
//! file works for deleted or replaced files and for the `[vdso]`, and is
//! exactly the code that runs.

use crate::os::modules::Module;
use crate::os::stackwalk::read_mem;
use std::ops::Range;

const PT_LOAD: u32 = 1;
const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
const PF_X: u32 = 1;
/// Largest `.eh_frame` / `.eh_frame_hdr` copied (a corrupt header must not
/// make us allocate gigabytes).
const MAX_SECTION: usize = 256 << 20;

/// The unwind sections of one module, in the module's own (ELF virtual)
/// addresses, and where it is loaded.
pub(super) struct Sections {
    /// The module's code in this process: the lowest to the highest end of
    /// its executable mappings.
    pub avma: Range<u64>,
    /// Load bias: runtime address minus ELF virtual address.
    pub bias: u64,
    /// The executable `PT_LOAD` segment (base of `DW_EH_PE_textrel`).
    pub text_svma: Option<Range<u64>>,
    pub eh_frame_hdr_svma: Range<u64>,
    pub eh_frame_hdr: Vec<u8>,
    pub eh_frame_svma: Range<u64>,
    pub eh_frame: Vec<u8>,
}

fn rd<const K: usize>(addr: usize) -> Option<[u8; K]> {
    let mut b = [0u8; K];
    read_mem(addr, &mut b).then_some(b)
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// One program header: (type, flags, vaddr, filesz). The table is read in
/// one validated read, not one per entry.
fn program_headers(base: usize) -> Option<Vec<(u32, u32, u64, u64)>> {
    let eh = rd::<64>(base)?;
    // ELFCLASS64, little-endian (x86_64, aarch64).
    if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let phoff = u64_at(&eh, 32) as usize;
    let phentsize = u16_at(&eh, 54) as usize;
    let phnum = (u16_at(&eh, 56) as usize).min(256);
    if phentsize < 56 {
        return None;
    }
    let mut table = vec![0u8; phnum * phentsize];
    if !read_mem(base.checked_add(phoff)?, &mut table) {
        return None;
    }
    Some(
        table
            .chunks_exact(phentsize)
            .map(|ph| (u32_at(ph, 0), u32_at(ph, 4), u64_at(ph, 16), u64_at(ph, 32)))
            .collect(),
    )
}

/// Decodes one `DW_EH_PE_*` encoded pointer of `.eh_frame_hdr` at `pos`;
/// `field_svma` is the field's own address (for `pcrel`), `hdr_svma` the
/// header's (for `datarel`). Only what linkers emit for the header.
fn decode_ptr(enc: u8, hdr: &[u8], pos: usize, field_svma: u64, hdr_svma: u64) -> Option<u64> {
    let raw: u64 = match enc & 0x0f {
        0x00 | 0x04 | 0x0c => u64_at(hdr.get(pos..pos + 8)?, 0),
        0x03 => u32_at(hdr.get(pos..pos + 4)?, 0) as u64,
        0x0b => u32_at(hdr.get(pos..pos + 4)?, 0) as i32 as i64 as u64,
        0x02 => u16_at(hdr.get(pos..pos + 2)?, 0) as u64,
        0x0a => u16_at(hdr.get(pos..pos + 2)?, 0) as i16 as i64 as u64,
        _ => return None,
    };
    match enc & 0x70 {
        0x00 => Some(raw),
        0x10 => Some(field_svma.wrapping_add(raw)),
        0x30 => Some(hdr_svma.wrapping_add(raw)),
        _ => None,
    }
}

/// How much of `.eh_frame` is read per system call: the walk over its
/// entries reads ahead in chunks this large instead of one read per entry
/// (a module has thousands of entries: reading their length fields one by
/// one cost thousands of system calls per module).
const CHUNK: usize = 64 << 10;

/// Grows `buf`, the bytes at `avma` read so far, to at least `need` bytes
/// (never past `limit`), reading ahead up to a [`CHUNK`]. False when `need`
/// is past `limit` or those bytes cannot be read.
fn fill(buf: &mut Vec<u8>, avma: usize, limit: usize, need: usize) -> bool {
    let have = buf.len();
    if need <= have {
        return true;
    }
    if need > limit {
        return false;
    }
    let Some(at) = avma.checked_add(have) else { return false };
    buf.resize(need.max(have.saturating_add(CHUNK)).min(limit), 0);
    if read_mem(at, &mut buf[have..]) {
        return true;
    }
    // The read-ahead ran into something unreadable: only what is needed.
    buf.truncate(need);
    if read_mem(at, &mut buf[have..]) {
        return true;
    }
    buf.truncate(have);
    false
}

/// Copies `.eh_frame` at `avma`, at most `limit` bytes: its entries (CIEs
/// and FDEs, each led by its length) up to and including the zero
/// terminator, or the whole entries up to `limit` when there is none.
/// Empty when not even the first entry can be read.
fn copy_eh_frame(avma: usize, limit: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut off = 0usize;
    let end = loop {
        if !fill(&mut buf, avma, limit, off + 4) {
            break off;
        }
        let entry = match u32_at(&buf, off) {
            0 => break off + 4,
            0xffff_ffff => {
                if !fill(&mut buf, avma, limit, off + 12) {
                    break off;
                }
                match usize::try_from(u64_at(&buf, off + 4)).ok().and_then(|e| e.checked_add(12)) {
                    Some(n) => n,
                    None => break off,
                }
            }
            n => n as usize + 4,
        };
        match off.checked_add(entry) {
            Some(next) if next <= limit => off = next,
            _ => break off,
        }
    };
    // The last entry's body may not be read yet.
    if !fill(&mut buf, avma, limit, end) {
        return Vec::new();
    }
    buf.truncate(end);
    buf.shrink_to_fit();
    buf
}

/// Copies the unwind sections of `m` out of its mapped image. `None` when
/// the module has no `PT_GNU_EH_FRAME`, no code, or went away meanwhile.
pub(super) fn read_sections(m: &Module) -> Option<Sections> {
    let exec = m.exec_ranges();
    let lo = exec.iter().map(|r| r.0).min()?;
    let hi = exec.iter().map(|r| r.1).max()?;
    let bias = m.bias() as u64;
    let phdrs = program_headers(m.base())?;
    let &(_, _, hdr_svma, hdr_len) = phdrs.iter().find(|p| p.0 == PT_GNU_EH_FRAME)?;
    let hdr_len = usize::try_from(hdr_len).ok().filter(|&n| (8..=MAX_SECTION).contains(&n))?;
    let mut eh_frame_hdr = vec![0u8; hdr_len];
    if !read_mem(bias.wrapping_add(hdr_svma) as usize, &mut eh_frame_hdr) || eh_frame_hdr[0] != 1 {
        return None;
    }
    let eh_frame_svma = decode_ptr(eh_frame_hdr[1], &eh_frame_hdr, 4, hdr_svma + 4, hdr_svma)?;
    // The segment that holds .eh_frame bounds it.
    let seg_end = phdrs
        .iter()
        .filter(|p| p.0 == PT_LOAD && p.2 <= eh_frame_svma && eh_frame_svma < p.2.saturating_add(p.3))
        .map(|p| p.2 + p.3)
        .next()?;
    let limit = usize::try_from(seg_end - eh_frame_svma).ok()?.min(MAX_SECTION);
    let eh_frame = copy_eh_frame(bias.wrapping_add(eh_frame_svma) as usize, limit);
    if eh_frame.is_empty() {
        return None;
    }
    let len = eh_frame.len();
    let text_svma = phdrs.iter().find(|p| p.0 == PT_LOAD && p.1 & PF_X != 0).map(|p| p.2..p.2 + p.3);
    Some(Sections {
        avma: lo as u64..hi as u64,
        bias,
        text_svma,
        eh_frame_hdr_svma: hdr_svma..hdr_svma + hdr_len as u64,
        eh_frame_hdr,
        eh_frame_svma: eh_frame_svma..eh_frame_svma + len as u64,
        eh_frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_header_encodings() {
        let mut hdr = vec![1u8, 0x1b, 0x03, 0x3b];
        hdr.extend_from_slice(&(-0x40i32).to_le_bytes());
        // pcrel|sdata4: relative to the field at svma 0x1004.
        assert_eq!(decode_ptr(0x1b, &hdr, 4, 0x1004, 0x1000), Some(0x1004 - 0x40));
        // datarel|sdata4: relative to the header.
        assert_eq!(decode_ptr(0x3b, &hdr, 4, 0x1004, 0x1000), Some(0x1000 - 0x40));
        // udata4, absolute.
        assert_eq!(decode_ptr(0x03, &hdr, 4, 0x1004, 0x1000), Some(0xffff_ffc0));
        // Out of the buffer, or an encoding we do not take: none.
        assert_eq!(decode_ptr(0x1b, &hdr, 6, 0, 0), None);
        assert_eq!(decode_ptr(0x1f, &hdr, 4, 0, 0), None);
        assert_eq!(decode_ptr(0x50 | 0x0b, &hdr, 4, 0, 0), None);
    }

    #[test]
    fn eh_frame_entries_end_at_the_terminator_or_the_limit() {
        // Two entries (8 and 4 bytes of body), then the terminator.
        let mut s = Vec::new();
        s.extend_from_slice(&8u32.to_le_bytes());
        s.extend_from_slice(&[0xaa; 8]);
        s.extend_from_slice(&4u32.to_le_bytes());
        s.extend_from_slice(&[0xbb; 4]);
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&[0xcc; 16]);
        let a = s.as_ptr() as usize;
        assert_eq!(copy_eh_frame(a, s.len()), s[..24]);
        // No terminator within the limit: the whole entries that fit.
        assert_eq!(copy_eh_frame(a, 20), s[..20]);
        assert_eq!(copy_eh_frame(a, 19), s[..12]);
        // Not even one entry.
        assert!(copy_eh_frame(a, 3).is_empty());
    }

    /// Entries that span read-ahead chunks are copied whole, the same as
    /// read one by one.
    #[test]
    fn eh_frame_entries_across_chunks() {
        let mut s = Vec::new();
        for i in 0..5000u32 {
            let body = 4 + (i % 61) as usize;
            s.extend_from_slice(&(body as u32).to_le_bytes());
            s.extend(std::iter::repeat_n(i as u8, body));
        }
        // One entry with the 64-bit length, then the terminator.
        s.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
        s.extend_from_slice(&(CHUNK as u64 + 3).to_le_bytes());
        s.extend(std::iter::repeat_n(0xee, CHUNK + 3));
        let end = s.len() + 4;
        s.extend_from_slice(&0u32.to_le_bytes());
        s.extend_from_slice(&[0xcc; 100]);
        assert!(end > 3 * CHUNK);
        let a = s.as_ptr() as usize;
        assert_eq!(copy_eh_frame(a, s.len()), s[..end]);
        // Cut inside the long entry: the entries before it.
        let cut = end - 4 - (CHUNK + 3) - 12;
        assert_eq!(copy_eh_frame(a, end - 10), s[..cut]);
    }

    #[test]
    fn reads_this_executables_and_libcs_sections() {
        crate::os::stackwalk::init().unwrap();
        let mut map = crate::os::modules::ModuleMap::new_boxed();
        map.refresh().unwrap();
        let here = reads_this_executables_and_libcs_sections as *const () as usize;
        let (me, _) = map.lookup(here).expect("this test's module");
        let s = read_sections(me).expect("this executable's .eh_frame");
        assert!(s.avma.contains(&(here as u64)));
        assert!(s.eh_frame.len() > 1000 && s.eh_frame_hdr.len() > 100, "{} {}", s.eh_frame.len(), s.eh_frame_hdr.len());
        let libc = map.lookup(libc::getpid as *const () as usize).expect("libc's module").0;
        assert!(read_sections(libc).is_some(), "libc.so has .eh_frame_hdr");
    }
}
