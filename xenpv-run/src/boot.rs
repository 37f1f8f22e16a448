//! Booting Xen in QEMU and following its serial console: [`boot_domu`]
//! (the lab's Linux dom0 runs a plan of `xl create`s) and [`boot_dom0`] (the
//! image itself is dom0). Used by the `xenpv-run` runner and by
//! `cargo xtask run/test`.
//!
//! The plan's output is read by [`watch_plan`] from any [`Lines`]: QEMU's
//! serial console here, the plan's own shell on a real Xen host
//! ([`crate::host`]), so both paths parse the same markers into the same
//! [`Report`].

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::lab::Lab;
use crate::markers::{self, Event};
use crate::payload::{self, Plan};
use crate::qemu::{Boot, Machine, Next};

/// Limits and output settings of one boot.
#[derive(Clone, Copy)]
pub struct Options {
    /// Show Xen's and Linux's messages as they come (otherwise only on failure).
    pub verbose: bool,
    /// The whole boot, from starting QEMU to its exit.
    pub overall: Duration,
    /// One guest, from `xl create` to its shutdown.
    pub guest_timeout: Duration,
    /// Print guest console lines as they are, without the `[name] ` prefix
    /// (the runner's single-guest case, so that `cargo test` output reads
    /// like libtest's).
    pub bare_guest_lines: bool,
}

/// What became of one guest.
#[derive(Default, Debug)]
pub struct GuestResult {
    /// Shutdown reason (`poweroff`, `crash`, ...), `timeout`, or None if never reported.
    pub reason: Option<String>,
    /// The code given to `xenpv::exit`, when the guest gave one.
    pub exit_code: Option<i32>,
    /// Its console lines, without the `[name] ` prefix.
    pub output: Vec<String>,
    /// dom0 uptimes (s): before `xl create`, at unpause, when dom0 first saw
    /// a console line (it polls every 0.25 s), and when the guest was reported.
    pub created: Option<f64>,
    pub started: Option<f64>,
    pub first_output: Option<f64>,
    pub ended: Option<f64>,
    /// Host time from QEMU's start to the first console line.
    pub first_output_wall: Option<Duration>,
    pub started_host: Option<Instant>,
}

impl GuestResult {
    /// "create 0.61 s, first line +0.22 s, end +0.71 s" (dom0 uptimes), if known.
    fn timeline(&self) -> Option<String> {
        let (created, started) = (self.created?, self.started?);
        let mut text = format!("xl create {:.2} s", started - created);
        if let Some(first) = self.first_output {
            text.push_str(&format!(", first line +{:.2} s", first - started));
        }
        if let Some(ended) = self.ended {
            text.push_str(&format!(", end +{:.2} s", ended - started));
        }
        Some(text)
    }
}

/// What one boot produced.
#[derive(Default)]
pub struct Report {
    /// Guest names in plan order, and their results.
    pub order: Vec<String>,
    pub guests: BTreeMap<String, GuestResult>,
    /// Companion name → `exit N` / `stopped`, and their output lines.
    pub companions: BTreeMap<String, String>,
    pub companion_output: BTreeMap<String, Vec<String>>,
    /// Why the boot itself failed (timeout, QEMU died, dom0 setup error), if it did.
    pub failure: Option<String>,
    /// dom0's uptime when its toolstack was up.
    pub dom0_ready: Option<f64>,
    pub wall: Duration,
    pub accel: &'static str,
}

/// Seconds to let a boot finish after its last event (QEMU exits by itself
/// after dom0's `poweroff -f`; it is killed if it does not).
const WIND_DOWN: Duration = Duration::from_secs(15);
/// Extra seconds the host allows a guest beyond dom0's own per-guest limit
/// before it gives up on dom0 and kills QEMU.
const HOST_SLACK: Duration = Duration::from_secs(30);

/// Removes the per-run initrd when the boot is over.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Boots Xen with the lab's Linux dom0, which runs `plan`.
pub fn boot_domu(lab: &Lab, plan: &Plan, opts: Options) -> Result<Report> {
    let names: Vec<String> = plan.guests().map(|g| g.name.clone()).collect();
    // One initrd = the lab's archive followed by this run's payload archive.
    let mut initrd =
        fs::read(&lab.dom0_cpio).with_context(|| format!("reading {}", lab.dom0_cpio.display()))?;
    initrd.extend_from_slice(&payload::build(plan)?);
    let runs = lab.dir.join("runs");
    fs::create_dir_all(&runs)?;
    remove_stale_initrds(&runs);
    let initrd_file = TempFile(runs.join(format!("initrd-{}.cpio", std::process::id())));
    fs::write(&initrd_file.0, &initrd)
        .with_context(|| format!("writing {}", initrd_file.0.display()))?;

    let boot = Boot {
        xen: &lab.xen,
        dom0_mem: "1024M,max:1024M",
        modules: vec![(&lab.vmlinuz, "console=hvc0 quiet"), (&initrd_file.0, "")],
    };
    say(&format!(
        "booting Xen + Linux dom0 for {}",
        names.join(", ")
    ));
    let machine = Machine::start(&boot)?;
    Ok(watch_plan(Box::new(machine), names, opts))
}

/// Where a boot's lines come from.
pub trait Lines {
    /// The next line, waiting until `deadline` at most.
    fn next_line(&mut self, deadline: Instant) -> Next;
    /// Waits up to `limit` for the source to end by itself, then stops it.
    fn finish(&mut self, limit: Duration);
    /// How the guests run, for the report (`kvm`, `tcg`, `xen host`).
    fn accel(&self) -> &'static str;
    /// The source in messages (`QEMU`, `the plan's shell`).
    fn what(&self) -> &'static str;
    /// The prefix of status lines (`lab`, `host`).
    fn label(&self) -> &'static str;
}

impl Lines for Machine {
    fn next_line(&mut self, deadline: Instant) -> Next {
        Machine::next_line(self, deadline)
    }
    fn finish(&mut self, limit: Duration) {
        Machine::finish(self, limit)
    }
    fn accel(&self) -> &'static str {
        self.accel
    }
    fn what(&self) -> &'static str {
        "QEMU"
    }
    fn label(&self) -> &'static str {
        "lab"
    }
}

/// Follows a plan's output (`dom0/lab.sh`'s markers and the guests'
/// prefixed lines) from `source` until `XENPV-DONE`, the source's end or a
/// timeout; `names` are the plan's guests.
pub fn watch_plan(source: Box<dyn Lines>, names: Vec<String>, opts: Options) -> Report {
    Watcher::new(source, names, opts, Mode::Domu).watch()
}

/// Removes initrds left by runs that were interrupted (Ctrl-C skips `Drop`).
fn remove_stale_initrds(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else {
        return;
    };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let pid = name
            .strip_prefix("initrd-")
            .and_then(|n| n.strip_suffix(".cpio"));
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Boots `image` directly as dom0 (no Linux): it prints with `console_io`
/// and its shutdown ends the machine.
pub fn boot_dom0(lab: &Lab, name: &str, image: &Path, opts: Options) -> Result<Report> {
    let boot = Boot {
        xen: &lab.xen,
        dom0_mem: "64M",
        modules: vec![(image, "")],
    };
    say(&format!("booting Xen with {name} as dom0"));
    let machine = Machine::start(&boot)?;
    Ok(Watcher::new(Box::new(machine), vec![name.to_string()], opts, Mode::Dom0).watch())
}

#[derive(PartialEq, Clone, Copy)]
enum Mode {
    /// Linux dom0 runs the plan and prints markers.
    Domu,
    /// The guest is dom0: every line not from Xen is its output.
    Dom0,
}

/// Follows one boot's output until the boot is over.
struct Watcher {
    machine: Box<dyn Lines>,
    names: Vec<String>,
    opts: Options,
    mode: Mode,
    report: Report,
    start: Instant,
    /// Xen's and Linux's recent lines, shown when something goes wrong.
    noise: VecDeque<String>,
    /// Set once the end is known: read what is left until then, then stop.
    wind_down: Option<Instant>,
}

impl Watcher {
    fn new(machine: Box<dyn Lines>, names: Vec<String>, opts: Options, mode: Mode) -> Watcher {
        let mut report = Report {
            order: names.clone(),
            accel: machine.accel(),
            ..Report::default()
        };
        for name in &names {
            report.guests.insert(name.clone(), GuestResult::default());
        }
        Watcher {
            machine,
            names,
            opts,
            mode,
            report,
            start: Instant::now(),
            noise: VecDeque::new(),
            wind_down: None,
        }
    }

    fn watch(mut self) -> Report {
        let overall = self.start + self.opts.overall;
        loop {
            let guest_deadline = self.guest_deadline();
            let mut deadline =
                overall.min(guest_deadline.as_ref().map(|(_, t)| *t).unwrap_or(overall));
            if let Some(end) = self.wind_down {
                deadline = deadline.min(end);
            }
            match self.machine.next_line(deadline) {
                Next::Line(line) => {
                    if self.handle(&line) {
                        break;
                    }
                }
                Next::Exited => {
                    if self.wind_down.is_none() && self.report.failure.is_none() {
                        let what = self.machine.what();
                        self.fail(match self.mode {
                            Mode::Domu => format!("{what} exited before dom0 reported XENPV-DONE"),
                            Mode::Dom0 => {
                                format!("{what} exited before Xen reported how dom0 ended")
                            }
                        });
                    }
                    break;
                }
                Next::Timeout => {
                    if self.wind_down.is_some_and(|end| Instant::now() >= end) {
                        break;
                    }
                    let message = if Instant::now() >= overall {
                        self.overall_timeout_message()
                    } else {
                        let (name, _) = guest_deadline.expect("a guest deadline passed");
                        format!(
                            "guest `{name}` hung: no shutdown within {} s of xl create, and dom0 did not report it either",
                            (self.opts.guest_timeout + HOST_SLACK).as_secs()
                        )
                    };
                    for name in self.unfinished() {
                        let g = self.report.guests.get_mut(&name).expect("known guest");
                        let started = g.started_host.is_some() || self.mode == Mode::Dom0;
                        g.reason = Some(if started { "timeout" } else { "not-started" }.into());
                    }
                    self.fail(message);
                    break;
                }
            }
        }
        // A Linux dom0 powers the machine off after XENPV-DONE; a failed boot
        // and a unikernel dom0 (Xen halts, QEMU stays up) are stopped at once.
        let clean_exit = self.report.failure.is_none() && self.mode == Mode::Domu;
        self.machine.finish(if clean_exit {
            WIND_DOWN
        } else {
            Duration::ZERO
        });
        self.report.wall = self.start.elapsed();
        if self.report.failure.is_some() || self.report.guests.values().any(|g| g.reason.is_none())
        {
            self.dump_noise();
        }
        self.report
    }

    /// Handles one line; true when the boot is over.
    fn handle(&mut self, line: &str) -> bool {
        if self.mode == Mode::Dom0 {
            return self.handle_dom0(line);
        }
        match markers::parse(line, &self.names) {
            Event::Guest { name, text } => self.guest_line(name, text),
            Event::Companion { name, text } => {
                println!("[dom0:{name}] {text}");
                self.report
                    .companion_output
                    .entry(name.to_string())
                    .or_default()
                    .push(text.to_string());
            }
            Event::Xl { name, text } => println!("[xl:{name}] {text}"),
            Event::Dom0Ready { uptime } => {
                self.report.dom0_ready = uptime;
                self.status(&format!("dom0 ready (dom0 uptime {})", secs(uptime)));
            }
            Event::Create { name, uptime } => {
                if let Some(g) = self.report.guests.get_mut(name) {
                    g.created = uptime;
                }
            }
            Event::Started {
                name,
                domid,
                uptime,
            } => {
                if let Some(g) = self.report.guests.get_mut(name) {
                    g.started_host = Some(Instant::now());
                    g.started = uptime;
                    let took = uptime
                        .zip(g.created)
                        .map(|(a, b)| format!(" ({:.2} s after xl create)", a - b));
                    self.status(&format!(
                        "{name} running as domain {domid}{}",
                        took.unwrap_or_default()
                    ));
                }
            }
            Event::FirstOutput { name, uptime } => {
                if let Some(g) = self.report.guests.get_mut(name) {
                    g.first_output = uptime;
                }
            }
            Event::GuestEnd {
                name,
                reason,
                uptime,
            } => {
                if let Some(g) = self.report.guests.get_mut(name) {
                    g.reason = Some(reason.to_string());
                    g.ended = uptime;
                }
                self.status(&format!("{name} ended: {reason}"));
            }
            Event::ExitCode { name, code } => {
                if let Some(g) = self.report.guests.get_mut(name) {
                    g.exit_code = Some(code);
                }
            }
            Event::CompanionEnd { name, status } => {
                self.report
                    .companions
                    .insert(name.to_string(), status.to_string());
                self.status(&format!("dom0 companion of {name}: {status}"));
            }
            Event::Error(message) => {
                self.status(&format!("dom0 error: {message}"));
                self.fail(format!("dom0 reported: {message}"));
                self.wind_down
                    .get_or_insert(Instant::now() + Duration::from_secs(5));
            }
            Event::Done => {
                self.status("dom0 done, powering off");
                return true;
            }
            Event::Noise(text) => self.noise_line(text),
        }
        false
    }

    fn handle_dom0(&mut self, line: &str) -> bool {
        let name = self.names[0].clone();
        if line.starts_with("(XEN)") || line.starts_with("qemu: ") {
            if let Some(reason) = markers::dom0_shutdown(line) {
                self.noise_line(line);
                let g = self.report.guests.get_mut(&name).expect("the dom0 guest");
                g.reason.get_or_insert(reason.to_string());
                self.status(&format!("{name} ended: {reason}"));
                // Xen halts (it does not power off): read its last words, then stop.
                self.wind_down
                    .get_or_insert(Instant::now() + Duration::from_millis(500));
            } else if markers::fatal(line) {
                self.noise_line(line);
                self.fail(format!("Xen panicked: {line}"));
                self.wind_down
                    .get_or_insert(Instant::now() + Duration::from_secs(2));
            } else {
                self.noise_line(line);
            }
            return false;
        }
        self.guest_line(&name, line);
        false
    }

    fn guest_line(&mut self, name: &str, text: &str) {
        if self.opts.bare_guest_lines {
            println!("{text}");
        } else {
            println!("[{name}] {text}");
        }
        if let Some(g) = self.report.guests.get_mut(name) {
            if g.first_output_wall.is_none() {
                g.first_output_wall = Some(self.start.elapsed());
            }
            g.output.push(text.to_string());
        }
    }

    fn noise_line(&mut self, text: &str) {
        if text.starts_with("qemu: ") {
            println!("{text}");
        } else if self.opts.verbose {
            println!("  | {text}");
        }
        if self.mode == Mode::Domu && markers::fatal(text) && self.report.failure.is_none() {
            self.fail(format!("the machine panicked: {text}"));
            self.wind_down
                .get_or_insert(Instant::now() + Duration::from_secs(3));
        }
        if self.noise.len() == 60 {
            self.noise.pop_front();
        }
        self.noise.push_back(text.to_string());
    }

    fn fail(&mut self, message: String) {
        self.report.failure.get_or_insert(message);
    }

    fn status(&self, message: &str) {
        eprintln!(
            "{} [{:6.1} s] {message}",
            self.machine.label(),
            self.start.elapsed().as_secs_f64()
        );
    }

    /// The started guest whose host-side deadline comes first.
    fn guest_deadline(&self) -> Option<(String, Instant)> {
        self.report
            .guests
            .iter()
            .filter(|(_, g)| g.reason.is_none())
            .filter_map(|(n, g)| {
                Some((
                    n.clone(),
                    g.started_host? + self.opts.guest_timeout + HOST_SLACK,
                ))
            })
            .min_by_key(|(_, t)| *t)
    }

    fn unfinished(&self) -> Vec<String> {
        self.report
            .order
            .iter()
            .filter(|n| self.report.guests[*n].reason.is_none())
            .cloned()
            .collect()
    }

    fn overall_timeout_message(&self) -> String {
        let limit = self.opts.overall.as_secs();
        let running: Vec<String> = self
            .unfinished()
            .into_iter()
            .filter(|n| self.report.guests[n].started_host.is_some() || self.mode == Mode::Dom0)
            .collect();
        if !running.is_empty() {
            format!(
                "timed out after {limit} s: guest(s) {} still running (hung?)",
                running.join(", ")
            )
        } else if self.mode == Mode::Domu && self.report.dom0_ready.is_none() {
            format!("timed out after {limit} s before dom0 was ready (Xen or Linux did not boot)")
        } else {
            format!(
                "timed out after {limit} s; not finished: {}",
                self.unfinished().join(", ")
            )
        }
    }

    fn dump_noise(&self) {
        if self.opts.verbose || self.noise.is_empty() {
            return;
        }
        eprintln!(
            "{}: the last {} lines that were not the guests' (all of them with --verbose):",
            self.machine.label(),
            self.noise.len()
        );
        for line in &self.noise {
            eprintln!("  | {line}");
        }
    }
}

fn secs(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1} s"))
        .unwrap_or_else(|| "?".into())
}

fn say(message: &str) {
    eprintln!("lab: {message}");
}

/// One line per guest: how it ended and how long it took to start talking.
pub fn print_summary(report: &Report) {
    println!(
        "lab: boot took {:.1} s wall ({})",
        report.wall.as_secs_f64(),
        report.accel
    );
    for name in &report.order {
        let g = &report.guests[name];
        let mut line = format!(
            "  {name:<20} {:<12}",
            g.reason.as_deref().unwrap_or("no report")
        );
        if let Some(timeline) = g.timeline() {
            line.push_str(&format!(" {timeline}"));
        }
        if let Some(t) = g.first_output_wall {
            line.push_str(&format!(
                " (first line {:.1} s after QEMU started)",
                t.as_secs_f64()
            ));
        }
        println!("{line}");
    }
    for (name, status) in &report.companions {
        println!("  dom0:{name:<15} {status}");
    }
    if let Some(failure) = &report.failure {
        println!("lab: FAILED: {failure}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines given in advance, then the end.
    struct Script(VecDeque<String>);

    impl Lines for Script {
        fn next_line(&mut self, _deadline: Instant) -> Next {
            match self.0.pop_front() {
                Some(line) => Next::Line(line),
                None => Next::Exited,
            }
        }
        fn finish(&mut self, _limit: Duration) {}
        fn accel(&self) -> &'static str {
            "script"
        }
        fn what(&self) -> &'static str {
            "the script"
        }
        fn label(&self) -> &'static str {
            "test"
        }
    }

    fn watch(lines: &[&str]) -> Report {
        let source = Script(lines.iter().map(|l| l.to_string()).collect());
        let opts = Options {
            verbose: false,
            overall: Duration::from_secs(60),
            guest_timeout: Duration::from_secs(30),
            bare_guest_lines: false,
        };
        watch_plan(Box::new(source), vec!["app".into(), "peer".into()], opts)
    }

    #[test]
    fn a_plan_output_becomes_a_report() {
        let report = watch(&[
            "XENPV-CREATE app 1.00",
            "XENPV-STARTED app 3 1.50",
            "XENPV-FIRST-OUTPUT app 1.75",
            "[app] hello",
            "[peer] not a line of app",
            "[dom0:app] companion says",
            "some noise",
            "XENPV-EXIT app 3",
            "XENPV-GUEST app poweroff 2.00",
            "XENPV-GUEST peer crash 2.10",
            "XENPV-COMPANION app exit 0",
            "XENPV-DONE",
        ]);
        assert_eq!(report.failure, None);
        let app = &report.guests["app"];
        assert_eq!(app.reason.as_deref(), Some("poweroff"));
        assert_eq!(app.exit_code, Some(3));
        assert_eq!(app.output, ["hello"]);
        assert_eq!((app.created, app.started), (Some(1.0), Some(1.5)));
        assert_eq!(report.guests["peer"].output, ["not a line of app"]);
        assert_eq!(report.guests["peer"].reason.as_deref(), Some("crash"));
        assert_eq!(report.companions["app"], "exit 0");
        assert_eq!(report.companion_output["app"], ["companion says"]);
        assert_eq!(report.accel, "script");
    }

    #[test]
    fn a_source_that_ends_early_fails_the_boot() {
        let report = watch(&["XENPV-STARTED app 3 1.50", "[app] hello"]);
        let failure = report.failure.expect("a failure");
        assert!(failure.contains("the script exited before"), "{failure}");
        assert_eq!(report.guests["app"].reason, None);
    }
}
