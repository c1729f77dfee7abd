//! [`DumpPath`]: where dump files go, resolved at start, and the file of
//! one dump ([`open_file`]).

use super::sink::{Sink, push_errno};
use crate::os::fmt::FixedBuf;
use crate::os::sys;

/// Where dump files go, resolved at start: the directory held open (so that
/// a later `chdir`, a rename of the path or every descriptor in use costs
/// nothing) and the file-name pattern (`%p` the pid, `%t` the Unix time in
/// seconds, `%%` a percent sign).
#[derive(Clone, Debug)]
pub(crate) struct DumpPath {
    dir: std::sync::Arc<sys::Fd>,
    pub(super) name: std::ffi::CString,
}

impl DumpPath {
    /// Checks `path` (from `dump_path` / `FAILSTOP_DUMP_PATH`) at start: made
    /// absolute against the current directory, its directory must exist
    /// and be writable. Normal context.
    pub(crate) fn resolve(path: &std::path::Path) -> Result<DumpPath, crate::error::Error> {
        use std::os::unix::ffi::OsStrExt;
        let fail = |why: String| {
            crate::error::Error::invalid_config(format!("dump_path (FAILSTOP_DUMP_PATH) {path:?}: {why}"))
        };
        let abs = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| fail(format!("relative, and the current directory is unknown ({e})")))?
                .join(path)
        };
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Err(fail("names no file".into()));
        };
        let name = std::ffi::CString::new(name.as_bytes()).map_err(|_| fail("contains a NUL byte".into()))?;
        let dir_c =
            std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| fail("contains a NUL byte".into()))?;
        match std::fs::metadata(dir) {
            Err(e) => return Err(fail(format!("its directory {dir:?} cannot be used ({e})"))),
            Ok(m) if !m.is_dir() => return Err(fail(format!("{dir:?} is not a directory"))),
            Ok(_) => {}
        }
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::access(dir_c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail(format!("its directory {dir:?} is not writable ({e}): a dump could not be kept there")));
        }
        let fd = sys::Fd::open(&dir_c, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| fail(format!("its directory {dir:?} cannot be opened ({e})")))?;
        Ok(DumpPath { dir: std::sync::Arc::new(fd), name })
    }

    /// Opens a new dump file: the pattern with its placeholders filled in,
    /// created with `O_EXCL` (an earlier dump is never overwritten: when the
    /// name exists, `.1`, `.2`, ... up to `.99` is added). A FIFO or a
    /// character device at the name is opened as it is, with `O_NONBLOCK`
    /// (a FIFO with no reader fails at once with ENXIO instead of blocking).
    /// Returns the descriptor, or the errno. Allocation-free.
    pub(crate) fn open_new(&self) -> Result<sys::Fd, libc::c_int> {
        let mut name = FixedBuf::<512>::new();
        self.fill_name(&mut name);
        let base_len = name.len();
        let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        for n in 0..100u64 {
            if n > 0 {
                name.truncate(base_len);
                name.push_str(".");
                name.push_u64(n);
            }
            let end = name.len();
            name.push_bytes(b"\0");
            let Ok(c) = std::ffi::CStr::from_bytes_with_nul(name.as_bytes()) else {
                return Err(libc::ENAMETOOLONG);
            };
            // A FIFO or a device (a log collector's) is written, not replaced.
            // SAFETY: stat is plain data; valid pointers for the call.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: a held directory descriptor, a NUL-terminated name, a valid out-pointer.
            let special = unsafe { libc::fstatat(self.dir.raw(), c.as_ptr(), &mut st, 0) } == 0
                && matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFCHR);
            let r = if special {
                sys::Fd::openat(self.dir.raw(), c, flags, 0)
            } else {
                sys::Fd::openat(self.dir.raw(), c, flags | libc::O_CREAT | libc::O_EXCL, 0o644)
            };
            name.truncate(end);
            match r {
                Ok(fd) => return Ok(fd),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
        Err(libc::EEXIST)
    }

    fn fill_name<const N: usize>(&self, out: &mut FixedBuf<N>) {
        let pat = self.name.as_bytes();
        let mut i = 0;
        while i < pat.len() {
            match (pat[i], pat.get(i + 1)) {
                (b'%', Some(b'p')) => out.push_i64(sys::getpid() as i64),
                (b'%', Some(b't')) => out.push_u64(sys::clock_ns(libc::CLOCK_REALTIME) / 1_000_000_000),
                (b'%', Some(b'%')) => out.push_str("%"),
                (c, _) => {
                    out.push_bytes(&[c]);
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
    }
}

/// Opens the dump file for `sink`, or says on stderr in one line why it
/// cannot be. Allocation-free.
pub(crate) fn open_file(path: Option<&DumpPath>, sink: &mut Sink) -> Option<sys::Fd> {
    let p = path?;
    match p.open_new() {
        Ok(fd) => {
            sink.set_file(fd.raw());
            Some(fd)
        }
        Err(e) => {
            let b = sink.line();
            b.push_str("failstop: the dump file could not be opened (");
            push_errno(b, e);
            b.push_str("): the dump is on stderr only");
            sink.eol();
            sink.flush();
            None
        }
    }
}
