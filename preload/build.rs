//! Link arguments for `libfailstop_preload.so`.
//!
//! - `--exclude-libs,ALL`: every symbol that comes from a dependency (they
//!   are linked from rlib archives) stays local. Without it the shared object
//!   would also export failstop's C ABI (`failstop_start`, ...), which a
//!   program linked with `libfailstop.so` would then bind to. Only this
//!   crate's own `#[no_mangle]` functions, the interposed calls, are exported
//!   (tests/preload.rs checks the list with `nm -D`).
//! - `-z nodelete`: the library installs a signal handler and runs threads;
//!   it must stay mapped even if someone `dlclose`s it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--exclude-libs,ALL");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfailstop_preload.so");
    }
}
