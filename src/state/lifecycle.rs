//! The watchdog's lifecycle in this process: stopped, starting, running,
//! stopping. One atomic word, read in signal context.

use super::enum_cell::state_enum;

state_enum! {
    /// Where the watchdog is in its life.
    pub(crate) enum Lifecycle in LifecycleCell {
        /// No watchdog (the start).
        Stopped = 0,
        /// `start` is making it.
        Starting = 1,
        /// It watches.
        Running = 2,
        /// `stop` is taking it down.
        Stopping = 3,
    }
}
