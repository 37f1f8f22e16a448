//! `cargo xtask run`: builds the named examples, boots them under Xen in
//! QEMU (see `boot.rs`) and succeeds only if every one powered off.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::boot::{boot_dom0, boot_domu, print_summary, Options, Report};
use crate::cases;
use crate::images::Profile;
use crate::lab;
use crate::payload::{self, Guest, Plan};

const USAGE: &str = "usage: cargo xtask run [--timeout SECS] [--guest-timeout SECS] [--dom0] \
                     [--verbose] [--debug] <example>...";

/// The command line of `cargo xtask run`.
#[derive(Debug, PartialEq)]
struct RunArgs {
    names: Vec<String>,
    dom0: bool,
    profile: Profile,
    overall: Duration,
    /// Defaults to min(overall, 120 s).
    guest_timeout: Duration,
    verbose: bool,
}

/// Parses `run`'s arguments; `None` for `--help`.
fn parse_run_args(args: &[String]) -> Result<Option<RunArgs>> {
    let mut run = RunArgs {
        names: Vec::new(),
        dom0: false,
        profile: Profile::Release,
        overall: Duration::from_secs(300),
        guest_timeout: Duration::ZERO,
        verbose: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--timeout" => run.overall = seconds(it.next(), "--timeout")?,
            "--guest-timeout" => run.guest_timeout = seconds(it.next(), "--guest-timeout")?,
            "--dom0" => run.dom0 = true,
            "--verbose" | "-v" => run.verbose = true,
            "--debug" => run.profile = Profile::Debug,
            "-h" | "--help" => return Ok(None),
            flag if flag.starts_with('-') => bail!("unknown option `{flag}`\n{USAGE}"),
            name => run.names.push(name.to_string()),
        }
    }
    if run.names.is_empty() {
        bail!("name at least one example to run\n{USAGE}");
    }
    if run.dom0 && run.names.len() != 1 {
        bail!(
            "--dom0 boots exactly one image as dom0 (got {})",
            run.names.len()
        );
    }
    for name in &run.names {
        payload::check_name(name)?;
    }
    if run.guest_timeout.is_zero() {
        run.guest_timeout = run.overall.min(Duration::from_secs(120));
    }
    Ok(Some(run))
}

/// `cargo xtask run`: see [`USAGE`].
pub fn cmd_run(args: &[String]) -> Result<()> {
    let Some(run) = parse_run_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    // Cheap checks first, before any build.
    let known = cases::programs()?;
    if let Some(name) = run.names.iter().find(|n| !known.contains_key(*n)) {
        bail!(
            "no program named `{name}`: the programs are {} (the gallery in examples/, the test programs in tests/xen/)",
            known.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    crate::qemu::check_installed()?;
    if !run.dom0 {
        for name in &run.names {
            known[name].cfg()?;
        }
    }
    let guests = cases::build_guests(&run.names, run.profile)?;
    let images: Vec<std::path::PathBuf> = guests.iter().map(|g| g.image.clone()).collect();
    let lab = lab::ensure()?;

    let opts = Options {
        verbose: run.verbose,
        overall: run.overall,
        guest_timeout: run.guest_timeout,
        bare_guest_lines: false,
    };
    let report = if run.dom0 {
        boot_dom0(&lab, &run.names[0], &images[0], opts)?
    } else {
        let group = guests;
        let groups = vec![group];
        let tools = crate::dom0_tools::for_groups(&groups)?;
        let plan = Plan {
            groups,
            guest_timeout: opts.guest_timeout,
            tools,
            announce_peers: false,
        };
        boot_domu(&lab, &plan, opts)?
    };
    print_summary(&report);
    verdict(&report)
}

/// Success only if the boot went well, every guest powered off and no dom0
/// companion failed.
fn verdict(report: &Report) -> Result<()> {
    if let Some(failure) = &report.failure {
        bail!("{failure}");
    }
    let mut bad = Vec::new();
    for name in &report.order {
        match report.guests[name].reason.as_deref() {
            Some("poweroff") => {}
            Some("timeout") => bad.push(format!(
                "{name}: timeout (hung: it did not shut down in time)"
            )),
            Some(reason) => bad.push(format!("{name}: {reason}")),
            None => bad.push(format!("{name}: no report")),
        }
    }
    for (name, status) in &report.companions {
        if status.starts_with("exit") && status != "exit 0" {
            bad.push(format!("dom0 companion of {name}: {status}"));
        }
    }
    if !bad.is_empty() {
        bail!("not every guest powered off: {}", bad.join(", "));
    }
    Ok(())
}

fn seconds(value: Option<&String>, flag: &str) -> Result<Duration> {
    let value = value.with_context(|| format!("{flag} needs a number of seconds"))?;
    let secs: u64 = value
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .with_context(|| format!("{flag}: `{value}` is not a positive number of seconds"))?;
    Ok(Duration::from_secs(secs))
}

/// The xl config of program `name` (gallery or test tree).
pub fn read_example_cfg(name: &str) -> Result<String> {
    program(name)?.cfg()
}

/// The guest for program `name` booted from `image`: its xl config and,
/// when present, its dom0 companion script.
pub fn example_guest(name: &str, image: &Path) -> Result<Guest> {
    program(name)?.guest(image)
}

fn program(name: &str) -> Result<cases::Program> {
    cases::programs()?
        .remove(name)
        .with_context(|| format!("no program named `{name}` in examples/ or tests/xen/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::GuestResult;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_arguments() {
        let run = parse_run_args(&args(&["--timeout", "50", "a", "b"]))
            .unwrap()
            .unwrap();
        assert_eq!(run.names, ["a", "b"]);
        assert_eq!(run.overall, Duration::from_secs(50));
        assert_eq!(run.guest_timeout, Duration::from_secs(50));
        let run = parse_run_args(&args(&["--dom0", "--debug", "hello"]))
            .unwrap()
            .unwrap();
        assert!(run.dom0 && run.profile == Profile::Debug);
        assert_eq!(run.guest_timeout, Duration::from_secs(120));
        assert!(parse_run_args(&args(&["--help"])).unwrap().is_none());
        for bad in [
            &[][..],
            &["--dom0", "a", "b"],
            &["--timeout"],
            &["--timeout", "0", "a"],
            &["--frob", "a"],
            &["a b"],
        ] {
            assert!(parse_run_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn verdicts() {
        let mut report = Report {
            order: vec!["a".into()],
            ..Report::default()
        };
        report.guests.insert(
            "a".into(),
            GuestResult {
                reason: Some("poweroff".into()),
                ..GuestResult::default()
            },
        );
        assert!(verdict(&report).is_ok());
        report.companions.insert("a".into(), "exit 1".into());
        assert!(verdict(&report).is_err());
        report.companions.insert("a".into(), "stopped".into());
        assert!(verdict(&report).is_ok());
        report.guests.get_mut("a").unwrap().reason = Some("crash".into());
        assert!(verdict(&report)
            .unwrap_err()
            .to_string()
            .contains("a: crash"));
    }
}
