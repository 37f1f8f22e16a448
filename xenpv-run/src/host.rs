//! Running on a real Xen host (this machine is dom0 with `xl`): each guest
//! is `xl create`d from a generated config, its console followed with
//! `xl console`, and its end read from `xl list -v`, like the lab's dom0
//! does (`dom0/lab.sh`). The exit code comes from the guest's xenstore
//! `data/xenpv-exit-code`, read before the domain is destroyed.
//!
//! Not exercised by xenpv's own tests (the lab has no nested Xen host);
//! the state and reason parsing below is shared with nothing else and
//! unit-tested.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::plan::{Outcome, Run, RunPlan};
use crate::util::{self, command};

/// A guest's state from one `xl list -v` output: `running`, `gone` or the
/// shutdown reason (`poweroff`, `crash`, ...).
pub fn guest_state(list: &str, name: &str) -> String {
    let Some(cols) = list
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|c| c.first() == Some(&name))
    else {
        return "gone".into();
    };
    let state = cols.get(4).copied().unwrap_or("");
    if !state.contains(['s', 'c']) {
        return "running".into();
    }
    if state.contains('c') {
        return "crash".into();
    }
    const NAMES: [&str; 6] = [
        "poweroff",
        "reboot",
        "suspend",
        "crash",
        "watchdog",
        "soft_reset",
    ];
    match cols.get(7).and_then(|c| c.parse::<usize>().ok()) {
        Some(code) if code < NAMES.len() => NAMES[code].into(),
        code => format!(
            "shutdown-{}",
            code.map(|c| c.to_string()).unwrap_or_default()
        ),
    }
}

struct Running {
    name: String,
    domid: String,
    console: Option<Child>,
    /// The console's last resume line (crate::resume), if it printed one.
    resume_line: Arc<Mutex<Option<String>>>,
    started: Instant,
}

/// Creates every guest of `plan`, waits for each to end, and returns how each ended.
pub fn run(plan: &RunPlan, verbose: bool) -> Result<Run> {
    if plan.dom0_script.is_some() {
        bail!("a dom0 script runs in the lab's dom0 only; on a Xen host, run it yourself");
    }
    let dir = std::env::temp_dir().join(format!("xenpv-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut running = Vec::new();
    for g in &plan.guests {
        let mut cfg = g.xl_config();
        for key in [
            "on_poweroff",
            "on_reboot",
            "on_crash",
            "on_watchdog",
            "on_soft_reset",
        ] {
            cfg.push_str(&format!("{key} = \"preserve\"\n"));
        }
        let path = dir.join(format!("{}.cfg", g.name));
        std::fs::write(&path, cfg)?;
        util::run_captured(
            &mut command("xl", ["create".as_ref(), "-p".as_ref(), path.as_os_str()]),
            Duration::from_secs(60),
        )
        .with_context(|| format!("xl create for `{}`", g.name))?;
        let domid = util::run_captured(
            &mut command("xl", ["domid", &g.name]),
            Duration::from_secs(10),
        )?
        .stdout
        .trim()
        .to_string();
        running.push(Running {
            name: g.name.clone(),
            domid,
            console: None,
            resume_line: Arc::default(),
            started: Instant::now(),
        });
    }
    // Each guest learns the others' domain ids (see the runner's docs).
    for r in &running {
        let home = format!("/local/domain/{}/data/peers", r.domid);
        for other in running.iter().filter(|o| o.name != r.name) {
            util::run_captured(
                &mut command(
                    "xenstore-write",
                    [format!("{home}/{}", other.name), other.domid.clone()],
                ),
                Duration::from_secs(10),
            )?;
        }
        if running.len() > 1 {
            util::run_captured(
                &mut command(
                    "xenstore-chmod",
                    ["-r".to_string(), home, format!("n{}", r.domid)],
                ),
                Duration::from_secs(10),
            )?;
        }
    }
    for r in &mut running {
        r.console = follow_console(
            &r.name,
            plan.guests.len() == 1,
            verbose,
            Arc::clone(&r.resume_line),
        );
        util::run_captured(
            &mut command("xl", ["unpause", &r.name]),
            Duration::from_secs(30),
        )?;
        r.started = Instant::now();
    }
    let mut outcomes = vec![Outcome::default(); running.len()];
    let mut pending: Vec<usize> = (0..running.len()).collect();
    while !pending.is_empty() {
        let list =
            util::run_captured(&mut command("xl", ["list", "-v"]), Duration::from_secs(10))?.stdout;
        pending.retain(|&i| {
            let r = &mut running[i];
            let mut state = guest_state(&list, &r.name);
            if state == "running" {
                if r.started.elapsed() < plan.timeout {
                    return true;
                }
                state = "timeout".into();
            }
            let code = util::run_captured(
                &mut command(
                    "xenstore-read",
                    [format!("/local/domain/{}/data/xenpv-exit-code", r.domid)],
                ),
                Duration::from_secs(10),
            )
            .ok()
            .and_then(|o| o.stdout.trim().parse().ok());
            // Let the console reader drain, then stop it with the domain.
            std::thread::sleep(Duration::from_millis(300));
            let _ = util::run_captured(
                &mut command("xl", ["destroy", &r.name]),
                Duration::from_secs(30),
            );
            if let Some(mut c) = r.console.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let line = r.resume_line.lock().ok().and_then(|l| l.clone());
            outcomes[i] = Outcome {
                reason: Some(state),
                exit_code: code,
                resume: line.and_then(|l| crate::resume::requested(&[l])),
            };
            false
        });
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        outcomes,
        script: None,
    })
}

/// `xl console NAME`, its lines printed as they come (prefixed with the
/// name when several guests run); the last resume line is kept in
/// `resume_line`.
fn follow_console(
    name: &str,
    bare: bool,
    verbose: bool,
    resume_line: Arc<Mutex<Option<String>>>,
) -> Option<Child> {
    let mut child = Command::new("xl")
        .args(["console", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if verbose {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let prefix = if bare {
        String::new()
    } else {
        format!("[{name}] ")
    };
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            let line = line.trim_end_matches('\r');
            println!("{prefix}{line}");
            if line.contains(crate::resume::RESUME_LINE) {
                if let Ok(mut kept) = resume_line.lock() {
                    *kept = Some(line.to_string());
                }
            }
        }
    });
    Some(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label
Domain-0                                     0  1024     2     r-----      10.0 00000000-0000-0000-0000-000000000000        -                -
app                                          3    32     1     ---s--       0.1 11111111-0000-0000-0000-000000000000        0                -
bad                                          4    32     1     ---sc-       0.1 22222222-0000-0000-0000-000000000000        3                -
odd                                          5    32     1     ---s--       0.1 33333333-0000-0000-0000-000000000000        9                -
busy                                         6    32     1     -b----       0.1 44444444-0000-0000-0000-000000000000        -                -
";

    #[test]
    fn states_from_xl_list() {
        assert_eq!(guest_state(LIST, "app"), "poweroff");
        assert_eq!(guest_state(LIST, "bad"), "crash");
        assert_eq!(guest_state(LIST, "odd"), "shutdown-9");
        assert_eq!(guest_state(LIST, "busy"), "running");
        assert_eq!(guest_state(LIST, "nobody"), "gone");
    }
}
