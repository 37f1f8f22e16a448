//! The per-run payload: a small cpio archive appended to the dom0 initramfs
//! with the guest images (`/payload/<name>.elf`), their xl configs rewritten
//! for the lab (`/payload/<name>.cfg`), optional dom0 companion scripts
//! (`/payload/<name>.dom0.sh`) and pre-create scripts
//! (`/payload/<name>.pre.dom0.sh`), the helpers (`dom0/lab.sh`) and the plan
//! that dom0's `/init` runs (`/payload/plan`). The plan's tools
//! (xtask's dom0 test tools, for companions) go to `/payload/bin/`, which the
//! plan puts first on `PATH`.
//!
//! Linux unpacks concatenated cpio archives in one initrd, so the lab's big
//! archive is built once and each run only writes this one.
//!
//! On a real Xen host the same files go to a folder instead ([`write_dir`]),
//! named in the plan and the cfgs by its own path rather than `/payload`,
//! and the host runs the same plan with the same `lab.sh` (see
//! [`crate::host`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cpio::Archive;

/// dom0 helpers sourced by the plan.
pub const LAB_SH: &str = include_str!("dom0/lab.sh");

/// Helpers every dom0 companion script gets in front of its own text.
pub const COMPANION_SH: &str = include_str!("dom0/companion.sh");

/// One guest to create with `xl create`.
#[derive(Clone, Debug)]
pub struct Guest {
    /// Domain name, also the name of its console log and of its output prefix.
    pub name: String,
    /// The (stripped) image.
    pub image: PathBuf,
    /// The xl config as written in the repository (its `kernel=` is replaced).
    pub cfg: String,
    /// A dom0 script to run in the background once the group is created.
    pub companion: Option<String>,
    /// A dom0 script to run (in the foreground) just before its `xl create`,
    /// e.g. to make the disk image its cfg names.
    pub pre_create: Option<String>,
    /// An initial ramdisk for a Linux guest: put at
    /// `/payload/<name>.ramdisk` and named by the cfg's `ramdisk=`.
    pub ramdisk: Option<PathBuf>,
}

/// What dom0 does in one boot: groups of guests, one group after another;
/// the guests of a group run together.
pub struct Plan {
    pub groups: Vec<Vec<Guest>>,
    /// How long one guest may run before it is destroyed and reported as `timeout`.
    pub guest_timeout: Duration,
    /// Programs for the companion scripts, put at `/payload/bin/<name>`
    /// (e.g. xenpv's dom0 test tools): name and host path.
    pub tools: Vec<(String, PathBuf)>,
    /// Whether each guest learns the other guests' domain ids of its group
    /// (xenstore `data/peers/<name>`), as the runner promises.
    pub announce_peers: bool,
}

impl Plan {
    pub fn guests(&self) -> impl Iterator<Item = &Guest> {
        self.groups.iter().flatten()
    }
}

/// Whether `name` can be a domain name, a file name and part of a shell
/// variable name without quoting trouble.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 60
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        bail!("`{name}` is not usable as a guest name: use letters, digits, `_` and `-`");
    }
    Ok(())
}

/// Where the lab's dom0 finds the payload.
pub const LAB_ROOT: &str = "/payload";

/// One file of the payload: its path under the payload's root, its mode
/// and its contents.
pub struct File {
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// The archive for `plan`, unpacked at [`LAB_ROOT`] in the lab's dom0.
pub fn build(plan: &Plan) -> Result<Vec<u8>> {
    let mut archive = Archive::new();
    for file in files(plan, LAB_ROOT)? {
        archive.file(
            &format!("{}/{}", &LAB_ROOT[1..], file.path),
            file.mode,
            &file.data,
        );
    }
    Ok(archive.finish())
}

/// Writes the payload of `plan` into the folder `dir` (created if needed),
/// its plan and cfgs naming `dir` as their root: what a real Xen host runs
/// with `/bin/sh dir/plan`.
pub fn write_dir(plan: &Plan, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir
        .to_str()
        .filter(|r| {
            r.starts_with('/')
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c))
        })
        .with_context(|| {
            format!(
                "{} cannot hold a run's files: use an absolute path of letters, digits, `/`, `_`, `-` and `.`",
                dir.display()
            )
        })?;
    for file in files(plan, root)? {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.data).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
    }
    Ok(())
}

/// The payload's files for `plan`, with `root` as the folder they will be
/// in when the plan runs.
pub fn files(plan: &Plan, root: &str) -> Result<Vec<File>> {
    let mut out = Vec::new();
    let mut add = |path: String, mode: u32, data: Vec<u8>| out.push(File { path, mode, data });
    let mut seen = std::collections::BTreeSet::new();
    for guest in plan.guests() {
        check_name(&guest.name)?;
        if !seen.insert(guest.name.as_str()) {
            bail!(
                "guest `{}` appears twice in one boot: domain names must be unique",
                guest.name
            );
        }
        let image = std::fs::read(&guest.image)
            .with_context(|| format!("reading {}", guest.image.display()))?;
        add(format!("{}.elf", guest.name), 0o644, image);
        if let Some(path) = &guest.ramdisk {
            let data =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            add(format!("{}.ramdisk", guest.name), 0o644, data);
        }
        add(
            format!("{}.cfg", guest.name),
            0o644,
            rewrite_cfg(guest, root).into_bytes(),
        );
        if let Some(script) = &guest.companion {
            add(
                format!("{}.dom0.sh", guest.name),
                0o755,
                format!("{COMPANION_SH}{script}").into_bytes(),
            );
        }
        if let Some(script) = &guest.pre_create {
            add(
                format!("{}.pre.dom0.sh", guest.name),
                0o755,
                format!("{COMPANION_SH}{script}").into_bytes(),
            );
        }
    }
    for (name, path) in &plan.tools {
        let bin = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        add(format!("bin/{name}"), 0o755, bin);
    }
    add("lab.sh".into(), 0o644, LAB_SH.as_bytes().to_vec());
    add("plan".into(), 0o755, plan_script(plan, root).into_bytes());
    Ok(out)
}

/// Settings xtask owns in every cfg: the image's path in dom0, the domain
/// name, and "preserve" on every shutdown so that dom0 can read the reason
/// and the last console lines before destroying the domain.
const OWNED_KEYS: &[&str] = &[
    "name",
    "kernel",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "on_soft_reset",
];

/// `guest.cfg` with the settings of [`OWNED_KEYS`] replaced, its files in
/// the folder `root`.
pub fn rewrite_cfg(guest: &Guest, root: &str) -> String {
    let mut out =
        String::from("# Rewritten for the lab; the original is the guest's own xl config.\n");
    let _ = writeln!(out, "name = \"{}\"", guest.name);
    let _ = writeln!(out, "kernel = \"{root}/{}.elf\"", guest.name);
    if guest.ramdisk.is_some() {
        let _ = writeln!(out, "ramdisk = \"{root}/{}.ramdisk\"", guest.name);
    }
    for key in &OWNED_KEYS[2..] {
        let _ = writeln!(out, "{key} = \"preserve\"");
    }
    let mut has_uuid = false;
    for line in guest.cfg.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        has_uuid |= line.contains('=') && key == "uuid";
        let owned = OWNED_KEYS.contains(&key) || (key == "ramdisk" && guest.ramdisk.is_some());
        if line.contains('=') && owned {
            let _ = writeln!(out, "# (replaced) {line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    if !has_uuid {
        // Without one, xl spends ~3 s making a UUID in the lab's bare dom0
        // (libuuid; measured: `xl create -n` 3.2 s without, 0.1 s with).
        let _ = writeln!(out, "uuid = \"{}\"", random_uuid());
    }
    out
}

/// A random (version 4) UUID, from std's randomly keyed hasher.
fn random_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    };
    let bits = (u128::from(half(1)) << 64) | u128::from(half(2));
    // Version 4, variant 10xx.
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The shell script dom0 runs: create each group, wait for it, go on.
fn plan_script(plan: &Plan, root: &str) -> String {
    let mut s = format!(
        "# Generated by xenpv-run: what dom0 does in this boot.\n. {root}/lab.sh\n\
         export PATH={root}/bin:$PATH\n",
    );
    let limit = plan.guest_timeout.as_secs().max(1);
    for (i, group) in plan.groups.iter().enumerate() {
        let names: Vec<&str> = group.iter().map(|g| g.name.as_str()).collect();
        let _ = writeln!(s, "\n# group {}: {}", i + 1, names.join(" "));
        for guest in group {
            if guest.pre_create.is_some() {
                let _ = writeln!(s, "guest_prepare {0} {root}/{0}.pre.dom0.sh", guest.name);
            }
            let _ = writeln!(s, "guest_create {0} {root}/{0}.cfg", guest.name);
        }
        if plan.announce_peers && group.len() > 1 {
            s.push_str("group_peers\n");
        }
        for guest in group.iter().filter(|g| g.companion.is_some()) {
            let _ = writeln!(s, "companion_start {0} {root}/{0}.dom0.sh", guest.name);
        }
        let _ = writeln!(s, "group_unpause\ngroup_wait {limit}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(name: &str, cfg: &str) -> Guest {
        Guest {
            name: name.into(),
            image: PathBuf::new(),
            cfg: cfg.into(),
            companion: None,
            pre_create: None,
            ramdisk: None,
        }
    }

    #[test]
    fn cfg_is_rewritten() {
        let cfg = "name = \"hello\"\ntype = \"pv\"\nkernel = \"../target/x/hello\"\nmemory = 8\non_crash=\"destroy\"\n";
        let out = rewrite_cfg(&guest("hello", cfg), LAB_ROOT);
        assert!(out.contains("kernel = \"/payload/hello.elf\"\n"), "{out}");
        assert!(
            out.contains("\ntype = \"pv\"\n") && out.contains("\nmemory = 8\n"),
            "{out}"
        );
        assert!(out.contains("on_crash = \"preserve\""), "{out}");
        // Each owned key is set once; the originals stay visible as comments.
        for key in OWNED_KEYS {
            let live = out
                .lines()
                .filter(|l| !l.starts_with('#') && l.split('=').next().unwrap().trim() == *key);
            assert_eq!(live.count(), 1, "{key} in\n{out}");
        }
        assert!(
            out.contains("# (replaced) kernel = \"../target/x/hello\""),
            "{out}"
        );
    }

    #[test]
    fn ramdisk_is_the_payload_copy() {
        let mut g = guest("linux", "memory = 128\nramdisk = \"/elsewhere.cpio\"\n");
        assert!(!rewrite_cfg(&g, LAB_ROOT).contains("/payload/linux.ramdisk"));
        g.ramdisk = Some(PathBuf::from("/host/initrd.cpio"));
        let out = rewrite_cfg(&g, LAB_ROOT);
        assert!(
            out.contains("ramdisk = \"/payload/linux.ramdisk\"\n"),
            "{out}"
        );
        assert!(
            out.contains("# (replaced) ramdisk = \"/elsewhere.cpio\""),
            "{out}"
        );
    }

    #[test]
    fn uuids() {
        let (a, b) = (random_uuid(), random_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "{a}");
        assert!("89ab".contains(&a[19..20]), "{a}");
        // A cfg's own uuid is kept.
        let out = rewrite_cfg(
            &guest("x", "uuid = \"0c4a5a52-1f3f-4a1e-9a5e-2b6f3c1d0e01\"\n"),
            LAB_ROOT,
        );
        assert_eq!(out.matches("uuid").count(), 1, "{out}");
    }

    #[test]
    fn plan_runs_groups_in_order() {
        let mut producer = guest("ring_producer", "");
        producer.companion = Some("true\n".into());
        producer.pre_create = Some("true\n".into());
        let plan = Plan {
            groups: vec![
                vec![guest("hello", "")],
                vec![producer, guest("ring_consumer", "")],
            ],
            guest_timeout: Duration::from_secs(30),
            tools: Vec::new(),
            announce_peers: false,
        };
        let script = plan_script(&plan, LAB_ROOT);
        let expected = "guest_create hello /payload/hello.cfg\ngroup_unpause\ngroup_wait 30\n\n\
                        # group 2: ring_producer ring_consumer\n\
                        guest_prepare ring_producer /payload/ring_producer.pre.dom0.sh\n\
                        guest_create ring_producer /payload/ring_producer.cfg\n\
                        guest_create ring_consumer /payload/ring_consumer.cfg\n\
                        companion_start ring_producer /payload/ring_producer.dom0.sh\n\
                        group_unpause\ngroup_wait 30\n";
        assert!(script.ends_with(expected), "{script}");
    }

    #[test]
    fn a_folder_payload_names_its_own_root() {
        let dir = std::env::temp_dir().join(format!("xenpv-payload-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("img");
        std::fs::write(&image, b"\x7fELF").unwrap();
        let tool = dir.join("tool");
        std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
        let mut g = guest("app", "memory = 8\n");
        g.image = image;
        g.companion = Some("echo hi\n".into());
        let plan = Plan {
            groups: vec![vec![g]],
            guest_timeout: Duration::from_secs(7),
            tools: vec![("tool".into(), tool)],
            announce_peers: false,
        };
        let root = dir.join("run");
        write_dir(&plan, &root).unwrap();
        let r = root.to_str().unwrap();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let script = read("plan");
        assert!(script.contains(&format!(". {r}/lab.sh\n")), "{script}");
        assert!(
            script.contains(&format!("export PATH={r}/bin:$PATH\n")),
            "{script}"
        );
        assert!(
            script.contains(&format!("guest_create app {r}/app.cfg\n")),
            "{script}"
        );
        assert!(
            script.contains(&format!("companion_start app {r}/app.dom0.sh\n")),
            "{script}"
        );
        assert!(read("app.cfg").contains(&format!("kernel = \"{r}/app.elf\"\n")));
        assert_eq!(std::fs::read(root.join("app.elf")).unwrap(), b"\x7fELF");
        assert_eq!(read("lab.sh"), LAB_SH);
        assert!(read("app.dom0.sh").ends_with("echo hi\n"));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode("bin/tool"), mode("app.cfg")), (0o755, 0o644));
        // A root the plan could not name unquoted is refused.
        assert!(write_dir(&plan, &dir.join("a b")).is_err());
        assert!(write_dir(&plan, Path::new("relative")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("ring_producer-2").is_ok());
        for bad in ["", "a b", "x;reboot", "../x", "$(x)"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-payload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("img");
        std::fs::write(&image, b"\x7fELF").unwrap();
        let mut g = guest("hello", "");
        g.image = image;
        let plan = Plan {
            groups: vec![vec![g.clone()], vec![g]],
            guest_timeout: Duration::from_secs(5),
            tools: Vec::new(),
            announce_peers: false,
        };
        assert!(build(&plan).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
