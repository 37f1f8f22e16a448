//! `cargo xtask mutants`: cargo-mutants over the host-testable protocol
//! code, as the measure of the tests. Each mutant (a changed operator, a
//! function body replaced by a constant) must make the host tests fail;
//! one that survives is a missing test, unless it is listed with a reason
//! in `xtask/mutants/survivors.md` (an equivalent mutant, or one only a
//! real Xen can tell apart). Not in CI: a full run takes the better part
//! of an hour on two cores.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{self, run_inherited};

/// The files the verification issue measures, each with its goal.
pub const FILES: &[&str] = &[
    "src/grant/entry.rs",
    "src/grant/share.rs",
    "src/grant/table.rs",
    "src/grant/refs.rs",
    "src/grant/reserve.rs",
    "src/grant/transfer.rs",
    "src/vchan/ring.rs",
    "src/vchan/channel.rs",
    "src/shared_mem.rs",
    "src/xenstore/client.rs",
    "src/xenstore/wire.rs",
    "src/ring/mod.rs",
    "src/xenbus/mod.rs",
    "src/xenbus/link.rs",
    "src/xenbus/backend.rs",
    "src/block/mod.rs",
    "src/net/mod.rs",
    "src/net/stack.rs",
];

/// Caught (timeouts included) over viable mutants, per file, must reach this.
const GOAL_PERCENT: f64 = 90.0;

fn survivors_file() -> PathBuf {
    util::repo_root().join("xtask/mutants/survivors.md")
}

/// `cargo xtask mutants [--file F]... [--jobs N] [--tests FILTER]...`.
pub fn cmd_mutants(mut files: Vec<String>, jobs: usize, tests: Vec<String>) -> Result<()> {
    if files.is_empty() {
        files = FILES.iter().map(|f| f.to_string()).collect();
    }
    if util::which("cargo-mutants").is_none() {
        println!("xtask: installing cargo-mutants (cargo install cargo-mutants; once)");
        let mut cmd = util::cargo();
        cmd.args(["install", "cargo-mutants", "--locked"]);
        run_inherited(&mut cmd, Duration::from_secs(1800)).context("installing cargo-mutants")?;
    }
    let out = util::target_dir().join("mutants");
    let start = Instant::now();
    let mut cmd = util::cargo();
    cmd.current_dir(util::repo_root()).args([
        "mutants",
        "--package",
        "xenpv",
        "--no-shuffle",
        "--jobs",
        &jobs.to_string(),
    ]);
    cmd.arg("--output").arg(&out);
    for f in &files {
        cmd.args(["--file", f]);
    }
    // The library's host tests over the fakes (the loom runs have their
    // own command). Features and `--lib` go to the build as well as the
    // test run: given only after `--`, they reach `cargo test` alone, so
    // each mutant was built twice and the rebuild counted against the
    // test timeout.
    cmd.args(["--features", "host-fakes", "--cargo-arg=--lib"]);
    // Test-name filters for libtest: a run over one subsystem's files
    // need not run every other subsystem's tests for each mutant.
    // (cargo test takes one name; libtest, after its own `--`, several.)
    if !tests.is_empty() {
        cmd.args(["--", "--"]).args(&tests);
    }
    // cargo-mutants exits non-zero when a mutant survives: judge below.
    let _ = run_inherited(&mut cmd, Duration::from_secs(6 * 3600));
    let dir = out.join("mutants.out");
    let report = Report::read(&dir)?;
    if report.per_file.is_empty() {
        // Not "100 % of nothing": the unmutated baseline failed (a test
        // that fails as it is, or bad arguments), see the log above.
        bail!("no mutant was tested (see {}/log)", dir.display());
    }
    let listed = listed_survivors(&survivors_file())?;
    println!(
        "\nxtask mutants ({:.0} min): caught (timeouts counted as caught) / viable, per file",
        start.elapsed().as_secs_f64() / 60.0
    );
    let mut failed = false;
    for f in &files {
        let s = report.per_file.get(f.as_str()).cloned().unwrap_or_default();
        let viable = s.caught + s.timeout + s.missed.len();
        let pct = if viable == 0 {
            100.0
        } else {
            (s.caught + s.timeout) as f64 * 100.0 / viable as f64
        };
        let unexplained: Vec<&String> = s
            .missed
            .iter()
            .filter(|m| !listed.contains(m.as_str()))
            .collect();
        let ok = pct >= GOAL_PERCENT && unexplained.is_empty();
        failed |= !ok;
        println!(
            "  {}  {f:<26} {pct:5.1}%  ({} caught, {} timeouts, {} missed, {} unviable)",
            if ok { "PASS" } else { "FAIL" },
            s.caught,
            s.timeout,
            s.missed.len(),
            s.unviable
        );
        for m in unexplained {
            println!("        survivor not in xtask/mutants/survivors.md: {m}");
        }
    }
    if failed {
        bail!("mutation score below {GOAL_PERCENT}% or unexplained survivors (see above; details in {})", dir.display());
    }
    Ok(())
}

#[derive(Debug, Default, Clone)]
struct FileScore {
    caught: usize,
    timeout: usize,
    unviable: usize,
    /// Survivors, as `file: description` (no line numbers: they move).
    missed: Vec<String>,
}

#[derive(Debug, Default)]
struct Report {
    per_file: BTreeMap<String, FileScore>,
}

/// `src/x.rs:12:5: replace a with b` → (`src/x.rs`, `src/x.rs: replace a with b`).
fn key(line: &str) -> Option<(String, String)> {
    let (file, rest) = line.split_once(':')?;
    let (_line, rest) = rest.split_once(':')?;
    let (_col, what) = rest.split_once(':')?;
    Some((file.to_string(), format!("{file}:{what}")))
}

impl Report {
    fn read(dir: &Path) -> Result<Report> {
        let mut r = Report::default();
        for (name, kind) in [
            ("caught.txt", 0),
            ("timeout.txt", 1),
            ("unviable.txt", 2),
            ("missed.txt", 3),
        ] {
            let path = dir.join(name);
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Some((file, k)) = key(line) else { continue };
                let s = r.per_file.entry(file).or_default();
                match kind {
                    0 => s.caught += 1,
                    1 => s.timeout += 1,
                    2 => s.unviable += 1,
                    _ => s.missed.push(k),
                }
            }
        }
        Ok(r)
    }
}

/// The survivors explained in `path`: every `` `file: description` ``
/// in backticks at the start of a list item.
fn listed_survivors(path: &Path) -> Result<BTreeSet<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_survivors(&text))
}

fn parse_survivors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- `"))
        .filter_map(|l| l.split_once('`').map(|(k, _)| k.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_line_numbers_and_survivors_parse() {
        let (f, k) =
            key("src/shared_mem.rs:85:9: replace SharedMem<'a>::is_empty -> bool with true")
                .unwrap();
        assert_eq!(f, "src/shared_mem.rs");
        assert_eq!(
            k,
            "src/shared_mem.rs: replace SharedMem<'a>::is_empty -> bool with true"
        );
        let listed = parse_survivors("# x\n- `src/a.rs: replace f with g` — equivalent: ...\n  - `src/b.rs: x` why\nnot a list\n");
        assert!(listed.contains("src/a.rs: replace f with g"));
        assert!(listed.contains("src/b.rs: x"));
        assert_eq!(listed.len(), 2);
    }

    #[test]
    fn the_committed_survivor_list_parses() {
        let listed = listed_survivors(&survivors_file()).unwrap();
        for k in &listed {
            assert!(
                FILES.iter().any(|f| k.starts_with(&format!("{f}:"))),
                "{k} names no measured file"
            );
        }
    }
}
