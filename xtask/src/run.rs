//! `cargo xtask run`: builds the named examples, boots them under Xen in
//! QEMU (see `boot.rs`) and succeeds only if every one powered off.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cases;
use crate::images::Profile;
use xenpv_run::boot::{boot_dom0, boot_domu, print_summary, Options, Report};
use xenpv_run::lab;
use xenpv_run::payload::{self, Guest, Plan};

/// `cargo xtask run`'s command line.
#[derive(Debug, clap::Args)]
pub struct RunCli {
    /// Limit for the whole boot, seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Limit for each guest, seconds [default: min(timeout, 120)].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    guest_timeout: Option<u64>,
    /// Boot the single program as dom0 instead (no Linux).
    #[arg(long)]
    dom0: bool,
    /// Show Xen's and Linux's messages too.
    #[arg(long, short)]
    verbose: bool,
    /// Use the debug build.
    #[arg(long)]
    debug: bool,
    /// Programs to boot together (the gallery in examples/, the test programs in tests/xen/).
    #[arg(required = true)]
    names: Vec<String>,
}

/// The checked command line of `cargo xtask run`.
#[derive(Debug, PartialEq)]
struct RunArgs {
    names: Vec<String>,
    dom0: bool,
    profile: Profile,
    overall: Duration,
    guest_timeout: Duration,
    verbose: bool,
}

/// Checks what clap cannot.
fn resolve(cli: RunCli) -> Result<RunArgs> {
    if cli.dom0 && cli.names.len() != 1 {
        bail!(
            "--dom0 boots exactly one image as dom0 (got {})",
            cli.names.len()
        );
    }
    for name in &cli.names {
        payload::check_name(name)?;
    }
    let overall = Duration::from_secs(cli.timeout);
    Ok(RunArgs {
        guest_timeout: cli
            .guest_timeout
            .map(Duration::from_secs)
            .unwrap_or_else(|| overall.min(Duration::from_secs(120))),
        names: cli.names,
        dom0: cli.dom0,
        profile: if cli.debug {
            Profile::Debug
        } else {
            Profile::Release
        },
        overall,
        verbose: cli.verbose,
    })
}

/// `cargo xtask run`.
pub fn cmd_run(cli: RunCli) -> Result<()> {
    let run = resolve(cli)?;
    // Cheap checks first, before any build.
    let known = cases::programs()?;
    if let Some(name) = run.names.iter().find(|n| !known.contains_key(*n)) {
        bail!(
            "no program named `{name}`: the programs are {} (the gallery in examples/, the test programs in tests/xen/)",
            known.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    xenpv_run::qemu::check_installed()?;
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
            announce_peers: true,
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
    use xenpv_run::boot::GuestResult;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunCli,
    }

    fn parse_run_args(list: &[&str]) -> Result<RunArgs> {
        use clap::Parser;
        let cli = Cli::try_parse_from(std::iter::once("run").chain(list.iter().copied()))?;
        resolve(cli.run)
    }

    #[test]
    fn run_arguments() {
        let run = parse_run_args(&["--timeout", "50", "a", "b"]).unwrap();
        assert_eq!(run.names, ["a", "b"]);
        assert_eq!(run.overall, Duration::from_secs(50));
        assert_eq!(run.guest_timeout, Duration::from_secs(50));
        let run = parse_run_args(&["--dom0", "--debug", "hello"]).unwrap();
        assert!(run.dom0 && run.profile == Profile::Debug);
        assert_eq!(run.guest_timeout, Duration::from_secs(120));
        for bad in [
            &[][..],
            &["--dom0", "a", "b"],
            &["--timeout"],
            &["--timeout", "0", "a"],
            &["--frob", "a"],
            &["a b"],
        ] {
            assert!(parse_run_args(bad).is_err(), "{bad:?}");
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
