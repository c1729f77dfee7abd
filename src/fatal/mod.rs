//! Floor 5, **fatal**: from a verdict to the end of the process, and the
//! threads that watch for what the handler cannot see.
//!
//! | file | what it does |
//! |---|---|
//! | `end` | the verdict latch, the fuse (a `SIGKILL` timer; as PID 1 a thread), the end: abort on the culprit, `_exit`, unhealthy, warn; sparing a traced process until its tracer goes |
//! | `dump` | the one dump: every thread, culprit first (raw part, allocation-free) |
//! | `locks` | the dump's wait-for graph: the futex each thread sleeps on, its owner where the lock records it, the deadlock cycle |
//! | `chain` | the blocked rule's wait chain: the lock owner or the children a thread waits for, deadlock cycles, evidence that the end of the chain runs |
//! | `reporter` | the reporter thread: warnings and symbolization, in normal context |
//! | `systemd` | systemd's watchdog: `WATCHDOG=1` while healthy, `WATCHDOG=trigger` on a verdict |
//! | `monitor` | the monitor thread: the blocked, deaf, polling and vanished rules, writes the dump, feeds systemd |
//! | `overseer` | the reporter's watch over the monitor: a monitor that stops coming around is a `stalled` verdict |
//!
//! Inside the floor the arrows run one way: `monitor` uses `reporter`,
//! `chain`, `dump`, `end` and `systemd`; `chain` uses `locks`; `reporter` uses `overseer`, which uses
//! `dump` and `end`; `dump` uses `locks`; `locks` and `end` use none of their neighbours. `end`'s
//! fatal path is async-signal-safe (the handler calls it); `dump`,
//! `monitor` and the monitor's part of `end` never allocate after start. It may use `watch`, `state`, `os`,
//! `config`, `verdict` and `error`; never `engine`.

pub(crate) mod chain;
pub(crate) mod dump;
pub(crate) mod end;
pub(crate) mod fuse;
pub(crate) mod locks;
pub(crate) mod monitor;
pub(crate) mod overseer;
pub(crate) mod reporter;
pub(crate) mod systemd;
