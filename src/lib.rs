//! failstop: turns thread lockups into clean fail-stops.
#![cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]

#[macro_use]
mod sys;
mod fmt;
mod modules;
mod stackwalk;
