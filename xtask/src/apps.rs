//! The "someone else's unikernel" tests: applications outside the
//! repository, made with `xenpv-run new`, built and booted with plain
//! `cargo run` / `cargo test` through the runner, exactly as the README
//! tells a user to (the runner is found on `PATH`, as after
//! `cargo install`). Each check is one row of `cargo xtask test`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{self, run_captured, run_captured_status};

/// The pair application: the gallery's echo client as its main binary, the
/// echo server as its peer (`tests/apps/pair/Xenpv.toml`).
const PAIR_MAIN: &str = include_str!("../../examples/echo_client.rs");
const PAIR_PEER: &str = include_str!("../../examples/echo_server.rs");
const PAIR_CONFIG: &str = include_str!("../../tests/apps/pair/Xenpv.toml");

/// Tests added to the template's `tests/guest.rs` to see failures reported.
const FAILING_TESTS: &str = r#"
#[allow(dead_code)]
mod more {
    pub fn fails_on_purpose() {
        assert_eq!(1 + 1, 3, "arithmetic on purpose");
    }

    pub fn faults_on_purpose() {
        // A read of an unmapped page: a page fault, not a panic.
        let p = core::hint::black_box(0x10usize) as *const u64;
        // SAFETY: none: this reads an unmapped address on purpose, to
        // check that a page fault fails the test and the next ones run.
        let v = unsafe { core::ptr::read_volatile(p) };
        xenpv::println!("read {v}");
    }

    pub fn errs_on_purpose() -> Result<(), &'static str> {
        Err("no luck")
    }

    pub fn panics_holding_the_store() {
        let store = xenpv::Xen::from_runtime().store().expect("xenstore");
        let _held = store.lock();
        panic!("on purpose, with the xenstore lock held");
    }

    pub fn runs_after_the_failures() {
        xenpv::sleep(core::time::Duration::from_millis(5));
        // The failed test's lock is not held here: each test after a
        // panic runs in a fresh domain.
        let me = xenpv::Xen::from_runtime().domid().expect("own domid");
        xenpv::println!("after the failures: dom{me}");
    }
}
"#;

/// One check's outcome: (row name, passed, detail).
pub type Check = (String, bool, String);

/// `cargo xtask apps`: the checks alone.
pub fn cmd_apps() -> Result<()> {
    let rows = checks();
    for (name, passed, detail) in &rows {
        println!(
            "  {}  {name:<34} {detail}",
            if *passed { "PASS" } else { "FAIL" }
        );
    }
    if rows.iter().any(|r| !r.1) {
        return Err(util::AlreadyReported.into());
    }
    Ok(())
}

/// Runs every application check.
pub fn checks() -> Vec<Check> {
    let mut rows = Vec::new();
    let env = match Env::prepare() {
        Ok(env) => env,
        Err(e) => {
            rows.push(("app: set-up".into(), false, format!("{e:#}")));
            return rows;
        }
    };
    let mut row = |name: &str, result: Result<String>| {
        let (passed, detail) = match result {
            Ok(detail) => (true, detail),
            Err(e) => (false, format!("{e:#}")),
        };
        println!("xtask: {name}: {}", if passed { "ok" } else { "FAILED" });
        rows.push((format!("app: {name}"), passed, detail));
    };
    match env.new_app("xenpv-newapp") {
        Err(e) => row("new", Err(e)),
        Ok((app, took_new)) => {
            row("new + cargo run --release", env.check_run(&app, took_new));
            row("cargo test (in-guest)", env.check_test(&app));
            row("cargo test with failures", env.check_failing_tests(&app));
            row("cargo test -- <filter>", env.check_filter(&app));
            row("xenpv::exit(code) status", env.check_exit_code(&app));
        }
    }
    row("two guests (vchan pair)", env.check_pair());
    rows
}

/// Where the applications live and how cargo is run for them.
struct Env {
    repo: PathBuf,
    base: PathBuf,
    /// The folder holding the `xenpv-run` binary, put first on `PATH`.
    runner_dir: PathBuf,
}

impl Env {
    fn prepare() -> Result<Env> {
        let repo = util::repo_root();
        // Installed the way the README says (`cargo install --path
        // xenpv-run`), into a folder of our own.
        let root = util::target_dir().join("xenpv-run-install");
        let mut cmd = util::cargo();
        cmd.current_dir(&repo)
            .args(["install", "--locked", "--path", "xenpv-run", "--root"])
            .arg(&root);
        run_captured(&mut cmd, Duration::from_secs(1800))
            .context("cargo install --path xenpv-run")?;
        let runner_dir = root.join("bin");
        if !runner_dir.join("xenpv-run").is_file() {
            bail!(
                "built xenpv-run but {} is missing",
                runner_dir.join("xenpv-run").display()
            );
        }
        let base = std::env::temp_dir().join("xenpv-apps");
        fs::create_dir_all(&base)?;
        Ok(Env {
            repo,
            base,
            runner_dir,
        })
    }

    /// `xenpv-run new <base>/<name>`, made anew each time.
    fn new_app(&self, name: &str) -> Result<(PathBuf, Duration)> {
        let dir = self.base.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let start = Instant::now();
        let mut cmd = util::command(
            self.runner_dir.join("xenpv-run"),
            ["new".as_ref(), dir.as_os_str()],
        );
        cmd.args(["--xenpv-path".as_ref(), self.repo.as_os_str()]);
        run_captured(&mut cmd, Duration::from_secs(60)).context("xenpv-run new")?;
        // Cargo looks for a workspace in every parent folder and trips over
        // any Cargo.toml it finds there (seen: a stray /tmp/Cargo.toml).
        if dir
            .ancestors()
            .skip(1)
            .any(|d| d.join("Cargo.toml").exists())
        {
            let manifest = dir.join("Cargo.toml");
            let text = fs::read_to_string(&manifest)?;
            fs::write(&manifest, format!("{text}\n[workspace]\n"))?;
        }
        Ok((dir, start.elapsed()))
    }

    /// `cargo <args>` in `app` as a user would run it: our build settings
    /// do not leak in; the applications share one target folder so that
    /// rebuilding them is incremental.
    fn cargo(&self, app: &Path, args: &[&str]) -> Result<(bool, i32, String, Duration)> {
        // `cargo` from PATH (rustup's proxy, so the app's own
        // rust-toolchain.toml decides), without what `cargo xtask` itself
        // runs under (its toolchain, rustc, flags and target folder).
        let mut cmd = std::process::Command::new("cargo");
        cmd.current_dir(app).args(args);
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy();
            let keep = var == "CARGO_HOME" || var == "CARGO_NET_OFFLINE";
            if !keep
                && (var.starts_with("CARGO")
                    || var.starts_with("RUSTC")
                    || var.starts_with("RUSTFLAGS")
                    || var == "RUSTUP_TOOLCHAIN"
                    || var == "RUSTDOC")
            {
                cmd.env_remove(var.as_ref());
            }
        }
        cmd.env("CARGO_TARGET_DIR", self.base.join("target"));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.runner_dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs)?);
        let start = Instant::now();
        let out = run_captured_status(&mut cmd, Duration::from_secs(900))
            .with_context(|| format!("cargo {}", args.join(" ")))?;
        let took = start.elapsed();
        let text = format!("{}\n{}", out.stdout, out.stderr);
        Ok((
            out.status.success(),
            out.status.code().unwrap_or(-1),
            text,
            took,
        ))
    }

    fn check_run(&self, app: &Path, took_new: Duration) -> Result<String> {
        let name = app.file_name().unwrap_or_default().to_string_lossy();
        let (ok, code, out, took) = self.cargo(app, &["run", "--release"])?;
        let greeting = xenpv_run::template::greeting(&name);
        expect(ok, code, &out, &[&greeting, "running as domain "])?;
        Ok(format!(
            "exit 0, greeting seen; new {:.1} s + cargo run --release {:.1} s",
            took_new.as_secs_f64(),
            took.as_secs_f64()
        ))
    }

    fn check_test(&self, app: &Path) -> Result<String> {
        let (ok, code, out, took) = self.cargo(app, &["test"])?;
        expect(
            ok,
            code,
            &out,
            &[
                "test time_goes_on ... ok",
                "test result: ok. 1 passed; 0 failed",
            ],
        )?;
        Ok(format!(
            "1 passed in the guest, exit 0 ({:.1} s)",
            took.as_secs_f64()
        ))
    }

    fn check_failing_tests(&self, app: &Path) -> Result<String> {
        let tests = app.join("tests/guest.rs");
        let original = fs::read_to_string(&tests)?;
        let changed = original.replace(
            "xenpv::test_main!(time_goes_on);",
            "xenpv::test_main!(\n    time_goes_on,\n    more::fails_on_purpose,\n    more::faults_on_purpose,\n    more::errs_on_purpose,\n    more::panics_holding_the_store,\n    more::runs_after_the_failures,\n);",
        );
        if changed == original {
            bail!("the template's tests/guest.rs has no `xenpv::test_main!(time_goes_on);` line to extend");
        }
        fs::write(&tests, format!("{changed}{FAILING_TESTS}"))?;
        let result = self.cargo(app, &["test"]);
        fs::write(&tests, original)?;
        let (ok, code, out, _) = result?;
        if ok {
            bail!("cargo test succeeded with failing tests:\n{}", tail(&out));
        }
        expect(
            true,
            0,
            &out,
            &[
                "test more::fails_on_purpose ... FAILED",
                "---- more::fails_on_purpose stdout ----",
                "arithmetic on purpose",
                "test more::faults_on_purpose ... FAILED",
                "page fault",
                "test more::errs_on_purpose ... FAILED",
                "Error: \"no luck\"",
                "test more::panics_holding_the_store ... FAILED",
                "with the xenstore lock held",
                "after the failures: dom",
                "test more::runs_after_the_failures ... ok",
                "---- more::faults_on_purpose stdout ----",
                "test result: FAILED. 2 passed; 4 failed",
            ],
        )?;
        let domains = out
            .matches("the remaining tests run in a fresh one")
            .count();
        if domains != 3 {
            bail!(
                "expected 3 fresh domains (after two panics and a fault), saw {domains}:\n{}",
                tail(&out)
            );
        }
        Ok(format!("exit {code}; the panics, the page fault and the Err each reported; each test after a panic or fault ran in a fresh domain (3), the xenstore lock a failed test held was not held by the next"))
    }

    fn check_filter(&self, app: &Path) -> Result<String> {
        let (ok, code, out, _) = self.cargo(app, &["test", "--", "no_such_test"])?;
        expect(
            ok,
            code,
            &out,
            &[
                "running 0 tests",
                "0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out",
            ],
        )?;
        Ok("cargo's arguments reach the guest: 1 filtered out".into())
    }

    fn check_exit_code(&self, app: &Path) -> Result<String> {
        let main = app.join("src/main.rs");
        let original = fs::read_to_string(&main)?;
        fs::write(
            &main,
            "#![no_std]\n#![no_main]\n\nxenpv::main!(main);\n\nfn main() {\n    xenpv::exit(42)\n}\n",
        )?;
        let result = self.cargo(app, &["run", "--release"]);
        fs::write(&main, original)?;
        let (_, code, out, _) = result?;
        if code != 42 {
            bail!("cargo run exited with {code}, not 42:\n{}", tail(&out));
        }
        Ok("cargo run --release exits 42".into())
    }

    fn check_pair(&self) -> Result<String> {
        let (app, _) = self.new_app("xenpv-pairapp")?;
        fs::write(app.join("src/main.rs"), PAIR_MAIN)?;
        fs::create_dir_all(app.join("src/bin"))?;
        fs::write(app.join("src/bin/echo_server.rs"), PAIR_PEER)?;
        fs::write(app.join("Xenpv.toml"), PAIR_CONFIG)?;
        let (ok, code, out, took) =
            self.cargo(&app, &["run", "--release", "--bin", "xenpv-pairapp"])?;
        expect(
            ok,
            code,
            &out,
            &[
                "[xenpv-pairapp] the peer answered: PING FROM THE APP",
                "[echo_server] echo_server: answered xenpv-pairapp",
            ],
        )?;
        Ok(format!(
            "both guests powered off, vchan echo seen ({:.1} s)",
            took.as_secs_f64()
        ))
    }
}

/// Fails unless the command succeeded and every needle is in its output.
fn expect(ok: bool, code: i32, out: &str, needles: &[&str]) -> Result<()> {
    if !ok {
        bail!("exit {code}:\n{}", tail(out));
    }
    let missing: Vec<&&str> = needles.iter().filter(|n| !out.contains(**n)).collect();
    if !missing.is_empty() {
        bail!("missing {missing:?} in the output:\n{}", tail(out));
    }
    Ok(())
}

fn tail(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}
