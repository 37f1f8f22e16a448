//! Puts `linker.ld` on the linker's search path as `xenpv.ld`.
//!
//! Search paths from a dependency's build script reach the final link of
//! every dependent binary, so an application only needs
//! `-C link-arg=-Txenpv.ld` (see the README) and never copies the script.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let script = fs::read("linker.ld").expect("read linker.ld");
    fs::write(out.join("xenpv.ld"), script).expect("write xenpv.ld");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=boot/entry.S");
}
