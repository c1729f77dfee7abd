//! The CPU controller of the cgroups this process runs in: the quota in
//! force and how long it held the process back.
//!
//! A CPU quota (cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, v2
//! `cpu.max`) stretches every wall-clock wait that depends on another
//! thread's CPU: at a 5% quota, 250 ms of work take 5 s. The kernel counts
//! the time a group was held back in its `cpu.stat` (v1 `throttled_time` in
//! ns, v2 `throttled_usec`, both summed over the CPUs the group was
//! throttled on). The monitor reads it every loop so that time the process
//! could not run counts against nobody, and the dump shows it.
//!
//! [`CpuCgroups::discover`] runs once, in normal context, before the
//! monitor starts: it reads `/proc/self/cgroup` and `/proc/self/mountinfo`
//! (allocating) and keeps the paths of the process's own cgroup and its
//! ancestors (a quota set on a parent, as container runtimes and systemd
//! slices do, throttles the children). Everything after that is
//! allocation-free: [`CpuCgroups::sample`] and [`CpuCgroups::for_each`] only
//! open and read small files into a buffer the caller gives.

use crate::os::fmt::FixedBuf;
use crate::os::sys;
use std::ffi::CStr;
use std::io;

/// Levels kept: the process's cgroup and up to this many less one ancestors.
const MAX_LEVELS: usize = 8;
/// The longest cgroup directory kept (a longer one is left out).
const PATH_LEN: usize = 256;

/// One cgroup directory with the CPU controller.
struct Level {
    /// The directory, e.g. `/sys/fs/cgroup/cpu/docker/abc`.
    dir: FixedBuf<PATH_LEN>,
    /// Its name in the hierarchy, e.g. `/docker/abc` (`/` for the root).
    name: FixedBuf<PATH_LEN>,
    /// Throttled ns at the last [`CpuCgroups::sample`].
    last_throttled_ns: u64,
}

/// What `cpu.stat` and the quota files of one level say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Throttling {
    /// Enforcement periods that had runnable threads.
    pub nr_periods: u64,
    /// Periods in which the group was throttled.
    pub nr_throttled: u64,
    /// Time throttled, summed over the CPUs it was throttled on (ns).
    pub throttled_ns: u64,
    /// The quota and its period (µs); `None`: no quota.
    pub quota: Option<(u64, u64)>,
}

/// The CPU-controller cgroups of this process, its own first.
pub(crate) struct CpuCgroups {
    /// 1 or 2 (0: none found).
    version: u8,
    levels: Vec<Level>,
}

impl CpuCgroups {
    /// None found (no `/proc`, no CPU controller mounted).
    pub(crate) fn none() -> Self {
        CpuCgroups { version: 0, levels: Vec::new() }
    }

    /// Finds the process's cgroup with the CPU controller (v1 `cpu`, else
    /// v2 with `cpu.stat`) and its ancestors. Normal context (allocates);
    /// never fails: what cannot be read is left out.
    pub(crate) fn discover() -> Self {
        let (Ok(cgroup), Ok(mountinfo)) =
            (std::fs::read_to_string("/proc/self/cgroup"), std::fs::read_to_string("/proc/self/mountinfo"))
        else {
            return Self::none();
        };
        let Some((version, mount, root, path)) = locate(&cgroup, &mountinfo) else {
            return Self::none();
        };
        let rel = path.strip_prefix(root.trim_end_matches('/')).unwrap_or(path);
        let mut levels = Vec::new();
        let mut name = if rel.is_empty() { "/" } else { rel };
        loop {
            let mut dir = FixedBuf::<PATH_LEN>::new();
            dir.push_str(mount.trim_end_matches('/'));
            if name != "/" {
                dir.push_str(name);
            }
            let mut stat = FixedBuf::<PATH_LEN>::new();
            stat.push_bytes(dir.as_bytes());
            stat.push_str("/cpu.stat");
            let readable = std::fs::metadata(std::str::from_utf8(stat.as_bytes()).unwrap_or("")).is_ok();
            if dir.truncated() == 0 && stat.truncated() == 0 && readable {
                let mut n = FixedBuf::<PATH_LEN>::new();
                n.push_str(name);
                levels.push(Level { dir, name: n, last_throttled_ns: 0 });
            }
            if name == "/" || levels.len() == MAX_LEVELS {
                break;
            }
            name = match name.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &name[..i],
            };
        }
        let mut this = CpuCgroups { version, levels };
        let mut io = [0u8; 1024];
        this.sample(&mut io);
        this
    }

    /// The largest increase of any level's throttled time since the last
    /// call (ns, summed over the CPUs it was throttled on, as the kernel
    /// counts it). Allocation-free.
    pub(crate) fn sample(&mut self, io: &mut [u8]) -> u64 {
        let mut most = 0;
        for i in 0..self.levels.len() {
            let Ok(t) = self.read_level(i, io) else { continue };
            let level = &mut self.levels[i];
            most = most.max(t.throttled_ns.saturating_sub(level.last_throttled_ns));
            level.last_throttled_ns = t.throttled_ns;
        }
        most
    }

    /// Calls `f` with each level's name and figures, the process's own
    /// cgroup first. Allocation-free.
    pub(crate) fn for_each(&self, io: &mut [u8], mut f: impl FnMut(u8, &[u8], Throttling)) {
        for i in 0..self.levels.len() {
            if let Ok(t) = self.read_level(i, io) {
                f(self.version, self.levels[i].name.as_bytes(), t);
            }
        }
    }

    fn read_level(&self, i: usize, io: &mut [u8]) -> io::Result<Throttling> {
        let dir = self.levels[i].dir.as_bytes();
        let mut t = parse_cpu_stat(read(dir, "/cpu.stat", io)?).ok_or(io::ErrorKind::InvalidData)?;
        t.quota = match self.version {
            1 => {
                let quota = read(dir, "/cpu.cfs_quota_us", io).ok().and_then(parse_i64);
                let period = read(dir, "/cpu.cfs_period_us", io).ok().and_then(parse_i64);
                match (quota, period) {
                    (Some(q), Some(p)) if q > 0 && p > 0 => Some((q as u64, p as u64)),
                    _ => None,
                }
            }
            _ => read(dir, "/cpu.max", io).ok().and_then(parse_cpu_max),
        };
        Ok(t)
    }
}

/// Reads `dir` + `leaf` into `io`. Allocation-free.
fn read<'a>(dir: &[u8], leaf: &str, io: &'a mut [u8]) -> io::Result<&'a [u8]> {
    let mut path = FixedBuf::<{ PATH_LEN + 32 }>::new();
    path.push_bytes(dir);
    path.push_str(leaf);
    path.push_bytes(b"\0");
    let c = CStr::from_bytes_with_nul(path.as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    sys::read_file(c, io)
}

/// Finds the CPU controller's hierarchy: (version, mount point, mount root,
/// the process's path in it). v1's `cpu` controller first (where it is
/// mounted, v2 cannot have it), else the v2 hierarchy. Pure.
fn locate<'a>(cgroup: &'a str, mountinfo: &'a str) -> Option<(u8, &'a str, &'a str, &'a str)> {
    let v1 = cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers.split(',').any(|c| c == "cpu").then_some(path)
    });
    let v2 = cgroup.lines().find_map(|l| l.strip_prefix("0::"));
    for line in mountinfo.lines() {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount), Some(fstype)) = (l.get(3), l.get(4), r.first()) else { continue };
        match (*fstype, v1) {
            ("cgroup", Some(path)) if r.get(2).is_some_and(|o| o.split(',').any(|c| c == "cpu")) => {
                return Some((1, mount, root, path));
            }
            _ => {}
        }
    }
    if v1.is_some() {
        return None;
    }
    let path = v2?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split(' ').collect();
        (right.split(' ').next() == Some("cgroup2")).then(|| (2, l[4], l[3], path)).filter(|_| l.len() > 4)
    })
}

/// Parses `cpu.stat` (v1: `throttled_time` ns; v2: `throttled_usec`).
/// Pure; `None` without the throttling fields (v2 without the CPU
/// controller).
pub(crate) fn parse_cpu_stat(text: &[u8]) -> Option<Throttling> {
    let mut t = Throttling::default();
    let mut seen = 0;
    for line in text.split(|&b| b == b'\n') {
        let mut f = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
        let (Some(key), Some(value)) = (f.next(), f.next().and_then(parse_i64)) else { continue };
        let value = value.max(0) as u64;
        match key {
            b"nr_periods" => t.nr_periods = value,
            b"nr_throttled" => t.nr_throttled = value,
            b"throttled_time" => t.throttled_ns = value,
            b"throttled_usec" => t.throttled_ns = value.saturating_mul(1000),
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(t)
}

/// Parses v2's `cpu.max`: `QUOTA PERIOD` in µs, or `max PERIOD` (none).
fn parse_cpu_max(text: &[u8]) -> Option<(u64, u64)> {
    let mut f = text.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
    let quota = parse_i64(f.next()?)?;
    let period = parse_i64(f.next()?)?;
    (quota > 0 && period > 0).then_some((quota as u64, period as u64))
}

/// A decimal, optionally negative, surrounded by white space or not.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text).ok()?.trim();
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat_v1_and_v2() {
        let v1 = b"nr_periods 31\nnr_throttled 30\nthrottled_time 2792422354\nnr_bursts 0\nburst_time 0\n";
        let t = parse_cpu_stat(v1).unwrap();
        assert_eq!((t.nr_periods, t.nr_throttled, t.throttled_ns), (31, 30, 2_792_422_354));
        let v2 = b"usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 4\nnr_throttled 2\nthrottled_usec 1500\n";
        let t = parse_cpu_stat(v2).unwrap();
        assert_eq!((t.nr_periods, t.nr_throttled, t.throttled_ns), (4, 2, 1_500_000));
        // v2 without the CPU controller: usage only.
        assert_eq!(parse_cpu_stat(b"usage_usec 10\nuser_usec 5\nsystem_usec 5\n"), None);
    }

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max(b"5000 100000\n"), Some((5000, 100_000)));
        assert_eq!(parse_cpu_max(b"max 100000\n"), None);
        assert_eq!(parse_cpu_max(b""), None);
    }

    #[test]
    fn the_cpu_controller_is_found_in_v1_or_v2() {
        let cgroup = "9:name=systemd:/\n2:cpuacct:/\n1:cpu:/fs/a\n0::/\n";
        let mountinfo = "30 20 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu\n\
                         31 20 0:27 / /sys/fs/cgroup/unified rw,relatime shared:6 - cgroup2 cgroup2 rw\n";
        assert_eq!(locate(cgroup, mountinfo), Some((1, "/sys/fs/cgroup/cpu", "/", "/fs/a")));
        let cgroup = "0::/system.slice/x.service\n";
        let mountinfo = "31 20 0:27 / /sys/fs/cgroup rw,relatime shared:6 - cgroup2 cgroup2 rw\n";
        assert_eq!(locate(cgroup, mountinfo), Some((2, "/sys/fs/cgroup", "/", "/system.slice/x.service")));
        // v1 cpu listed but not mounted: none (v2 cannot have it then).
        assert_eq!(locate("1:cpu,cpuacct:/a\n0::/\n", "31 20 0:27 / /x rw - cgroup2 cgroup2 rw\n"), None);
    }

    #[test]
    fn this_process_finds_its_cgroup_and_samples_it() {
        let mut c = CpuCgroups::discover();
        assert!(
            !c.levels.is_empty(),
            "no cgroup with the CPU controller (v1 cpu or v2 cpu.stat) found for this process"
        );
        let mut io = [0u8; 1024];
        let _ = c.sample(&mut io);
        let mut levels = 0;
        c.for_each(&mut io, |v, name, _| {
            assert!(v == 1 || v == 2);
            assert!(name.starts_with(b"/"), "{:?}", String::from_utf8_lossy(name));
            levels += 1;
        });
        assert!(levels >= 1);
    }
}
