//! Floor 3, **state**: the statics that failstop's threads and its signal
//! handler share, with their loads and stores only.
//!
//! Shared state lives here, below every reader and writer, so that no
//! mechanism has to import another to reach it: the live settings, the slot
//! table and its frames, the verdict latch, the dump's capture table, the
//! monitor's progress windows, the wake-up bells, the heartbeat gate and the
//! tags of failstop's own signal values.
//!
//! Everything here is async-signal-safe: `static` atomics initialised at
//! compile time (nothing lazy, nothing freed), read and written with plain
//! atomic operations. It may use `os`, `config`, `verdict` and `error`.
//! Only `gate` and `limits` are built on every platform (see `unsupported`).

pub(crate) mod gate;
pub(crate) mod limits;
linux_gnu! {
    pub(crate) mod bells;
    pub(crate) mod enum_cell;
    pub(crate) mod captures;
    pub(crate) mod frames;
    pub(crate) mod latch;
    pub(crate) mod lifecycle;
    pub(crate) mod progress;
    pub(crate) mod segmented;
    pub(crate) mod settings;
    pub(crate) mod sigval;
    pub(crate) mod slots;
    pub(crate) mod warnings;
}
