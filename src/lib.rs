//! failstop: turns thread lockups into clean fail-stops.
#![cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]

#[macro_use]
mod sys;
mod config;
mod error;
mod fmt;

pub use config::{Action, Config, ENV_VARS, Settings, Signal, Systemd};
pub use error::{Error, ErrorKind};
