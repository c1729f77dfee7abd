//! The `/proc/self/maps` line parser and a line splitter over a byte
//! stream, both allocation-free (pure: no system call).

/// Bytes read from `/proc/self/maps` per `read(2)`.
pub(super) const CHUNK: usize = 4096;
/// Line buffer: one chunk plus the longest line we keep whole (PATH_MAX plus
/// the fixed fields). Longer lines are truncated.
pub(super) const LINE_BUF: usize = CHUNK + 4096 + 128;

/// One line of `/proc/self/maps`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct MapsLine<'a> {
    pub start: usize,
    pub end: usize,
    pub read: bool,
    pub exec: bool,
    pub offset: u64,
    pub inode: u64,
    /// Empty for anonymous mappings; `[vdso]`, `[stack]`... for special
    /// ones; the file path (which may contain spaces) otherwise, without the
    /// " (deleted)" suffix.
    pub path: &'a [u8],
    pub deleted: bool,
}

/// Parses `start-end perms offset dev inode [path]` (no newline). Pure.
pub(crate) fn parse_maps_line(line: &[u8]) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let range = field(&mut rest)?;
    let dash = range.iter().position(|&c| c == b'-')?;
    let start = parse_hex(&range[..dash])? as usize;
    let end = parse_hex(&range[dash + 1..])? as usize;
    let perms = field(&mut rest)?;
    if perms.len() < 4 {
        return None;
    }
    let offset = parse_hex(field(&mut rest)?)?;
    let _dev = field(&mut rest)?;
    let inode = parse_dec(field(&mut rest)?)?;
    // The path is everything after the padding; it may contain spaces.
    let mut path = trim_start(rest);
    let suffix: &[u8] = b" (deleted)";
    let deleted = path.ends_with(suffix);
    if deleted {
        path = &path[..path.len() - suffix.len()];
    }
    Some(MapsLine { start, end, read: perms[0] == b'r', exec: perms[2] == b'x', offset, inode, path, deleted })
}

fn trim_start(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&c| c != b' ' && c != b'\t').unwrap_or(b.len());
    &b[i..]
}

/// Splits off the next space-separated field.
fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let s = trim_start(rest);
    let end = s.iter().position(|&c| c == b' ' || c == b'\t').unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    *rest = &s[end..];
    Some(&s[..end])
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v = 0u64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(v)
}

/// Reassembles lines from chunks of a stream without allocating. Lines
/// longer than [`KEEP`] bytes are truncated to their first `KEEP` bytes (the
/// rest up to the newline is skipped).
pub(crate) struct LineSplitter {
    buf: [u8; LINE_BUF],
    /// Bytes of the incomplete current line at the start of `buf`
    /// (at most [`KEEP`]).
    len: usize,
    /// The current line overflowed: its first `KEEP` bytes are kept, the rest
    /// is being discarded up to the next newline.
    skipping: bool,
}

/// Longest line kept whole; the rest of the buffer receives reads.
pub(super) const KEEP: usize = LINE_BUF - CHUNK;

impl LineSplitter {
    #[cfg(test)]
    pub(super) fn new_boxed() -> Box<LineSplitter> {
        Box::new(LineSplitter { buf: [0; LINE_BUF], len: 0, skipping: false })
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.skipping = false;
    }

    /// Where the next chunk goes: right after the kept part of the current
    /// line, or into scratch space while skipping.
    fn read_at(&self) -> usize {
        if self.skipping { KEEP } else { self.len }
    }

    /// Space for the next chunk ([`CHUNK`] bytes), followed by
    /// [`commit`](Self::commit).
    pub(super) fn space(&mut self) -> &mut [u8] {
        let at = self.read_at();
        &mut self.buf[at..at + CHUNK]
    }

    /// Accounts for `n` bytes read into [`space`](Self::space) and calls `f`
    /// on each completed line (without its newline).
    pub(super) fn commit(&mut self, n: usize, mut f: impl FnMut(&[u8])) {
        let at = self.read_at();
        let end = at + n;
        // Start of the current (unfinished) line in buf.
        let mut line_start = 0;
        let mut pos = at;
        while let Some(i) = self.buf[pos..end].iter().position(|&c| c == b'\n') {
            let nl = pos + i;
            if self.skipping {
                // The kept part of an over-long line.
                f(&self.buf[..self.len]);
                self.skipping = false;
            } else {
                f(&self.buf[line_start..nl]);
            }
            line_start = nl + 1;
            pos = nl + 1;
        }
        if self.skipping {
            // Still inside the over-long line: drop the new bytes.
            return;
        }
        let tail = end - line_start;
        if tail > KEEP {
            self.buf.copy_within(line_start..line_start + KEEP, 0);
            self.len = KEEP;
            self.skipping = true;
        } else {
            self.buf.copy_within(line_start..end, 0);
            self.len = tail;
        }
    }

    /// Feeds a whole chunk (for tests and in-memory text).
    #[cfg(test)]
    pub(super) fn feed(&mut self, mut chunk: &[u8], mut f: impl FnMut(&[u8])) {
        while !chunk.is_empty() {
            let dst = self.space();
            let n = dst.len().min(chunk.len());
            dst[..n].copy_from_slice(&chunk[..n]);
            self.commit(n, &mut f);
            chunk = &chunk[n..];
        }
    }

    /// Emits a final line that lacked a newline.
    pub(super) fn finish(&mut self, mut f: impl FnMut(&[u8])) {
        if self.len > 0 {
            f(&self.buf[..self.len]);
        }
        self.clear();
    }
}
