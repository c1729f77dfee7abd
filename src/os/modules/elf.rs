//! The ELF images in memory: load bias and GNU build-id, read from the
//! ELF header, the program headers and the `PT_NOTE` segments with
//! validated reads (a module unmapped under our feet yields no build-id
//! rather than a fault). Async-signal-safe.

use super::MAX_BUILD_ID;
use crate::os::stackwalk::read_mem;

pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_NOTE: u32 = 4;
pub(super) const NT_GNU_BUILD_ID: u32 = 3;

pub(super) fn rd<const K: usize>(addr: usize) -> Option<[u8; K]> {
    let mut b = [0u8; K];
    read_mem(addr, &mut b).then_some(b)
}

pub(super) fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

pub(super) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(super) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(a)
}

/// What [`read_image`] found in an ELF image.
pub(super) struct Image {
    /// Load bias: runtime address minus ELF virtual address.
    pub(super) bias: usize,
    /// Bytes of the GNU build-id written to the caller's buffer (0: none).
    pub(super) build_id_len: usize,
}

/// Computes the load bias of the ELF image loaded at `base` and reads its
/// GNU build-id into `build_id`. Every read is validated; failures leave
/// bias = base and no build-id. Async-signal-safe.
pub(super) fn read_image(base: usize, page: usize, build_id: &mut [u8; MAX_BUILD_ID]) -> Image {
    let mut m = Image { bias: base, build_id_len: 0 };
    // Elf64_Ehdr: 64 bytes.
    let Some(eh) = rd::<64>(base) else { return m };
    if eh[..4] != *b"\x7fELF" || eh[4] != 2
    /* ELFCLASS64 */
    {
        return m;
    }
    let e_type = u16_at(&eh, 16);
    let phoff = u64_at(&eh, 32) as usize;
    let phentsize = u16_at(&eh, 54) as usize;
    let phnum = (u16_at(&eh, 56) as usize).min(256);
    if phentsize < 56 {
        return m;
    }
    let ph_at = |i: usize| base.checked_add(phoff)?.checked_add(i * phentsize);
    // Pass 1: the load bias from the PT_LOAD that maps file offset 0.
    let mut bias = None;
    for i in 0..phnum {
        let Some(ph) = ph_at(i).and_then(rd::<56>) else {
            return m;
        };
        let (p_type, p_offset, p_vaddr) = (u32_at(&ph, 0), u64_at(&ph, 8) as usize, u64_at(&ph, 16) as usize);
        if p_type == PT_LOAD && p_offset & !(page - 1) == 0 {
            bias = Some(base.wrapping_sub(p_vaddr & !(page - 1)));
            break;
        }
    }
    m.bias = match bias {
        Some(b) => b,
        // ET_EXEC is linked at its final address; ET_DYN at 0.
        None if e_type == 2 => 0,
        None => base,
    };
    // Pass 2: the notes.
    for i in 0..phnum {
        let Some(ph) = ph_at(i).and_then(rd::<56>) else {
            return m;
        };
        if u32_at(&ph, 0) != PT_NOTE {
            continue;
        }
        let vaddr = u64_at(&ph, 16) as usize;
        let size = (u64_at(&ph, 40) as usize).min(1 << 20);
        let align = if u64_at(&ph, 48) == 8 { 8 } else { 4 };
        if let Some(n) = scan_notes(m.bias.wrapping_add(vaddr), size, align, build_id) {
            m.build_id_len = n;
            return m;
        }
    }
    m
}

/// Walks the notes in `[addr, addr + size)`; the build-id's length once it
/// is found (and copied into `build_id`).
fn scan_notes(addr: usize, size: usize, align: usize, build_id: &mut [u8; MAX_BUILD_ID]) -> Option<usize> {
    let pad = |n: usize| (n + align - 1) & !(align - 1);
    let mut off = 0;
    while off + 12 <= size {
        let nh = rd::<12>(addr.wrapping_add(off))?;
        let (namesz, descsz, ntype) = (u32_at(&nh, 0) as usize, u32_at(&nh, 4) as usize, u32_at(&nh, 8));
        let name_at = off + 12;
        let desc_at = name_at + pad(namesz);
        if desc_at.checked_add(descsz).is_none_or(|e| e > size) {
            return None;
        }
        if ntype == NT_GNU_BUILD_ID
            && namesz == 4
            && (1..=MAX_BUILD_ID).contains(&descsz)
            && rd::<4>(addr.wrapping_add(name_at)) == Some(*b"GNU\0")
            && read_mem(addr.wrapping_add(desc_at), &mut build_id[..descsz])
        {
            return Some(descsz);
        }
        off = desc_at + pad(descsz);
    }
    None
}
