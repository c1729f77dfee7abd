//! The monitor's evidence: where it comes from (`/proc`) and what happens
//! when it cannot be had (issue 14, cases 6, 7 and 8).

#[macro_use]
mod common;

use common::{Spec, small_config};
use std::path::Path;

/// `unshare` (util-linux), for a mount namespace without `/proc`.
fn unshare() -> &'static Path {
    let p = Path::new("/usr/bin/unshare");
    assert!(p.exists(), "{p:?} not found: apt-get install util-linux (.ci/run installs it)");
    p
}

/// Without `/proc` (a sandbox or chroot that does not mount it) the
/// blocked and deaf rules could never fire: start refuses, naming `/proc`
/// and how to mount it, instead of running half-blind.
#[test]
fn start_without_proc_fails_naming_it() {
    if common::scenario().is_some() {
        let gone = !Path::new("/proc/self/stat").exists();
        say!("proc-gone {gone}");
        match failstop::start(small_config()) {
            Ok(_wd) => say!("started"),
            Err(e) => {
                say!("kind {:?}", e.kind());
                say!("message {e}");
            }
        }
        common::child_exit(0);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let exe = exe.to_str().expect("utf-8 path");
    // A private mount namespace whose /proc is unmounted, then this test
    // binary as the scenario child.
    let o = Spec::program(
        unshare().to_path_buf(),
        &[
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "umount -l /proc && exec \"$0\" \"$@\"",
            exe,
            "start_without_proc_fails_naming_it",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
    )
    .env(common::SCENARIO_VAR, "noproc")
    .run();
    o.assert_exit(0);
    assert_eq!(o.value("proc-gone"), "true", "the child still had /proc\n{}", o.describe());
    assert!(!o.has("started"), "start succeeded without /proc\n{}", o.describe());
    assert_eq!(o.value("kind"), "Os", "{}", o.describe());
    let msg = o.value("message");
    assert!(msg.contains("/proc/self/task/<tid>/stat cannot be read"), "{msg}");
    assert!(msg.contains("mount -t proc proc /proc"), "{msg}");
}
