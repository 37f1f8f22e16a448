//! `cargo xtask`: the single entry point for building, booting and testing
//! xenpv guests (see `usage()` below and shared/xen-lab.md for the lab).

mod apps;
mod bench;
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

// The lab and the boot machinery live in xenpv-run (the runner users
// install); xtask drives the same code for the repository's own cases.
use xenpv_run::{boot, lab, payload, qemu};

fn usage() -> &'static str {
    "usage: cargo xtask <command> [options]

commands:
  build [--debug]          build the guest examples for x86_64-unknown-none
  lab                      prepare the Xen lab (Xen, dom0 kernel and initramfs) in
                           target/xen-lab, or $XENPV_LAB_DIR
  run [options] <example>...
                           boot the examples as domUs of a Linux dom0 under Xen in
                           QEMU, all at once; exits 0 if every one powered off
      --timeout SECS       limit for the whole boot (default 300)
      --guest-timeout SECS limit for each guest (default min(timeout, 120))
      --dom0               boot the single example as dom0 instead (no Linux)
      --verbose            show Xen's and Linux's messages too
      --debug              use the debug build of the examples
  test [--quick] [--host-only] [--verbose]
                           host tests, the under-Xen cases, then applications made
                           with `xenpv-run new` run through the runner
  apps                     only the application checks of `test` (xenpv-run new, cargo
                           run/test through the runner, a two-guest app)
  ci                       lab + test (what .ci/run does after installing packages)
  miri [-- <libtest args>] the library's host tests under Miri (installs nightly
                           with miri when missing)
  fuzz [--seconds N] [target...]
                           run each cargo-fuzz target (fuzz/) for N seconds (default 60;
                           installs nightly and cargo-fuzz when missing)
  loom [--preemptions N]   the loom model checks of the grant and vchan protocols
                           (default bound 3; also run by test)
  mutants [--file F]... [--jobs N]
                           cargo-mutants over the host-testable protocol code; fails
                           below 90% caught per file or on a survivor not explained in
                           xtask/mutants/survivors.md (slow: not part of test)
  bench [--quick]          every benchmark in one run (host ring; boot, grants and rings
                           under Xen), written to BENCHMARKS.md

environment: XENPV_LAB_DIR (lab folder), XENPV_ACCEL=tcg|kvm (force QEMU's accelerator)"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The repository keeps its lab next to its builds (xenpv-run's own
    // default is a user-level cache); children such as the runner under
    // test inherit the choice.
    if std::env::var_os("XENPV_LAB_DIR").is_none() {
        std::env::set_var("XENPV_LAB_DIR", util::target_dir().join("xen-lab"));
    }
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "build" => images::cmd_build(rest),
        "lab" => lab::cmd_lab(rest),
        "run" => run::cmd_run(rest),
        "test" => suite::cmd_test(rest),
        "apps" => apps::cmd_apps(rest),
        "ci" => suite::cmd_ci(rest),
        "miri" => hostile::cmd_miri(rest),
        "fuzz" => hostile::cmd_fuzz(rest),
        "bench" => bench::cmd_bench(rest),
        "mutants" => mutants::cmd_mutants(rest),
        "loom" => loom::cmd_loom(rest),
        "help" | "-h" | "--help" => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown command `{other}`\n\n{}", usage());
            return ExitCode::from(2);
        }
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
