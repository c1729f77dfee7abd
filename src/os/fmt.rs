//! Allocation-free text formatting for the signal handler and the fatal path.
//!
//! [`FixedBuf`] is a byte buffer of fixed capacity that implements
//! [`core::fmt::Write`] but never allocates: text past the capacity is
//! dropped and counted. The integer helpers do not go through
//! `core::fmt` at all, so they are safe wherever a `FixedBuf` is.
//!
//! All of it is async-signal-safe: it only writes into memory it owns.

use core::fmt;

/// A fixed-capacity byte buffer that never allocates.
pub(crate) struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: usize,
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        FixedBuf { buf: [0; N], len: 0, truncated: 0 }
    }

    /// The bytes written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text written so far (lossy only if a caller pushed non-UTF-8 bytes).
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("<non-utf8>")
    }

    /// Number of bytes written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes that did not fit and were dropped.
    pub(crate) fn truncated(&self) -> usize {
        self.truncated
    }

    /// Room left.
    pub(crate) fn remaining(&self) -> usize {
        N - self.len
    }

    /// Keeps only the first `len` bytes.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forgets the contents.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.truncated = 0;
    }

    /// Appends raw bytes, dropping what does not fit.
    pub(crate) fn push_bytes(&mut self, b: &[u8]) {
        let n = b.len().min(self.remaining());
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self.truncated += b.len() - n;
    }

    /// Appends a string.
    pub(crate) fn push_str(&mut self, s: &str) {
        self.push_bytes(s.as_bytes());
    }

    /// Appends bytes, replacing control characters (other than tab) with `?`
    /// so that a thread name or path cannot break the line structure.
    pub(crate) fn push_sanitized(&mut self, b: &[u8]) {
        for &c in b {
            let c = if c == b'\t' || c >= 0x20 && c != 0x7f { c } else { b'?' };
            self.push_bytes(&[c]);
        }
    }

    /// Appends a thread name (or any text printed between double quotes)
    /// escaped by [`escape_quoted`]: it cannot break the line structure nor
    /// close its quotes.
    pub(crate) fn push_escaped(&mut self, b: &[u8]) {
        escape_quoted(b, |piece| self.push_bytes(piece));
    }

    /// Appends an unsigned decimal.
    pub(crate) fn push_u64(&mut self, v: u64) {
        let mut tmp = [0u8; 20];
        let s = fmt_u64(v, &mut tmp);
        self.push_bytes(s);
    }

    /// Appends a signed decimal.
    pub(crate) fn push_i64(&mut self, v: i64) {
        if v < 0 {
            self.push_bytes(b"-");
        }
        self.push_u64(v.unsigned_abs());
    }

    /// Appends `0x` and lowercase hex without leading zeros.
    pub(crate) fn push_hex(&mut self, v: u64) {
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        let mut v = v;
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.push_bytes(b"0x");
        self.push_bytes(&tmp[i..]);
    }

    /// Appends each byte as two lowercase hex digits (for build-ids).
    pub(crate) fn push_hex_bytes(&mut self, b: &[u8]) {
        for &c in b {
            self.push_bytes(&[b"0123456789abcdef"[(c >> 4) as usize], b"0123456789abcdef"[(c & 0xf) as usize]]);
        }
    }

    /// Appends nanoseconds as milliseconds with one decimal (`1234.5`).
    pub(crate) fn push_ms(&mut self, ns: u64) {
        self.push_u64(ns / 1_000_000);
        self.push_bytes(b".");
        self.push_u64((ns / 100_000) % 10);
    }
}

impl<const N: usize> fmt::Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// Escapes `b` for a double-quoted field, handing the pieces to `out`:
/// `\\` and `\"` for a backslash and a quote, `\n`, `\r`, `\t`, and
/// `\xNN` for every other control byte and DEL; everything else (UTF-8
/// included) as it is. The one escaping of thread names, in warnings, dumps,
/// `tracing` fields and systemd's `STATUS=`. Allocation-free,
/// async-signal-safe.
pub(crate) fn escape_quoted(b: &[u8], mut out: impl FnMut(&[u8])) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'\\' => b"\\\\",
            b'"' => b"\\\"",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            c if c < 0x20 || c == 0x7f => b"",
            _ => continue,
        };
        out(&b[start..i]);
        if esc.is_empty() {
            let hex = b"0123456789abcdef";
            out(&[b'\\', b'x', hex[(c >> 4) as usize], hex[(c & 0xf) as usize]]);
        } else {
            out(esc);
        }
        start = i + 1;
    }
    out(&b[start..]);
}

/// [`escape_quoted`] into a `String` (normal context only: it allocates);
/// bytes that are not UTF-8 become U+FFFD.
pub(crate) fn escaped_string(b: &[u8]) -> String {
    let mut v = Vec::with_capacity(b.len());
    escape_quoted(b, |piece| v.extend_from_slice(piece));
    String::from_utf8_lossy(&v).into_owned()
}

/// Formats `v` in decimal into `tmp`, returning the used tail.
pub(crate) fn fmt_u64(mut v: u64, tmp: &mut [u8; 20]) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &tmp[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_truncation() {
        let mut b = FixedBuf::<16>::new();
        b.push_u64(0);
        b.push_str(" ");
        b.push_i64(-42);
        b.push_str(" ");
        b.push_hex(0xdead);
        assert_eq!(b.as_str(), "0 -42 0xdead");
        b.push_str("overflowing");
        assert_eq!(b.len(), 16);
        assert_eq!(b.truncated(), 7);
    }

    #[test]
    fn max_values_and_ms() {
        let mut b = FixedBuf::<64>::new();
        b.push_u64(u64::MAX);
        b.push_str(" ");
        b.push_ms(1_234_567_890);
        b.push_str(" ");
        b.push_hex_bytes(&[0x0a, 0xff]);
        assert_eq!(b.as_str(), "18446744073709551615 1234.5 0aff");
    }

    #[test]
    fn escapes_names_for_quoted_fields() {
        let mut b = FixedBuf::<128>::new();
        b.push_escaped(b"a\nfailstop: \"x\"\t\\\x1b\x7f\r\xc3\xa9");
        assert_eq!(b.as_str(), r#"a\nfailstop: \"x\"\t\\\x1b\x7f\ré"#);
        assert_eq!(escaped_string(b"plain name"), "plain name");
        assert_eq!(escaped_string(b"q\"\n"), r#"q\"\n"#);
        assert_eq!(escaped_string(b""), "");
    }

    #[test]
    fn sanitizes_control_characters() {
        let mut b = FixedBuf::<32>::new();
        b.push_sanitized(b"a\nb\tc\x1b");
        assert_eq!(b.as_str(), "a?b\tc?");
    }
}
