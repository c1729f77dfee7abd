//! The dynamic loader's list of loaded modules, read as a debugger reads
//! it (`r_debug`, found through the executable's `DT_DEBUG` entry): a cheap
//! way to tell whether a library was loaded or unloaded since the last
//! look, without reading `/proc/self/maps` (which grows with every thread's
//! stack) and without the loader's lock (which a stuck thread may hold).
//!
//! Normal context; every read of the list goes through
//! [`read_mem`](crate::os::stackwalk::read_mem), so a list changed under
//! our feet yields a wrong answer at worst, never a fault.

use crate::os::stackwalk::read_mem;

/// Most list entries looked at.
const MAX_ENTRIES: usize = 4096;

/// Dynamic section tags (`<elf.h>`): the end, and the debugger's entry.
const DT_NULL: i64 = 0;
const DT_DEBUG: i64 = 21;

/// `r_debug.r_state` when the list is consistent (`RT_CONSISTENT`).
const RT_CONSISTENT: u32 = 0;

/// A fingerprint of the loader's module list: the same value as long as no
/// library was loaded or unloaded. `None` when there is no list to read (a
/// static executable), or it is being changed right now.
pub(crate) fn fingerprint() -> Option<u64> {
    let debug = r_debug()?;
    let word = |addr: usize| -> Option<usize> {
        let mut b = [0u8; size_of::<usize>()];
        read_mem(addr, &mut b).then(|| usize::from_ne_bytes(b))
    };
    // struct r_debug { int r_version; struct link_map *r_map; ElfW(Addr)
    // r_brk; enum r_state; ElfW(Addr) r_ldbase; }
    let word_size = size_of::<usize>();
    let state = word(debug + 3 * word_size)? as u32;
    if state != RT_CONSISTENT {
        return None;
    }
    let mut node = word(debug + word_size)?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |v: usize| {
        hash = (hash ^ v as u64).wrapping_mul(0x0100_0000_01b3);
    };
    // struct link_map { ElfW(Addr) l_addr; char *l_name; ElfW(Dyn) *l_ld;
    // struct link_map *l_next, *l_prev; }
    let mut n = 0;
    while node != 0 && n < MAX_ENTRIES {
        mix(word(node)?);
        mix(word(node + word_size)?);
        mix(word(node + 2 * word_size)?);
        node = word(node + 3 * word_size)?;
        n += 1;
    }
    mix(n);
    Some(hash)
}

/// The address of the loader's `r_debug`, from the executable's dynamic
/// section (`DT_DEBUG`, which the loader fills in at start-up).
fn r_debug() -> Option<usize> {
    // SAFETY: getauxval has no preconditions.
    let (phdr, phnum) = unsafe { (libc::getauxval(libc::AT_PHDR), libc::getauxval(libc::AT_PHNUM)) };
    if phdr == 0 || phnum == 0 {
        return None;
    }
    // SAFETY: the kernel's AT_PHDR/AT_PHNUM describe the executable's
    // program headers, mapped for the life of the process.
    let headers = unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum as usize) };
    let bias = headers.iter().find(|h| h.p_type == libc::PT_PHDR).map(|h| phdr as usize - h.p_vaddr as usize)?;
    let dynamic = headers.iter().find(|h| h.p_type == libc::PT_DYNAMIC)?;
    let mut entry = bias + dynamic.p_vaddr as usize;
    let end = entry + dynamic.p_memsz as usize;
    while entry + 16 <= end {
        let mut b = [0u8; 16];
        if !read_mem(entry, &mut b) {
            return None;
        }
        let tag = i64::from_ne_bytes(b[..8].try_into().ok()?);
        let value = u64::from_ne_bytes(b[8..].try_into().ok()?) as usize;
        match tag {
            DT_NULL => return None,
            DT_DEBUG => return (value != 0).then_some(value),
            _ => entry += 16,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_moves_when_a_library_is_loaded_and_back_when_unloaded() {
        let before = fingerprint().expect("a dynamically linked test binary has a loader list");
        assert_eq!(fingerprint(), Some(before), "nothing loaded in between");
        // A library the test binary does not link.
        // SAFETY: dlopen with a valid C string.
        let h = unsafe { libc::dlopen(c"libresolv.so.2".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!h.is_null(), "dlopen libresolv.so.2");
        let loaded = fingerprint().expect("the list after dlopen");
        // SAFETY: `h` came from dlopen.
        unsafe { libc::dlclose(h) };
        assert_ne!(loaded, before, "loading a library changes the fingerprint");
        assert_eq!(fingerprint(), Some(before), "unloading it puts the list back");
    }
}
