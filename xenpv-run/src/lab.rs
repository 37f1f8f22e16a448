//! `xenpv-run lab` (and `cargo xtask lab`): prepares the Xen lab, a cache folder with Debian's Xen
//! 4.17 hypervisor (`xen.elf`), a Linux kernel for dom0 (`vmlinuz`) and the
//! dom0 initramfs (`dom0.cpio`), and an initramfs for the same kernel
//! booted as a PV domU (`linux-guest.cpio`, busybox and the front-end
//! modules).
//!
//! Nothing is installed on the host: packages are fetched with
//! `apt-get download` and unpacked with `dpkg -x`. Two stamps make the cache
//! safe to reuse: `packages/complete` once the packages are unpacked, and
//! `manifest`, written last, once every output is in place. A folder without
//! a valid manifest is half-built or stale and is rebuilt, never reused; a
//! `lock` file keeps two commands from building the same folder at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::initramfs;
use crate::util::{self, command, human_size, run_captured, run_captured_status};

/// Debian packages unpacked into the lab, besides the kernel.
pub const PACKAGES: &[&str] = &[
    "xen-hypervisor-4.17-amd64",
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenmisc4.17",
    "libxenstore4",
    "libxentoollog1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libxentoolcore1",
    "libyajl2",
    "busybox-static",
];

/// The meta-package whose dependency names the dom0 kernel package.
const KERNEL_META: &str = "linux-image-amd64";

/// Files of a complete lab.
pub struct Lab {
    pub dir: PathBuf,
    /// Xen, uncompressed: QEMU's multiboot loader needs the ELF.
    pub xen: PathBuf,
    /// The dom0 Linux kernel.
    pub vmlinuz: PathBuf,
    /// The dom0 initramfs (uncompressed newc cpio).
    pub dom0_cpio: PathBuf,
    /// The initramfs of a Linux PV domU booted from `vmlinuz`
    /// (`initramfs::build_linux_guest`): append an archive with `/guest.sh`.
    pub linux_guest_cpio: PathBuf,
}

const OUTPUTS: &[&str] = &["xen.elf", "vmlinuz", "dom0.cpio", "linux-guest.cpio"];

/// The lab folder: `XENPV_LAB_DIR`, else a user-level cache shared by
/// every application (`$XDG_CACHE_HOME/xenpv/lab`, `~/.cache/xenpv/lab`).
/// `cargo xtask` points `XENPV_LAB_DIR` at `<repo>/target/xen-lab`.
pub fn lab_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XENPV_LAB_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("xenpv").join("lab")
}

impl Lab {
    fn at(dir: &Path) -> Lab {
        Lab {
            dir: dir.to_path_buf(),
            xen: dir.join("xen.elf"),
            vmlinuz: dir.join("vmlinuz"),
            dom0_cpio: dir.join("dom0.cpio"),
            linux_guest_cpio: dir.join("linux-guest.cpio"),
        }
    }
}

/// `xenpv-run lab` / `cargo xtask lab`.
pub fn cmd_lab(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`lab` takes no arguments (got `{arg}`); set XENPV_LAB_DIR to choose the folder");
    }
    // The lab is only useful with QEMU: say so now rather than at `run`.
    crate::qemu::check_installed()?;
    let start = Instant::now();
    let lab = ensure()?;
    eprintln!(
        "lab: ready in {} ({:.1} s)",
        lab.dir.display(),
        start.elapsed().as_secs_f64()
    );
    for path in [
        &lab.xen,
        &lab.vmlinuz,
        &lab.dom0_cpio,
        &lab.linux_guest_cpio,
    ] {
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        eprintln!("  {} ({})", path.display(), human_size(size));
    }
    Ok(())
}

/// Returns the lab, building whatever is missing or stale.
pub fn ensure() -> Result<Lab> {
    let dir = lab_dir();
    let lab = Lab::at(&dir);
    let recipe = recipe_hash();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Two commands preparing the same lab at once would clobber each other.
    let lock = fs::File::create(dir.join("lock"))
        .with_context(|| format!("creating {}/lock", dir.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "lab: waiting for another command that is preparing {}",
            dir.display()
        );
        lock.lock().context("locking the lab folder")?;
    }
    match check_manifest(&dir, &recipe) {
        Ok(()) => return Ok(lab),
        Err(Problem::Missing) => eprintln!("lab: building the Xen lab in {}", dir.display()),
        Err(Problem::Stale(why)) => eprintln!(
            "lab: {why}: rebuilding the lab outputs in {}",
            dir.display()
        ),
    }
    // From here on the folder is half-built until the manifest is written again.
    remove_if_present(&dir.join("manifest"))?;

    let (mut packages, reused) = ensure_packages(&dir)?;
    if let Err(err) = build_outputs(&lab) {
        if !reused {
            return Err(err.context(format!(
                "building the lab failed; if it keeps failing, delete {} and run `xenpv-run lab` (or `cargo xtask lab`) again",
                dir.display()
            )));
        }
        eprintln!("lab: the unpacked packages look damaged ({err:#}): fetching them again");
        fs::remove_dir_all(dir.join("packages")).context("removing the damaged packages")?;
        packages = ensure_packages(&dir)?.0;
        build_outputs(&lab)?;
    }

    let mut manifest = format!("xenpv-lab\nrecipe {recipe}\n");
    for name in OUTPUTS {
        let size = fs::metadata(dir.join(name))?.len();
        manifest.push_str(&format!("file {name} {size}\n"));
    }
    manifest.push_str(&packages);
    write_atomic(&dir.join("manifest"), manifest.as_bytes())?;
    Ok(lab)
}

/// Makes xen.elf, vmlinuz and dom0.cpio from the unpacked packages.
fn build_outputs(lab: &Lab) -> Result<()> {
    let staging = lab.dir.join("packages/staging");
    step("extracting Xen and the dom0 kernel");
    let xen_gz = find_one(&staging.join("boot"), "xen-4.17", ".gz")?;
    let xen = util::run_captured_bytes(
        &mut command("gzip", [Path::new("-dc"), &xen_gz]),
        Duration::from_secs(60),
    )?;
    write_atomic(&lab.xen, &xen)?;
    let vmlinuz = find_one(&staging.join("boot"), "vmlinuz-", "")?;
    write_atomic(&lab.vmlinuz, &read(&vmlinuz)?)?;

    step("building the dom0 initramfs");
    let cpio = initramfs::build(&staging)?;
    write_atomic(&lab.dom0_cpio, &cpio)?;
    step("building the Linux guest initramfs");
    write_atomic(
        &lab.linux_guest_cpio,
        &initramfs::build_linux_guest(&staging)?,
    )
}

enum Problem {
    Missing,
    Stale(String),
}

/// Why the lab at `dir` cannot be used as it is, if it cannot.
fn check_manifest(dir: &Path, recipe: &str) -> Result<(), Problem> {
    let Ok(text) = fs::read_to_string(dir.join("manifest")) else {
        let any_output =
            OUTPUTS.iter().any(|name| dir.join(name).exists()) || dir.join("packages").exists();
        // (An empty folder, or one with only the lock file, is simply new.)
        return Err(if any_output {
            Problem::Stale(
                "the lab folder has no manifest (an earlier build did not finish)".into(),
            )
        } else {
            Problem::Missing
        });
    };
    if !text.lines().any(|l| l == format!("recipe {recipe}")) {
        return Err(Problem::Stale(
            "the lab recipe changed since the lab was built".into(),
        ));
    }
    for line in text.lines().filter_map(|l| l.strip_prefix("file ")) {
        let mut parts = line.split(' ');
        let (Some(name), Some(size)) = (parts.next(), parts.next()) else {
            return Err(Problem::Stale(format!(
                "the manifest has a bad line `file {line}`"
            )));
        };
        let actual = fs::metadata(dir.join(name))
            .map(|m| m.len().to_string())
            .ok();
        if actual.as_deref() != Some(size) {
            let actual = actual
                .map(|s| format!("{s} bytes"))
                .unwrap_or_else(|| "missing".into());
            return Err(Problem::Stale(format!(
                "the lab cache is damaged ({name}: {actual}, the manifest says {size} bytes)"
            )));
        }
    }
    Ok(())
}

fn recipe_hash() -> String {
    let text = format!(
        "{PACKAGES:?}\n{KERNEL_META}\n{OUTPUTS:?}\n{}",
        initramfs::recipe()
    );
    format!("{:016x}", util::fnv1a(text.as_bytes()))
}

fn step(what: &str) {
    eprintln!("lab: {what} ...");
}

/// Downloads and unpacks the packages unless `packages/complete` says it was
/// done for the same list. Returns lines for the manifest naming what was
/// used, and whether an earlier unpacking was reused.
fn ensure_packages(dir: &Path) -> Result<(String, bool)> {
    let root = dir.join("packages");
    let stamp = root.join("complete");
    // The kept modules are part of it: the others are deleted when unpacking.
    let wanted = format!(
        "{:016x}",
        util::fnv1a(
            format!(
                "{PACKAGES:?}{KERNEL_META}{:?}{:?}",
                initramfs::MODULES,
                initramfs::GUEST_MODULES
            )
            .as_bytes()
        )
    );
    if let Ok(text) = fs::read_to_string(&stamp) {
        if text.lines().next() == Some(&format!("packages {wanted}"))
            && root.join("staging").is_dir()
        {
            step("reusing the unpacked packages");
            return Ok((
                text.lines().skip(1).map(|l| format!("{l}\n")).collect(),
                true,
            ));
        }
    }
    if root.exists() {
        fs::remove_dir_all(&root)
            .with_context(|| format!("removing the unfinished {}", root.display()))?;
    }
    let debs = root.join("debs");
    let staging = root.join("staging");
    fs::create_dir_all(&debs)?;
    fs::create_dir_all(&staging)?;
    for (tool, package) in [
        ("apt-get", "apt"),
        ("apt-cache", "apt"),
        ("dpkg", "dpkg"),
        ("dpkg-deb", "dpkg"),
        ("gzip", "gzip"),
    ] {
        util::require_tool(tool, package)?;
    }

    step(&format!(
        "finding the kernel package that {KERNEL_META} depends on"
    ));
    let kernel = kernel_package()?;
    let mut names: Vec<&str> = PACKAGES.to_vec();
    names.push(&kernel);

    step(&format!(
        "downloading {} packages with apt-get download",
        names.len()
    ));
    let started = Instant::now();
    let mut cmd = command("apt-get", ["download", "-q"]);
    cmd.args(&names).current_dir(&debs);
    run_captured(&mut cmd, Duration::from_secs(900)).context(
        "apt-get download failed: check that this is Debian 12 (bookworm) with its package lists \
         (apt-get update)",
    )?;
    let total: u64 = deb_files(&debs)?
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "lab:   {} in {:.1} s",
        human_size(total),
        started.elapsed().as_secs_f64()
    );

    step("unpacking with dpkg -x");
    let mut stamp_text = format!("packages {wanted}\n");
    for deb in deb_files(&debs)? {
        run_captured(
            &mut command("dpkg", [Path::new("-x"), &deb, &staging]),
            Duration::from_secs(300),
        )?;
        let out = run_captured(
            &mut command(
                "dpkg-deb",
                [
                    Path::new("-f"),
                    &deb,
                    Path::new("Package"),
                    Path::new("Version"),
                ],
            ),
            Duration::from_secs(30),
        )?;
        let fields: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(_, v)| v))
            .collect();
        stamp_text.push_str(&format!("package {}\n", fields.join(" ")));
    }
    // The .deb files are no longer needed, nor the ~400 MB of kernel modules
    // the lab does not load: keep the cache small.
    fs::remove_dir_all(&debs)?;
    prune_modules(&staging)?;
    write_atomic(&stamp, stamp_text.as_bytes())?;
    Ok((
        stamp_text
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect(),
        false,
    ))
}

/// Removes every kernel module but those of [`initramfs::MODULES`] and
/// [`initramfs::GUEST_MODULES`]
/// (the kernel package holds ~400 MB of them), and the folders left empty.
fn prune_modules(staging: &Path) -> Result<()> {
    let keep: Vec<String> = initramfs::MODULES
        .iter()
        .chain(initramfs::GUEST_MODULES)
        .flat_map(|m| {
            initramfs::MODULE_EXTENSIONS
                .iter()
                .map(move |ext| format!("{m}.{ext}"))
        })
        .collect();
    for root in [staging.join("lib/modules"), staging.join("usr/lib/modules")] {
        let Ok(versions) = fs::read_dir(&root) else {
            continue;
        };
        for version in versions.filter_map(|e| e.ok()) {
            let kernel = version.path().join("kernel");
            prune_dir(&kernel, "", &keep)?;
        }
    }
    Ok(())
}

/// Removes the files under `dir` (at `rel` below the kernel folder) whose
/// paths are not in `keep`; returns whether anything is left.
fn prune_dir(dir: &Path, rel: &str, keep: &[String]) -> Result<bool> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(false);
    };
    let mut left = false;
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let sub = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            if prune_dir(&path, &sub, keep)? {
                left = true;
            } else {
                fs::remove_dir(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        } else if keep.contains(&sub) {
            left = true;
        } else {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(left)
}

/// The `linux-image-<version>-amd64` package the meta-package depends on,
/// running `apt-get update` once if apt knows no packages yet.
fn kernel_package() -> Result<String> {
    let lookup = || -> Result<Option<String>> {
        let out = run_captured_status(
            &mut command("apt-cache", ["depends", KERNEL_META]),
            Duration::from_secs(60),
        )?;
        Ok(parse_kernel_depends(&out.stdout))
    };
    if let Some(name) = lookup()? {
        return Ok(name);
    }
    if !util::is_root() {
        bail!("apt-cache does not know {KERNEL_META}: run `apt-get update` as root first");
    }
    step("apt knows no kernel package yet: running apt-get update");
    run_captured(
        &mut command("apt-get", ["update", "-q"]),
        Duration::from_secs(600),
    )?;
    lookup()?.with_context(|| format!("apt-cache depends {KERNEL_META} names no linux-image package even after apt-get update"))
}

fn parse_kernel_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|name| name.starts_with("linux-image-") && !name.contains(' '))
        .map(str::to_string)
}

fn deb_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    Ok(debs)
}

/// The single file in `dir` named `<prefix>...<suffix>`.
fn find_one(dir: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no {prefix}*{suffix} in {}", dir.display()),
        _ => bail!(
            "several {prefix}*{suffix} in {}: delete {} and run `cargo xtask lab`",
            dir.display(),
            lab_dir().display()
        ),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Writes through a temporary name so a crash never leaves a half file under the real name.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_from_apt_cache() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_kernel_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(parse_kernel_depends(""), None);
    }

    #[test]
    fn manifest_checks() {
        let dir = std::env::temp_dir().join(format!("xtask-lab-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert!(matches!(check_manifest(&dir, "r1"), Err(Problem::Missing)));
        fs::write(dir.join("xen.elf"), b"1234").unwrap();
        assert!(
            matches!(check_manifest(&dir, "r1"), Err(Problem::Stale(_))),
            "half-built"
        );
        fs::write(
            dir.join("manifest"),
            "xenpv-lab\nrecipe r1\nfile xen.elf 4\n",
        )
        .unwrap();
        assert!(check_manifest(&dir, "r1").is_ok());
        assert!(
            matches!(check_manifest(&dir, "r2"), Err(Problem::Stale(_))),
            "recipe changed"
        );
        fs::write(dir.join("xen.elf"), b"12").unwrap();
        match check_manifest(&dir, "r1") {
            Err(Problem::Stale(why)) => assert!(why.contains("xen.elf"), "{why}"),
            _ => panic!("a truncated file must be noticed"),
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
