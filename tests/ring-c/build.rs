//! Compiles `src/shim.c`, which instantiates Xen's `io/ring.h` macros,
//! against the header from Debian's `libxen-dev`: from `XEN_INCLUDE`
//! (a folder holding `xen/io/ring.h`), else `/usr/include`, else the
//! package fetched with `apt-get download` and unpacked into OUT_DIR
//! (no root needed). The header is not copied into the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=XEN_INCLUDE");
    let include = find_include().unwrap_or_else(|e| {
        panic!("Xen's io/ring.h not found: {e}. Install Debian's libxen-dev or set XEN_INCLUDE")
    });
    cc::Build::new()
        .file("src/shim.c")
        .include(&include)
        .warnings(true)
        .compile("ringshim");
}

fn has_ring_h(dir: &Path) -> bool {
    dir.join("xen/io/ring.h").is_file()
}

fn find_include() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("XEN_INCLUDE") {
        return if has_ring_h(Path::new(&dir)) {
            Ok(dir.into())
        } else {
            Err(format!("XEN_INCLUDE={dir} has no xen/io/ring.h"))
        };
    }
    if has_ring_h(Path::new("/usr/include")) {
        return Ok("/usr/include".into());
    }
    let out =
        PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?).join("libxen-dev");
    let unpacked = out.join("root/usr/include");
    if has_ring_h(&unpacked) {
        return Ok(unpacked);
    }
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let status = Command::new("apt-get")
        .args(["download", "libxen-dev"])
        .current_dir(&out)
        .status()
        .map_err(|e| format!("apt-get: {e}"))?;
    if !status.success() {
        return Err("apt-get download libxen-dev failed".into());
    }
    let deb = std::fs::read_dir(&out)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("no .deb after apt-get download")?;
    let status = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(out.join("root"))
        .status()
        .map_err(|e| format!("dpkg: {e}"))?;
    if !status.success() || !has_ring_h(&unpacked) {
        return Err(format!("dpkg -x {} gave no xen/io/ring.h", deb.display()));
    }
    Ok(unpacked)
}
