//! A cgroup of its own for one child: a CPU quota that throttles it, or
//! the freezer that pauses it (`tests/adversity.rs`).
//!
//! Whichever hierarchy is mounted is used, found in `/proc/self/mountinfo`:
//! cgroup v1 with the controller as a mount option (`cpu` at
//! `/sys/fs/cgroup/cpu`, `freezer` at `/sys/fs/cgroup/freezer`), else a
//! cgroup2 mount (`cpu.max`, with `+cpu` enabled in the parent's
//! `cgroup.subtree_control` where needed; `cgroup.freeze`). Each [`Cgroup`]
//! is a fresh directory under the hierarchy's root, named with the test
//! process's pid and a counter; dropping it kills what is left in it and
//! removes it, also when the test failed. A cgroup that cannot be made
//! fails the test with what was tried and what to do: these tests never
//! skip.

use super::Spec;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The cgroup interface of a hierarchy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V1,
    V2,
}

/// A mounted cgroup hierarchy.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    pub version: Version,
    pub root: PathBuf,
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup mounts of `/proc/self/mountinfo`: (file system type, mount
/// point, super options).
pub fn mounts() -> Vec<(String, PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    text.lines()
        .filter_map(|l| {
            // id parent major:minor root mount-point options [optional...] - type source super-options
            let (head, tail) = l.split_once(" - ")?;
            let mount_point = head.split(' ').nth(4)?;
            let mut t = tail.split(' ');
            let fstype = t.next()?;
            let _source = t.next()?;
            let super_options = t.next().unwrap_or("");
            matches!(fstype, "cgroup" | "cgroup2")
                .then(|| (fstype.to_string(), PathBuf::from(unescape(mount_point)), super_options.to_string()))
        })
        .collect()
}

/// The hierarchy that has `controller` (`cpu` or `freezer`): a v1 mount
/// with it among its options first, else a cgroup2 mount that offers it
/// (the v2 freezer, `cgroup.freeze`, is in every cgroup2 hierarchy).
/// `Err` says what was looked at.
pub fn hierarchy(controller: &str) -> Result<Hierarchy, String> {
    let all = mounts();
    if let Some((_, root, _)) = all.iter().find(|(t, _, o)| t == "cgroup" && o.split(',').any(|c| c == controller)) {
        return Ok(Hierarchy { version: Version::V1, root: root.clone() });
    }
    for (t, root, _) in &all {
        if t != "cgroup2" {
            continue;
        }
        let offered = controller == "freezer"
            || std::fs::read_to_string(root.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == controller));
        if offered {
            return Ok(Hierarchy { version: Version::V2, root: root.clone() });
        }
    }
    let seen: Vec<String> = all.iter().map(|(t, p, o)| format!("{t} at {} ({o})", p.display())).collect();
    Err(format!(
        "no cgroup hierarchy with the `{controller}` controller is mounted: /proc/self/mountinfo has no cgroup v1 \
         mount with the `{controller}` option and no cgroup2 mount whose cgroup.controllers lists it (cgroup \
         mounts seen: {}). Mount one (cgroup v2: `mount -t cgroup2 none /sys/fs/cgroup`; v1: `mount -t cgroup -o \
         {controller} none /sys/fs/cgroup/{controller}`) and run the test as root",
        if seen.is_empty() { "none".to_string() } else { seen.join("; ") }
    ))
}

/// Writes `value` to the cgroup file `path`; `Err` says what to do.
fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| {
        let root = match e.raw_os_error() {
            Some(libc::EACCES | libc::EPERM | libc::EROFS) => {
                " (these tests need root, or a cgroup hierarchy delegated to this user: run them as root)"
            }
            _ => "",
        };
        format!("writing {value:?} to {}: {e}{root}", path.display())
    })
}

/// A fresh cgroup, removed on drop (after what is left in it is killed).
pub struct Cgroup {
    pub hierarchy: Hierarchy,
    pub dir: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Cgroup {
    /// A new cgroup in the hierarchy of `controller`; `Err` says what
    /// was tried.
    fn make(controller: &str) -> Result<Cgroup, String> {
        let hierarchy = hierarchy(controller)?;
        if hierarchy.version == Version::V2 && controller == "cpu" {
            // The cpu controller must be enabled for the root's children.
            let control = hierarchy.root.join("cgroup.subtree_control");
            let enabled =
                std::fs::read_to_string(&control).map_err(|e| format!("reading {}: {e}", control.display()))?;
            if !enabled.split_whitespace().any(|c| c == "cpu") {
                write(&control, "+cpu").map_err(|e| {
                    format!(
                        "{e}; enabling the cpu controller there fails when that cgroup has processes of its \
                         own and is not the root: move them to a child cgroup, or enable +cpu by hand"
                    )
                })?;
            }
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = hierarchy.root.join(format!("failstop-test-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            let root = match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM | libc::EROFS) => " (these tests need root: run them as root)",
                _ => "",
            };
            format!("creating the cgroup {} ({:?}) failed: {e}{root}", dir.display(), hierarchy.version)
        })?;
        Ok(Cgroup { hierarchy, dir })
    }

    /// A new cgroup whose processes get `quota_us` of CPU time every
    /// `period_us` (all CPUs together). Fails the test if none can be made.
    pub fn with_cpu_quota(quota_us: u64, period_us: u64) -> Cgroup {
        let made = Cgroup::make("cpu").and_then(|cg| {
            match cg.hierarchy.version {
                Version::V1 => {
                    write(&cg.dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
                    write(&cg.dir.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
                }
                Version::V2 => write(&cg.dir.join("cpu.max"), &format!("{quota_us} {period_us}"))?,
            }
            Ok(cg)
        });
        made.unwrap_or_else(|e| panic!("a cgroup with a CPU quota is needed and none could be made: {e}"))
    }

    /// A new cgroup that [`Cgroup::freeze`] can pause. Fails the test if
    /// none can be made.
    pub fn freezable() -> Cgroup {
        let made = Cgroup::make("freezer").and_then(|cg| {
            let file = cg.freeze_file();
            if !file.exists() {
                return Err(format!("{} has no {}: the freezer is not available", cg.dir.display(), file.display()));
            }
            Ok(cg)
        });
        made.unwrap_or_else(|e| panic!("a cgroup with the freezer is needed and none could be made: {e}"))
    }

    fn freeze_file(&self) -> PathBuf {
        self.dir.join(match self.hierarchy.version {
            Version::V1 => "freezer.state",
            Version::V2 => "cgroup.freeze",
        })
    }

    /// The file a process writes its pid to in order to join.
    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// The pids in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.procs())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// `spec` run inside this cgroup: through `/bin/sh`, which joins it
    /// and then execs the program, so that the program is in the cgroup
    /// before it runs its first instruction (a scenario of this test
    /// binary too: the program is then `current_exe()`).
    pub fn wrap(&self, mut spec: Spec) -> Spec {
        let program = spec.program.take().unwrap_or_else(|| std::env::current_exe().expect("current_exe"));
        let procs = self.procs();
        let procs = procs.to_str().expect("a UTF-8 cgroup path");
        assert!(!procs.contains('\''), "{procs}");
        let script = format!(
            "echo $$ > '{procs}' || {{ echo \"failstop test: cannot join the cgroup {procs}\" >&2; exit 97; }}; \
             exec \"$0\" \"$@\""
        );
        let mut args = vec!["-c".to_string(), script, program.to_str().expect("a UTF-8 program path").to_string()];
        args.append(&mut spec.args);
        spec.program = Some(PathBuf::from("/bin/sh"));
        spec.args = args;
        spec
    }

    /// Freezes (`true`) or thaws the cgroup, and waits until it is done.
    pub fn freeze(&self, frozen: bool) {
        let (value, file) = match self.hierarchy.version {
            Version::V1 => (if frozen { "FROZEN" } else { "THAWED" }, self.freeze_file()),
            Version::V2 => (if frozen { "1" } else { "0" }, self.freeze_file()),
        };
        write(&file, value).unwrap_or_else(|e| panic!("{e}"));
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let done = match self.hierarchy.version {
                Version::V1 => std::fs::read_to_string(&file).is_ok_and(|s| s.trim() == value),
                Version::V2 => std::fs::read_to_string(self.dir.join("cgroup.events"))
                    .is_ok_and(|s| s.lines().any(|l| l == format!("frozen {value}"))),
            };
            if done {
                return;
            }
            assert!(Instant::now() < until, "{} did not become {value} within 10 s", self.dir.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `nr_throttled` of the cgroup's `cpu.stat`: the periods in which its
    /// quota ran out.
    pub fn nr_throttled(&self) -> u64 {
        let path = self.dir.join("cpu.stat");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no nr_throttled in {}:\n{text}", path.display()))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // A frozen process cannot die: thaw first. Then kill whatever is
        // left (the test's own child and its descendants) and remove the
        // directory, which the kernel refuses while a process is in it.
        let thaw = match self.hierarchy.version {
            Version::V1 => "THAWED",
            Version::V2 => "0",
        };
        let file = self.freeze_file();
        if file.exists() {
            let _ = std::fs::write(&file, thaw);
        }
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            for pid in self.pids() {
                // SAFETY: a process in a cgroup this test made for its child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if Instant::now() > until => {
                    eprintln!("failstop test: could not remove the cgroup {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
