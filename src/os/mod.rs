//! Floor 2, **os**: the operating-system primitives failstop is built on,
//! one file per mechanism.
//!
//! | file | what it holds |
//! |---|---|
//! | `sys` | raw system calls (the private `syscall!` helper), futexes, clocks, descriptors |
//! | `fmt` | allocation-free text formatting ([`FixedBuf`](fmt::FixedBuf)) |
//! | `signals` | the calling thread's signal mask and dispositions, re-raising with the default action |
//! | `cgroup` | the CPU controller's quota and throttled time for this process's cgroups |
//! | `procfs` | allocation-free readers of `/proc/self/task/*`, and system call names |
//! | `stackwalk` | frame-pointer walk from a signal's `ucontext`, validated memory reads |
//! | `modules` | the module map (path, base, build-id) read without the loader lock |
//! | `ptrace` | frames of a thread that blocks every signal, read by a short-lived `ptrace` helper process |
//! | `unwind` | DWARF call-frame unwinding (`.eh_frame`) from a signal's `ucontext`, prepared outside the handler |
//!
//! The contract of the whole floor: every function documented
//! *async-signal-safe* only issues system calls, reads atomics and touches
//! memory it is given; it never allocates, locks or lazily initialises, so
//! the signal handler and the fatal path may call it. The few that are not
//! (set-up done before the handler is installed) say so. Nothing here knows
//! about watched threads or verdicts: it may use only `error`.

pub(crate) mod cgroup;
pub(crate) mod fmt;
pub(crate) mod loader;
pub(crate) mod modules;
pub(crate) mod procfs;
pub(crate) mod ptrace;
pub(crate) mod signals;
pub(crate) mod stackwalk;
pub(crate) mod sys;
pub(crate) mod unwind;
