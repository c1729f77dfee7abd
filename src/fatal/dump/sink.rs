//! [`Sink`]: where a dump goes (the copy, then the file and stderr, each
//! by its own cursor), and the end of a dump ([`close_out`]).

use super::copy::{copy_append, copy_len, copy_lost, copy_reset, copy_seal, copy_since, copy_unseal};
use crate::os::fmt::FixedBuf;
use crate::os::sys;

/// Where the dump goes: an in-memory copy first, then the dump file and
/// stderr, each written from the copy by its own cursor.
///
/// - The **file** is written as soon as it is open, each write bounded by
///   the dump deadline ([`sys::write_until`]); a failure (ENOSPC, EIO) is
///   said on stderr in one line and costs only the file.
/// - **stderr** is written in batches of whole lines of at most 4 KiB (so
///   lines never interleave mid-line with the application's own output on
///   a pipe), without waiting while the dump is being made (`ppoll` with
///   no timeout), then, once the file has its whole dump, waiting until
///   the deadline: a full pipe nobody reads costs at most the deadline and
///   never the file; a slow reader gets as much as the deadline allows. Its
///   `O_NONBLOCK` flag (a shared file description) is never changed.
///
/// One thread writes (the monitor, or the reporter for a stalled verdict);
/// the reporter only appends to the copy. Allocation-free.
pub(crate) struct Sink {
    buf: FixedBuf<4096>,
    deadline: u64,
    file: libc::c_int,
    file_sent: usize,
    file_short: Option<sys::WriteShort>,
    stderr: bool,
    err_sent: usize,
    err_short: Option<sys::WriteShort>,
    /// The dump's closing lines are being written ([`Sink::closing`]).
    closing: bool,
}

impl Sink {
    /// A sink for a dump due by `deadline` (monotonic ns); `stderr` whether
    /// fd 2 is open and is not the file.
    pub(crate) fn new(stderr: bool, deadline: u64) -> Self {
        copy_reset();
        Sink {
            buf: FixedBuf::new(),
            deadline,
            file: -1,
            file_sent: 0,
            file_short: None,
            stderr,
            err_sent: 0,
            err_short: None,
            closing: false,
        }
    }

    /// The dump file, once open: it gets everything written so far at once.
    pub(crate) fn set_file(&mut self, fd: libc::c_int) {
        self.file = fd;
        self.file_sent = 0;
        self.pump_file();
    }

    /// The line being built.
    pub(crate) fn line(&mut self) -> &mut FixedBuf<4096> {
        &mut self.buf
    }

    /// Ends the current line; writes out when the batch is large.
    pub(crate) fn eol(&mut self) {
        self.buf.push_str("\n");
        if self.buf.len() > 3000 {
            self.flush();
        }
    }

    /// Moves what is buffered to the copy and on to the destinations that
    /// take it without waiting.
    pub(crate) fn flush(&mut self) {
        if self.buf.len() > 0 {
            copy_append(self.buf.as_bytes(), self.closing);
            self.buf.clear();
        }
        self.pump(false);
    }

    /// Opens the copy to the reporter's symbolized part.
    pub(crate) fn unseal(&mut self) {
        self.flush();
        copy_unseal();
    }

    /// Closes the copy to the reporter again, and waits (briefly: an append
    /// is a copy in memory) for one under way.
    pub(crate) fn seal(&mut self) {
        copy_seal();
    }

    /// What comes from here on is the dump's closing lines: they may use
    /// the end of the copy that the rest of the dump cannot, so that a dump
    /// too large for its memory still says how it ended.
    pub(crate) fn closing(&mut self) {
        self.flush();
        self.closing = true;
    }

    /// Writes the copy on to the file (bounded by the deadline) and to
    /// stderr: without waiting, or with `wait` until the deadline.
    pub(crate) fn pump(&mut self, wait: bool) {
        self.pump_file();
        self.pump_stderr(wait);
    }

    /// Whether stderr still has bytes to take.
    pub(crate) fn stderr_behind(&self) -> bool {
        self.stderr && self.err_short.is_none() && self.err_sent < copy_len()
    }

    fn pump_file(&mut self) {
        if self.file < 0 || self.file_short.is_some() {
            return;
        }
        let pending = copy_since(self.file_sent);
        if pending.is_empty() {
            return;
        }
        let (n, short) = sys::write_until(self.file, pending, self.deadline);
        self.file_sent += n;
        if let Some(why) = short {
            self.file_short = Some(why);
            // One line on stderr: the file lost its dump, and why.
            let mut b = FixedBuf::<512>::new();
            b.push_str("failstop: the dump file could not be written (");
            push_short(&mut b, why);
            b.push_str(") after ");
            b.push_u64(self.file_sent as u64);
            b.push_str(" bytes; the whole dump goes to stderr\n");
            copy_append(b.as_bytes(), true);
        }
    }

    fn pump_stderr(&mut self, wait: bool) {
        if !self.stderr || self.err_short.is_some() {
            return;
        }
        let until = if wait { self.deadline } else { 0 };
        loop {
            let pending = copy_since(self.err_sent);
            if pending.is_empty() {
                return;
            }
            // Whole lines, at most PIPE_BUF bytes: one atomic write on a pipe.
            let take = sys::whole_lines(pending);
            let (n, short) = sys::write_until(2, &pending[..take], until);
            self.err_sent += n;
            match short {
                None => {}
                Some(sys::WriteShort::Deadline) if !wait => return,
                Some(why) => {
                    self.err_short = Some(why);
                    return;
                }
            }
        }
    }

    /// How the destinations fared, for the closing line: appends
    /// "; stderr ..." when stderr is behind or failed.
    pub(crate) fn push_outcome(&mut self) {
        let b = &mut self.buf;
        let lost = copy_lost();
        if lost > 0 {
            b.push_str("; ");
            b.push_u64(lost as u64);
            b.push_str(" bytes did not fit in the dump's memory and are missing");
        }
        if let Some(why) = self.file_short {
            b.push_str("; the dump file failed: ");
            push_short(b, why);
        }
        if let Some(why) = self.err_short {
            b.push_str("; stderr failed: ");
            push_short(b, why);
        }
    }
}

/// Ends a dump: writes out what is buffered, fsyncs and closes the file,
/// and only then lets stderr take until the deadline (the file has its
/// whole dump first). Allocation-free.
pub(crate) fn close_out(sink: &mut Sink, file: Option<sys::Fd>) {
    sink.flush();
    if let Some(f) = &file {
        // SAFETY: fsync on our own open descriptor.
        unsafe { libc::fsync(f.raw()) };
    }
    drop(file);
    sink.pump(true);
}

/// Writes an errno by its name (`ENOSPC`), or as `errno N` when it has none.
pub(super) fn push_errno<const N: usize>(b: &mut FixedBuf<N>, e: i32) {
    let name = sys::errno_name(e);
    if name.is_empty() {
        b.push_str("errno ");
        b.push_i64(e as i64);
    } else {
        b.push_str(name);
    }
}

fn push_short<const N: usize>(b: &mut FixedBuf<N>, why: sys::WriteShort) {
    match why {
        sys::WriteShort::Deadline => b.push_str("the dump deadline passed while it took no more bytes"),
        sys::WriteShort::Failed(e) => push_errno(b, e),
    }
}
