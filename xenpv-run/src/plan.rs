//! A run of the cargo runner, as data: its plan (the guests, resolved from
//! the command line and `Xenpv.toml`) and how it ended (each guest's
//! [`Outcome`], the run's exit status). [`crate::runner`] turns a
//! [`RunPlan`] into one dom0 plan that both places a run boots carry out,
//! the lab ([`crate::boot`]) and a Xen host ([`crate::host`]), and reads
//! outcomes from its report; the exit statuses are the ones
//! [`crate::runner`]'s table lists.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::{Config, PeerConfig};
use crate::payload;
use crate::util::{self, GUEST_TARGET};

/// Defaults when neither the command line nor `Xenpv.toml` says.
pub const DEFAULT_MEMORY_MIB: u32 = 32;
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// Exit statuses (see [`crate::runner`]'s table).
pub const EXIT_CRASH: i32 = 101;
pub const EXIT_TIMEOUT: i32 = 124;

/// Xen's `start_info.cmd_line` holds 1024 bytes with its terminating NUL.
pub const MAX_CMDLINE: usize = 1023;

/// Where to boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Xen {
    /// A Xen host when this is one (dom0 with `xl`), the lab otherwise.
    Auto,
    /// Always the lab (QEMU).
    Lab,
    /// Always this host's `xl`.
    Host,
}

/// The runner's command line.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Memory of the application's guest, MiB [default: Xenpv.toml's, else 32].
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// Virtual CPUs of the application's guest [default: 1].
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Seconds a guest may run before it is killed and reported hung [default: 120].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Domain name of the application [default: the image's file name].
    #[arg(long)]
    pub name: Option<String>,
    /// Another guest to boot alongside, as NAME=IMAGE (repeatable; adds to Xenpv.toml's [[guest]]s).
    #[arg(long = "guest", value_name = "NAME=IMAGE")]
    pub guests: Vec<String>,
    /// A shell script to run in dom0 while the guests run [default: Xenpv.toml's `dom0`].
    #[arg(long, value_name = "FILE")]
    pub dom0_script: Option<PathBuf>,
    /// The configuration file [default: Xenpv.toml in the crate's folder, if present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to boot.
    #[arg(long, value_enum, default_value_t = Xen::Auto)]
    pub xen: Xen,
    /// Show Xen's and Linux's messages too.
    #[arg(long, short)]
    pub verbose: bool,
    /// The guest image (cargo passes the binary it built).
    pub image: PathBuf,
    /// Arguments for the guest: they become its command line (`extra=`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// One guest of a run, resolved: everything needed to write its xl config.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestSpec {
    pub name: String,
    pub image: PathBuf,
    pub memory: u32,
    pub vcpus: u32,
    pub extra: String,
}

impl GuestSpec {
    /// Its xl config (the lab and the host runner replace `kernel` and `name`
    /// with their own and set every `on_*` to `preserve`).
    pub fn xl_config(&self) -> String {
        let mut cfg = String::new();
        let _ = writeln!(cfg, "name = \"{}\"", self.name);
        let _ = writeln!(cfg, "type = \"pv\"");
        let _ = writeln!(
            cfg,
            "kernel = \"{}\"",
            xl_escape(&self.image.to_string_lossy())
        );
        let _ = writeln!(cfg, "memory = {}", self.memory);
        let _ = writeln!(cfg, "vcpus = {}", self.vcpus);
        if !self.extra.is_empty() {
            let _ = writeln!(cfg, "extra = \"{}\"", xl_escape(&self.extra));
        }
        cfg
    }
}

/// A string for an xl config's double quotes.
fn xl_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A whole run: the application first, then its peers.
#[derive(Debug)]
pub struct RunPlan {
    pub guests: Vec<GuestSpec>,
    pub dom0_script: Option<String>,
    pub timeout: Duration,
}

/// A domain name from an image's file name: cargo's test binaries are
/// `<name>-<hash>`, which is fine; anything outside `[A-Za-z0-9_-]` becomes `-`.
pub fn domain_name(image: &Path) -> String {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if name.is_empty() {
        name.push_str("guest");
    }
    name
}

/// The guest's command line: `extra` from the config, then cargo's arguments.
fn command_line(config_extra: Option<&str>, args: &[String]) -> Result<String> {
    let mut words: Vec<&str> = config_extra.into_iter().filter(|e| !e.is_empty()).collect();
    for arg in args {
        if arg.is_empty() || arg.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!(
                "guest argument `{arg}` is empty or has whitespace: the guest's command line \
                 is split on spaces, so each argument must be one word"
            );
        }
        words.push(arg);
    }
    let line = words.join(" ");
    if line.len() > MAX_CMDLINE {
        bail!(
            "the guest's command line is {} bytes; Xen passes at most {MAX_CMDLINE}",
            line.len()
        );
    }
    Ok(line)
}

/// The profile folder holding `image` (`.../<target>/<profile>/`, also for
/// test binaries in `.../<profile>/deps/`).
fn profile_dir(image: &Path) -> Option<&Path> {
    let dir = image.parent()?;
    if dir.file_name()? == "deps" {
        dir.parent()
    } else {
        Some(dir)
    }
}

/// Builds binary `bin` of the crate in `dir` with the profile and target
/// `app_image` was built with, and returns its image.
fn build_peer(dir: &Path, bin: &str, app_image: &Path) -> Result<PathBuf> {
    let profile_dir = profile_dir(app_image).with_context(|| {
        format!(
            "{} is not inside a cargo target folder",
            app_image.display()
        )
    })?;
    let profile = profile_dir
        .file_name()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = util::cargo();
    cmd.current_dir(dir).args(["build", "--bin", bin]);
    cmd.args([
        "--profile",
        if profile == "debug" { "dev" } else { &profile },
    ]);
    if profile_dir.parent().and_then(|t| t.file_name()) == Some(GUEST_TARGET.as_ref()) {
        cmd.args(["--target", GUEST_TARGET]);
    }
    util::run_captured(&mut cmd, Duration::from_secs(1800))
        .with_context(|| format!("building peer binary `{bin}`"))?;
    let image = profile_dir.join(bin);
    if !image.is_file() {
        bail!("built `{bin}` but found no image at {}", image.display());
    }
    Ok(image)
}

/// Resolves the command line and the config into a plan.
pub fn plan(args: &RunArgs, config: &Config, config_dir: &Path) -> Result<RunPlan> {
    if !args.image.is_file() {
        bail!("no guest image at {}", args.image.display());
    }
    let app = GuestSpec {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| domain_name(&args.image)),
        image: args.image.clone(),
        memory: args.memory.or(config.memory).unwrap_or(DEFAULT_MEMORY_MIB),
        vcpus: args.vcpus.or(config.vcpus).unwrap_or(1),
        extra: command_line(config.extra.as_deref(), &args.args)?,
    };
    let mut guests = vec![app];
    for peer in &config.guests {
        guests.push(peer_spec(peer, config_dir, &args.image)?);
    }
    for spec in &args.guests {
        let (name, image) = spec
            .split_once('=')
            .with_context(|| format!("--guest `{spec}`: write it as NAME=IMAGE"))?;
        guests.push(GuestSpec {
            name: name.to_string(),
            image: PathBuf::from(image),
            memory: DEFAULT_MEMORY_MIB,
            vcpus: 1,
            extra: String::new(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for g in &guests {
        payload::check_name(&g.name)?;
        if !seen.insert(g.name.clone()) {
            bail!("two guests are named `{}`: give each its own name", g.name);
        }
        if g.memory == 0 || g.vcpus == 0 {
            bail!("guest `{}`: memory and vcpus must be positive", g.name);
        }
        if !g.image.is_file() {
            bail!("guest `{}`: no image at {}", g.name, g.image.display());
        }
    }
    let script = args
        .dom0_script
        .clone()
        .or_else(|| config.dom0.as_ref().map(|p| config_dir.join(p)));
    let dom0_script = match script {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading the dom0 script {}", path.display()))?,
        ),
        None => None,
    };
    let secs = args
        .timeout
        .or(config.timeout)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    if secs == 0 {
        bail!("--timeout must be positive");
    }
    Ok(RunPlan {
        guests,
        dom0_script,
        timeout: Duration::from_secs(secs),
    })
}

fn peer_spec(peer: &PeerConfig, config_dir: &Path, app_image: &Path) -> Result<GuestSpec> {
    let image = match (&peer.bin, &peer.image) {
        (Some(bin), _) => build_peer(config_dir, bin, app_image)?,
        (None, Some(image)) => config_dir.join(image),
        (None, None) => bail!("[[guest]] `{}` names no `bin` or `image`", peer.name),
    };
    Ok(GuestSpec {
        name: peer.name.clone(),
        image,
        memory: peer.memory.unwrap_or(DEFAULT_MEMORY_MIB),
        vcpus: peer.vcpus.unwrap_or(1),
        extra: command_line(peer.extra.as_deref(), &[])?,
    })
}

/// How one guest ended, as the runner reports it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// `poweroff`, `crash`, `timeout`, ... or None when it never reported.
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    /// The word a test harness asked the next domain to start with
    /// (`--xenpv-resume=...`, see [`crate::resume`]).
    pub resume: Option<String>,
}

/// One boot of a plan: how each guest ended, and the dom0 script's end.
#[derive(Debug)]
pub struct Run {
    pub outcomes: Vec<Outcome>,
    pub script: Option<String>,
}

/// The exit status of a guest that ended as `outcome`, and a message when
/// it did not succeed.
pub fn exit_status(name: &str, outcome: &Outcome, timeout: Duration) -> (i32, Option<String>) {
    match (outcome.reason.as_deref(), outcome.exit_code) {
        (Some("poweroff"), None | Some(0)) => (0, None),
        (Some("poweroff"), Some(code)) => {
            // A process status is 0..=255; keep a failure a failure.
            let status = if code & 0xff == 0 { 1 } else { code & 0xff };
            (status, Some(format!("{name} exited with code {code}")))
        }
        (Some("crash"), _) => (EXIT_CRASH, Some(format!("{name} crashed (a panic or a fatal trap; its last words are above)"))),
        (Some("timeout"), _) => (
            EXIT_TIMEOUT,
            Some(format!(
                "{name} hung: still running after {} s, killed (raise --timeout or `timeout` in Xenpv.toml if it needs longer)",
                timeout.as_secs()
            )),
        ),
        (Some(other), _) => (1, Some(format!("{name} ended: {other}"))),
        (None, _) => (1, Some(format!("{name} never reported an end (see the messages above)"))),
    }
}

/// The run's status: the application's, unless it succeeded and a peer or
/// the dom0 script did not.
pub fn run_status(
    plan: &RunPlan,
    outcomes: &[Outcome],
    dom0_script: Option<&str>,
) -> (i32, Vec<String>) {
    let mut messages = Vec::new();
    let (mut status, message) = exit_status(&plan.guests[0].name, &outcomes[0], plan.timeout);
    messages.extend(message);
    for (g, outcome) in plan.guests.iter().zip(outcomes).skip(1) {
        let (peer, message) = exit_status(&g.name, outcome, plan.timeout);
        if peer != 0 {
            messages.extend(message.map(|m| format!("peer {m}")));
            if status == 0 {
                status = 1;
            }
        }
    }
    if let Some(script) = dom0_script {
        if script.starts_with("exit") && script != "exit 0" {
            messages.push(format!("the dom0 script failed ({script})"));
            if status == 0 {
                status = 1;
            }
        }
    }
    (status, messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn image() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenpv-runner-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("release/deps")).unwrap();
        let image = dir.join("release/deps/app_test-0123abcd");
        std::fs::write(&image, b"\x7fELF").unwrap();
        image
    }

    fn args(list: &[&str]) -> RunArgs {
        Cli::try_parse_from(std::iter::once("xenpv-run").chain(list.iter().copied()))
            .unwrap()
            .run
    }

    #[test]
    fn cargo_style_arguments() {
        let img = image();
        let img_s = img.to_str().unwrap();
        let a = args(&["--memory", "64", img_s, "--nocapture", "fast"]);
        assert_eq!(a.memory, Some(64));
        assert_eq!(a.args, ["--nocapture", "fast"]);
        let plan = plan(&a, &Config::default(), Path::new(".")).unwrap();
        let app = &plan.guests[0];
        assert_eq!(app.name, "app_test-0123abcd");
        assert_eq!(app.memory, 64);
        assert_eq!(app.extra, "--nocapture fast");
        let cfg = app.xl_config();
        assert!(
            cfg.contains("memory = 64\n") && cfg.contains("extra = \"--nocapture fast\"\n"),
            "{cfg}"
        );
        assert_eq!(plan.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    }

    #[test]
    fn config_fills_what_the_command_line_leaves() {
        let img = image();
        let config = Config {
            memory: Some(48),
            vcpus: Some(2),
            timeout: Some(9),
            extra: Some("mode=x".into()),
            ..Config::default()
        };
        let a = args(&["--vcpus", "3", img.to_str().unwrap(), "y"]);
        let plan = plan(&a, &config, Path::new(".")).unwrap();
        let app = &plan.guests[0];
        assert_eq!((app.memory, app.vcpus), (48, 3));
        assert_eq!(app.extra, "mode=x y");
        assert_eq!(plan.timeout, Duration::from_secs(9));
    }

    #[test]
    fn bad_runs_are_refused_with_the_fix() {
        let img = image();
        let s = img.to_str().unwrap();
        for (list, needle) in [
            (vec!["/nonexistent/image"], "no guest image"),
            (vec!["--name", "a b", s], "not usable as a guest name"),
            (vec!["--guest", "x", s], "NAME=IMAGE"),
            (
                vec!["--guest", &format!("app_test-0123abcd={s}"), s],
                "two guests",
            ),
            (vec!["--guest", "p=/nonexistent", s], "no image at"),
            (vec![s, "has space"], "one word"),
            (vec!["--timeout", "0", s], "positive"),
        ] {
            let a = args(&list);
            let err = format!(
                "{:#}",
                plan(&a, &Config::default(), Path::new(".")).unwrap_err()
            );
            assert!(err.contains(needle), "{list:?}: {err}");
        }
        let long = "x".repeat(MAX_CMDLINE + 1);
        let err = plan(&args(&[s, &long]), &Config::default(), Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn statuses() {
        let t = Duration::from_secs(5);
        let o = |r: &str, c: Option<i32>| Outcome {
            reason: Some(r.into()),
            exit_code: c,
            ..Outcome::default()
        };
        assert_eq!(exit_status("a", &o("poweroff", None), t).0, 0);
        assert_eq!(exit_status("a", &o("poweroff", Some(0)), t).0, 0);
        assert_eq!(exit_status("a", &o("poweroff", Some(3)), t).0, 3);
        assert_eq!(exit_status("a", &o("poweroff", Some(256)), t).0, 1);
        assert_eq!(exit_status("a", &o("poweroff", Some(-1)), t).0, 255);
        assert_eq!(exit_status("a", &o("crash", None), t).0, EXIT_CRASH);
        let (s, m) = exit_status("a", &o("timeout", None), t);
        assert_eq!(s, EXIT_TIMEOUT);
        assert!(m.unwrap().contains("a hung"));
        assert_eq!(exit_status("a", &o("reboot", None), t).0, 1);
        assert_eq!(exit_status("a", &Outcome::default(), t).0, 1);
    }

    #[test]
    fn peers_and_dom0_script_can_fail_a_run() {
        let spec = |n: &str| GuestSpec {
            name: n.into(),
            image: PathBuf::new(),
            memory: 1,
            vcpus: 1,
            extra: String::new(),
        };
        let plan = RunPlan {
            guests: vec![spec("app"), spec("peer")],
            dom0_script: None,
            timeout: Duration::from_secs(1),
        };
        let ok = Outcome {
            reason: Some("poweroff".into()),
            exit_code: None,
            ..Outcome::default()
        };
        let crash = Outcome {
            reason: Some("crash".into()),
            exit_code: None,
            ..Outcome::default()
        };
        assert_eq!(
            run_status(&plan, &[ok.clone(), ok.clone()], Some("exit 0")).0,
            0
        );
        let (s, m) = run_status(&plan, &[ok.clone(), crash.clone()], None);
        assert_eq!(s, 1);
        assert!(m[0].contains("peer peer crashed"), "{m:?}");
        assert_eq!(
            run_status(&plan, &[crash.clone(), ok.clone()], None).0,
            EXIT_CRASH
        );
        assert_eq!(run_status(&plan, &[ok.clone(), ok], Some("exit 2")).0, 1);
    }

    #[test]
    fn names_and_profiles() {
        assert_eq!(
            domain_name(Path::new("/t/release/deps/guest-1f2e")),
            "guest-1f2e"
        );
        assert_eq!(domain_name(Path::new("/t/my.app")), "my");
        assert_eq!(domain_name(Path::new("/t/a+b")), "a-b");
        assert_eq!(
            profile_dir(Path::new("/t/x86_64-unknown-none/release/deps/t-1")),
            Some(Path::new("/t/x86_64-unknown-none/release"))
        );
        assert_eq!(
            profile_dir(Path::new("/t/x86_64-unknown-none/debug/app")),
            Some(Path::new("/t/x86_64-unknown-none/debug"))
        );
    }
}
