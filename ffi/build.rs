//! Link arguments for the C shared library (`libfailstop.so`).
//!
//! - SONAME `libfailstop.so.0`: C programs link against the ABI version, not
//!   the file name.
//! - `-z nodelete`: failstop installs signal handlers and runs threads; the
//!   library must stay mapped after `dlclose`, or a signal would jump into
//!   unmapped code.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfailstop.so.0");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    }
}
