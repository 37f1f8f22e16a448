//! The cargo runner: `xenpv-run [options] <image> [args]...`.
//!
//! An application names it in `.cargo/config.toml`
//! (`runner = "xenpv-run"`), so `cargo run` and `cargo test` hand it the
//! image they built plus the arguments after `--`. It boots the image as a
//! Xen PV guest (with its `[[guest]]` peers from `Xenpv.toml`, and a dom0
//! script if one is named), streams the console, and exits with the
//! guest's status:
//!
//! | guest | exit status |
//! |---|---|
//! | powered off | 0, or the code it gave `xenpv::exit(code)` |
//! | crashed (a panic, a fatal trap) | 101, like a Rust panic |
//! | still running at its timeout (killed) | 124, like `timeout(1)` |
//! | rebooted, suspended, never started | 1 |
//!
//! A peer that does not power off with 0, or a dom0 script that fails,
//! makes the run fail (1) even when the application succeeded.
//!
//! Guests of one run find each other through xenstore: before any of them
//! runs, each gets the others' domain ids in its own `data/peers/<name>`
//! (e.g. `xs.read_string("data/peers/server")`).
//!
//! Where it boots: on a Xen host (dom0 with `xl`) it runs the plan there
//! ([`crate::host`]); anywhere else it boots Xen and a Linux dom0 in QEMU
//! (the lab, [`crate::lab`], prepared into a user-level cache on first use),
//! whose dom0 runs it. Both run one [`Plan`] with the same `dom0/lab.sh`
//! and read its output into the same [`Report`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::boot::{self, Options, Report};
use crate::config::Config;
use crate::payload::{Guest, Plan};
use crate::plan::{self, Outcome, Run, RunArgs, RunPlan, Xen, MAX_CMDLINE};
use crate::{host, lab, qemu, resume, util};

/// The folder of the crate being run: cargo sets `CARGO_MANIFEST_DIR` for
/// `cargo run`/`cargo test`; otherwise the current folder.
fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Whether this machine is a Xen dom0 with a toolstack.
pub fn is_xen_host() -> bool {
    util::which("xl").is_some()
        && std::fs::read_to_string("/proc/xen/capabilities")
            .map(|c| c.contains("control_d"))
            .unwrap_or(false)
}

/// `xenpv-run <image>`: runs and returns the process exit status.
pub fn cmd_run(args: RunArgs) -> Result<i32> {
    let (config, config_dir) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (Config::parse(&text, path)?, dir)
        }
        None => {
            let dir = crate_dir();
            (Config::load(&dir)?, dir)
        }
    };
    let mut plan = plan::plan(&args, &config, &config_dir)?;
    let on_host = match args.xen {
        Xen::Host => true,
        Xen::Lab => false,
        Xen::Auto => is_xen_host(),
    };
    if on_host && !is_xen_host() {
        bail!(
            "--xen host: this machine is not a Xen dom0 with `xl` (run without it to use the lab)"
        );
    }
    let lab = if on_host {
        None
    } else {
        qemu::check_installed()
            .context("the lab boots Xen in QEMU (or run this on a Xen host with `xl`)")?;
        Some(lab::ensure()?)
    };
    // A test that panics or faults ends its domain; the harness then asks
    // for a fresh one that goes on after it (crate::resume).
    for _ in 0..resume::MAX_DOMAINS {
        let run = boot_once(lab.as_ref(), &plan, args.verbose)?;
        let app = &run.outcomes[0];
        if app.reason.as_deref() == Some("crash") {
            if let Some(word) = &app.resume {
                let extra = &plan.guests[0].extra;
                if let Some(line) = resume::command_line(extra, word, MAX_CMDLINE) {
                    eprintln!("xenpv-run: a test ended its domain; the remaining tests run in a fresh one");
                    plan.guests[0].extra = line;
                    continue;
                }
            }
        }
        return Ok(finish(&plan, &run.outcomes, run.script.as_deref()));
    }
    bail!(
        "the guest asked for a fresh domain {} times: giving up",
        resume::MAX_DOMAINS
    )
}

/// Boots `plan` once, in the lab or (without one) on this host.
fn boot_once(lab: Option<&lab::Lab>, plan: &RunPlan, verbose: bool) -> Result<Run> {
    let names: Vec<String> = plan.guests.iter().map(|g| g.name.clone()).collect();
    let group: Vec<Guest> = plan
        .guests
        .iter()
        .enumerate()
        .map(|(i, g)| Guest {
            name: g.name.clone(),
            image: g.image.clone(),
            cfg: g.xl_config(),
            companion: if i == 0 {
                plan.dom0_script.clone()
            } else {
                None
            },
            pre_create: None,
            ramdisk: None,
        })
        .collect();
    let boot_plan = Plan {
        groups: vec![group],
        guest_timeout: plan.timeout,
        tools: Vec::new(),
        announce_peers: true,
    };
    let opts = Options {
        verbose,
        overall: Duration::from_secs(120) + plan.timeout,
        guest_timeout: plan.timeout,
        bare_guest_lines: plan.guests.len() == 1,
    };
    let report = match lab {
        Some(lab) => boot::boot_domu(lab, &boot_plan, opts)?,
        None => host::run(&boot_plan, opts)?,
    };
    if let Some(failure) = &report.failure {
        eprintln!("xenpv-run: the boot failed: {failure}");
    }
    let script = names
        .first()
        .and_then(|n| report.companions.get(n))
        .cloned();
    Ok(Run {
        outcomes: outcomes_of(&report, &names),
        script,
    })
}

fn outcomes_of(report: &Report, names: &[String]) -> Vec<Outcome> {
    names
        .iter()
        .map(|n| {
            report
                .guests
                .get(n)
                .map(|g| Outcome {
                    reason: g.reason.clone(),
                    exit_code: g.exit_code,
                    resume: resume::requested(&g.output),
                })
                .unwrap_or_default()
        })
        .collect()
}

fn finish(plan: &RunPlan, outcomes: &[Outcome], script: Option<&str>) -> i32 {
    let (status, messages) = plan::run_status(plan, outcomes, script);
    for m in messages {
        eprintln!("xenpv-run: {m}");
    }
    status
}
