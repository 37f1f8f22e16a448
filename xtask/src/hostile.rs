//! `cargo xtask miri` and `cargo xtask fuzz`: the checks of issue 6 that
//! need a nightly toolchain (Miri; cargo-fuzz's libFuzzer and sanitizer
//! flags). The pinned stable toolchain stays the one for everything else;
//! these commands install `nightly` (with `miri` and `rust-src`) and
//! cargo-fuzz themselves when missing, and say so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{self, run_inherited};

const NIGHTLY: &str = "nightly";

/// The fuzz targets (`fuzz/fuzz_targets/<name>.rs`), in run order.
const FUZZ_TARGETS: &[&str] = &[
    "xenstore_reply",
    "vchan_ring",
    "console_ring",
    "grant_ops",
    "io_ring",
    "store_ring",
    "event_two_level",
    "xenbus_states",
    "grant_paths",
    "netfront",
    "blkfront",
];

/// The targets over the grant fake, which never frees a frame's memory
/// (a peer's stale view must stay valid for the checks to run), so one
/// process grows with every input: they run in fork mode (see `cmd_fuzz`).
const OVER_THE_GRANT_FAKE: &[&str] = &["grant_ops", "grant_paths", "netfront", "blkfront"];

/// A command on the nightly toolchain, without the variables the outer
/// (pinned) cargo set for us, which would otherwise win over `rustup run`.
fn nightly(program: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", NIGHTLY, program]);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(util::repo_root());
    cmd
}

fn quiet_ok(cmd: &mut Command) -> bool {
    util::run_captured_status(cmd, Duration::from_secs(120)).is_ok_and(|o| o.status.success())
}

/// Installs nightly with miri and rust-src unless it is there already.
fn ensure_nightly() -> Result<()> {
    util::require_tool("rustup", "rustup (see https://rustup.rs)")?;
    let mut probe = nightly("cargo");
    probe.args(["miri", "--version"]);
    if quiet_ok(&mut probe) {
        return Ok(());
    }
    println!("xtask: installing the nightly toolchain with miri and rust-src (needed by Miri and cargo-fuzz; once)");
    let start = Instant::now();
    let mut cmd = util::command(
        "rustup",
        [
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "-c",
            "miri,rust-src",
        ],
    );
    run_inherited(&mut cmd, Duration::from_secs(1800))
        .context("installing the nightly toolchain")?;
    println!(
        "xtask: nightly installed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs cargo-fuzz (crates.io) unless it is on PATH.
fn ensure_cargo_fuzz() -> Result<()> {
    if util::which("cargo-fuzz").is_some() {
        return Ok(());
    }
    println!("xtask: installing cargo-fuzz (cargo install cargo-fuzz; once)");
    let start = Instant::now();
    let mut cmd = util::cargo();
    cmd.args(["install", "cargo-fuzz", "--locked"]);
    run_inherited(&mut cmd, Duration::from_secs(1800)).context("installing cargo-fuzz")?;
    println!(
        "xtask: cargo-fuzz installed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask miri [-- <test filter and libtest args>]`: the library's
/// host tests under Miri. That covers every module with `unsafe` Miri can
/// execute (shared_mem and, through it, the grant, vchan, xenstore,
/// console and event protocol code and their fakes); the `asm!`
/// hypercall tests are `cfg(not(miri))`, and the long thread races run
/// shortened under `cfg(miri)`.
pub fn cmd_miri(extra: &[String]) -> Result<()> {
    ensure_nightly()?;
    let mut cmd = nightly("cargo");
    cmd.args([
        "miri",
        "test",
        "-p",
        "xenpv",
        "--features",
        "host-fakes",
        "--lib",
        "--",
    ])
    .args(extra);
    // Leaks are intentional: SharedMem::leak_zeroed (the host tests'
    // shared pages) and the grant fake's frames live for the whole
    // program, so a peer's view stays valid whatever the code under test
    // does. Everything else Miri reports is an error.
    cmd.env("MIRIFLAGS", "-Zmiri-ignore-leaks");
    println!(
        "xtask: {} (MIRIFLAGS=-Zmiri-ignore-leaks)",
        util::describe(&cmd)
    );
    let start = Instant::now();
    run_inherited(&mut cmd, Duration::from_secs(3600))?;
    println!(
        "xtask: miri: all host tests passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What one fuzz run did.
struct FuzzRow {
    target: &'static str,
    execs: Option<u64>,
    cov: Option<u64>,
    secs: f64,
    ok: bool,
    log: PathBuf,
}

/// The coverage (`cov: N`, edges) of libFuzzer's last status line.
fn coverage(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        l.split("cov: ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Total executions from libFuzzer's output: `Done N runs` (normal
/// mode) or the last `#N: cov: ...` status line (fork mode).
fn executions(log: &str) -> Option<u64> {
    let done = log
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Done ")?.split(' ').next()?.parse().ok());
    done.or_else(|| {
        log.lines().rev().find_map(|l| {
            let rest = l.strip_prefix('#')?;
            let (n, tail) = rest.split_once(':')?;
            tail.trim_start()
                .starts_with("cov:")
                .then(|| n.parse().ok())?
        })
    })
}

/// `cargo xtask fuzz [--seconds N] [target...]`: each fuzz target for N
/// seconds (default 60), seeded from the committed corpus in
/// `fuzz/corpus/<target>`; new inputs go to `target/fuzz/corpus/<target>`
/// so the committed corpus stays small. Any crash fails the command and
/// leaves its input in `fuzz/artifacts/<target>/`.
pub fn cmd_fuzz(seconds: u64, names: &[String]) -> Result<()> {
    let mut targets: Vec<&'static str> = Vec::new();
    for name in names {
        match FUZZ_TARGETS.iter().find(|t| **t == name) {
            Some(t) => targets.push(t),
            None => bail!(
                "unknown fuzz target `{name}` (targets: {})",
                FUZZ_TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let root = util::repo_root();
    let fuzz_dir = root.join("fuzz");
    let work = util::target_dir().join("fuzz");
    let mut rows = Vec::new();
    for &target in &targets {
        let corpus = work.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let log = work.join(format!("{target}.log"));
        let mut cmd = nightly("cargo");
        cmd.current_dir(&fuzz_dir)
            .env("CARGO_TARGET_DIR", work.join("build"))
            .args(["fuzz", "run", target])
            .arg(&corpus)
            .arg(Path::new("corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"));
        let fork = OVER_THE_GRANT_FAKE.contains(&target);
        if fork {
            // The grant fake never frees a frame's memory (a peer's stale
            // view must stay valid for the checks to run), so one process
            // grows by ~100 KiB per input: fork mode restarts the fuzzing
            // process every few seconds, and leak detection is off. A child
            // that still reaches the RSS limit is the fake's growth, not a
            // finding: `-ignore_ooms=1` restarts it instead of failing
            // (seen once in CI after ~147k executions).
            cmd.args(["-fork=1", "-ignore_ooms=1", "-rss_limit_mb=4096"])
                .env("ASAN_OPTIONS", "detect_leaks=0");
        }
        println!(
            "xtask: fuzz {target} for {seconds} s (log: {})",
            log.display()
        );
        let start = Instant::now();
        // The build is included: the first run compiles with sanitizers.
        let out = util::run_captured_status(&mut cmd, Duration::from_secs(seconds + 1800))?;
        let text = format!("{}{}", out.stdout, out.stderr);
        std::fs::write(&log, &text)?;
        // The grant-fake targets: libFuzzer's fork mode exits 71 at the
        // end when any child hit the RSS limit, even with -ignore_ooms=1.
        // Out-of-memory alone is the fake's growth (see above); a crash or
        // a timeout is a finding.
        let ok = out.status.success() || (fork && only_ooms(&text));
        if !ok {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            for l in tail.into_iter().rev() {
                println!("    {l}");
            }
        }
        rows.push(FuzzRow {
            target,
            execs: executions(&text),
            cov: coverage(&text),
            secs: start.elapsed().as_secs_f64(),
            ok,
            log,
        });
    }
    println!(
        "\n{:<16} {:>12} {:>6} {:>9}  result",
        "target", "executions", "cov", "wall s"
    );
    for r in &rows {
        let execs = r.execs.map_or_else(|| "?".to_string(), |n| n.to_string());
        let cov = r.cov.map_or_else(|| "?".to_string(), |n| n.to_string());
        let result = if r.ok {
            "ok".to_string()
        } else {
            format!("FAILED (log {})", r.log.display())
        };
        println!(
            "{:<16} {:>12} {:>6} {:>9.0}  {result}",
            r.target, execs, cov, r.secs
        );
    }
    if rows.iter().any(|r| !r.ok) {
        return Err(util::AlreadyReported.into());
    }
    Ok(())
}

/// Whether a fork-mode run's last status line counts out-of-memory
/// children only (`oom/timeout/crash: N/0/0`) and no other failure.
fn only_ooms(text: &str) -> bool {
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.split("oom/timeout/crash: ").nth(1));
    let Some(counts) = last.and_then(|rest| rest.split_whitespace().next()) else {
        return false;
    };
    let n: Vec<u64> = counts.split('/').filter_map(|c| c.parse().ok()).collect();
    n.len() == 3
        && n[1] == 0
        && n[2] == 0
        && !text.contains("deadly signal")
        && !text.contains("panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_are_read_from_either_mode() {
        assert_eq!(
            executions("#1 INITED\nDone 816235 runs in 61 second(s)\n"),
            Some(816235)
        );
        assert!(only_ooms("#9: cov: 1 oom/timeout/crash: 0/0/0 time: 1s\n#163173: cov: 1216 ft: 5207 corp: 436 exec/s: 2489 oom/timeout/crash: 1/0/0 time: 65s job: 10\nINFO: exiting: 71"));
        assert!(!only_ooms(
            "#163173: cov: 1216 oom/timeout/crash: 1/0/1 time: 65s job: 10"
        ));
        assert!(!only_ooms(
            "#163173: cov: 1216 oom/timeout/crash: 0/1/0 time: 65s"
        ));
        assert!(!only_ooms("INFO: exiting: 71"));
        let fork = "#1699: cov: 1079 ft: 4109 corp: 225 exec/s: 849\n#44834: cov: 1085 ft: 4235\nINFO: fuzzed for 48 seconds";
        assert_eq!(executions(fork), Some(44834));
        assert_eq!(coverage(fork), Some(1085));
        assert_eq!(
            coverage("#9\tDONE   cov: 387 ft: 1651 corp: 535/21Kb\nDone 9 runs"),
            Some(387)
        );
        assert_eq!(executions("#123\tNEW    cov: 1"), None);
    }

    #[test]
    fn every_target_has_a_source_and_a_seed_corpus() {
        let fuzz = util::repo_root().join("fuzz");
        for t in FUZZ_TARGETS {
            assert!(
                fuzz.join("fuzz_targets").join(format!("{t}.rs")).is_file(),
                "{t}"
            );
            let seeds = std::fs::read_dir(fuzz.join("corpus").join(t))
                .map(|d| d.count())
                .unwrap_or(0);
            assert!(seeds > 0, "no seed corpus for {t}");
        }
        for t in OVER_THE_GRANT_FAKE {
            assert!(FUZZ_TARGETS.contains(t), "{t}");
        }
    }

    #[test]
    fn every_target_source_is_listed_and_built() {
        let fuzz = util::repo_root().join("fuzz");
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        for e in std::fs::read_dir(fuzz.join("fuzz_targets")).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                FUZZ_TARGETS.contains(&name.as_str()),
                "fuzz target {name} is not run by `cargo xtask fuzz`"
            );
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "fuzz target {name} has no [[bin]] in fuzz/Cargo.toml"
            );
        }
    }
}
