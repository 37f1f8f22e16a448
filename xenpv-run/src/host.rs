//! Running on a real Xen host (this machine is dom0 with `xl`): the run's
//! payload ([`payload::write_dir`]: images, rewritten cfgs, dom0 scripts,
//! the plan and `dom0/lab.sh`) goes to a folder of its own, and the host
//! runs the same plan with the same `lab.sh` that the lab's dom0 runs, with
//! `/bin/sh`. Its output (the guests' prefixed console lines and the
//! `XENPV-...` markers) is parsed by the same [`boot::watch_plan`] into the
//! same [`Report`]. So creating the guests paused, telling them their
//! peers, following their consoles, reading how each ended (`xl list -v`,
//! the exit code in xenstore) and destroying them is one implementation,
//! the one the lab tests.
//!
//! Two settings differ from the lab (see `lab.sh`): the state folder is the
//! run's own (`XENPV_STATE`), so runs on one host do not collide, and the
//! consoles are read from the ptys xenconsoled gives the guests, the ones
//! `xl console` attaches to (`XENPV_CONSOLE=pty`), as a host's xenconsoled
//! usually keeps no guest logs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::boot::{self, Lines, Options, Report};
use crate::payload::{self, Plan};
use crate::qemu::Next;

/// Runs `plan` on this host and reports how each guest ended.
pub fn run(plan: &Plan, opts: Options) -> Result<Report> {
    let dir = RunDir::create()?;
    payload::write_dir(plan, &dir.0)?;
    let shell = Shell::start(&dir.0)?;
    let names: Vec<String> = plan.guests().map(|g| g.name.clone()).collect();
    let report = boot::watch_plan(Box::new(shell), names.clone(), opts);
    if report.failure.is_some() {
        // The plan's shell was stopped before it destroyed every guest.
        for name in &names {
            let _ = Command::new("xl")
                .args(["destroy", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    Ok(report)
}

/// The run's folder, removed when the run is over.
struct RunDir(PathBuf);

impl RunDir {
    fn create() -> Result<RunDir> {
        let dir = std::env::temp_dir().join(format!("xenpv-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(RunDir(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `/bin/sh DIR/plan` in its own process group, its output as lines: stdout
/// (the plan's markers and guest lines) and stderr (what its commands
/// complain about, shown as noise) merged.
struct Shell {
    child: Child,
    lines: Receiver<String>,
}

impl Shell {
    fn start(dir: &Path) -> Result<Shell> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(". \"$0/plan\"; echo XENPV-DONE")
            .arg(dir)
            .env("XENPV_STATE", dir.join("state"))
            .env("XENPV_CONSOLE", "pty")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("starting /bin/sh for the run's plan")?;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                    if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Shell { child, lines })
    }

    /// Ends the plan's shell and everything it started in its group.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", self.child.id())])
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Lines for Shell {
    fn next_line(&mut self, deadline: Instant) -> Next {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok(line) => Next::Line(line),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Exited,
        }
    }

    fn finish(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    fn accel(&self) -> &'static str {
        "xen host"
    }

    fn what(&self) -> &'static str {
        "the plan's shell"
    }

    fn label(&self) -> &'static str {
        "host"
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Guest;

    /// A toolstack in shell (`xl`, `xenstore-*`) over files in `state`: a
    /// guest's image is a shell script that `xl unpause` runs, its output
    /// going to a FIFO named as its console/tty; its exit status is the
    /// shutdown code (3: a crash).
    /// Enough of the commands and of `xl list -v`'s columns for lab.sh.
    const FAKE_XL: &str = r#"#!/bin/sh
F=@STATE@
cmd=$1
shift
case $cmd in
create)
    [ "$1" = -p ] && shift
    [ "$1" = -q ] && shift
    grep -q '^on_crash = "preserve"$' "$1" || { echo "cfg not rewritten" >&2; exit 1; }
    name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$1")
    n=$(cat "$F/next" 2>/dev/null || echo 1)
    echo $((n + 1)) > "$F/next"
    echo "$n" > "$F/$name.domid"
    sed -n 's/^kernel = "\(.*\)"$/\1/p' "$1" > "$F/$name.kernel"
    mkfifo "$F/$name.tty"
    mkdir -p "$F/xs"
    printf %s "$F/$name.tty" > "$F/xs/_local_domain_${n}_console_tty" ;;
domid) cat "$F/$1.domid" ;;
unpause)
    (DOMID=$(cat "$F/$1.domid") /bin/sh "$(cat "$F/$1.kernel")" > "$F/$1.tty" 2>&1
     echo $? > "$F/$1.ended") > /dev/null 2>&1 & ;;
list)
    echo "Name ID Mem VCPUs State Time(s) UUID Reason-Code Security Label"
    for f in "$F"/*.domid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .domid)
        state=-b---- code=-
        if [ -f "$F/$name.ended" ]; then
            code=$(cat "$F/$name.ended")
            state=---s--
            [ "$code" = 3 ] && state=---sc-
        fi
        echo "$name $(cat "$f") 32 1 $state 0.1 00000000-0000-0000-0000-000000000000 $code -"
    done ;;
destroy)
    [ -f "$F/$1.domid" ] || exit 1
    rm -f "$F/$1.domid" "$F/$1.kernel" "$F/$1.ended" "$F/$1.tty"
    echo "$1" >> "$F/destroyed" ;;
*) echo "fake xl: $cmd?" >&2; exit 1 ;;
esac
"#;

    const FAKE_XS_WRITE: &str =
        "#!/bin/sh\nmkdir -p @STATE@/xs\nprintf %s \"$2\" > \"@STATE@/xs/$(echo \"$1\" | tr / _)\"\n";
    const FAKE_XS_READ: &str =
        "#!/bin/sh\ncat \"@STATE@/xs/$(echo \"$1\" | tr / _)\" 2>/dev/null\n";

    fn guest(name: &str, image: PathBuf, companion: Option<&str>) -> Guest {
        Guest {
            name: name.into(),
            image,
            cfg: format!("name = \"{name}\"\ntype = \"pv\"\nmemory = 32\n"),
            companion: companion.map(String::from),
            pre_create: None,
            ramdisk: None,
        }
    }

    #[test]
    fn the_plan_runs_on_a_host_through_lab_sh() {
        let dir = std::env::temp_dir().join(format!("xenpv-host-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("toolstack");
        std::fs::create_dir_all(&state).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            let text = text.replace("@STATE@", state.to_str().unwrap());
            std::fs::write(&path, text).unwrap();
            path
        };
        let tools = vec![
            ("xl".to_string(), write("fake-xl", FAKE_XL)),
            ("xenstore-write".into(), write("xsw", FAKE_XS_WRITE)),
            ("xenstore-read".into(), write("xsr", FAKE_XS_READ)),
            ("xenstore-chmod".into(), write("xsc", "#!/bin/sh\nexit 0\n")),
            ("xenstore-watch".into(), write("xsx", "#!/bin/sh\nexit 1\n")),
        ];
        let app = write(
            "app.img",
            "echo \"app up as $DOMID\"\n\
             echo \"peer is $(xenstore-read /local/domain/$DOMID/data/peers/peer)\"\n\
             xenstore-write /local/domain/$DOMID/data/xenpv-exit-code 3\n",
        );
        let peer = write("peer.img", "echo 'peer up'\nexit 3\n");
        let plan = Plan {
            groups: vec![vec![
                guest(
                    "app",
                    app,
                    Some("echo \"companion sees app as $DOMID_app\"\n"),
                ),
                guest("peer", peer, None),
            ]],
            guest_timeout: Duration::from_secs(20),
            tools,
            announce_peers: true,
        };
        let opts = Options {
            verbose: false,
            overall: Duration::from_secs(60),
            guest_timeout: plan.guest_timeout,
            bare_guest_lines: false,
        };
        let report = run(&plan, opts).unwrap();
        assert_eq!(report.failure, None);
        let app = &report.guests["app"];
        assert_eq!(app.reason.as_deref(), Some("poweroff"));
        assert_eq!(app.exit_code, Some(3));
        assert_eq!(app.output, ["app up as 1", "peer is 2"]);
        let peer = &report.guests["peer"];
        assert_eq!(peer.reason.as_deref(), Some("crash"));
        assert_eq!(peer.output, ["peer up"]);
        assert_eq!(report.companions["app"], "exit 0");
        assert_eq!(report.companion_output["app"], ["companion sees app as 1"]);
        // Both were destroyed by lab.sh, and the run's folder is gone.
        let destroyed = std::fs::read_to_string(state.join("destroyed")).unwrap();
        let mut destroyed: Vec<&str> = destroyed.lines().collect();
        destroyed.sort();
        assert_eq!(destroyed, ["app", "peer"]);
        let run_dir = std::env::temp_dir().join(format!("xenpv-run-{}", std::process::id()));
        assert!(!run_dir.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
