//! `cargo xtask test`: the host tests, then every case of `cases.rs` under
//! real Xen (all domU cases in one boot, one boot per dom0 case), then a
//! summary ending with `N passed, M failed`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use regex_lite::Regex;

use crate::cases::{self, Case, Mode};
use crate::images::{self, Profile};
use crate::util::{self, run_inherited};
use xenpv_run::boot::{self, GuestResult, Options, Report};
use xenpv_run::lab;
use xenpv_run::payload::{Guest, Plan};

/// One row of the summary.
struct Row {
    name: String,
    passed: bool,
    detail: String,
}

/// `cargo xtask test [--quick] [--host-only] [--verbose]`.
pub fn cmd_test(settings: Settings) -> Result<()> {
    let started = Instant::now();
    let mut rows = if settings.cases.is_empty() {
        host_tests(&settings)
    } else {
        Vec::new()
    };
    if !settings.host_only {
        rows.extend(xen_tests(&settings));
        if settings.cases.is_empty() {
            rows.extend(
                crate::apps::checks()
                    .into_iter()
                    .map(|(name, passed, detail)| Row {
                        name,
                        passed,
                        detail,
                    }),
            );
        }
    }
    print_rows(&rows, started.elapsed());
    let failed = rows.iter().filter(|r| !r.passed).count();
    println!("{} passed, {failed} failed", rows.len() - failed);
    if failed > 0 {
        return Err(util::AlreadyReported.into());
    }
    Ok(())
}

/// `cargo xtask ci`: what CI runs once the Debian packages are installed.
pub fn cmd_ci() -> Result<()> {
    lab::ensure()?;
    cmd_test(Settings::default())
}

/// `cargo xtask test`'s options.
#[derive(Debug, Default, clap::Args)]
pub struct Settings {
    /// Create all single-guest domU cases at once instead of one after another.
    #[arg(long)]
    quick: bool,
    /// Only the host tests (no QEMU).
    #[arg(long)]
    host_only: bool,
    /// Show Xen's and Linux's messages too.
    #[arg(long, short)]
    verbose: bool,
    /// Only the tests/xen cases with these names (no host tests, no apps).
    #[arg(value_name = "CASE")]
    cases: Vec<String>,
}

/// `cargo test` of the library on the host, and xtask's own unit tests.
fn host_tests(settings: &Settings) -> Vec<Row> {
    let mut packages = vec!["xenpv"];
    if !settings.quick {
        packages.push("xtask");
        packages.push("xenpv-run");
        // xenpv::ring against Xen's C io/ring.h (tests/ring-c).
        packages.push("xenpv-ring-c");
        packages.push(crate::dom0_tools::PACKAGE);
    }
    // The guest lint rows build for the guest target: a toolchain that
    // rustup had before rust-toolchain.toml named the target lacks it.
    if let Err(e) = util::ensure_rust_target(&util::repo_root(), util::GUEST_TARGET) {
        println!("xtask: could not add {}: {e:#}", util::GUEST_TARGET);
    }
    let mut rows: Vec<Row> = lint_checks()
        .into_iter()
        .map(|(name, args, env)| run_row(name, &args, env))
        .collect();
    rows.push({
        println!("xtask: cargo xtask loom");
        let start = Instant::now();
        let result = run_inherited(&mut crate::loom::command(3), Duration::from_secs(1800));
        Row {
            name: "host: loom model checks".to_string(),
            passed: result.is_ok(),
            detail: match result {
                Ok(()) => format!("{:.1} s", start.elapsed().as_secs_f64()),
                Err(e) => format!("{e:#}"),
            },
        }
    });
    rows.extend(packages.into_iter().map(|package| {
        println!("xtask: cargo test -p {package}");
        let start = Instant::now();
        let mut cmd = util::cargo();
        cmd.current_dir(util::repo_root())
            .args(["test", "-p", package]);
        if package == "xenpv" {
            // The fakes are what the compile-fail doctests
            // (src/compile_fail.rs) misuse.
            cmd.args(["--features", "host-fakes"]);
        }
        let result = run_inherited(&mut cmd, Duration::from_secs(1800));
        Row {
            name: format!("host: cargo test -p {package}"),
            passed: result.is_ok(),
            detail: match result {
                Ok(()) => format!("{:.1} s", start.elapsed().as_secs_f64()),
                Err(e) => format!("{e:#}"),
            },
        }
    }));
    rows
}

/// A check's row name, cargo arguments and one extra environment variable.
type LintCheck = (
    &'static str,
    Vec<&'static str>,
    Option<(&'static str, &'static str)>,
);

/// `cargo fmt --check`, then clippy with `-D warnings` and rustdoc with `-D warnings`, for the
/// host (with the fakes) and for the guest target: (row name, cargo
/// arguments, extra environment).
fn lint_checks() -> Vec<LintCheck> {
    let guest = ["--target", util::GUEST_TARGET];
    vec![
        (
            // The workspace's formatting, as `cargo fmt` leaves it.
            "lint: cargo fmt --check",
            vec!["fmt", "--all", "--", "--check"],
            None,
        ),
        (
            "lint: clippy (host)",
            vec![
                "clippy",
                "-p",
                "xenpv",
                "--all-targets",
                "--features",
                "host-fakes",
                "--",
                "-D",
                "warnings",
            ],
            None,
        ),
        (
            "lint: clippy (guest)",
            [
                &["clippy", "-p", "xenpv", "--lib"][..],
                &guest,
                &["--", "-D", "warnings"],
            ]
            .concat(),
            None,
        ),
        (
            "lint: rustdoc (host)",
            vec![
                "doc",
                "-p",
                "xenpv",
                "--no-deps",
                "--features",
                "host-fakes",
            ],
            Some(("RUSTDOCFLAGS", "-D warnings")),
        ),
        (
            "lint: rustdoc (guest)",
            [&["doc", "-p", "xenpv", "--no-deps"][..], &guest].concat(),
            Some(("RUSTDOCFLAGS", "-D warnings")),
        ),
    ]
}

fn run_row(name: &str, args: &[&str], env: Option<(&str, &str)>) -> Row {
    println!("xtask: cargo {}", args.join(" "));
    let start = Instant::now();
    let mut cmd = util::cargo();
    cmd.current_dir(util::repo_root()).args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let result = run_inherited(&mut cmd, Duration::from_secs(1200));
    Row {
        name: name.to_string(),
        passed: result.is_ok(),
        detail: match result {
            Ok(()) => format!("{:.1} s", start.elapsed().as_secs_f64()),
            Err(e) => format!("{e:#}"),
        },
    }
}

/// Builds every image, boots the cases and checks each one.
fn xen_tests(settings: &Settings) -> Vec<Row> {
    // The cases and programs of tests/xen (and the gallery they boot).
    let found = cases::programs().and_then(|p| cases::cases(&p).map(|c| (p, c)));
    let (programs, all_cases) = match found {
        Ok(found) => found,
        Err(e) => {
            return vec![Row {
                name: "xen: tests/xen".into(),
                passed: false,
                detail: format!("{e:#}"),
            }];
        }
    };
    if let Some(unknown) = settings
        .cases
        .iter()
        .find(|n| !all_cases.iter().any(|c| &c.name == *n))
    {
        let known: Vec<&str> = all_cases.iter().map(|c| c.name.as_str()).collect();
        return vec![Row {
            name: format!("xen: {unknown}"),
            passed: false,
            detail: format!("no such case; the cases are {}", known.join(", ")),
        }];
    }
    let cases_list: Vec<&Case> = all_cases
        .iter()
        .filter(|c| settings.cases.is_empty() || settings.cases.contains(&c.name))
        .collect();
    // Images: a failed build fails the cases that need it, not the others.
    let mut images: BTreeMap<String, Result<Guest, String>> = BTreeMap::new();
    let examples_built = images::build_examples(Profile::Release).map_err(|e| format!("{e:#}"));
    let tests_built = cases::build_tests(&programs, Profile::Release).map_err(|e| format!("{e:#}"));
    for case in &cases_list {
        for expect in &case.guests {
            let name = expect.name.clone();
            if images.contains_key(&name) {
                continue;
            }
            let program = &programs[&name];
            let built = match program.kind {
                cases::Kind::Example => examples_built.clone(),
                cases::Kind::Test => tests_built.clone(),
            };
            let guest = built.and_then(|()| {
                cases::image(program, Profile::Release)
                    .and_then(|i| images::stripped_copy(&i))
                    .and_then(|image| program.guest(&image))
                    .map_err(|e| format!("{e:#}"))
            });
            images.insert(name, guest);
        }
    }
    let lab = match lab::ensure() {
        Ok(lab) => lab,
        Err(e) => {
            let why = format!("the Xen lab could not be prepared: {e:#}");
            return cases_list
                .iter()
                .map(|c| Row {
                    name: format!("xen: {}", c.name),
                    passed: false,
                    detail: why.clone(),
                })
                .collect();
        }
    };

    let mut rows = Vec::new();
    // Cases whose images are missing fail now; the rest boot.
    let mut runnable: Vec<&Case> = Vec::new();
    for case in cases_list.iter().copied() {
        let missing: Vec<String> = case
            .guests
            .iter()
            .filter_map(|g| {
                images[&g.name]
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {e}", g.name))
            })
            .collect();
        if missing.is_empty() {
            runnable.push(case);
        } else {
            rows.push(Row {
                name: format!("xen: {}", case.name),
                passed: false,
                detail: missing.join("; "),
            });
        }
    }
    let guest_of = |name: &str| images[name].as_ref().expect("checked above").clone();
    let guest_timeout = Duration::from_secs(60);

    // All domU cases in one boot: one group per case (or one group for all
    // single-guest cases with --quick).
    let domu: Vec<&Case> = runnable
        .iter()
        .copied()
        .filter(|c| c.mode == Mode::Domu)
        .collect();
    if !domu.is_empty() {
        let mut groups: Vec<Vec<Guest>> = Vec::new();
        let mut shared = Vec::new();
        for case in &domu {
            let guests: Vec<Guest> = case.guests.iter().map(|g| guest_of(&g.name)).collect();
            if settings.quick && guests.len() == 1 {
                shared.extend(guests);
            } else {
                groups.push(guests);
            }
        }
        if !shared.is_empty() {
            groups.insert(0, shared);
        }
        let overall = Duration::from_secs(90)
            + (guest_timeout + Duration::from_secs(10)) * groups.len() as u32;
        let opts = Options {
            verbose: settings.verbose,
            overall,
            guest_timeout,
            bare_guest_lines: false,
        };
        let report = crate::dom0_tools::for_groups(&groups).and_then(|tools| {
            let plan = Plan {
                groups,
                guest_timeout,
                tools,
                announce_peers: true,
            };
            boot::boot_domu(&lab, &plan, opts)
        });
        rows.extend(check_boot(&domu, report));
    }
    for case in runnable.iter().filter(|c| c.mode == Mode::Dom0) {
        let guest = guest_of(&case.guests[0].name);
        let opts = Options {
            verbose: settings.verbose,
            overall: Duration::from_secs(90),
            guest_timeout,
            bare_guest_lines: false,
        };
        let report = boot::boot_dom0(&lab, &guest.name, &guest.image, opts);
        rows.extend(check_boot(&[case], report));
    }
    rows
}

/// Rows for `cases` from the boot that ran them.
fn check_boot(cases: &[&Case], report: Result<Report>) -> Vec<Row> {
    let report = match report {
        Ok(report) => {
            boot::print_summary(&report);
            report
        }
        Err(e) => {
            let why = format!("boot failed: {e:#}");
            return cases
                .iter()
                .map(|c| Row {
                    name: format!("xen: {}", c.name),
                    passed: false,
                    detail: why.clone(),
                })
                .collect();
        }
    };
    cases
        .iter()
        .map(|case| {
            let mut problems = Vec::new();
            let mut reasons = Vec::new();
            for expect in &case.guests {
                let name = expect.name.as_str();
                let empty = GuestResult::default();
                let result = report.guests.get(name).unwrap_or(&empty);
                problems.extend(check_guest(name, &expect.reason, &expect.output, result));
                let dom0_lines = report
                    .companion_output
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                problems.extend(check_dom0(name, &expect.dom0_output, &dom0_lines));
                reasons.push(result.reason.clone().unwrap_or_else(|| "no report".into()));
            }
            if let Some(failure) = &report.failure {
                if !problems.is_empty() {
                    problems.push(format!("(boot: {failure})"));
                }
            }
            let passed = problems.is_empty();
            let mut detail = reasons.join(", ");
            if !passed {
                detail = problems.join("; ");
            }
            Row {
                name: format!("xen: {}", case.name),
                passed,
                detail,
            }
        })
        .collect()
}

/// What is wrong with one guest's result, if anything.
fn check_guest<S: AsRef<str>>(
    name: &str,
    reason: &str,
    patterns: &[S],
    result: &GuestResult,
) -> Vec<String> {
    let mut problems = Vec::new();
    let got = result.reason.as_deref().unwrap_or("no report");
    if got != reason {
        problems.push(format!("{name}: expected {reason}, got {got}"));
    }
    for pattern in patterns {
        let pattern = pattern.as_ref();
        match Regex::new(pattern) {
            Ok(re) if result.output.iter().any(|line| re.is_match(line)) => {}
            Ok(_) => problems.push(format!("{name}: no output line matches /{pattern}/")),
            Err(e) => problems.push(format!("bad pattern /{pattern}/: {e}")),
        }
    }
    if !problems.is_empty() && !result.output.is_empty() {
        let tail: Vec<&String> = result
            .output
            .iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        problems.push(format!("{name}'s last lines: {tail:?}"));
    }
    problems
}

/// Which of `patterns` no line of `name`'s dom0 scripts matches.
fn check_dom0(name: &str, patterns: &[String], lines: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for pattern in patterns {
        match Regex::new(pattern) {
            Ok(re) if lines.iter().any(|line| re.is_match(line)) => {}
            Ok(_) => problems.push(format!("{name}: no dom0 script line matches /{pattern}/")),
            Err(e) => problems.push(format!("bad pattern /{pattern}/: {e}")),
        }
    }
    if !problems.is_empty() {
        let tail: Vec<&String> = lines.iter().skip(lines.len().saturating_sub(5)).collect();
        problems.push(format!("{name}'s dom0 scripts' last lines: {tail:?}"));
    }
    problems
}

fn print_rows(rows: &[Row], elapsed: Duration) {
    println!("\nxtask test summary ({:.0} s):", elapsed.as_secs_f64());
    for row in rows {
        println!(
            "  {}  {:<34} {}",
            if row.passed { "PASS" } else { "FAIL" },
            row.name,
            row.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(reason: &str, lines: &[&str]) -> GuestResult {
        GuestResult {
            reason: Some(reason.into()),
            output: lines.iter().map(|s| s.to_string()).collect(),
            ..GuestResult::default()
        }
    }

    #[test]
    fn expectations() {
        let ok = result(
            "crash",
            &["boot", "panicked at examples/panic.rs:7:5:", "bye"],
        );
        assert!(
            check_guest("panic", "crash", &[r"panicked at examples/panic\.rs:"], &ok).is_empty()
        );
        let wrong = result("poweroff", &["hi"]);
        let problems = check_guest("panic", "crash", &[r"panicked"], &wrong);
        assert!(
            problems[0].contains("expected crash, got poweroff"),
            "{problems:?}"
        );
        assert!(problems[1].contains("/panicked/"), "{problems:?}");
        let none = GuestResult::default();
        assert!(check_guest::<&str>("x", "poweroff", &[], &none)[0].contains("no report"));
    }
}
