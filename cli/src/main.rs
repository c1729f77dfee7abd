//! `failstop`: the command-line companion of failstop's `LD_PRELOAD` mode.
//!
//! ```sh
//! failstop run --cpu-budget 1s --stall-budget 10s -- redis-server   # start a program under the preload
//! failstop doctor                                                   # can failstop do its job here?
//! failstop symbolize /var/tmp/redis.dump                            # function, file:line for raw frames
//! ```
//!
//! | module | what it does |
//! |---|---|
//! | `run` | the options, their check with the library's parser, finding the preload, `exec` |
//! | `duration` | `300ms`, `1.5s`, `2min` |
//! | `doctor` | one finding per thing failstop needs from the machine |
//! | `symbolize` | a dump's raw frames (module, offset, build-id) to function and file:line |
//! | `elf` | build-ids, debug files found by build-id, DWARF and symbol tables |
//!
//! Exit status: the program's own (`run` execs it), 0 for success, 1 when
//! `doctor` finds something failstop needs missing or `symbolize` cannot
//! read its input, 2 for a usage error or a bad setting (nothing started).

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod doctor;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod duration;
mod elf;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod run;
mod symbolize;

use std::ffi::OsString;
use std::process::ExitCode;

/// The status of a usage error or a bad setting: the program was not started.
pub(crate) const EXIT_USAGE: u8 = 2;

const USAGE: &str = "\
failstop: turns thread lockups of a program into clean fail-stops (failstop VERSION)

Usage:
  failstop run [OPTIONS] -- PROGRAM [ARGS...]   run PROGRAM under libfailstop_preload.so
  failstop doctor [--json]                      check what failstop needs from this machine
  failstop symbolize [--debug-dir DIR]... DUMP  function, file:line for a dump's raw frames (DUMP: a file, or - for stdin)
  failstop help [run|doctor|symbolize]          this text, or one command's

Exit status: run: the program's own (failstop execs it), 2 when an option is bad (the
program is not started); doctor: 0 when failstop can do everything, 1 when something it
needs is missing; symbolize: 0, or 1 when the dump cannot be read; 2 for a usage error.
";

/// Prints `failstop: <message>` on stderr and returns the usage status.
pub(crate) fn usage_error(message: &str) -> ExitCode {
    eprintln!("failstop: {message}");
    eprintln!("failstop: see `failstop help`");
    ExitCode::from(EXIT_USAGE)
}

fn help(topic: Option<&str>) -> ExitCode {
    let text = match topic {
        None => USAGE.replace("VERSION", env!("CARGO_PKG_VERSION")),
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        Some("run") => run::help(),
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        Some("doctor") => doctor::HELP.to_string(),
        Some("symbolize") => symbolize::HELP.to_string(),
        Some(other) => return usage_error(&format!("no help on '{other}'; allowed: run, doctor, symbolize")),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprint!("{}", USAGE.replace("VERSION", env!("CARGO_PKG_VERSION")));
        return ExitCode::from(EXIT_USAGE);
    }
    let command = args.remove(0);
    let Some(command) = command.to_str() else {
        return usage_error(&format!("unknown command {command:?}; allowed: run, doctor, symbolize, help"));
    };
    match command {
        "-h" | "--help" | "help" => {
            let topic = args.first().map(|a| a.to_string_lossy().into_owned());
            help(topic.as_deref())
        }
        "-V" | "--version" => {
            println!("failstop {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        "run" => run::main(args),
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        "doctor" => doctor::main(args),
        "symbolize" => symbolize::main(args),
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        "run" | "doctor" => usage_error(&format!("`{command}` needs Linux with glibc, where failstop runs")),
        other => usage_error(&format!("unknown command '{other}'; allowed: run, doctor, symbolize, help")),
    }
}
