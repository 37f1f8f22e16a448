//! Starting QEMU with Xen as its multiboot kernel, and reading its serial
//! console line by line with deadlines.
//!
//! TCG with `-cpu qemu64` is the default: KVM is used only when
//! `/dev/kvm` opens and the CPU has vmx or svm (see `kvm_usable`), and
//! `XENPV_ACCEL=tcg|kvm` forces a choice.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util;

/// Xen's command line for both kinds of boot; `dom0_mem` is appended.
const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all noreboot";

/// How Xen is booted.
pub struct Boot<'a> {
    pub xen: &'a Path,
    /// `dom0_mem=` value: `1024M,max:1024M` for Linux, `64M` for a unikernel.
    pub dom0_mem: &'a str,
    /// Multiboot modules, each `path [command line]`: dom0's kernel first.
    pub modules: Vec<(&'a Path, &'a str)>,
}

/// A running QEMU whose serial output arrives as lines.
pub struct Machine {
    child: Child,
    lines: Receiver<String>,
    pub accel: &'static str,
}

/// What [`Machine::next_line`] saw.
pub enum Next {
    Line(String),
    /// QEMU closed its output (it exited).
    Exited,
    /// The deadline passed first.
    Timeout,
}

/// Fails with an install hint when QEMU is missing (before any long build).
pub fn check_installed() -> Result<()> {
    util::require_tool("qemu-system-x86_64", "qemu-system-x86").map(|_| ())
}

impl Machine {
    pub fn start(boot: &Boot) -> Result<Machine> {
        let qemu = util::require_tool("qemu-system-x86_64", "qemu-system-x86")?;
        let accel = choose_accel()?;
        let mut cmd = Command::new(qemu);
        cmd.args(["-m", "2048", "-smp", "2", "-display", "none", "-no-reboot"]);
        cmd.args(["-serial", "stdio", "-monitor", "none"]);
        match accel {
            "kvm" => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            _ => cmd.args(["-accel", "tcg", "-cpu", "qemu64"]),
        };
        cmd.arg("-kernel").arg(boot.xen);
        cmd.arg("-append")
            .arg(format!("{XEN_CMDLINE} dom0_mem={}", boot.dom0_mem));
        let mut modules = Vec::new();
        for (path, args) in &boot.modules {
            let path = path.to_str().context("a module path is not UTF-8")?;
            if path.contains(',') || path.contains(' ') {
                bail!("QEMU cannot take a multiboot module whose path has a comma or a space: {path} (set XENPV_LAB_DIR to a plain path)");
            }
            modules.push(if args.is_empty() {
                path.to_string()
            } else {
                format!("{path} {args}")
            });
        }
        cmd.arg("-initrd").arg(modules.join(","));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", util::describe(&cmd)))?;

        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().context("QEMU's stdout")?;
        let stderr = child.stderr.take().context("QEMU's stderr")?;
        let tx_err = tx.clone();
        thread::spawn(move || read_lines(stdout, |line| tx.send(line).is_ok()));
        thread::spawn(move || {
            let reader = BufReader::new(stderr);
            for line in reader.lines().map_while(|l| l.ok()) {
                if tx_err.send(format!("qemu: {line}")).is_err() {
                    break;
                }
            }
        });
        Ok(Machine {
            child,
            lines,
            accel,
        })
    }

    /// The next serial line, waiting until `deadline` at most.
    pub fn next_line(&mut self, deadline: Instant) -> Next {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => Next::Line(line),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Exited,
        }
    }

    /// Waits up to `limit` for QEMU to exit by itself, then kills it.
    pub fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Splits a byte stream into lines: lossy UTF-8, without `\r`/`\n`.
fn read_lines(mut input: impl Read, mut send: impl FnMut(String) -> bool) {
    let mut buf = [0u8; 4096];
    let mut line = Vec::new();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if !send(finish_line(&mut line)) {
                    return;
                }
            } else {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        send(finish_line(&mut line));
    }
}

fn finish_line(line: &mut Vec<u8>) -> String {
    let text = String::from_utf8_lossy(line).replace('\r', "");
    line.clear();
    text
}

fn choose_accel() -> Result<&'static str> {
    match std::env::var("XENPV_ACCEL").as_deref() {
        Ok("tcg") => return Ok("tcg"),
        Ok("kvm") => return Ok("kvm"),
        Ok(other) if !other.is_empty() => {
            bail!("XENPV_ACCEL must be `tcg` or `kvm`, not `{other}`")
        }
        _ => {}
    }
    Ok(if kvm_usable() { "kvm" } else { "tcg" })
}

/// KVM helps only if it can run Xen: `/dev/kvm` must open and the CPU must
/// offer hardware virtualization (Xen itself needs it under KVM: without
/// vmx/svm KVM stops at Xen's first `rdsspq`).
fn kvm_usable() -> bool {
    let opens = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    opens && has_virt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_cleaned() {
        let mut got = Vec::new();
        read_lines(&b"(XEN) a\r\n[hello] b\n\npartial"[..], |l| {
            got.push(l);
            true
        });
        assert_eq!(got, ["(XEN) a", "[hello] b", "", "partial"]);
    }
}
