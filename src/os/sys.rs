//! Thin wrappers over the raw Linux calls failstop uses.
//!
//! One rule for the whole crate: a call that fails with `-1` becomes an
//! [`io::Error`] through [`syscall!`]. Functions here that are
//! marked *async-signal-safe* only issue system calls, read atomics and touch
//! memory they are given; they never allocate, lock or lazily initialise, so
//! the signal handler and the fatal path may call them.

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Runs a libc call and turns `-1` into the `errno` as an [`io::Error`].
///
/// Building the error value never allocates (`io::Error::from_raw_os_error`),
/// so the macro is async-signal-safe when the call it wraps is.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: the caller upholds the libc function's own contract; the
        // macro only inspects the return value.
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// The kernel thread id of the calling thread. Async-signal-safe.
pub(crate) fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// The process id. Async-signal-safe.
pub(crate) fn getpid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Sends `sig` to thread `tid` of this process. Async-signal-safe.
pub(crate) fn tgkill(tid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a raw syscall with integer arguments only.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, getpid(), tid, sig) };
    if r == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Queues `sig` with `value` to thread `tid` of this process
/// (`rt_tgsigqueueinfo`): the receiver sees `si_code == SI_QUEUE`, our pid and
/// the value. Async-signal-safe.
pub(crate) fn tgsigqueue(tid: libc::pid_t, sig: libc::c_int, value: usize) -> io::Result<()> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    info.si_signo = sig;
    info.si_code = libc::SI_QUEUE;
    // SAFETY: the layout below matches the kernel's `_rt` member of siginfo:
    // si_pid (i32), si_uid (u32), then the sigval, which is pointer-aligned.
    // The struct is large enough (128 bytes) for these writes.
    unsafe {
        let base = (&mut info as *mut libc::siginfo_t).cast::<u8>();
        let fields = base.add(std::mem::size_of::<libc::c_int>() * 4);
        *fields.cast::<libc::pid_t>() = getpid();
        *fields.add(4).cast::<libc::uid_t>() = libc::getuid();
        *fields.add(8).cast::<usize>() = value;
    }
    // SAFETY: a raw syscall; `info` outlives it.
    let r = unsafe { libc::syscall(libc::SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &info as *const libc::siginfo_t) };
    if r == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The `sigval` carried by a queued or timer signal. Async-signal-safe.
///
/// # Safety
/// `info` must point to a valid `siginfo_t` handed to an `SA_SIGINFO` handler.
pub(crate) unsafe fn siginfo_value(info: *const libc::siginfo_t) -> usize {
    // SAFETY: per the contract `info` is valid; the value sits at the same
    // offset for SI_QUEUE (`_rt`) and SI_TIMER (`_timer`: tid, overrun,
    // sigval) layouts: 4 ints of header, then 8 bytes, then the sigval.
    unsafe {
        let base = info.cast::<u8>();
        *base.add(std::mem::size_of::<libc::c_int>() * 4 + 8).cast::<usize>()
    }
}

/// The sender pid of a queued signal (`si_pid`). Async-signal-safe.
///
/// # Safety
/// `info` must point to a valid `siginfo_t`.
pub(crate) unsafe fn siginfo_pid(info: *const libc::siginfo_t) -> libc::pid_t {
    // SAFETY: per the contract; `si_pid` follows the 4-int header.
    unsafe { *info.cast::<u8>().add(std::mem::size_of::<libc::c_int>() * 4).cast::<libc::pid_t>() }
}

/// Waits while `*word == expected`, at most `timeout` (none: forever).
/// Returns on wake-up, timeout, signal or value change; callers re-check.
/// Async-signal-safe.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(timespec);
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the futex word is a live, aligned u32 for the whole call; the
    // private flag is right because the word is never shared across processes.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, ts_ptr);
    }
}

/// Wakes every waiter on `word`. Async-signal-safe.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    futex_wake(word, i32::MAX);
}

/// Wakes at most `n` waiters on `word`. Async-signal-safe.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: see `futex_wait`.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, n);
    }
}

/// A wake-up word and a stop flag for one of failstop's threads: rung from
/// signal handlers and other threads, waited on with a timeout.
pub(crate) struct Doorbell {
    word: AtomicU32,
    stop: std::sync::atomic::AtomicBool,
}

impl Doorbell {
    /// A quiet doorbell.
    pub(crate) const fn new() -> Self {
        Doorbell { word: AtomicU32::new(0), stop: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Wakes the waiting thread now. Async-signal-safe.
    pub(crate) fn ring(&self) {
        self.word.fetch_add(1, std::sync::atomic::Ordering::Release);
        futex_wake_all(&self.word);
    }

    /// Asks the waiting thread to finish its loop, and wakes it.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.ring();
    }

    /// Clears a stop request (a new thread starts).
    pub(crate) fn reset(&self) {
        self.stop.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Whether a stop was requested.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current ring count: read it before checking for work, then
    /// [`wait`](Self::wait) with it so that no ring is missed.
    pub(crate) fn seen(&self) -> u32 {
        self.word.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until rung after `seen`, or `timeout`.
    pub(crate) fn wait(&self, seen: u32, timeout: Duration) {
        futex_wait(&self.word, seen, Some(timeout));
    }
}

/// The size of a memory page (`sysconf(_SC_PAGESIZE)`: 4 KiB on most
/// machines, 16 or 64 KiB on some aarch64 kernels). Read once at first use
/// in normal context, then cached: async-signal-safe after the watchdog's
/// start has called it.
pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let cached = PAGE.load(std::sync::atomic::Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; it only reads a value (no
    // allocation, no lock), so even a first call in signal context is safe.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if p > 0 { p as usize } else { 4096 };
    PAGE.store(p, std::sync::atomic::Ordering::Relaxed);
    p
}

/// Converts a duration to a `timespec`, saturating far in the future.
pub(crate) fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// Reads a clock in nanoseconds. Async-signal-safe (clock_gettime is).
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Reads a clock in nanoseconds; `None` when it cannot be read (the CPU
/// clock of a thread that is gone). Async-signal-safe.
pub(crate) fn try_clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some((ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64))
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC: stops while suspended).
/// Async-signal-safe.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU time the calling thread has used, in nanoseconds. Async-signal-safe.
pub(crate) fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Sleeps for `d`, restarting after signals until the whole time has passed.
/// Async-signal-safe.
pub(crate) fn sleep(d: Duration) {
    let mut req = timespec(d);
    let mut rem = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointers to live timespecs.
    while unsafe { libc::nanosleep(&req, &mut rem) } == -1 {
        req = rem;
    }
}

/// Runs a raw call that returns a count or -1, again while it fails with
/// EINTR. Async-signal-safe when the call is.
pub(crate) fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Reads once into `buf`, again after EINTR. Returns 0 at the end of the
/// file. Async-signal-safe.
pub(crate) fn read_some(fd: libc::c_int, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`.
    retry_eintr(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// Writes the whole buffer to `fd`, retrying on EINTR and short writes.
/// Gives up on any other error (a closed stderr, a broken pipe).
/// Async-signal-safe.
pub(crate) fn write_all(fd: libc::c_int, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe `buf`.
        let n = retry_eintr(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// How a bounded write ([`write_until`]) ended short of its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteShort {
    /// The deadline passed with the descriptor still not writable (a full
    /// pipe nobody reads, a reader slower than the deadline).
    Deadline,
    /// The write failed with this `errno` (EPIPE, ENOSPC, EIO, ...).
    Failed(libc::c_int),
}

/// The most a write to a pipe may carry and stay atomic (POSIX `PIPE_BUF`,
/// 4096 on Linux): never interleaved with another process's writes.
pub(crate) const PIPE_BUF: usize = 4096;

/// How many bytes of `text` the next write of whole lines takes: all of it
/// when it fits in [`PIPE_BUF`], else up to the last newline within the
/// first `PIPE_BUF` bytes (or `PIPE_BUF` when a line is longer). Lines
/// written so never interleave mid-line with the application's own output
/// on a pipe. Async-signal-safe.
pub(crate) fn whole_lines(text: &[u8]) -> usize {
    if text.len() <= PIPE_BUF {
        return text.len();
    }
    text[..PIPE_BUF].iter().rposition(|&c| c == b'\n').map_or(PIPE_BUF, |i| i + 1)
}

/// Writes `buf` to `fd` until it is all written or `until` (monotonic ns)
/// passed; returns the bytes written and, when short, why.
///
/// Each write waits first with `ppoll(POLLOUT)` until the descriptor can
/// take bytes, so that a blocking descriptor (a full pipe) costs at most
/// the time to `until` and never blocks in `write(2)`; `EAGAIN` from a
/// non-blocking one (its flag belongs to the application: it is never
/// changed) waits in `ppoll` again instead of dropping the bytes. A pipe
/// that polls writable has room for a write of up to `PIPE_BUF` bytes, so
/// callers that must not block write at most that much at a time. With
/// `until` in the past, writes what the descriptor takes without waiting.
/// Async-signal-safe.
pub(crate) fn write_until(fd: libc::c_int, buf: &[u8], until: u64) -> (usize, Option<WriteShort>) {
    let mut done = 0;
    while done < buf.len() {
        let left = until.saturating_sub(monotonic_ns());
        let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        let ts = timespec(Duration::from_nanos(left));
        // The raw system call, not the C library's `ppoll`: an interposer
        // (libfailstop_preload.so's own, or another preload's) must not take
        // failstop's threads for the program's and register them.
        // SAFETY: one valid pollfd and a valid timespec for the whole call;
        // no signal mask (its size argument is then unused).
        let r = unsafe {
            libc::syscall(
                libc::SYS_ppoll,
                &mut pfd as *mut libc::pollfd,
                1 as libc::nfds_t,
                &ts as *const libc::timespec,
                std::ptr::null::<libc::sigset_t>(),
                8 as libc::size_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if e == libc::EINTR {
                continue;
            }
            return (done, Some(WriteShort::Failed(e)));
        }
        if r == 0 {
            return (done, Some(WriteShort::Deadline));
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return (done, Some(WriteShort::Failed(libc::EBADF)));
        }
        // Writable, or an error (POLLERR, POLLHUP) that the write names.
        let rest = &buf[done..];
        // SAFETY: the pointer and length describe `rest`.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            done += n as usize;
            continue;
        }
        if n == 0 {
            return (done, Some(WriteShort::Failed(libc::EIO)));
        }
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if e == libc::EINTR || e == libc::EAGAIN {
            if e == libc::EAGAIN && monotonic_ns() >= until {
                return (done, Some(WriteShort::Deadline));
            }
            continue;
        }
        return (done, Some(WriteShort::Failed(e)));
    }
    (done, None)
}

/// The symbolic name of a few `errno` values the dump reports (the rest
/// as a number). Async-signal-safe.
pub(crate) fn errno_name(e: libc::c_int) -> &'static str {
    match e {
        libc::ENOSPC => "ENOSPC (no space left on the device)",
        libc::EIO => "EIO (input/output error)",
        libc::EPIPE => "EPIPE (nobody reads the pipe)",
        libc::EDQUOT => "EDQUOT (disk quota exceeded)",
        libc::EROFS => "EROFS (read-only file system)",
        libc::EACCES => "EACCES (permission denied)",
        libc::ENOENT => "ENOENT (no such file or directory)",
        libc::ENXIO => "ENXIO (a FIFO with no reader)",
        libc::EEXIST => "EEXIST (the file exists)",
        libc::EMFILE => "EMFILE (every descriptor in use)",
        libc::ENFILE => "ENFILE (the system's file table is full)",
        libc::EBADF => "EBADF (not an open descriptor)",
        libc::EFBIG => "EFBIG (file too large)",
        libc::ENOTDIR => "ENOTDIR (not a directory)",
        libc::EISDIR => "EISDIR (a directory)",
        libc::ETIMEDOUT => "the dump deadline passed",
        _ => "",
    }
}

/// An owned file descriptor closed on drop, opened without allocating.
#[derive(Debug)]
pub(crate) struct Fd(libc::c_int);

/// Descriptors held back for failstop's own reads and writes: when the
/// application has used every descriptor (a leak, a server that keeps
/// accepting), `open` fails with `EMFILE`, and the monitor would lose the
/// `/proc` evidence and the dump its files exactly when they matter. Then
/// one of these is closed and the open tried again; the number is taken
/// back when the file is closed. Filled by [`reserve_descriptors`] at start
/// (eventfds: no file system needed). All of it async-signal-safe.
static RESERVE: [std::sync::atomic::AtomicI32; 3] = [const { std::sync::atomic::AtomicI32::new(-1) }; 3];

/// Fills the descriptor reserve (see [`RESERVE`]). Normal context, at start.
pub(crate) fn reserve_descriptors() -> io::Result<()> {
    for r in &RESERVE {
        if r.load(std::sync::atomic::Ordering::Relaxed) < 0 {
            let fd = syscall!(eventfd(0, libc::EFD_CLOEXEC))?;
            r.store(fd, std::sync::atomic::Ordering::Release);
        }
    }
    Ok(())
}

/// Gives the reserve back (the watchdog stops).
pub(crate) fn release_descriptors() {
    for r in &RESERVE {
        let fd = r.swap(-1, std::sync::atomic::Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: a reserved descriptor, ours, closed once thanks to the swap.
            unsafe { libc::close(fd) };
        }
    }
}

/// Frees one reserved descriptor number for an `open` that just failed
/// with `EMFILE`/`ENFILE`; false if the reserve is empty.
fn use_reserved() -> bool {
    for r in &RESERVE {
        let fd = r.swap(-1, std::sync::atomic::Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: as in `release_descriptors`.
            unsafe { libc::close(fd) };
            return true;
        }
    }
    false
}

/// Takes back, into the empty places of the reserve, the descriptor
/// numbers just freed.
fn refill_reserve() {
    for r in &RESERVE {
        if r.load(std::sync::atomic::Ordering::Relaxed) >= 0 {
            continue;
        }
        // SAFETY: eventfd has no memory arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return;
        }
        if r.compare_exchange(-1, fd, std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: our fresh descriptor, not stored anywhere.
            unsafe { libc::close(fd) };
        }
    }
}

/// Whether the reserve has a place to take a number back into.
fn reserve_short() -> bool {
    RESERVE.iter().any(|r| r.load(std::sync::atomic::Ordering::Relaxed) < 0)
        && RESERVED_ONCE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set once the reserve was used: only then does a close refill it (a
/// watchdog that never ran out of descriptors costs nothing per close).
static RESERVED_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Fd {
    /// Opens a NUL-terminated path with `flags | O_CLOEXEC`. When every
    /// descriptor is in use, takes one from the reserve (see [`RESERVE`]).
    /// Async-signal-safe.
    pub(crate) fn open(path: &std::ffi::CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<Fd> {
        Fd::with_reserve(|| syscall!(open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint)))
    }

    /// Runs `open`; when it fails with `EMFILE`/`ENFILE`, frees a reserved
    /// descriptor number and runs it once more. Async-signal-safe when
    /// `open` is.
    fn with_reserve(open: impl Fn() -> io::Result<libc::c_int>) -> io::Result<Fd> {
        match open() {
            Ok(fd) => Ok(Fd(fd)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) && use_reserved() => {
                RESERVED_ONCE.store(true, std::sync::atomic::Ordering::Relaxed);
                // Another thread may take the number first: then this is an
                // ordinary failure, and the caller treats it as no evidence.
                open().map(Fd)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens `name` relative to the directory `dir` (`openat`) with
    /// `flags | O_CLOEXEC`, taking a descriptor from the reserve when every
    /// one is in use (as [`open`](Self::open)). Async-signal-safe.
    pub(crate) fn openat(
        dir: libc::c_int,
        name: &std::ffi::CStr,
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<Fd> {
        Fd::with_reserve(|| syscall!(openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint)))
    }

    /// Creates a socket of `ty | SOCK_CLOEXEC` in `domain`. Async-signal-safe.
    pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<Fd> {
        let fd = syscall!(socket(domain, ty | libc::SOCK_CLOEXEC, 0))?;
        Ok(Fd(fd))
    }

    /// The raw descriptor.
    pub(crate) fn raw(&self) -> libc::c_int {
        self.0
    }

    /// Reads into `buf` until it is full or the file ends, retrying on EINTR.
    /// Returns the bytes read. Async-signal-safe.
    pub(crate) fn read_to(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            let n = read_some(self.0, &mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(got)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it exactly once.
        unsafe { libc::close(self.0) };
        if reserve_short() {
            refill_reserve();
        }
    }
}

/// Reads a whole small file (a /proc entry) into `buf` without allocating.
/// Returns the filled prefix. Async-signal-safe.
pub(crate) fn read_file<'a>(path: &std::ffi::CStr, buf: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let fd = Fd::open(path, libc::O_RDONLY, 0)?;
    let n = fd.read_to(buf)?;
    Ok(&buf[..n])
}

/// Saves `errno` on creation and restores it on drop: every signal handler
/// starts with one. Async-signal-safe.
pub(crate) struct ErrnoGuard(libc::c_int);

impl ErrnoGuard {
    /// Saves the calling thread's errno.
    pub(crate) fn save() -> Self {
        // SAFETY: __errno_location returns the calling thread's errno slot.
        ErrnoGuard(unsafe { *libc::__errno_location() })
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// fd 2 when this library was loaded: 0 not known (the constructor below
/// did not run), 1 open, 2 closed.
static STDERR_AT_LOAD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
/// fd 2 when the watchdog last started: true open.
static STDERR_AT_START: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether descriptor 2 is open. Async-signal-safe.
fn fd2_open() -> bool {
    // SAFETY: F_GETFD on a descriptor number only queries it.
    unsafe { libc::fcntl(2, libc::F_GETFD) != -1 }
}

/// Runs when the library is loaded, before `main` (an ELF constructor):
/// records whether the process was started with a standard error.
extern "C" fn record_stderr_at_load() {
    STDERR_AT_LOAD.store(if fd2_open() { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_STDERR_AT_LOAD: extern "C" fn() = record_stderr_at_load;

/// Records whether fd 2 is open as the watchdog starts.
pub(crate) fn note_stderr_at_start() {
    STDERR_AT_START.store(fd2_open(), std::sync::atomic::Ordering::Relaxed);
}

/// Whether failstop may write its warnings and dumps to fd 2: it is open
/// now, was open when the watchdog started and when the process was
/// started (as far as the library, loaded then, saw). A process started
/// with fd 2 closed gives that number to its first `open`: a data file,
/// a socket, which must never receive failstop's lines. The dump file
/// (`dump_path`) is written either way. Async-signal-safe.
pub(crate) fn stderr_usable() -> bool {
    STDERR_AT_LOAD.load(std::sync::atomic::Ordering::Relaxed) != 2
        && STDERR_AT_START.load(std::sync::atomic::Ordering::Relaxed)
        && fd2_open()
}

/// Maps a stack of `len` bytes with a guard page below it (an overflow then
/// faults cleanly instead of writing over a neighbour), `MAP_NORESERVE`: pages
/// cost memory only once touched. Returns the start of the mapping; the
/// stack is `[start + page_size(), start + page_size() + len)` and the whole
/// mapping, `len + page_size()` bytes, goes back with `munmap`. Normal
/// context.
pub(crate) fn map_stack(len: usize) -> io::Result<*mut u8> {
    let page = page_size();
    // SAFETY: an anonymous private mapping; the arguments are valid.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the first page of our own fresh mapping.
    unsafe { libc::mprotect(p, page, libc::PROT_NONE) };
    Ok(p.cast())
}

#[cfg(test)]
mod tests {
    use super::{PIPE_BUF, whole_lines};

    #[test]
    fn whole_lines_takes_all_that_fits_else_up_to_the_last_newline() {
        assert_eq!(whole_lines(b""), 0);
        assert_eq!(whole_lines(b"no newline"), 10);
        let mut t = vec![b'a'; PIPE_BUF - 1];
        t.push(b'\n');
        assert_eq!(whole_lines(&t), PIPE_BUF, "exactly PIPE_BUF: all of it");
        t.extend_from_slice(b"next line\n");
        assert_eq!(whole_lines(&t), PIPE_BUF, "the first line, whole");
        let mut lines = b"short\n".repeat(1000);
        let first = whole_lines(&lines);
        assert!(first <= PIPE_BUF && lines[first - 1] == b'\n' && first > PIPE_BUF - 6, "{first}");
        lines.truncate(first);
        assert_eq!(whole_lines(&lines), first);
        let long = vec![b'x'; PIPE_BUF * 2];
        assert_eq!(whole_lines(&long), PIPE_BUF, "a line longer than PIPE_BUF is cut");
    }
}
