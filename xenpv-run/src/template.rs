//! `xenpv-run new <path>`: a ready application crate. `cd <path> && cargo
//! run --release` prints its greeting under Xen and exits 0; `cargo test`
//! runs its in-guest test.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::util::GUEST_TARGET;

/// Where xenpv comes from in the new crate's `Cargo.toml`.
#[derive(Debug, Clone, PartialEq)]
pub enum XenpvSource {
    Path(PathBuf),
    Git(String),
}

impl XenpvSource {
    fn dependency(&self) -> String {
        match self {
            XenpvSource::Path(p) => format!("{{ path = \"{}\" }}", p.display()),
            XenpvSource::Git(url) => format!("{{ git = \"{url}\" }}"),
        }
    }
}

/// The xenpv checkout this runner was built from, when it is still there
/// (`cargo install --path xenpv-run` from a clone): the default source.
pub fn default_source() -> Option<XenpvSource> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let manifest = fs::read_to_string(repo.join("Cargo.toml")).ok()?;
    manifest
        .contains("name = \"xenpv\"")
        .then(|| XenpvSource::Path(repo.to_path_buf()))
}

/// The toolchain file: the one xenpv pins (a stable release with the guest target).
pub const TOOLCHAIN: &str = include_str!("../../rust-toolchain.toml");

/// `.cargo/config.toml`: the guest target, xenpv's linker script (its
/// build script puts `xenpv.ld` on the search path; Xen loads PV images at
/// their link address, hence no PIE) and this runner.
pub fn cargo_config() -> String {
    format!(
        r#"[build]
target = "{GUEST_TARGET}"

[target.{GUEST_TARGET}]
rustflags = ["-C", "link-arg=-Txenpv.ld", "-C", "relocation-model=static"]
runner = "xenpv-run"
"#
    )
}

/// `Xenpv.toml`: how the runner boots the application (all optional).
pub const XENPV_TOML: &str = r#"# How `cargo run` / `cargo test` boot this application (xenpv-run).
# Every key is optional; the runner's command line overrides them.
memory = 32          # MiB
# vcpus = 1
# timeout = 120      # seconds before a hung guest is killed
# extra = ""         # the guest's command line
# dom0 = "dom0.sh"   # a script run in the lab's dom0 alongside

# A peer guest booted with the application:
# [[guest]]
# name = "peer"
# bin = "peer"       # a binary of this package
"#;

/// The greeting `src/main.rs` prints.
pub fn greeting(name: &str) -> String {
    format!("hello from {name} under Xen")
}

fn cargo_toml(name: &str, xenpv: &XenpvSource) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[dependencies]
xenpv = {dep}

# The application: a no_std, no_main PV image (no host unit tests).
[[bin]]
name = "{name}"
path = "src/main.rs"
test = false

# In-guest tests: `cargo test` boots tests/guest.rs under Xen.
[[test]]
name = "guest"
harness = false

[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
"#,
        dep = xenpv.dependency()
    )
}

fn main_rs(name: &str) -> String {
    format!(
        r#"#![no_std]
#![no_main]

xenpv::main!(main);

/// `xen` is the handle to this domain's services (grants, events,
/// xenstore, time); `?` turns any of their errors into `xenpv::Error`.
fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {{
    xenpv::println!("{greeting}");
    xenpv::println!("running as domain {{}}", xen.domid()?);
    Ok(())
}}
"#,
        greeting = greeting(name)
    )
}

/// `tests/guest.rs`: one in-guest test.
pub const GUEST_TEST_RS: &str = r#"#![no_std]
#![no_main]

use core::time::Duration;

xenpv::test_main!(time_goes_on);

fn time_goes_on() {
    let before = xenpv::time::now_ns();
    xenpv::sleep(Duration::from_millis(10));
    assert!(xenpv::time::now_ns() >= before + 10_000_000);
}
"#;

/// A package name from the folder's name.
fn package_name(dir: &Path) -> Result<String> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ok = !base.is_empty()
        && base.len() <= 60
        && base.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        bail!(
            "`{base}` cannot name the crate and its domain: use a folder name that starts \
             with a letter and has only letters, digits, `_` and `-` (at most 60)"
        );
    }
    Ok(base)
}

/// Writes the crate into `dir` (which must not exist or be empty) and
/// returns the files written.
pub fn create(dir: &Path, xenpv: &XenpvSource) -> Result<Vec<PathBuf>> {
    let name = package_name(dir)?;
    if dir.exists()
        && fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: choose a new folder",
            dir.display()
        );
    }
    let files = [
        ("Cargo.toml", cargo_toml(&name, xenpv)),
        (".cargo/config.toml", cargo_config()),
        ("rust-toolchain.toml", TOOLCHAIN.to_string()),
        ("Xenpv.toml", XENPV_TOML.to_string()),
        ("src/main.rs", main_rs(&name)),
        ("tests/guest.rs", GUEST_TEST_RS.to_string()),
        (".gitignore", "/target\n".to_string()),
    ];
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_crate() {
        let base = std::env::temp_dir().join(format!("xenpv-new-test-{}", std::process::id()));
        let dir = base.join("my-app");
        let files = create(&dir, &XenpvSource::Git("https://example.org/xenpv".into())).unwrap();
        assert_eq!(files.len(), 7);
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-app\""));
        assert!(manifest.contains("xenpv = { git = \"https://example.org/xenpv\" }"));
        assert!(manifest.contains("harness = false"));
        let main = fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(main.contains(&greeting("my-app")));
        let config = fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
        assert!(config.contains("runner = \"xenpv-run\""));
        assert!(
            config.contains(&format!("target = \"{GUEST_TARGET}\"")),
            "{config}"
        );
        // Xenpv.toml as written parses.
        crate::config::Config::parse(XENPV_TOML, Path::new("Xenpv.toml")).unwrap();
        // Not over an existing crate.
        let err = create(&dir, &XenpvSource::Path("/x".into())).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn names() {
        assert!(package_name(Path::new("/t/app_1")).is_ok());
        for bad in ["/t/1app", "/t/a b", "/t/a.b", "/"] {
            assert!(package_name(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn toolchain_has_the_guest_target() {
        assert!(TOOLCHAIN.contains(&format!("\"{GUEST_TARGET}\"")));
    }
}
