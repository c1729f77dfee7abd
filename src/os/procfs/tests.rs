use super::*;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

// Captured on Linux 6.18 x86_64 (`cat /proc/self/stat`).
const STAT_CAT: &[u8] = b"4248 (cat) R 4243 4243 2444 0 -1 4194304 99 0 0 0 7 3 0 0 20 0 1 0 152052 \
3133440 362 18446744073709551615 94102671114240 94102671134121 140736913817728 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 \
94102671150128 94102671151744 94103197425664 140736913820373 140736913820393 140736913820393 140736913821675 0\n";

// Captured `/proc/self/status` (Linux 6.18), with signal masks and switch
// counts edited to non-trivial values.
const STATUS_CAT: &[u8] = b"Name:\tcat
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4247
Ngid:\t0
Pid:\t4247
PPid:\t4243
TracerPid:\t4100
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
FDSize:\t256
Groups:\t 
NStgid:\t4247
NSpid:\t4247
VmPeak:\t    3060 kB
Threads:\t1
SigQ:\t0/96365
SigPnd:\t0000000000000100
ShdPnd:\t0000000000004000
SigBlk:\tfffffffe7ffbfeff
SigIgn:\t0000000000000000
SigCgt:\t0000000000000000
CapPrm:\t000001fffeffffff
Cpus_allowed:\t3
Cpus_allowed_list:\t0-1
Mems_allowed:\t00000000,00000001
Mems_allowed_list:\t0
voluntary_ctxt_switches:\t12
nonvoluntary_ctxt_switches:\t3
";

#[test]
fn task_path_formats_and_rejects() {
    let p = TaskPath::new(1234, "stat").unwrap();
    assert_eq!(p.as_cstr(), c"/proc/self/task/1234/stat");
    let p = TaskPath::new(i32::MAX, "nonvoluntary_ctxt").unwrap();
    assert_eq!(p.as_cstr().to_bytes(), b"/proc/self/task/2147483647/nonvoluntary_ctxt");
    assert!(TaskPath::new(0, "stat").is_err());
    assert!(TaskPath::new(-5, "stat").is_err());
    assert!(TaskPath::new(1, "st\0at").is_err());
    assert!(TaskPath::new(1, &"x".repeat(60)).is_err());
}

#[test]
fn numbers() {
    assert_eq!(parse_dec(b"0"), Some(0));
    assert_eq!(parse_dec(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_dec(b"18446744073709551616"), None);
    assert_eq!(parse_dec(b""), None);
    assert_eq!(parse_dec(b"1a"), None);
    assert_eq!(parse_signed(b"-1"), Some(-1));
    assert_eq!(parse_signed(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(parse_signed(b"9223372036854775808"), None);
    assert_eq!(parse_signed(b"-"), None);
    assert_eq!(parse_hex(b"0x7f4dfa9d52ad"), Some(0x7f4d_fa9d_52ad));
    assert_eq!(parse_hex(b"fffffffe7ffbfeff"), Some(0xffff_fffe_7ffb_feff));
    assert_eq!(parse_hex(b"0x"), None);
    assert_eq!(parse_hex(b"0x10000000000000000"), None);
}

#[test]
fn stat_captured() {
    let s = parse_stat(STAT_CAT).unwrap();
    assert_eq!(s, TaskStat { state: b'R', ppid: 4243, pgrp: 4243, utime_ticks: 7, stime_ticks: 3, processor: 1 });
}

#[test]
fn stat_comm_with_parens_spaces_and_newline() {
    let line = b"77 (a) b) S\n(c) D 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 17 3 0";
    let s = parse_stat(line).unwrap();
    assert_eq!((s.state, s.ppid, s.pgrp, s.utime_ticks, s.stime_ticks, s.processor), (b'D', 1, 1, 5, 6, 3));
}

#[test]
fn stat_malformed() {
    assert_eq!(parse_stat(b""), None);
    assert_eq!(parse_stat(b"1 (x"), None);
    assert_eq!(parse_stat(b"1 (x)"), None);
    assert_eq!(parse_stat(b"1 (x) SS 1 2 3"), None);
    // Truncated before the processor field.
    let at = STAT_CAT.windows(6).position(|w| w == b" 17 1 ").unwrap() + 3;
    let cut = &STAT_CAT[..at];
    assert!(cut.ends_with(b" 17"));
    assert_eq!(parse_stat(cut), None);
}

#[test]
fn status_captured() {
    let s = parse_status(STATUS_CAT).unwrap();
    assert_eq!(s.name(), b"cat");
    assert_eq!(s.state, b'S');
    assert_eq!(s.tracer_pid, 4100);
    assert_eq!(s.sig_pnd, 0x100);
    assert_eq!(s.shd_pnd, 0x4000);
    assert_eq!(s.sig_blk, 0xffff_fffe_7ffb_feff);
    assert_eq!(s.voluntary_ctxt_switches, 12);
    assert_eq!(s.nonvoluntary_ctxt_switches, 3);
}

#[test]
fn status_name_kept_raw() {
    let mut text = b"Name:\t a\\nb:c\\\\\n".to_vec();
    text.extend_from_slice(&STATUS_CAT[b"Name:\tcat\n".len()..]);
    assert_eq!(parse_status(&text).unwrap().name(), b" a\\nb:c\\\\");
    // Too long for the field: cut, not rejected.
    let mut text = b"Name:\t".to_vec();
    text.extend_from_slice(&[b'\\'; 40]);
    text.extend_from_slice(&STATUS_CAT[b"Name:\tcat".len()..]);
    assert_eq!(parse_status(&text).unwrap().name().len(), 32);
}

#[test]
fn status_truncated_or_missing_fields() {
    assert_eq!(parse_status(b""), None);
    assert_eq!(parse_status(&STATUS_CAT[..STATUS_CAT.len() - 40]), None);
    let no_state = STATUS_CAT.split(|&b| b == b'\n').filter(|l| !l.starts_with(b"State"));
    let no_state: Vec<u8> = no_state.flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    assert_eq!(parse_status(&no_state), None);
}

#[test]
fn schedstat() {
    assert_eq!(
        parse_schedstat(b"2512367 64025 12\n"),
        Some(SchedStat { run_ns: 2_512_367, run_delay_ns: 64_025, timeslices: 12 })
    );
    assert_eq!(parse_schedstat(b"1 2\n"), None);
    assert_eq!(parse_schedstat(b"1 2 3 4\n"), None);
    assert_eq!(parse_schedstat(b"1 x 3\n"), None);
}

#[test]
fn syscall_states() {
    assert_eq!(parse_syscall(b"running\n"), Some(SyscallState::Running));
    assert_eq!(
        parse_syscall(b"-1 0x7ffdca821218 0x7f4dfa9d52ad\n"),
        Some(SyscallState::NotInSyscall { sp: 0x7ffd_ca82_1218, pc: 0x7f4d_fa9d_52ad })
    );
    // Captured from `cat /proc/self/syscall`.
    let text = b"0 0x3 0x7f4dfa859000 0x20000 0x7f4dfa8ecb60 0xffffffff 0x0 0x7ffdca821218 0x7f4dfa9d52ad\n";
    assert_eq!(
        parse_syscall(text),
        Some(SyscallState::InSyscall {
            nr: 0,
            args: [3, 0x7f4d_fa85_9000, 0x20000, 0x7f4d_fa8e_cb60, 0xffff_ffff, 0],
            sp: 0x7ffd_ca82_1218,
            pc: 0x7f4d_fa9d_52ad,
        })
    );
    assert_eq!(parse_syscall(b""), None);
    assert_eq!(parse_syscall(b"-1 0x1"), None);
    assert_eq!(parse_syscall(b"0 0x1 0x2"), None);
    assert_eq!(parse_syscall(b"0 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 0x9"), None);
    assert_eq!(parse_syscall(b"running 0x1"), None);
}

#[test]
fn wchan_and_state_names() {
    assert_eq!(parse_wchan(b"0"), None);
    assert_eq!(parse_wchan(b""), None);
    assert_eq!(parse_wchan(b"pipe_read"), Some(&b"pipe_read"[..]));
    assert_eq!(state_name(b'D'), "disk sleep (uninterruptible)");
    assert_eq!(state_name(b't'), "tracing stop");
    assert_eq!(state_name(b'?'), "unknown");
}

#[test]
fn ticks() {
    assert_eq!(ticks_to_ns(3, 100), 30_000_000);
    assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
    assert_eq!(ticks_to_ns(5, 0), 0);
    assert!(clk_tck() > 0);
    assert_eq!(clk_tck(), clk_tck());
}

#[test]
fn dirent_walk_rejects_garbage() {
    let mut seen = 0;
    assert!(walk_dirents(&[0; 10], &mut |_| seen += 1).is_err());
    assert!(walk_dirents(&[0; 40], &mut |_| seen += 1).is_err()); // reclen 0
    assert_eq!(seen, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_stat(&bytes);
        let _ = parse_status(&bytes);
        let _ = parse_schedstat(&bytes);
        let _ = parse_syscall(&bytes);
        let _ = parse_wchan(&bytes);
        let _ = walk_dirents(&bytes, &mut |_| {});
    }

    #[test]
    fn parsers_survive_mutated_captures(cut in 0usize..2000, pos in 0usize..2000, byte in any::<u8>()) {
        for capture in [STAT_CAT, STATUS_CAT] {
            let mut v = capture[..cut.min(capture.len())].to_vec();
            if let Some(b) = v.get_mut(pos) {
                *b = byte;
            }
            let _ = parse_stat(&v);
            let _ = parse_status(&v);
            let _ = parse_syscall(&v);
        }
    }
}

// --- Live tests against this process --------------------------------------

/// A thread blocked in `read()` on a pipe nobody writes to; unblocked and
/// joined on drop.
struct BlockedReader {
    tid: pid_t,
    write_fd: libc::c_int,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl BlockedReader {
    fn spawn() -> BlockedReader {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid two-int out-array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (tx, rx) = mpsc::channel();
        let read_fd = fds[0];
        let handle = std::thread::Builder::new()
            .name("blocked-reader".into())
            .spawn(move || {
                tx.send(sys::gettid()).unwrap();
                let mut b = [0u8; 1];
                // SAFETY: `b` is a valid one-byte buffer; `read_fd` is open.
                unsafe { libc::read(read_fd, b.as_mut_ptr().cast(), 1) };
                // SAFETY: we own the read end.
                unsafe { libc::close(read_fd) };
            })
            .unwrap();
        BlockedReader { tid: rx.recv().unwrap(), write_fd: fds[1], handle: Some(handle) }
    }
}

impl Drop for BlockedReader {
    fn drop(&mut self) {
        // SAFETY: one byte from a static buffer; we own the write end.
        unsafe {
            libc::write(self.write_fd, b"x".as_ptr().cast(), 1);
            libc::close(self.write_fd);
        }
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Polls until the reader sits in `read()` (it may not have got there yet).
fn wait_blocked(tid: pid_t, buf: &mut [u8]) -> SyscallState {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sc = read_syscall(tid, buf).expect("syscall file of own thread");
        let st = read_stat(tid, buf).unwrap();
        if st.state == b'S' && matches!(sc, SyscallState::InSyscall { .. }) || Instant::now() > deadline {
            return sc;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn live_blocked_thread() {
    let reader = BlockedReader::spawn();
    let mut buf = [0u8; SCRATCH_LEN];

    match wait_blocked(reader.tid, &mut buf) {
        SyscallState::InSyscall { nr, args, .. } => {
            assert_eq!(nr, libc::SYS_read);
            assert_eq!(syscall_name(nr), Some("read"));
            assert_eq!(args[2], 1, "read length");
        }
        other => panic!("not in read(): {other:?}"),
    }
    let stat = read_stat(reader.tid, &mut buf).unwrap();
    assert_eq!(stat.state, b'S');
    assert!(stat.processor >= 0);

    let status = read_status(reader.tid, &mut buf).unwrap();
    assert_eq!(status.state, b'S');
    assert_eq!(status.name(), b"blocked-reader");
    assert!(status.voluntary_ctxt_switches >= 1);

    assert_eq!(read_comm(reader.tid, &mut buf).unwrap(), b"blocked-reader");
    if let Some(w) = read_wchan(reader.tid, &mut buf).unwrap() {
        assert!(!w.is_empty());
    }
    match read_schedstat(reader.tid, &mut buf) {
        Ok(s) => assert!(s.timeslices >= 1),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
    }
    let mut big = [0u8; STACK_LEN];
    match read_stack(reader.tid, &mut big) {
        Ok(text) => assert!(text.is_empty() || text.starts_with(b"[<")),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied),
    }

    let mut seen = [false; 2];
    let me = sys::gettid();
    for_each_task(&mut buf, |tid| {
        seen[0] |= tid == reader.tid;
        seen[1] |= tid == me;
    })
    .unwrap();
    assert_eq!(seen, [true, true]);
}

#[test]
fn live_own_thread_and_process() {
    let mut buf = [0u8; SCRATCH_LEN];
    let me = sys::gettid();
    let stat = read_stat(me, &mut buf).unwrap();
    assert_eq!(stat.state, b'R');
    // A thread reading its own `syscall` file sees that very read().
    match read_syscall(me, &mut buf).unwrap() {
        SyscallState::InSyscall { nr, .. } => assert_eq!(nr, libc::SYS_read),
        other => panic!("{other:?}"),
    }

    let status = read_status(me, &mut buf).unwrap();
    assert_eq!(status.state, b'R');
    let name = status.name;
    let len = status.name().len();
    assert_eq!(read_comm(me, &mut buf).unwrap(), &name[..len]);

    let proc_status = read_self_status(&mut buf).unwrap();
    assert!(proc_status.tracer_pid >= 0);
}

#[test]
fn small_buffers_and_missing_threads() {
    let me = sys::gettid();
    let mut tiny = [0u8; 40];
    assert_eq!(read_status(me, &mut tiny).unwrap_err().kind(), io::ErrorKind::FileTooLarge);
    // A getdents64 buffer too small for one record is EINVAL, not a panic.
    assert!(for_each_task(&mut [0u8; 8], |_| {}).is_err());
    // Small but workable: many getdents64 rounds.
    let mut n = 0;
    for_each_task(&mut [0u8; 64], |_| n += 1).unwrap();
    assert!(n >= 1);
    // Thread ids are at most 2^22 by default; this one does not exist.
    let err = read_stat(i32::MAX, &mut [0u8; SCRATCH_LEN]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn io_parses_and_reads() {
    let text =
        b"rchar: 3210\nwchar: 77\nsyscr: 12\nsyscw: 5\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
    let io = parse_io(text).unwrap();
    assert_eq!((io.rchar, io.wchar, io.syscr, io.syscw), (3210, 77, 12, 5));
    assert!(parse_io(b"rchar: 1\nwchar: 2\n").is_none(), "a field missing");
    assert!(parse_io(b"rchar: x\nwchar: 2\nsyscr: 1\nsyscw: 1\n").is_none(), "not a number");
    // The calling thread's own file: writing moves wchar.
    let mut buf = [0u8; SCRATCH_LEN];
    let me = crate::os::sys::gettid();
    let before = read_io(me, &mut buf).unwrap();
    let mut fds = [0; 2];
    // SAFETY: a valid out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    crate::os::sys::write_all(fds[1], b"12345").unwrap();
    let after = read_io(me, &mut buf).unwrap();
    // SAFETY: our own descriptors.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    assert!(after.wchar >= before.wchar + 5, "{before:?} -> {after:?}");
    assert!(after.syscw > before.syscw, "{before:?} -> {after:?}");
}

#[test]
fn task_dir_reads_what_the_full_paths_read() {
    let tid = sys::gettid();
    let mut buf = [0u8; STACK_LEN];
    for dir in [TaskDir::open(), TaskDir(None)] {
        let st = dir.status(tid, &mut buf).unwrap();
        assert_eq!(st.name(), read_status(tid, &mut buf).unwrap().name());
        assert_eq!(dir.stat(tid, &mut buf).unwrap().ppid, read_stat(tid, &mut buf).unwrap().ppid);
        // The calling thread reads its own syscall file: it is in read(2).
        let sc = dir.syscall(tid, &mut buf).unwrap();
        assert!(matches!(sc, SyscallState::InSyscall { nr, .. } if nr == libc::SYS_read), "{sc:?}");
        if read_schedstat(tid, &mut buf).is_ok() {
            assert!(dir.schedstat(tid, &mut buf).is_ok());
        }
        assert_eq!(dir.wchan(tid, &mut buf).is_ok(), read_wchan(tid, &mut buf).is_ok());
        assert_eq!(dir.stack(tid, &mut buf).is_ok(), read_stack(tid, &mut buf).is_ok());
        assert!(dir.status(0, &mut buf).is_err());
        assert!(dir.status(i32::MAX, &mut buf).is_err());
    }
}
