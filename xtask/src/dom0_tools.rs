//! The dom0 test tools (`tests/dom0-tools`, package `xenpv-dom0-tools`):
//! built for the host target with a static C runtime, so they run in the
//! lab's dom0 whatever its initramfs carries, and put in a run's payload
//! at `/payload/bin/` for the companion scripts (xenpv-run's `Plan::tools`).
//! xenpv-run itself is one of them, built the same way, so a companion can
//! run its real-host path (`xenpv-run --xen host`) in the lab's dom0, a real
//! Xen dom0 with `xl` (`tests/xen/host-path`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::util::{self, run_captured};
use xenpv_run::payload::Guest;

/// The package and the binaries it builds.
pub const PACKAGE: &str = "xenpv-dom0-tools";
pub const BINARIES: &[&str] = &["gnt-interop", "vchan-bench"];

/// The runner's package, also built for dom0: its binary is `xenpv-run`.
pub const RUNNER_PACKAGE: &str = "xenpv-run";

/// dom0's target: Debian's x86_64 Linux, like the build machine.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The tools for a plan of `groups`: built only when some guest has a
/// companion script (the only users of `/payload/bin/`).
pub fn for_groups(groups: &[Vec<Guest>]) -> Result<Vec<(String, PathBuf)>> {
    if !groups.iter().flatten().any(|g| g.companion.is_some()) {
        return Ok(Vec::new());
    }
    Ok(build()?
        .into_iter()
        .map(|(n, p)| (n.to_string(), p))
        .collect())
}

/// Builds the tools (release) and returns each binary's name and path.
pub fn build() -> Result<Vec<(&'static str, PathBuf)>> {
    let mut cmd = util::cargo();
    cmd.current_dir(util::repo_root())
        .args([
            "build",
            "--release",
            "--package",
            PACKAGE,
            "--package",
            RUNNER_PACKAGE,
            "--target",
            TARGET,
        ])
        // Per-target flags, so neither xtask nor the guest images are
        // rebuilt with them (an explicit --target keeps them off build
        // scripts too).
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static -C strip=symbols",
        );
    run_captured(&mut cmd, Duration::from_secs(1800)).context("building the dom0 tools")?;
    let dir = util::target_dir().join(TARGET).join("release");
    Ok(BINARIES
        .iter()
        .chain(&[RUNNER_PACKAGE])
        .map(|b| (*b, dir.join(b)))
        .collect())
}
