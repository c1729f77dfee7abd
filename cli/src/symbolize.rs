//! `failstop symbolize`.
use std::ffi::OsString;
use std::process::ExitCode;
/// `failstop help symbolize`.
pub(crate) const HELP: &str = "";
pub(crate) fn main(_args: Vec<OsString>) -> ExitCode {
    ExitCode::SUCCESS
}
