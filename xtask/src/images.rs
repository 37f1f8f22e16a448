//! The gallery's images: builds the examples (examples/) for the guest
//! target, finds their images, and strips images for the other commands.
//! The test programs (tests/xen/) are built on top of this, in `cases.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util::{self, command, run_captured, run_inherited, GUEST_TARGET};

/// The xenpv feature that enables the `[[example]]` guest images.
pub const GUEST_FEATURE: &str = "guest-examples";

/// Cargo profile of the guest images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// Builds every example of the xenpv package for the guest target.
pub fn build_examples(profile: Profile) -> Result<()> {
    util::ensure_rust_target(&util::repo_root(), GUEST_TARGET)?;
    println!(
        "build: cargo build --target {GUEST_TARGET} --examples --features {GUEST_FEATURE} ({})",
        profile.dir()
    );
    let mut cmd = util::cargo();
    cmd.current_dir(util::repo_root())
        .args(["build", "--target", GUEST_TARGET, "--examples"]);
    // The examples need this feature, which keeps host `cargo test` from linking them.
    cmd.args(["--features", GUEST_FEATURE]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    run_inherited(&mut cmd, Duration::from_secs(1800)).context("building the guest examples")
}

/// Where cargo puts the image of example `name`.
pub fn example_image_path(name: &str, profile: Profile) -> PathBuf {
    util::target_dir()
        .join(GUEST_TARGET)
        .join(profile.dir())
        .join("examples")
        .join(name)
}

/// The examples declared with `[[example]]` in the repository's Cargo.toml.
pub fn example_names() -> Result<Vec<String>> {
    let manifest = util::repo_root().join("Cargo.toml");
    let text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    if let Err(e) = toml::from_str::<toml::Table>(&text) {
        bail!("{} is not valid TOML: {e}", manifest.display());
    }
    Ok(parse_example_names(&text))
}

fn parse_example_names(manifest: &str) -> Vec<String> {
    let Ok(table) = toml::from_str::<toml::Table>(manifest) else {
        return Vec::new();
    };
    table
        .get("example")
        .and_then(toml::Value::as_array)
        .map(|examples| {
            examples
                .iter()
                .filter_map(|e| {
                    e.get("name")
                        .and_then(toml::Value::as_str)
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `<image>.stripped` next to `image`, made with the first of `strip`,
/// `objcopy` or `rust-objcopy` found; the image itself when none is.
pub fn stripped_copy(image: &Path) -> Result<PathBuf> {
    let mut out = image.as_os_str().to_owned();
    out.push(".stripped");
    let out = PathBuf::from(out);
    let fresh = |o: &Path| -> bool {
        let (Ok(a), Ok(b)) = (fs::metadata(image), fs::metadata(o)) else {
            return false;
        };
        matches!((a.modified(), b.modified()), (Ok(a), Ok(b)) if b >= a)
    };
    if fresh(&out) {
        return Ok(out);
    }
    for tool in ["strip", "objcopy", "rust-objcopy"] {
        if util::which(tool).is_none() {
            continue;
        }
        let mut cmd = command(
            tool,
            ["--strip-all".as_ref(), image.as_os_str(), out.as_os_str()],
        );
        if tool == "strip" {
            cmd = command(
                tool,
                [
                    "--strip-all".as_ref(),
                    "-o".as_ref(),
                    out.as_os_str(),
                    image.as_os_str(),
                ],
            );
        }
        run_captured(&mut cmd, Duration::from_secs(60))?;
        return Ok(out);
    }
    Ok(image.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_names_from_manifest() {
        let toml = "[package]\nname = \"xenpv\"\n\n[[example]]\nname = \"hello\"\ntest = false\n\
                    [[example]]\ntest = false\nname=\"panic\"\n[profile.dev]\nname = \"x\"\n";
        assert_eq!(parse_example_names(toml), ["hello", "panic"]);
    }
}
