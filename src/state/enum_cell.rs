//! [`state_enum!`]: a small state machine's states as a `#[repr(u32)]` enum,
//! and a cell that holds one in an atomic word, written once for every
//! such state in the crate (the capture entries, the lifecycle, the fuse,
//! the symbolization request). The cell's operations are single atomic
//! instructions: async-signal-safe.

/// Declares `enum NAME` (the states, numbered) and `struct CELL` (one in an
/// `AtomicU32`, with `new`, `get` (Acquire), `set` (Release), `swap`,
/// `change(from, to)` (one compare-and-swap) and `word` (the atomic, for a
/// futex)). An unknown number reads as the first state.
macro_rules! state_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $cell:ident {
            $(#[$fmeta:meta])* $first:ident = $fnum:literal,
            $($(#[$vmeta:meta])* $variant:ident = $num:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        $vis enum $name {
            $(#[$fmeta])* $first = $fnum,
            $($(#[$vmeta])* $variant = $num,)*
        }

        impl $name {
            /// The state numbered `v` (the first state for an unknown number).
            #[allow(dead_code)]
            $vis const fn from_u32(v: u32) -> Self {
                match v {
                    $($num => $name::$variant,)*
                    _ => $name::$first,
                }
            }
        }

        #[doc = concat!("A [`", stringify!($name), "`] in an atomic word.")]
        $vis struct $cell(std::sync::atomic::AtomicU32);

        #[allow(dead_code)]
        impl $cell {
            /// A cell holding `s`.
            $vis const fn new(s: $name) -> Self {
                $cell(std::sync::atomic::AtomicU32::new(s as u32))
            }

            /// The state now (Acquire).
            #[inline]
            $vis fn get(&self) -> $name {
                $name::from_u32(self.0.load(std::sync::atomic::Ordering::Acquire))
            }

            /// Sets the state (Release: what was written before is published).
            #[inline]
            $vis fn set(&self, s: $name) {
                self.0.store(s as u32, std::sync::atomic::Ordering::Release);
            }

            /// Sets the state and returns the one before (AcqRel).
            #[inline]
            $vis fn swap(&self, s: $name) -> $name {
                $name::from_u32(self.0.swap(s as u32, std::sync::atomic::Ordering::AcqRel))
            }

            /// Moves from `from` to `to` if the state is `from`; whether it did.
            #[inline]
            $vis fn change(&self, from: $name, to: $name) -> bool {
                self.0
                    .compare_exchange(
                        from as u32,
                        to as u32,
                        std::sync::atomic::Ordering::AcqRel,
                        std::sync::atomic::Ordering::Acquire,
                    )
                    .is_ok()
            }

            /// The atomic word itself (a futex word to wait on).
            #[inline]
            $vis fn word(&self) -> &std::sync::atomic::AtomicU32 {
                &self.0
            }
        }
    };
}

pub(crate) use state_enum;
