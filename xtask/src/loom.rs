//! `cargo xtask loom`: the loom model checks (`src/grant/loom_tests.rs`,
//! `src/vchan/loom_tests.rs`), built with `--cfg loom` so SharedMem's
//! accesses become loom atomics. `cargo xtask test` runs them too (they
//! take seconds at the default bound); `--preemptions N` explores more.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::util::{self, run_inherited};

/// Builds the cargo command that runs every `loom_` test; `preemptions`
/// bounds how many forced thread switches loom explores per execution.
pub fn command(preemptions: u32) -> std::process::Command {
    let mut cmd = util::cargo();
    cmd.current_dir(util::repo_root())
        .args([
            "test",
            "-p",
            "xenpv",
            "--release",
            "--lib",
            "--features",
            "host-fakes",
            "loom_",
        ])
        // A separate target folder: `--cfg loom` would otherwise rebuild
        // the normal test build every time.
        .env("CARGO_TARGET_DIR", util::target_dir().join("loom"))
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", preemptions.to_string());
    cmd
}

/// `cargo xtask loom [--preemptions N]`.
pub fn cmd_loom(preemptions: u32) -> Result<()> {
    let start = Instant::now();
    run_inherited(&mut command(preemptions), Duration::from_secs(3600))?;
    println!(
        "xtask: loom model checks passed ({preemptions} preemptions, {:.0} s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
