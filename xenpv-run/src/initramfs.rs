//! The dom0 initramfs: busybox, the Xen toolstack (xl, xenstored,
//! xenconsoled, ...), the C libraries they link, the Xen kernel modules and
//! `/init` (`dom0/init.sh`), assembled from the unpacked Debian packages.
//!
//! Guest images are never put here: each `cargo xtask run` appends its own
//! small payload archive instead (see `payload.rs`), so this one is built once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cpio::Archive;
use crate::util::{self, command, run_captured};

/// dom0's `/init`.
pub const INIT_SCRIPT: &str = include_str!("dom0/init.sh");

/// Toolstack programs from `usr/lib/xen-<version>/bin`, installed in `/usr/sbin`.
pub const XEN_PROGRAMS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xen-init-dom0",
    "vchan-socket-proxy",
];

/// Names under which the multi-call `xenstore` program is linked in `/usr/bin`.
pub const XENSTORE_TOOLS: &[&str] = &[
    "xenstore-read",
    "xenstore-write",
    "xenstore-ls",
    "xenstore-list",
    "xenstore-watch",
    "xenstore-rm",
    "xenstore-exists",
    "xenstore-chmod",
];

/// Kernel modules, as paths under the kernel's `lib/modules/<version>/kernel/`
/// without `.ko`, in the order dom0's `/init` loads them (every module after
/// the ones its `depends=` names; `build` checks this). The toolstack needs
/// the `drivers/xen` ones (privcmd before xenfs, which uses it); the split
/// drivers' backends need the rest: `bridge` (with `llc` and `stp`) for the
/// lab's `xenbr0`, `loop` for file-backed disks, `xen-netback` and
/// `xen-blkback` themselves.
pub const MODULES: &[&str] = &[
    "drivers/xen/xen-privcmd",
    "drivers/xen/xenfs/xenfs",
    "drivers/xen/xen-evtchn",
    "drivers/xen/xen-gntdev",
    "drivers/xen/xen-gntalloc",
    "net/llc/llc",
    "net/802/stp",
    "net/bridge/bridge",
    "drivers/block/loop",
    "drivers/net/xen-netback/xen-netback",
    "drivers/block/xen-blkback/xen-blkback",
];

/// Front-end modules of the Linux PV guest initramfs ([`build_linux_guest`]),
/// in load order; kept in the lab's unpacked kernel with [`MODULES`].
pub const GUEST_MODULES: &[&str] = &["drivers/net/xen-netfront", "drivers/block/xen-blkfront"];

/// `/init` of the Linux PV guest initramfs.
pub const GUEST_INIT_SCRIPT: &str = include_str!("linux_guest/init.sh");

/// Backend hotplug scripts, installed in `/etc/xen/scripts/` where libxl
/// runs them for each vif and each disk. Small busybox-sh replacements for
/// Debian's bash scripts of xen-utils-common (see `dom0/vif-bridge.sh`).
pub const HOTPLUG_SCRIPTS: &[(&str, &str)] = &[
    ("vif-bridge", include_str!("dom0/vif-bridge.sh")),
    ("block", include_str!("dom0/block.sh")),
];

/// Libraries loaded with dlopen, which `ldd` cannot see, with their Debian
/// packages: glibc loads libgcc_s for `pthread_cancel`, which xl uses.
const DLOPENED: &[(&str, &str)] = &[("libgcc_s.so.1", "libgcc-s1")];

/// Where libraries go in the initramfs (and `LD_LIBRARY_PATH` in `/init`).
const LIB_DIR: &str = "usr/lib/x86_64-linux-gnu";

/// Text that, when it changes, makes `lab` rebuild the initramfs.
pub fn recipe() -> String {
    format!(
        "initramfs v2\n{INIT_SCRIPT}\n{XEN_PROGRAMS:?}\n{XENSTORE_TOOLS:?}\n{MODULES:?}\n{HOTPLUG_SCRIPTS:?}\n{LIB_DIR}\n{DLOPENED:?}\n\
         guest v1\n{GUEST_INIT_SCRIPT}\n{GUEST_MODULES:?}\n"
    )
}

/// Builds the archive from `staging`, the folder the packages were unpacked into.
pub fn build(staging: &Path) -> Result<Vec<u8>> {
    let mut archive = Archive::new();
    for dir in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "var/run",
        "var/log",
        "var/lib/xen",
        "root",
        "etc/xen",
        "etc/xen/scripts",
        "payload",
    ] {
        archive.dir(dir);
    }
    // The kernel opens /dev/console for /init before devtmpfs is mounted.
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.file(
        "etc/xen/xl.conf",
        0o644,
        b"# empty: silences xl's warning about a missing xl.conf\n",
    );
    archive.file("init", 0o755, INIT_SCRIPT.as_bytes());
    for (name, text) in HOTPLUG_SCRIPTS {
        archive.file(&format!("etc/xen/scripts/{name}"), 0o755, text.as_bytes());
    }

    add_busybox(&mut archive, staging)?;

    let mut dynamic = Vec::new();
    let xen_bin = xen_bin_dir(staging)?;
    for program in XEN_PROGRAMS {
        let path = xen_bin.join(program);
        archive.file(&format!("usr/sbin/{program}"), 0o755, &read(&path)?);
        dynamic.push(path);
    }
    let xenstore = staging.join("usr/bin/xenstore");
    archive.file("usr/bin/xenstore", 0o755, &read(&xenstore)?);
    for tool in XENSTORE_TOOLS {
        archive.symlink(&format!("usr/bin/{tool}"), "xenstore");
    }
    dynamic.push(xenstore);

    let mut libraries = shared_libraries(staging, &dynamic)?;
    for (soname, package) in DLOPENED {
        libraries.insert(
            format!("{LIB_DIR}/{soname}"),
            host_library(soname, package)?,
        );
    }
    for (name, path) in libraries {
        archive.file(&name, 0o755, &read(&path)?);
    }
    add_modules(&mut archive, staging, MODULES, "MODULES")?;
    Ok(archive.finish())
}

/// The initramfs of a Linux PV domU booted from the dom0 kernel: busybox,
/// the front-end modules of [`GUEST_MODULES`] and `/init`
/// ([`GUEST_INIT_SCRIPT`]), which runs `/guest.sh` from an archive appended
/// to this one and powers off. No Xen tools, no libraries.
pub fn build_linux_guest(staging: &Path) -> Result<Vec<u8>> {
    let mut archive = Archive::new();
    for dir in ["proc", "sys", "dev", "tmp", "root"] {
        archive.dir(dir);
    }
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.file("init", 0o755, GUEST_INIT_SCRIPT.as_bytes());
    add_busybox(&mut archive, staging)?;
    add_modules(&mut archive, staging, GUEST_MODULES, "GUEST_MODULES")?;
    Ok(archive.finish())
}

/// Adds `modules` (decompressed) and `lib/modules/order`, checking that
/// each comes after the modules it depends on.
fn add_modules(archive: &mut Archive, staging: &Path, modules: &[&str], list: &str) -> Result<()> {
    let mut loaded: Vec<&str> = Vec::new();
    for module in modules {
        let data = module_bytes(staging, module)?;
        let name = module_name(module);
        for dep in module_depends(&data) {
            // Module names use `_` and `-` interchangeably.
            if !loaded
                .iter()
                .any(|l| l.replace('-', "_") == dep.replace('-', "_"))
            {
                bail!(
                    "kernel module {name} depends on {dep}, which is not loaded before it: \
                     add it before {module} in initramfs::{list}"
                );
            }
        }
        archive.file(&format!("lib/modules/{name}.ko"), 0o644, &data);
        loaded.push(name);
    }
    // /init loads them in this order.
    let order: String = loaded.iter().map(|n| format!("{n}\n")).collect();
    archive.file("lib/modules/order", 0o644, order.as_bytes());
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The static busybox and a symlink for each of its applets.
fn add_busybox(archive: &mut Archive, staging: &Path) -> Result<()> {
    let busybox = staging.join("bin/busybox");
    archive.file("bin/busybox", 0o755, &read(&busybox)?);
    // busybox-static runs on the host too: ask it where each applet belongs.
    let out = run_captured(
        &mut command(&busybox, ["--list-full"]),
        Duration::from_secs(20),
    )?;
    for applet in out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if applet != "bin/busybox" && applet != "linuxrc" {
            archive.symlink(applet, "/bin/busybox");
        }
    }
    Ok(())
}

/// `usr/lib/xen-<version>/bin` in the staging folder.
fn xen_bin_dir(staging: &Path) -> Result<PathBuf> {
    let lib = staging.join("usr/lib");
    let entries = fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("xen-4"))
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("xl").is_file())
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no usr/lib/xen-4.*/bin/xl under {}: is xen-utils unpacked?",
            staging.display()
        )
    })
}

/// Every library the programs need, as (path in the archive, file to copy),
/// found with `ldd` (the staged Xen libraries first, then the host's).
fn shared_libraries(staging: &Path, programs: &[PathBuf]) -> Result<BTreeMap<String, PathBuf>> {
    util::require_tool("ldd", "libc-bin")?;
    let lib_path = [
        staging.join("usr/lib/x86_64-linux-gnu"),
        staging.join("lib/x86_64-linux-gnu"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(":");
    let mut libs = BTreeMap::new();
    for program in programs {
        let mut cmd = command("ldd", [program]);
        cmd.env("LD_LIBRARY_PATH", &lib_path);
        let out = run_captured(&mut cmd, Duration::from_secs(20))?;
        for (name, path) in
            parse_ldd(&out.stdout).with_context(|| format!("ldd {}", program.display()))?
        {
            libs.insert(name, path);
        }
    }
    Ok(libs)
}

/// A library of the host's multiarch folders.
fn host_library(soname: &str, package: &str) -> Result<PathBuf> {
    ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]
        .iter()
        .map(|dir| Path::new(dir).join(soname))
        .find(|p| p.exists())
        .with_context(|| {
            format!("{soname} not found: install {package} (apt-get install {package})")
        })
}

/// Parses `ldd` output into (path in the archive, file to copy) pairs.
fn parse_ldd(text: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("linux-vdso") || line.is_empty() {
            continue;
        }
        if let Some((soname, rest)) = line.split_once(" => ") {
            let path = rest.split(" (").next().unwrap_or("").trim();
            if path == "not found" || path.is_empty() {
                bail!(
                    "library {soname} not found on this machine (is its Debian package installed?)"
                );
            }
            libs.push((format!("{LIB_DIR}/{soname}"), PathBuf::from(path)));
        } else if line.starts_with('/') {
            // The program interpreter, e.g. `/lib64/ld-linux-x86-64.so.2 (0x...)`:
            // it must sit at exactly that path.
            let path = line.split(" (").next().unwrap_or(line).trim();
            libs.push((
                path.trim_start_matches('/').to_string(),
                PathBuf::from(path),
            ));
        } else if line.contains("not a dynamic executable") || line.contains("statically linked") {
            continue;
        }
    }
    Ok(libs)
}

/// A kernel module's bytes, decompressed if Debian shipped it compressed
/// (busybox's `insmod` loads only plain `.ko` files).
fn module_bytes(staging: &Path, module: &str) -> Result<Vec<u8>> {
    let path = find_module(staging, module)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".ko") {
        return read(&path);
    }
    let mut cmd = if name.ends_with(".ko.xz") {
        // The staged busybox-static has unxz, so xz-utils is not required.
        command(staging.join("bin/busybox"), ["unxz", "-c"])
    } else if name.ends_with(".ko.zst") {
        util::require_tool("zstd", "zstd")?;
        command("zstd", ["-d", "-c"])
    } else if name.ends_with(".ko.gz") {
        command("gzip", ["-d", "-c"])
    } else {
        bail!("unknown module compression: {}", path.display());
    };
    cmd.arg(&path);
    util::run_captured_bytes(&mut cmd, Duration::from_secs(30))
}

/// A module's name: the last part of its path in [`MODULES`].
pub fn module_name(module: &str) -> &str {
    module.rsplit('/').next().unwrap_or(module)
}

/// The file extensions a kernel module may have in Debian's packages.
pub const MODULE_EXTENSIONS: &[&str] = &["ko", "ko.xz", "ko.zst", "ko.gz"];

/// The modules named in a module's `.modinfo` `depends=` string.
fn module_depends(data: &[u8]) -> Vec<String> {
    let key = b"depends=";
    data.split(|&b| b == 0)
        .filter_map(|s| s.strip_prefix(&key[..]))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn find_module(staging: &Path, module: &str) -> Result<PathBuf> {
    for modules_root in [staging.join("lib/modules"), staging.join("usr/lib/modules")] {
        let Ok(versions) = fs::read_dir(&modules_root) else {
            continue;
        };
        for version in versions.filter_map(|e| e.ok()) {
            for ext in MODULE_EXTENSIONS {
                let candidate = version.path().join(format!("kernel/{module}.{ext}"));
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
    }
    bail!(
        "kernel module {module} not found under {}/lib/modules/*/kernel/",
        staging.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibxenctrl.so.4.17 => /s/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            [
                (
                    "usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17".to_string(),
                    PathBuf::from("/s/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17")
                ),
                (
                    "usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                    PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6")
                ),
                (
                    "lib64/ld-linux-x86-64.so.2".to_string(),
                    PathBuf::from("/lib64/ld-linux-x86-64.so.2")
                ),
            ]
        );
    }

    #[test]
    fn module_dependencies() {
        let data = b"\x7fELF..\0license=GPL\0depends=llc,stp\0retpoline=Y\0";
        assert_eq!(module_depends(data), ["llc", "stp"]);
        assert!(module_depends(b"\0depends=\0name=loop\0").is_empty());
        assert_eq!(module_name("net/bridge/bridge"), "bridge");
    }

    #[test]
    fn missing_library_is_an_error() {
        let err = parse_ldd("\tlibuuid.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libuuid.so.1"));
    }
}
