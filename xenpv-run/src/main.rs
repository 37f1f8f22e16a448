//! `xenpv-run`: the cargo runner for xenpv unikernels, and `xenpv-run new`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use xenpv_run::plan::RunArgs;
use xenpv_run::runner;
use xenpv_run::template::{self, XenpvSource};
use xenpv_run::{lab, qemu};

const ABOUT: &str = "Boots xenpv unikernels under Xen.

As a cargo runner (`runner = \"xenpv-run\"` in .cargo/config.toml), `cargo run`
and `cargo test` boot the image under Xen: in QEMU with a Linux dom0 (the lab,
prepared on first use into ~/.cache/xenpv/lab, or $XENPV_LAB_DIR), or with `xl`
directly on a Xen host. The exit status is the guest's: 0 for poweroff, the
code given to xenpv::exit(code), 101 for a crash, 124 for a guest killed at its
timeout.

  xenpv-run [OPTIONS] <IMAGE> [ARGS]...   boot IMAGE (ARGS become its command line)
  xenpv-run new <PATH>                    write a new application crate
  xenpv-run lab                           prepare the lab now";

#[derive(Parser)]
#[command(name = "xenpv-run", version, about = ABOUT, long_about = None)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Parser)]
#[command(name = "xenpv-run")]
struct Tool {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new application crate at PATH.
    New {
        path: PathBuf,
        /// Depend on xenpv at this path [default: the checkout this runner was built from].
        #[arg(long, conflicts_with = "xenpv_git")]
        xenpv_path: Option<PathBuf>,
        /// Depend on xenpv from this git repository.
        #[arg(long)]
        xenpv_git: Option<String>,
    },
    /// Prepare the lab (Xen, dom0 kernel and initramfs) in its cache folder.
    Lab,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("new" | "lab") => run_tool(Tool::parse()),
        _ => runner::cmd_run(Cli::parse().run),
    };
    match result {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("xenpv-run: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_tool(tool: Tool) -> Result<i32> {
    match tool.command {
        Command::New {
            path,
            xenpv_path,
            xenpv_git,
        } => {
            let source = match (xenpv_path, xenpv_git) {
                (Some(p), _) => XenpvSource::Path(std::path::absolute(p)?),
                (None, Some(url)) => XenpvSource::Git(url),
                (None, None) => template::default_source().ok_or_else(|| {
                    anyhow::anyhow!(
                        "this xenpv-run was not built from a xenpv checkout: say where xenpv is \
                         with --xenpv-path <dir> or --xenpv-git <url>"
                    )
                })?,
            };
            let files = template::create(&path, &source)?;
            println!("created {} ({} files)", path.display(), files.len());
            // A toolchain rustup already had lacks the guest target the new
            // rust-toolchain.toml names: add it now rather than fail at build.
            if let Err(e) =
                xenpv_run::util::ensure_rust_target(&path, xenpv_run::util::GUEST_TARGET)
            {
                eprintln!("warning: {e:#}");
            }
            println!("next: cd {} && cargo run --release", path.display());
            Ok(0)
        }
        Command::Lab => {
            qemu::check_installed()?;
            let lab = lab::ensure()?;
            println!("lab ready in {}", lab.dir.display());
            Ok(0)
        }
    }
}
