//! `scripts/install.sh` and the pkg-config files: install the libraries this
//! test run built (`--from`, no second build; `libfailstop_preload.so` comes
//! from the workspace's `preload/` member, which `scripts/test.sh` builds
//! in the same run) into a temporary prefix, then
//! build a C program with exactly the command lines docs/c.md shows, with
//! `PKG_CONFIG_PATH` pointing at that prefix, and run it. The `failstop`
//! command is installed beside them and finds its preload library there;
//! `scripts/deb.sh` packages the same files in Debian's layout.

use failstop_test_support as common;

use common::Spec;
use common::c::{self, run_ok as run};
use common::preload::preload_lib;
use std::path::{Path, PathBuf};
use std::process::Command;

/// docs/c.md's build lines (section "Using it from C"), run verbatim.
const SHARED_LINE: &str = "cc app.c $(pkg-config --cflags --libs failstop) -o app";
const STATIC_LINE: &str = "cc app.c $(pkg-config --static --cflags --libs failstop-static) -o app";

fn install_script() -> PathBuf {
    Path::new(c::ROOT).join("scripts/install.sh")
}

/// The `failstop` command (the `failstop-cli` member, `cli/`), built for
/// this test binary's profile: `cargo test -p failstop` does not build
/// another package's binary, so the first call runs `cargo build -p
/// failstop-cli` (as [`c::built_lib`] does for the C library).
fn command_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let profile_dir = c::shared_lib().parent().expect("profile dir").to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = profile_dir.file_name().and_then(|p| p.to_str()).expect("profile name");
        let cargo_profile = if profile == "debug" { "dev" } else { profile };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "-p", "failstop-cli", "--profile", cargo_profile, "--target-dir"])
            .arg(target_dir)
            .current_dir(c::ROOT)
            .output()
            .map_err(|e| format!("{cargo}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cargo build -p failstop-cli --profile {cargo_profile} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(profile_dir.join("failstop"))
    });
    match built {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Copies this run's libraries and command into `<dir>/stage`, as
/// `--from` takes them.
fn stage(dir: &Path) -> PathBuf {
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).expect("mkdir stage");
    std::fs::copy(c::shared_lib(), stage.join("libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(c::static_lib(), stage.join("libfailstop.a")).expect("copy libfailstop.a");
    std::fs::copy(preload_lib(), stage.join("libfailstop_preload.so")).expect("copy libfailstop_preload.so");
    std::fs::copy(command_bin(), stage.join("failstop")).expect("copy failstop");
    stage
}

/// Installs this run's libraries into `<dir>/prefix`; returns the prefix.
fn install(dir: &Path) -> PathBuf {
    let stage = stage(dir);
    let prefix = dir.join("prefix");
    let out = run(Command::new("bash").arg(install_script()).arg("--prefix").arg(&prefix).arg("--from").arg(&stage));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("installed failstop {} into {}", env!("CARGO_PKG_VERSION"), prefix.display())),
        "{text}"
    );
    prefix
}

/// Runs `line` with `sh` in `dir`, where `app.c` is `tests/c/abi_smoke.c`,
/// finding failstop's .pc files under `prefix` only.
fn build_app(dir: &Path, prefix: &Path, line: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir app dir");
    std::fs::copy(Path::new(c::ROOT).join("tests/c/abi_smoke.c"), dir.join("app.c")).expect("copy app.c");
    run(Command::new("sh").args(["-c", line]).current_dir(dir).env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    dir.join("app")
}

/// The DT_NEEDED entries of an ELF file.
fn needed(elf: &Path) -> Vec<String> {
    c::readelf_dynamic(elf)
        .lines()
        .filter_map(|l| Some(l.split_once("Shared library: [")?.1.trim_end_matches(']').to_string()))
        .collect()
}

fn pkg_config(prefix: &Path, args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .unwrap_or_else(|e| panic!("run pkg-config: {e} (install it: apt-get install pkgconf; scripts/test.sh does)"));
    assert!(out.status.success(), "pkg-config {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn readme_shows_the_tested_lines() {
    let docs: String = common::doc_files().into_iter().map(|(_, text)| text).collect();
    for line in [SHARED_LINE, STATIC_LINE, "scripts/install.sh", "/usr/local/lib/libfailstop_preload.so"] {
        assert!(docs.contains(line), "neither README.md nor docs/*.md shows `{line}`");
    }
}

#[test]
fn install_then_build_with_pkg_config() {
    let dir = c::temp_dir("install");
    let prefix = install(&dir);
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");

    // The layout.
    let real = format!("libfailstop.so.{version}");
    assert_eq!(std::fs::read_link(lib.join("libfailstop.so.0")).expect("libfailstop.so.0 link"), Path::new(&real));
    assert_eq!(
        std::fs::read_link(lib.join("libfailstop.so")).expect("libfailstop.so link"),
        Path::new("libfailstop.so.0")
    );
    assert_eq!(
        std::fs::read(lib.join(&real)).expect("read the installed .so"),
        std::fs::read(dir.join("stage/libfailstop.so")).expect("read the built .so")
    );
    assert!(lib.join("libfailstop.a").is_file());
    // The LD_PRELOAD library, where docs/deploy.md's systemd line points.
    assert_eq!(
        std::fs::read(lib.join("libfailstop_preload.so")).expect("read the installed preload library"),
        std::fs::read(dir.join("stage/libfailstop_preload.so")).expect("read the built preload library")
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("include/failstop.h")).expect("installed header"),
        std::fs::read_to_string(Path::new(c::ROOT).join("include/failstop.h")).expect("header")
    );

    // What pkg-config says.
    assert_eq!(pkg_config(&prefix, &["--modversion", "failstop"]), version);
    assert_eq!(pkg_config(&prefix, &["--modversion", "failstop-static"]), version);
    let libs = format!("-L{} -lfailstop", lib.display());
    assert_eq!(
        pkg_config(&prefix, &["--cflags", "--libs", "failstop"]),
        format!("-I{}/include {libs}", prefix.display())
    );
    assert_eq!(
        pkg_config(&prefix, &["--static", "--libs", "failstop"]),
        format!("{libs} {}", c::NATIVE_LIBS.join(" "))
    );

    // Shared: the program needs libfailstop.so.0 and finds the installed one.
    let app = build_app(&dir.join("shared"), &prefix, SHARED_LINE);
    let deps = needed(&app);
    assert!(deps.iter().any(|d| d == "libfailstop.so.0"), "{app:?} needs {deps:?}");
    let ldd = run(Command::new("ldd").arg(&app).env("LD_LIBRARY_PATH", &lib));
    let resolved = format!("libfailstop.so.0 => {}/libfailstop.so.0", lib.display());
    assert!(String::from_utf8_lossy(&ldd.stdout).contains(&resolved), "{}", String::from_utf8_lossy(&ldd.stdout));
    let o = Spec::program(app, &["smoke"]).env("LD_LIBRARY_PATH", lib.to_str().expect("utf-8 path")).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());

    // Static: the library is inside the program.
    let app = build_app(&dir.join("static"), &prefix, STATIC_LINE);
    let deps = needed(&app);
    assert!(!deps.iter().any(|d| d.starts_with("libfailstop")), "{app:?} needs {deps:?}");
    let o = Spec::program(app, &["smoke"]).run();
    o.assert_exit(0);
    assert!(o.stdout().contains("SMOKE OK"), "{}", o.describe());

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_refused_with_a_clear_error() {
    let dir = c::temp_dir("install-bad");
    let cases: &[(&[&str], &str)] = &[
        (&["--profile", "fast"], "--profile 'fast' is not allowed: release or debug"),
        (&["--prefix", "relative/dir"], "--prefix 'relative/dir' is not allowed: an absolute path"),
        (&["--prefix", "/with space"], "--prefix '/with space' is not allowed"),
        (&["--prefix"], "--prefix needs a value"),
        (&["--frob"], "unknown argument '--frob'"),
    ];
    for (args, message) in cases {
        let out = Command::new("bash").arg(install_script()).args(*args).output().expect("run install.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in:\n{stderr}");
    }
    // --from a directory without the libraries: refused, nothing installed.
    let prefix = dir.join("prefix");
    let out = Command::new("bash")
        .arg(install_script())
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(&dir)
        .output()
        .expect("run install.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}/libfailstop.so not found", dir.display())), "{stderr}");
    assert!(!prefix.exists(), "a refused install created {prefix:?}");
    // The C libraries but not the preload library: refused too.
    let stage = dir.join("c-only");
    std::fs::create_dir_all(&stage).expect("mkdir c-only");
    std::fs::copy(c::shared_lib(), stage.join("libfailstop.so")).expect("copy libfailstop.so");
    std::fs::copy(c::static_lib(), stage.join("libfailstop.a")).expect("copy libfailstop.a");
    let out = Command::new("bash")
        .arg(install_script())
        .arg("--prefix")
        .arg(&prefix)
        .arg("--from")
        .arg(&stage)
        .output()
        .expect("run install.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}/libfailstop_preload.so not found", stage.display())), "{stderr}");
    assert!(!prefix.exists(), "a refused install created {prefix:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sh -c 'echo "$LD_PRELOAD"'` started by `failstop run` (no `LD_PRELOAD`
/// of the test's own): what the command put there.
fn ld_preload_through(command: &Path) -> String {
    let out =
        run(Command::new(command).args(["run", "--", "sh", "-c", "echo \"$LD_PRELOAD\""]).env_remove("LD_PRELOAD"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A C event loop that spins after a few waits (`cli/tests/c/spin_loop.c`).
fn spin_loop(dir: &Path) -> PathBuf {
    let program = dir.join("spin_loop");
    c::compile([
        "-g".as_ref(),
        "-o".as_ref(),
        program.as_os_str(),
        Path::new(c::ROOT).join("cli/tests/c/spin_loop.c").as_os_str(),
    ]);
    program
}

/// `failstop run --cpu-budget 300ms` of the spinning loop through
/// `command`: ends by `SIGABRT` with the verdict.
fn assert_protects(command: &Path, dir: &Path) {
    use std::os::unix::process::ExitStatusExt;
    let t0 = std::time::Instant::now();
    let out = Command::new(command)
        .args(["run", "--cpu-budget", "300ms", "--dump-timeout", "10s", "--"])
        .arg(spin_loop(dir))
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run failstop");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{command:?} run: {:?}\n{stderr}", out.status);
    assert!(stderr.contains("failstop: stuck: thread \"spin_loop\""), "{stderr}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(30), "took {:?}", t0.elapsed());
}

#[test]
fn the_command_is_installed_beside_its_preload() {
    let dir = c::temp_dir("install-command");
    let prefix = install(&dir);
    let command = prefix.join("bin/failstop");
    assert_eq!(
        std::fs::read(&command).expect("read the installed command"),
        std::fs::read(dir.join("stage/failstop")).expect("read the built command")
    );
    // PREFIX/bin/failstop finds PREFIX/lib/libfailstop_preload.so.
    let preload = std::fs::canonicalize(prefix.join("lib/libfailstop_preload.so")).expect("installed preload");
    assert_eq!(ld_preload_through(&command), preload.to_str().expect("utf-8 path"));
    assert_protects(&command, &dir);

    // A --from directory without the command is refused, nothing installed.
    let partial = dir.join("no-command");
    std::fs::create_dir_all(&partial).expect("mkdir");
    for f in ["libfailstop.so", "libfailstop.a", "libfailstop_preload.so"] {
        std::fs::copy(dir.join("stage").join(f), partial.join(f)).expect("copy");
    }
    let other = dir.join("other-prefix");
    let out = Command::new("bash")
        .arg(install_script())
        .arg("--prefix")
        .arg(&other)
        .arg("--from")
        .arg(&partial)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}/failstop not found", partial.display())), "{stderr}");
    assert!(!other.exists(), "a refused install created {other:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_debian_package_has_debian_s_layout() {
    let dir = c::temp_dir("deb");
    let stage = stage(&dir);
    for (tool, package) in [("dpkg-deb", "dpkg"), ("strip", "binutils"), ("objdump", "binutils")] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} not found: install the Debian package {package} (scripts/test.sh does)"
        );
    }
    let out = run(Command::new("bash")
        .arg(Path::new(c::ROOT).join("scripts/deb.sh"))
        .arg("--from")
        .arg(&stage)
        .arg("--out")
        .arg(dir.join("out")));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().expect("deb.sh prints the package"));
    let version = env!("CARGO_PKG_VERSION");
    let arch =
        String::from_utf8_lossy(&run(Command::new("dpkg").arg("--print-architecture")).stdout).trim().to_string();
    assert_eq!(deb, dir.join("out").join(format!("failstop_{version}_{arch}.deb")));

    // Bad arguments: refused, naming what is allowed, no package made.
    for (args, message) in [
        (&["--profile", "fast"][..], "--profile 'fast' is not allowed: release or debug"),
        (&["--frob"][..], "unknown argument '--frob'"),
        (&["--from", "/nonexistent"][..], "--from '/nonexistent' is not a directory"),
    ] {
        let out = Command::new("bash")
            .arg(Path::new(c::ROOT).join("scripts/deb.sh"))
            .args(args)
            .arg("--out")
            .arg(dir.join("bad"))
            .output()
            .expect("run deb.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in:\n{stderr}");
        assert!(!dir.join("bad").exists(), "{args:?} made {:?}", dir.join("bad"));
    }

    // The control fields.
    let field = |name: &str| {
        String::from_utf8_lossy(&run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name)).stdout).trim().to_string()
    };
    assert_eq!(field("Package"), "failstop");
    assert_eq!(field("Version"), version);
    assert_eq!(field("Architecture"), arch);
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");

    // Unpacked into a scratch root: Debian's places, files owned by root.
    let listing = String::from_utf8_lossy(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout).into_owned();
    assert!(listing.lines().all(|l| l.contains(" root/root ")), "{listing}");
    let root = dir.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let multiarch =
        String::from_utf8_lossy(&run(Command::new(c::cc_name()).arg("-print-multiarch")).stdout).trim().to_string();
    assert!(!multiarch.is_empty(), "the C compiler names no multiarch directory");
    let lib = root.join("usr/lib").join(&multiarch);
    let real = format!("libfailstop.so.{version}");
    assert!(lib.join(&real).is_file(), "{listing}");
    assert_eq!(std::fs::read_link(lib.join("libfailstop.so.0")).expect("SONAME link"), Path::new(&real));
    assert_eq!(std::fs::read_link(lib.join("libfailstop.so")).expect("dev link"), Path::new("libfailstop.so.0"));
    assert!(c::readelf_dynamic(&lib.join(&real)).contains("Library soname: [libfailstop.so.0]"));
    for f in ["libfailstop.a", "libfailstop_preload.so"] {
        assert!(lib.join(f).is_file(), "no {f} in {lib:?}:\n{listing}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("usr/include/failstop.h")).expect("header"),
        std::fs::read_to_string(Path::new(c::ROOT).join("include/failstop.h")).expect("header")
    );
    let pc = std::fs::read_to_string(lib.join("pkgconfig/failstop.pc")).expect("failstop.pc");
    assert!(pc.contains("\nprefix=/usr\n"), "{pc}");
    assert!(pc.contains(&format!("\nlibdir=${{exec_prefix}}/lib/{multiarch}\n")), "{pc}");
    assert!(lib.join("pkgconfig/failstop-static.pc").is_file());
    assert!(root.join("usr/share/doc/failstop/copyright").is_file());
    let command = root.join("usr/bin/failstop");
    assert!(command.is_file(), "{listing}");

    // The command of the unpacked tree finds the preload beside it, in the
    // multiarch directory, and protects a program with it.
    let preload = std::fs::canonicalize(lib.join("libfailstop_preload.so")).expect("preload");
    assert_eq!(ld_preload_through(&command), preload.to_str().expect("utf-8 path"));
    assert_protects(&command, &dir);
    let doctor = Command::new(&command).arg("doctor").output().expect("doctor");
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains(&format!("ok   preload: {} beside this command", preload.display())), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
