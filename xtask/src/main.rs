//! `cargo xtask`: the single entry point for building, booting and testing
//! xenpv guests (see `Command` below for the commands, the README's table
//! for what each checks, and xenpv-run's `lab` module,
//! `xenpv-run/src/lab.rs`, for the lab).

mod apps;
mod bench;
mod build;
mod cases;
mod dom0_tools;
mod hostile;
mod images;
mod loom;
mod mutants;
mod run;
mod suite;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The lab and the boot machinery live in xenpv-run (the runner users
// install); xtask drives the same code for the repository's own cases, and
// each command imports what it uses from xenpv-run itself.
use xenpv_run::lab;

/// `cargo xtask`: build, boot and test xenpv guests.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, boot and test xenpv guests (the lab: Xen 4.17 and a Linux dom0 in QEMU)",
    after_help = "environment: XENPV_LAB_DIR (lab folder, default target/xen-lab), XENPV_ACCEL=tcg|kvm (force QEMU's accelerator)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the gallery (examples/) and the test programs (tests/xen/) for x86_64-unknown-none.
    Build {
        /// The debug build.
        #[arg(long)]
        debug: bool,
    },
    /// Prepare the Xen lab (Xen, dom0 kernel and initramfs).
    Lab,
    /// Boot programs as domUs of a Linux dom0 under Xen in QEMU, all at once; exits 0 if every one powered off.
    Run(run::RunCli),
    /// Host tests, the under-Xen cases of tests/xen, then applications made with `xenpv-run new`.
    Test(suite::Settings),
    /// Only the application checks of `test` (xenpv-run new, cargo run/test through the runner, a two-guest app).
    Apps,
    /// lab + test (what .ci/run does after installing packages).
    Ci,
    /// The library's host tests under Miri (installs nightly with miri when missing).
    Miri {
        /// Arguments for libtest (after `--`).
        #[arg(last = true)]
        libtest: Vec<String>,
    },
    /// Run each cargo-fuzz target (fuzz/) for some seconds (installs nightly and cargo-fuzz when missing).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Targets [default: all].
        targets: Vec<String>,
    },
    /// The loom model checks of the grant and vchan protocols (also run by test).
    Loom {
        /// Preemption bound.
        #[arg(long, default_value_t = 3)]
        preemptions: u32,
    },
    /// cargo-mutants over the host-testable protocol code (slow: not part of test); fails below
    /// 90% caught per file or on a survivor not explained in xtask/mutants/survivors.md.
    Mutants {
        /// Files to mutate [default: the protocol files].
        #[arg(long = "file")]
        files: Vec<String>,
        /// Parallel jobs.
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Run only the host tests whose names contain one of these (e.g.
        /// `--tests xenbus:: --tests block::`); default: all of them.
        #[arg(long = "tests")]
        tests: Vec<String>,
    },
    /// Every benchmark in one run (host ring; boot, grants and rings under Xen), written to BENCHMARKS.md.
    Bench {
        /// Fewer and shorter runs.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    // The repository keeps its lab next to its builds (xenpv-run's own
    // default is a user-level cache); children such as the runner under
    // test inherit the choice.
    if std::env::var_os("XENPV_LAB_DIR").is_none() {
        std::env::set_var("XENPV_LAB_DIR", util::target_dir().join("xen-lab"));
    }
    let result = match Cli::parse().command {
        Command::Build { debug } => build::cmd_build(debug),
        Command::Lab => lab::cmd_lab(&[]),
        Command::Run(args) => run::cmd_run(args),
        Command::Test(settings) => suite::cmd_test(settings),
        Command::Apps => apps::cmd_apps(),
        Command::Ci => suite::cmd_ci(),
        Command::Miri { libtest } => hostile::cmd_miri(&libtest),
        Command::Fuzz { seconds, targets } => hostile::cmd_fuzz(seconds, &targets),
        Command::Loom { preemptions } => loom::cmd_loom(preemptions),
        Command::Mutants { files, jobs, tests } => mutants::cmd_mutants(files, jobs, tests),
        Command::Bench { quick } => bench::cmd_bench(quick),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<util::AlreadyReported>() => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
