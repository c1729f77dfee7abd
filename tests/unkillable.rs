//! A culprit that cannot be killed: a registered thread writes into a
//! frozen file system (ext4 on a loop device, `fsfreeze -f`), as a write to
//! a dead storage path does, and sleeps uninterruptibly (state D) in the
//! kernel. In a real child process, the test checks that
//!
//! - the `blocked` verdict comes, the heartbeat gate closes, and the
//!   verdict line says the thread cannot be killed until its system call
//!   returns and that the node should be fenced;
//! - the process really does not end while the file system stays frozen
//!   (this is why a cluster manager must fence such a node instead of
//!   waiting for a restart): it is still there seconds after the verdict,
//!   its writer still in state D;
//! - once the file system thaws, the write returns and the process ends by
//!   SIGABRT, as the `abort` action says.
//!
//! It needs root (CI runs as root), `mkfs.ext4` (Debian's `e2fsprogs`),
//! `mount`, `umount` and `losetup` (`mount`) and `fsfreeze` (`util-linux`),
//! which `scripts/test.sh` installs; it fails, naming what is missing,
//! without them. The file system is thawed, unmounted and deleted when the
//! test ends, passed or failed ([`Frozen`]'s `Drop`).

#[macro_use]
extern crate failstop_test_support;
use failstop_test_support as common;

use common::{Spec, scenario};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const STALL_MS: u64 = 1000;
/// How long the test keeps the file system frozen after the verdict, to
/// see that the process does not end meanwhile.
const FROZEN_AFTER_VERDICT: Duration = Duration::from_secs(2);

/// Runs a command; panics with its output, naming the package that has it
/// when it is missing.
fn sh(program: &str, args: &[&str], package: &str) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install Debian's `{package}` (scripts/test.sh does)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small ext4 file system on a loop device, mounted at `dir`; frozen on
/// request. Dropping it thaws, unmounts and deletes it.
struct Frozen {
    image: PathBuf,
    dir: PathBuf,
    mounted: bool,
}

impl Frozen {
    fn new(base: &Path) -> Frozen {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test mounts a file system: run it as root");
        std::fs::create_dir_all(base).unwrap();
        let mut f = Frozen { image: base.join("fs.img"), dir: base.join("mnt"), mounted: false };
        std::fs::create_dir_all(&f.dir).unwrap();
        let image = f.image.to_str().unwrap().to_string();
        std::fs::File::create(&f.image).unwrap().set_len(16 << 20).unwrap();
        sh("mkfs.ext4", &["-q", "-F", &image], "e2fsprogs");
        sh("mount", &["-o", "loop", &image, f.dir.to_str().unwrap()], "mount");
        f.mounted = true;
        f
    }

    fn freeze(&self) {
        sh("fsfreeze", &["-f", self.dir.to_str().unwrap()], "util-linux");
    }

    fn thaw(&self) {
        sh("fsfreeze", &["-u", self.dir.to_str().unwrap()], "util-linux");
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if self.mounted {
            let dir = self.dir.to_str().unwrap();
            // Thawing an unfrozen file system fails harmlessly.
            let _ = Command::new("fsfreeze").args(["-u", dir]).output();
            // Lazily: a child still writing there must not keep it mounted.
            let _ = Command::new("umount").args(["-l", dir]).output();
        }
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The state letter of `tid` of process `pid`, from /proc.
fn thread_state(pid: i32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn a_culprit_in_uninterruptible_sleep_is_said_to_need_fencing_and_the_process_ends_only_after_the_thaw() {
    if scenario().is_some() {
        // No core file: the other threads would wait for the sleeper in the
        // core dump; without one, the process is a zombie meanwhile.
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: valid pointer to a local rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        let c = failstop::Config::new().stall_budget(Duration::from_millis(STALL_MS)).action(failstop::Action::Abort);
        let _wd = failstop::start(c).expect("start");
        let dir = PathBuf::from(std::env::var("FSTEST_FROZEN_DIR").unwrap());
        let go = PathBuf::from(std::env::var("FSTEST_GO").unwrap());
        std::thread::spawn(|| {
            while failstop::healthy() {
                std::thread::sleep(Duration::from_millis(10));
            }
            say!("heartbeat down");
        });
        let mut file = std::fs::File::create(dir.join("data")).expect("create in the file system");
        let h = failstop::register("writer").expect("register");
        say!("writer {}", common::gettid());
        say!("ready");
        while !go.exists() {
            h.touch();
            std::thread::sleep(Duration::from_millis(10));
        }
        h.touch();
        // Blocks in the kernel (D) while the file system is frozen.
        std::io::Write::write_all(&mut file, b"data").expect("write");
        say!("write returned");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let name = "a_culprit_in_uninterruptible_sleep_is_said_to_need_fencing_and_the_process_ends_only_after_the_thaw";
    let base = std::env::temp_dir().join(format!("failstop-unkillable-{}", std::process::id()));
    let fs = Frozen::new(&base);
    let go = base.join("go");
    let mut child = Spec::scenario(name, name)
        .env("FSTEST_FROZEN_DIR", fs.dir.to_str().unwrap())
        .env("FSTEST_GO", go.to_str().unwrap())
        .timeout(Duration::from_secs(60))
        .spawn();
    child.wait_for("ready", Duration::from_secs(30));
    let writer: i32 = {
        let (_, l) = child.wait_for_line("SCENARIO writer ", Duration::from_secs(1));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    fs.freeze();
    let fault = Instant::now();
    std::fs::write(&go, b"").unwrap();
    let down = child.wait_for("heartbeat down", Duration::from_secs(20));
    let verdict_after = down.saturating_duration_since(fault);
    assert!(
        verdict_after >= Duration::from_millis(STALL_MS) && verdict_after < Duration::from_secs(10),
        "the heartbeat went down {verdict_after:?} after the write began (stall_budget {STALL_MS} ms)"
    );
    std::thread::sleep(FROZEN_AFTER_VERDICT);
    let alive = child.child.try_wait().expect("try_wait").is_none();
    let state = thread_state(child.pid(), writer);
    fs.thaw();
    let thawed = Instant::now();
    let o = child.finish();
    assert!(alive, "the process ended while its writer slept in a frozen file system\n{}", o.describe());
    assert_eq!(state, Some('D'), "the writer was not in uninterruptible sleep\n{}", o.describe());
    o.assert_signal(libc::SIGABRT);
    let end_after_thaw = o.ended.saturating_duration_since(thawed);
    assert!(end_after_thaw < Duration::from_secs(10), "ended {end_after_thaw:?} after the thaw\n{}", o.describe());
    let line = o.stderr.lines().find(|l| l.starts_with("failstop: blocked: ")).unwrap_or_default();
    assert!(line.contains("thread \"writer\""), "no blocked verdict on the writer\n{}", o.describe());
    for words in ["uninterruptible sleep (state D)", "cannot be killed until the system call returns", "fence the node"]
    {
        assert!(line.contains(words), "the verdict line does not say {words:?}:\n{line}");
    }
    println!(
        "verdict (heartbeat down) {} ms after the write began; alive {} ms after it; ended {} ms after the thaw",
        verdict_after.as_millis(),
        FROZEN_AFTER_VERDICT.as_millis(),
        end_after_thaw.as_millis()
    );
}
