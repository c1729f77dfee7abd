//! `libfailstop_preload.so`: failstop for an event-loop program you cannot
//! change, through `LD_PRELOAD`.
//!
//! ```sh
//! cargo build --release
//! LD_PRELOAD=$PWD/target/release/libfailstop_preload.so FAILSTOP_CPU_BUDGET_MS=1000 redis-server
//! ```
//!
//! A constructor starts the watchdog from the `FAILSTOP_*` variables
//! (`init`). The waits of an event loop are interposed (`interpose`):
//! `epoll_wait`, `epoll_pwait`, `epoll_pwait2`, `poll`, `ppoll`, `select`,
//! `pselect` and glibc's fortified `__poll_chk` and `__ppoll_chk`. A thread
//! is registered on its first wait under its `comm` name (`thread`), is
//! idle while it waits and touches when the wait returns. A thread that
//! then spins outside its wait gets the `stuck` verdict; one that blocks
//! outside it (a deadlock, a `sleep`, a system call that never returns)
//! gets the `blocked` verdict.
//!
//! | module | what it does |
//! |---|---|
//! | `init` | the constructor: resolve the real calls, start the watchdog, the bad-variable policy |
//! | `real` | the real functions, from `dlsym(RTLD_NEXT, ...)` |
//! | `thread` | per-thread registration on the first wait |
//! | `timeout` | what is left of a timeout after an interruption |
//! | `interpose` | the exported waits and the one wrapper they share |
//!
//! Only the interposed functions are exported (see `build.rs`); failstop's
//! C ABI stays inside, so the library coexists with `libfailstop.so`.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod init;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod interpose;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod real;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod thread;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod timeout;
