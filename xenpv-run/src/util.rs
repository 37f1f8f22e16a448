//! Small helpers: running external programs with a time limit, naming
//! the Debian package to install when a tool is missing, and the guest
//! target with the check that its standard library is installed.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// An error whose story has already been told on stdout (e.g. a test
/// summary): `main` exits non-zero without printing anything more, so the
/// summary's last line stays the last line.
#[derive(Debug)]
pub struct AlreadyReported;

impl std::fmt::Display for AlreadyReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed (see above)")
    }
}

impl std::error::Error for AlreadyReported {}

/// The `cargo` that started us (cargo sets `CARGO` for `cargo run`), or the one on `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Finds `program` on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails with an install hint unless `program` is on `PATH`.
pub fn require_tool(program: &str, debian_package: &str) -> Result<PathBuf> {
    which(program).with_context(|| {
        format!(
            "`{program}` not found: install {debian_package} (apt-get install {debian_package})"
        )
    })
}

/// What a finished program left behind.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion with a time limit, capturing stdout and stderr.
///
/// The child is killed at the limit. A non-zero exit is an error that quotes
/// the end of stderr, so callers can simply use `?`.
pub fn run_captured(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let out = run_captured_status(cmd, limit)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}){}",
            describe(cmd),
            out.status,
            tail_for_error(&out.stderr, &out.stdout)
        );
    }
    Ok(out)
}

/// Like [`run_captured`], but a non-zero exit is returned, not an error.
pub fn run_captured_status(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let (status, stdout, stderr) = run_raw(cmd, limit)?;
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Ok(Output {
        status,
        stdout: text(stdout),
        stderr: text(stderr),
    })
}

/// Runs `cmd` with a time limit and returns its stdout as bytes (for
/// decompressors); a non-zero exit is an error.
pub fn run_captured_bytes(cmd: &mut Command, limit: Duration) -> Result<Vec<u8>> {
    let (status, stdout, stderr) = run_raw(cmd, limit)?;
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        bail!(
            "`{}` failed ({status}){}",
            describe(cmd),
            tail_for_error(&stderr, "")
        );
    }
    Ok(stdout)
}

fn run_raw(cmd: &mut Command, limit: Duration) -> Result<(ExitStatus, Vec<u8>, Vec<u8>)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| spawn_error(cmd))?;
    let stdout = child.stdout.take().map(drain_in_thread);
    let stderr = child.stderr.take().map(drain_in_thread);
    let status = wait_with_limit(&mut child, limit).with_context(|| describe(cmd))?;
    // A grandchild may still hold a pipe open: give the readers a moment,
    // then go on with what they have rather than hang.
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(2)).ok())
            .unwrap_or_default()
    };
    Ok((status, collect(stdout), collect(stderr)))
}

/// Runs `cmd` with its output going straight to ours (for long builds whose
/// progress the user wants to see), with a time limit.
pub fn run_inherited(cmd: &mut Command, limit: Duration) -> Result<()> {
    cmd.stdin(Stdio::null());
    let mut child = cmd.spawn().with_context(|| spawn_error(cmd))?;
    let status = wait_with_limit(&mut child, limit).with_context(|| describe(cmd))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Waits for `child`, killing it once `limit` has passed.
pub fn wait_with_limit(child: &mut std::process::Child, limit: Duration) -> Result<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {} s and was killed", limit.as_secs());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn drain_in_thread<R: Read + Send + 'static>(mut pipe: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn spawn_error(cmd: &Command) -> String {
    format!("could not start `{}`", describe(cmd))
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

fn tail_for_error(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(15)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.join("\n"))
    }
}

/// The target every xenpv image is built for: the one definition for the
/// workspace's tools (xenpv-run and xtask; the template's
/// `.cargo/config.toml` and the repository's `rust-toolchain.toml` name it
/// too, and their tests check they agree).
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// Makes sure the Rust toolchain that builds in `dir` has the standard
/// library for `target` (rustup picks the toolchain from `dir`'s
/// `rust-toolchain.toml`). A toolchain that was installed before the file
/// named the target lacks it, and the build would fail with "can't find
/// crate for `core`": install it with rustup, or name the command to run.
pub fn ensure_rust_target(dir: &Path, target: &str) -> Result<()> {
    let sysroot = rust_sysroot(dir)?;
    if sysroot.join("lib/rustlib").join(target).is_dir() {
        return Ok(());
    }
    let fix = format!("rustup target add {target}");
    if which("rustup").is_none() {
        bail!(
            "the Rust toolchain at {} has no standard library for {target}, and rustup is not \
             on PATH: install the target for that toolchain (with rustup: `{fix}`)",
            sysroot.display()
        );
    }
    eprintln!(
        "the toolchain at {} lacks the {target} target: running `{fix}`",
        sysroot.display()
    );
    let mut cmd = command("rustup", ["target", "add", target]);
    cmd.current_dir(dir);
    run_captured(&mut cmd, Duration::from_secs(900)).with_context(|| {
        format!(
            "installing the {target} target; run `{fix}` in {} yourself",
            dir.display()
        )
    })?;
    if !rust_sysroot(dir)?.join("lib/rustlib").join(target).is_dir() {
        bail!(
            "`{fix}` ran but {target} is still missing: run it in {} yourself",
            dir.display()
        );
    }
    Ok(())
}

fn rust_sysroot(dir: &Path) -> Result<PathBuf> {
    let mut cmd = command("rustc", ["--print", "sysroot"]);
    cmd.current_dir(dir);
    let out =
        run_captured(&mut cmd, Duration::from_secs(300)).context("asking rustc for its sysroot")?;
    Ok(PathBuf::from(out.stdout.trim()))
}

/// A `Command` for `program` with `args`.
pub fn command<I, S>(program: impl AsRef<OsStr>, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// A 64-bit FNV-1a hash, used to notice when a recipe changed.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A byte count for humans: `812 B`, `42.1 KiB`, `4.5 MiB`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / KIB / KIB)
    }
}

/// Whether we run as root (apt-get needs it for `update`).
pub fn is_root() -> bool {
    // The effective uid is not in std; /proc/self/status has it on Linux.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }

    /// With stand-ins for rustc and rustup on PATH: a missing target is
    /// installed with rustup, and without rustup the error names the fix.
    #[test]
    fn missing_target_is_installed_or_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xenpv-target-test-{}", std::process::id()));
        let bin = dir.join("bin");
        let sysroot = dir.join("sysroot");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(sysroot.join("lib/rustlib")).unwrap();
        let script = |name: &str, body: String| {
            let path = bin.join(name);
            fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        };
        script("rustc", format!("echo {}", sysroot.display()));
        let with_path = |dirs: &str, f: &dyn Fn() -> Result<()>| {
            let old = std::env::var_os("PATH");
            std::env::set_var("PATH", dirs);
            let r = f();
            if let Some(old) = old {
                std::env::set_var("PATH", old);
            }
            r
        };
        let path = format!("{}:/bin:/usr/bin", bin.display());
        // No rustup: the error says what to run.
        let err = with_path(&path, &|| ensure_rust_target(&dir, GUEST_TARGET)).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("rustup target add {GUEST_TARGET}")),
            "{err:#}"
        );
        // A rustup that installs it.
        script(
            "rustup",
            format!("mkdir -p {}/lib/rustlib/$3", sysroot.display()),
        );
        with_path(&path, &|| ensure_rust_target(&dir, GUEST_TARGET)).unwrap();
        assert!(sysroot.join("lib/rustlib").join(GUEST_TARGET).is_dir());
        // A rustup that claims success but installs nothing.
        script("rustup", "true".into());
        let err = with_path(&path, &|| ensure_rust_target(&dir, "other-target")).unwrap_err();
        assert!(format!("{err:#}").contains("still missing"), "{err:#}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn timeout_kills() {
        let mut cmd = command("sleep", ["5"]);
        let err = run_captured(&mut cmd, Duration::from_millis(200))
            .err()
            .expect("must time out");
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    }

    #[test]
    fn failure_quotes_stderr() {
        let mut cmd = command("sh", ["-c", "echo boom >&2; exit 3"]);
        let err = run_captured(&mut cmd, Duration::from_secs(5))
            .err()
            .expect("must fail");
        assert!(format!("{err:#}").contains("boom"), "{err:#}");
    }
}
