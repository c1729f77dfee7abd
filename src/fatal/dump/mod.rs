//! The one dump written on a verdict: every thread's state, culprit first.
//!
//! Two parts, in this order:
//!
//! 1. **Raw** (written by the monitor thread, allocation-free and lock-free,
//!    so it completes even when the culprit holds the allocator's or the
//!    dynamic loader's lock): the verdict line, then for every thread of the
//!    process its `/proc` state and its frames as raw addresses with module,
//!    offset and build-id, then the module table.
//! 2. **Symbolized** (by the reporter thread, which may allocate and take
//!    locks): function names and file:line. The monitor waits for it only
//!    until the dump deadline, so a symbolizer stuck on a lock held by the
//!    culprit costs the symbols, never the action.
//!
//! Frames are captured in each thread's own context: the monitor queues the
//! watchdog signal to the thread with [`CAPTURE_TAG`] and an entry index
//! (`rt_tgsigqueueinfo`); the thread's handler walks its own stack into
//! that entry (`engine::handler::on_capture_request`, async-signal-safe). All requests go
//! out at once and are answered in parallel; each answer is awaited when its
//! thread's turn to be written comes, under one bounded deadline for all, so
//! a thread that blocks the signal or sleeps uninterruptibly costs a bounded
//! time and is reported as not responding.
//!
//! Each thread's `/proc` files are read once per dump: `status`, `schedstat`
//! and `syscall` before the capture request (the lock graph, the decision
//! to ask, and the thread's lines all use that reading), `wchan` and `stack`
//! when the thread is written. Thread ids are looked up in a sorted array
//! built once per dump, never by a scan of the registry's slots.
//!
//! A signal interrupts the system call its receiver sleeps in, so in the
//! non-fatal modes only running threads (state R) are asked for frames.

mod capture;
mod copy;
mod path;
mod scratch;
mod sink;
mod thread;
mod write;

pub(crate) use copy::append_symbolized;
pub(crate) use path::{DumpPath, open_file};
pub(crate) use scratch::{OwnThreads, Scratch};
pub(crate) use sink::{Sink, close_out};
pub(crate) use thread::push_thread_name;
pub(crate) use write::write_raw;
