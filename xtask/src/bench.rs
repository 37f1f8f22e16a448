//! `cargo xtask bench [--quick]`: every benchmark in one run, each figure
//! next to the reference measured in the same run, written to
//! BENCHMARKS.md. It is a benchmark, not a test: it fails only when a
//! guest fails, never on a number.
//!
//! One Xen boot runs, one group after another: the boot-time guests
//! (hello at 4 and 3 MiB, a Linux PV guest made of the dom0 kernel),
//! the in-guest grant benchmark, the ring pair at every order and
//! write size, a ring example against Xen's libxenvchan in dom0
//! (`vchan-bench`) in each direction at every order, and network and disk
//! figures of xenpv guests (`tests/xen/bench/net_bench.rs`, `blk_bench.rs`)
//! next to a Linux PV guest doing the same (the lab's guest initramfs with
//! `tests/xen/bench/linux_bench.sh`), taking turns. The host part runs
//! `cargo bench --bench ring`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::images::Profile;
use crate::run::{example_guest, read_example_cfg};
use crate::util::{self, run_captured};
use xenpv_run::boot::{boot_domu, GuestResult, Options, Report};
use xenpv_run::lab::{self, Lab};
use xenpv_run::payload::{Guest, Plan};
use xenpv_test_support::rounds::Spread;

const ORDERS: [u32; 4] = [10, 12, 16, 20];
const CHUNKS: [usize; 2] = [64, 65536];

/// Rounds of every ring run, guest to guest and with dom0: each figure is
/// min / median / max over them (`xenpv_test_support::rounds`).
const RING_ROUNDS: usize = 5;

/// `cargo xtask bench [--quick]`.
pub fn cmd_bench(quick: bool) -> Result<()> {
    let started = Instant::now();
    let load_before = loadavg();
    println!("xtask bench: host ring benchmark");
    let mut host = host_bench("ring", quick)?;
    println!("xtask bench: host grant benchmark");
    host.extend(host_bench("grant", quick)?);

    xenpv_run::qemu::check_installed()?;
    let names: Vec<String> = [
        "hello",
        "bench_grant",
        "ring_producer",
        "ring_consumer",
        "net_bench",
        "blk_bench",
        "http_server",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let built = crate::cases::build_guests(&names, Profile::Release)?;
    let image = |n: &str| {
        built[names.iter().position(|x| x == n).unwrap_or(0)]
            .image
            .clone()
    };
    let lab = lab::ensure()?;

    // The grant bench first, before the Linux guest. Sharing one page
    // (median) read 7.5 us after it, 5.5 and 5.1 us first, 3.0 us in a
    // lab of its own: the order helps a little; the rest is the host.
    let mut groups = vec![
        vec![example_guest("bench_grant", &image("bench_grant"))?],
        vec![with_memory(
            example_guest("hello", &image("hello"))?,
            "hello_4m",
            4,
        )],
        vec![with_memory(
            example_guest("hello", &image("hello"))?,
            "hello_3m",
            3,
        )],
        vec![linux_guest(&lab)],
        ring_pair(
            &image("ring_producer"),
            &image("ring_consumer"),
            "rmin",
            10,
            65536,
            1 << 18,
            4,
            true,
        )?,
    ];
    for order in ORDERS {
        for chunk in CHUNKS {
            // Per round.
            let bytes: u64 = match (chunk, quick) {
                (64, true) => 256 << 10,
                (64, false) => 2 << 20,
                (_, true) => 4 << 20,
                (_, false) => 16 << 20,
            };
            groups.push(ring_pair(
                &image("ring_producer"),
                &image("ring_consumer"),
                &format!("o{order}c{chunk}"),
                order,
                chunk,
                bytes,
                32,
                false,
            )?);
        }
        // The same stream generated and checked on both sides, to set next
        // to libxenvchan's checked runs below.
        let bytes: u64 = if quick { 2 << 20 } else { 8 << 20 };
        groups.push(ring_pair(
            &image("ring_producer"),
            &image("ring_consumer"),
            &format!("k{order}"),
            order,
            DOM0_CHUNK,
            bytes,
            32,
            true,
        )?);
    }
    groups.extend(dom0_vchan_groups(
        &image("ring_producer"),
        &image("ring_consumer"),
        quick,
    )?);
    let io = IoParams::new(quick);
    groups.extend(io_groups(
        &lab,
        &io,
        &image("net_bench"),
        &image("blk_bench"),
    )?);
    let tools = crate::dom0_tools::for_groups(&groups)?;
    let plan = Plan {
        groups,
        guest_timeout: Duration::from_secs(300),
        tools,
        announce_peers: false,
    };
    let opts = Options {
        verbose: false,
        overall: Duration::from_secs(3600),
        guest_timeout: plan.guest_timeout,
        bare_guest_lines: false,
    };
    let report = boot_domu(&lab, &plan, opts)?;
    xenpv_run::boot::print_summary(&report);
    if let Some(f) = &report.failure {
        bail!("the benchmark boot failed: {f}");
    }
    let built_images: Vec<std::path::PathBuf> = built.iter().map(|g| g.image.clone()).collect();
    let load = format!("{} at the start, {} at the end", load_before, loadavg());
    let mut md = render(
        &report,
        &host,
        &built_images,
        &lab,
        quick,
        started.elapsed(),
        &load,
    )?;
    render_io(&mut md, &report, &io, &built_images);
    let out = util::repo_root().join("BENCHMARKS.md");
    fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    println!("xtask bench: wrote {}", out.display());
    Ok(())
}

/// Runs host benchmark `name` (`benches/<name>.rs`) and returns its figure lines.
fn host_bench(name: &str, quick: bool) -> Result<Vec<String>> {
    let mut cmd = util::cargo();
    cmd.current_dir(util::repo_root()).args([
        "bench",
        "-q",
        "-p",
        "xenpv",
        "--bench",
        name,
        "--features",
        "host-fakes",
        "--",
    ]);
    if quick {
        cmd.arg("--quick");
    }
    let out = run_captured(&mut cmd, Duration::from_secs(1800))?;
    Ok(out
        .stdout
        .lines()
        .filter(|l| l.starts_with("host "))
        .map(str::to_string)
        .collect())
}

/// The same guest under another name with another `memory=`.
fn with_memory(mut g: Guest, name: &str, mib: u32) -> Guest {
    g.name = name.into();
    g.cfg = set_line(&g.cfg, "memory", &mib.to_string());
    g
}

/// Replaces (or adds) `key = value` in an xl config.
fn set_line(cfg: &str, key: &str, value: &str) -> String {
    let mut out: Vec<String> = cfg
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with(&format!("{key} "))
                && !l.trim_start().starts_with(&format!("{key}="))
        })
        .map(str::to_string)
        .collect();
    out.push(format!("{key} = {value}"));
    out.join("\n") + "\n"
}

/// A Linux PV guest: the lab's dom0 kernel, no root file system; it prints
/// its boot log and panics into a reboot (`panic=-1`). Only the time to its
/// first console line is measured.
fn linux_guest(lab: &Lab) -> Guest {
    Guest {
        name: "linux".into(),
        image: lab.vmlinuz.clone(),
        cfg: "name = \"linux\"\ntype = \"pv\"\nkernel = \"vmlinuz\"\nmemory = 128\nextra = \"console=hvc0 panic=-1\"\n".into(),
        companion: None,
        pre_create: None,
        ramdisk: None,
    }
}

// ---- Network and disk next to a Linux PV guest (issue 13) ----
//
// `blk_bench` and `net_bench` (tests/xen/bench/) against dom0's
// xen-blkback and xen-netback, and `linux_bench`, the dom0 kernel booted
// as a PV domU with the lab's guest initramfs and tests/xen/bench/linux_bench.sh
// as its /guest.sh, doing the same with busybox. Each guest has a group of
// its own; dom0's side of the network runs is tests/xen/bench/net_client.dom0.sh
// for both. The figures come from console lines `<guest>: block write|read
// run N: B bytes in T ns` and companion lines `sink|source run N: B bytes
// in S s` and `ping: round-trip min/avg/max = a/b/c ms`.

/// Sizes and repetitions of the network and disk runs: `rounds` times
/// the three groups (xenpv disk, xenpv network, Linux), each guest doing
/// `runs` runs of everything, so that the two guests take turns.
struct IoParams {
    rounds: u32,
    runs: u32,
    net_bytes: u64,
    disk_bytes: u64,
}

/// Bytes per call of the disk runs (xenpv's read/write calls, Linux's dd `bs=`).
const DISK_CHUNKS: [u64; 2] = [65536, 1 << 20];

impl IoParams {
    fn new(quick: bool) -> Self {
        if quick {
            IoParams {
                rounds: 1,
                runs: 1,
                net_bytes: 2 << 20,
                disk_bytes: 8 << 20,
            }
        } else {
            IoParams {
                rounds: 2,
                runs: 2,
                net_bytes: 4 << 20,
                disk_bytes: 32 << 20,
            }
        }
    }

    /// The guests' names in round `r` (from 1).
    fn names(&self, base: &str) -> Vec<String> {
        (1..=self.rounds).map(|r| format!("{base}_{r}")).collect()
    }
}

const XENPV_IP: &str = "10.0.7.20";
const LINUX_IP: &str = "10.0.7.21";

fn bench_file(name: &str) -> Result<String> {
    let path = util::repo_root().join("tests/xen/bench").join(name);
    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The pre-create script making a zeroed raw image of `bytes` for `name`.
fn make_image(name: &str, bytes: u64) -> String {
    format!(
        "rm -f /tmp/*_bench.img\ndd if=/dev/zero of=/tmp/{name}.img bs=65536 count={} 2>/dev/null || exit 1\necho \"image: $(wc -c < /tmp/{name}.img) bytes\"\n",
        bytes / 65536
    )
}

fn net_companion(name: &str, ip: &str, io: &IoParams) -> Result<String> {
    Ok(format!(
        "NAME={name}
IP={ip}
BYTES={}
RUNS={}
{}",
        io.net_bytes,
        io.runs,
        bench_file("net_client.dom0.sh")?
    ))
}

/// The groups, `io.rounds` times: xenpv's block guest, xenpv's network
/// guest, the Linux guest doing both.
fn io_groups(
    lab: &Lab,
    io: &IoParams,
    net: &std::path::Path,
    blk: &std::path::Path,
) -> Result<Vec<Vec<Guest>>> {
    // The lab's guest initramfs with /guest.sh appended as a second archive.
    let chunks: Vec<String> = DISK_CHUNKS.iter().map(u64::to_string).collect();
    let mut extra = xenpv_run::cpio::Archive::new();
    let script = format!(
        "IP={LINUX_IP}\nBYTES={}\nRUNS={}\nDISK_BYTES={}\nCHUNKS=\"{}\"\n{}",
        io.net_bytes,
        io.runs,
        io.disk_bytes,
        chunks.join(" "),
        bench_file("linux_bench.sh")?
    );
    extra.file("guest.sh", 0o755, script.as_bytes());
    let mut ramdisk = fs::read(&lab.linux_guest_cpio)
        .with_context(|| format!("reading {}", lab.linux_guest_cpio.display()))?;
    ramdisk.extend(extra.finish());
    let path = util::target_dir().join("bench-linux-guest.cpio");
    fs::write(&path, ramdisk).with_context(|| format!("writing {}", path.display()))?;

    let mut groups = Vec::new();
    for r in 0..io.rounds as usize {
        let mut b = example_guest("blk_bench", blk)?;
        b.name = io.names("blk_bench")[r].clone();
        b.cfg = set_line(
            &b.cfg,
            "extra",
            &format!("\"runs={} chunks={}\"", io.runs, chunks.join(",")),
        );
        b.pre_create = Some(make_image("blk_bench", io.disk_bytes));
        let mut n = example_guest("net_bench", net)?;
        n.name = io.names("net_bench")[r].clone();
        n.cfg = set_line(
            &n.cfg,
            "extra",
            &format!("\"runs={} bytes={}\"", io.runs, io.net_bytes),
        );
        n.companion = Some(net_companion(&n.name, XENPV_IP, io)?);
        let name = io.names("linux_bench")[r].clone();
        let l = Guest {
            image: lab.vmlinuz.clone(),
            cfg: format!(
                "type = \"pv\"\nmemory = 128\nvcpus = 1\nextra = \"console=hvc0 quiet panic=-1\"\n\
                 vif = ['bridge=xenbr0,mac=00:16:3e:00:00:15,ip={LINUX_IP}']\n\
                 disk = ['format=raw,vdev=xvda,access=rw,target=/tmp/linux_bench.img']\n"
            ),
            companion: Some(net_companion(&name, LINUX_IP, io)?),
            pre_create: Some(make_image("linux_bench", io.disk_bytes)),
            ramdisk: Some(path.clone()),
            name,
        };
        groups.extend([vec![b], vec![n], vec![l]]);
    }
    Ok(groups)
}

/// min/median/max of `v` formatted with `f`, or "failed".
fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    if v.is_empty() {
        return "failed".into();
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.len() == 1 {
        return f(v[0]);
    }
    format!("{} / {} / {}", f(v[0]), f(median(&v)), f(v[v.len() - 1]))
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// (bytes, time) of a line `... run N: B bytes in T ...`.
fn run_figure(line: &str) -> Option<(f64, f64)> {
    let rest = &line[line.find(" run ")? + 5..];
    let rest = &rest[rest.find(": ")? + 2..];
    Some((
        rest.split_whitespace().next()?.parse().ok()?,
        number_after(rest, "bytes in")?,
    ))
}

/// MiB/s of each `block <what> run N: B bytes in T ns, C-byte requests`
/// console line of the guests `names`.
fn block_rates(report: &Report, names: &[String], what: &str, chunk: u64) -> Vec<f64> {
    names
        .iter()
        .filter_map(|n| guest(report, n))
        .flat_map(|g| g.output.iter())
        .filter(|l| {
            l.contains(&format!("block {what} run "))
                && l.contains(&format!(" {chunk}-byte requests"))
        })
        .filter_map(|l| run_figure(l))
        .map(|(bytes, ns)| bytes / MIB / (ns / 1e9))
        .collect()
}

/// MiB/s of each `<what> run N: B bytes in S s` line of the companions of `names`.
fn net_rates(report: &Report, names: &[String], what: &str) -> Vec<f64> {
    names
        .iter()
        .filter_map(|n| report.companion_output.get(n))
        .flatten()
        .filter(|l| l.starts_with(&format!("{what} run ")))
        .filter_map(|l| run_figure(l))
        .map(|(bytes, s)| bytes / MIB / s)
        .collect()
}

/// Every ping round-trip time (ms) of the companions of `names`, from
/// their `ping times: a b c ...` lines.
fn ping_times(report: &Report, names: &[String]) -> Vec<f64> {
    names
        .iter()
        .filter_map(|n| report.companion_output.get(n))
        .flatten()
        .filter_map(|l| l.strip_prefix("ping times:"))
        .flat_map(|l| {
            l.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect::<Vec<f64>>()
        })
        .collect()
}

/// " Its eth0 counters: ..." from the Linux guests' `/proc/net/dev` line
/// (` eth0: rx-bytes rx-packets ... tx-bytes tx-packets ...`), or "".
fn linux_packet_sizes(report: &Report, names: &[String]) -> String {
    let (mut rx, mut rxp, mut tx, mut txp) = (0u64, 0u64, 0u64, 0u64);
    for g in names.iter().filter_map(|n| guest(report, n)) {
        for l in g
            .output
            .iter()
            .filter_map(|l| l.split_once("eth0:").map(|(_, r)| r))
        {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() >= 10 {
                (rx, rxp, tx, txp) = (rx + f[0], rxp + f[1], tx + f[8], txp + f[9]);
            }
        }
    }
    if rxp == 0 || txp == 0 {
        return String::new();
    }
    format!(" In this run the Linux guest's eth0 averaged {} bytes per received and {} bytes per sent packet (GRO/GSO packets count once).", rx / rxp, tx / txp)
}

fn render_io(md: &mut String, report: &Report, io: &IoParams, built: &[std::path::PathBuf]) {
    let (blk, net, linux) = (
        io.names("blk_bench"),
        io.names("net_bench"),
        io.names("linux_bench"),
    );
    let runs = io.rounds * io.runs;
    let _ = writeln!(md, "\n## Network and disk, next to a Linux PV guest\n");
    let _ = writeln!(md, "A xenpv guest and a Linux PV guest in the same run, against the same backends in dom0: Linux's `xen-netback` (bridge `xenbr0`) and `xen-blkback` (a raw image in dom0's tmpfs `/tmp` on a loop device). The Linux guest is the dom0 kernel (Debian 12) booted as a domU, 1 vCPU, 128 MiB, with the lab's guest initramfs (busybox and Debian's `xen-netfront.ko` and `xen-blkfront.ko`; its script is `tests/xen/bench/linux_bench.sh`); the xenpv guests (`tests/xen/bench/net_bench.rs`, `blk_bench.rs`) have 1 vCPU and 16 MiB. Each guest runs alone; the groups xenpv disk, xenpv network, Linux follow each other {} time(s), each guest making {} run(s) of every figure each time, so the two take turns. Each cell is min / median / max over the {runs} run(s) (ping: over every echo); the last column divides the medians (MiB/s: above 1 means xenpv is faster; ping: below 1 means xenpv answers sooner).\n", io.rounds, io.runs);
    let f2 = |v: f64| format!("{v:.2}");
    let _ = writeln!(
        md,
        "| figure | xenpv | Linux PV guest | xenpv / Linux (medians) |\n|---|---|---|---|"
    );
    let row =
        |md: &mut String, label: String, a: Vec<f64>, b: Vec<f64>, f: &dyn Fn(f64) -> String| {
            let med = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_by(|x, y| x.total_cmp(y));
                (!v.is_empty()).then(|| median(&v))
            };
            let ratio = match (med(&a), med(&b)) {
                (Some(x), Some(y)) if y > 0.0 => format!("{:.2}", x / y),
                _ => "-".into(),
            };
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {ratio} |",
                spread(&a, f),
                spread(&b, f)
            );
        };
    let mib = io.net_bytes >> 20;
    row(
        md,
        format!("TCP dom0 → guest, MiB/s ({mib} MiB)"),
        net_rates(report, &net, "sink"),
        net_rates(report, &linux, "sink"),
        &f2,
    );
    row(
        md,
        format!("TCP guest → dom0, MiB/s ({mib} MiB)"),
        net_rates(report, &net, "source"),
        net_rates(report, &linux, "source"),
        &f2,
    );
    let pings = |names: &[String]| ping_times(report, names);
    row(
        md,
        format!(
            "ping dom0 → guest, ms ({} echoes)",
            pings(&net).len().max(pings(&linux).len())
        ),
        pings(&net),
        pings(&linux),
        &|v| format!("{v:.3}"),
    );
    for chunk in DISK_CHUNKS {
        for what in ["write", "read"] {
            row(
                md,
                format!(
                    "disk sequential {what}, MiB/s ({} MiB in {} KiB calls)",
                    io.disk_bytes >> 20,
                    chunk >> 10
                ),
                block_rates(report, &blk, what, chunk),
                block_rates(report, &linux, what, chunk),
                &f2,
            );
        }
    }
    let outcome = |n: &String| {
        let reason = guest(report, n)
            .and_then(|g| g.reason.clone())
            .unwrap_or_else(|| "?".into());
        match report.companions.get(n) {
            Some(c) => format!("{n} {reason} (dom0 side {c})"),
            None => format!("{n} {reason}"),
        }
    };
    let all: Vec<String> = (0..io.rounds as usize)
        .flat_map(|r| [&blk[r], &net[r], &linux[r]])
        .map(outcome)
        .collect();
    let _ = writeln!(md, "\nOutcomes: {}.\n", all.join(", "));
    let _ = writeln!(md, "What is timed:\n");
    let _ = writeln!(md, "- **TCP**: dom0's busybox `nc` against a server in the guest (xenpv: smoltcp sockets with 64 KiB buffers; Linux: busybox `nc -ll -e`). dom0 → guest: `nc` sends a {mib} MiB file to the guest's sink on port 5001, half-closes, and ends when the guest closes after reading everything; guest → dom0: `nc` reads the guest's source on port 5002 until it closes after sending {mib} MiB, piped to `wc -c` (the count is checked). The time is dom0's monotonic clock (`/proc/timer_list`) around the `nc` process, so it includes the connection set-up and close and `nc`'s start; dom0 is a Linux PV domain under the same TCG, so both figures are also bounded by dom0's own cost (`tests/xen/bench/net_client.dom0.sh`).");
    let _ = writeln!(md, "  The two front ends differ: xenpv's netfront asks for no scatter-gather, no GSO and no checksum offload (`feature-sg`/`feature-gso-tcpv4` 0, `feature-no-csum-offload` 1), so every frame is at most 1514 bytes and smoltcp computes every checksum; Linux's xen-netfront uses scatter-gather, TSO and checksum offload.{}", linux_packet_sizes(report, &linux));
    let _ = writeln!(md, "- **ping**: busybox `ping -c 20 -i 0.2` from dom0, after one ping to fill the ARP cache; the xenpv guest answers from its poll loop (smoltcp), Linux from its kernel.");
    let _ = writeln!(md, "- **Disk**: the whole {} MiB `xvda` written from start to end, then read back, one call at a time of 64 KiB, then of 1 MiB. xenpv: `BlkFront::write`/`read` calls (split into ring requests of at most 44 KiB, 11 segments, up to 4 in flight), timed in the guest around the calls alone, the flush after the writes not included. Linux: busybox `dd bs=<size> oflag=direct` (write) and `iflag=direct` (read) on `/dev/xvda`, so no page cache on either side (xen-blkfront splits and queues as it does: indirect segments, persistent grants), timed in the guest with `/proc/timer_list` around `dd` (so including its process start). The image lives in dom0's RAM (tmpfs), so this measures the split-driver path, not a disk.", io.disk_bytes >> 20);
    let _ = writeln!(md, "\nThese are QEMU-TCG figures: every guest instruction, the hypervisor's and dom0's are emulated on {} host cores shared with whatever else runs on the host, which shows as spread between runs (see the host load above; a ping of 0.000 ms is an artifact of dom0's clock under TCG, not an answer). Read them only as xenpv against Linux in the same run, not as what either does on hardware.\n", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let own: Vec<String> = net
        .iter()
        .filter_map(|n| guest(report, n))
        .flat_map(|g| g.output.iter().filter(|l| l.contains(" run ")).cloned())
        .collect();
    if !own.is_empty() {
        let _ = writeln!(md, "The xenpv guest's own clock for the same transfers (from its side's connection to its close):\n\n```");
        for l in own {
            let _ = writeln!(md, "{l}");
        }
        let _ = writeln!(md, "```\n");
    }
    let size = |name: &str| {
        built
            .iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy() == format!("{name}.stripped"))
            })
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| format!("{:.1} KiB ({} bytes)", m.len() as f64 / 1024.0, m.len()))
            .unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(md, "## Image sizes (release, stripped)\n");
    let _ = writeln!(md, "The ELF files `xl create` loads (release profile: `opt-level = \"s\"`, LTO, `panic = \"abort\"`; stripped).\n");
    let _ = writeln!(md, "| program | image | what it holds |\n|---|---|---|");
    let _ = writeln!(md, "| hello | {} | console only |", size("hello"));
    let _ = writeln!(
        md,
        "| http_server | {} | netfront, smoltcp (TCP, UDP, ICMP), a one-page HTTP server |",
        size("http_server")
    );
    let _ = writeln!(
        md,
        "| net_bench | {} | netfront, smoltcp, the benchmark's sink and source |",
        size("net_bench")
    );
    let _ = writeln!(md, "| blk_bench | {} | blkfront |", size("blk_bench"));
}

/// A producer/consumer pair named `p<tag>`/`c<tag>` with the given ring
/// order, write size, volume and memory, and the relay telling each the other's domid.
/// `check`: the producer generates the test stream and the consumer
/// checks every byte (else one buffer is sent again and again, unchecked).
#[allow(clippy::too_many_arguments)]
fn ring_pair(
    prod: &std::path::Path,
    cons: &std::path::Path,
    tag: &str,
    order: u32,
    chunk: usize,
    bytes: u64,
    mib: u32,
    check: bool,
) -> Result<Vec<Guest>> {
    let extra = format!(
        "\"order={order} chunk={chunk} bytes={bytes} runs={RING_ROUNDS} check={}\"",
        u8::from(check)
    );
    let mk = |example: &str, image: &std::path::Path, name: String| -> Result<Guest> {
        let cfg = set_line(
            &set_line(&read_example_cfg(example)?, "extra", &extra),
            "memory",
            &mib.to_string(),
        );
        Ok(Guest {
            name,
            image: image.into(),
            cfg,
            companion: None,
            pre_create: None,
            ramdisk: None,
        })
    };
    let (p, c) = (format!("p{tag}"), format!("c{tag}"));
    let mut producer = mk("ring_producer", prod, p.clone())?;
    producer.companion = Some(format!(
        "xenstore-write /local/domain/$DOMID_{p}/data/peer_domid \"$DOMID_{c}\"\nxenstore-write /local/domain/$DOMID_{c}/data/peer_domid \"$DOMID_{p}\"\n"
    ));
    Ok(vec![producer, mk("ring_consumer", cons, c)?])
}

/// The number after `key` in `line` (e.g. "ring 22 MiB/s" -> 22 for "ring").
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches([',', '%', ')'])
        .parse()
        .ok()
}

/// The `min/median/max` after `key` in `line` (e.g. "ring 1/2/3 MiB/s" for "ring").
fn spread_after(line: &str, key: &str) -> Option<Spread> {
    let rest = &line[line.find(key)? + key.len()..];
    let mut v = rest
        .split_whitespace()
        .next()?
        .trim_end_matches([',', '%', ')'])
        .split('/')
        .map(|x| x.parse::<f64>().ok());
    let (min, median, max) = (v.next()??, v.next()??, v.next()??);
    v.next().is_none().then_some(Spread { min, median, max })
}

/// What `ring_consumer` prints last: min/median/max over its rounds.
const CONSUMER_SUMMARY: &str = "min/median/max: ring ";

/// `ring_consumer`'s summary line in guest `name`'s output.
fn consumer_summary<'a>(report: &'a Report, name: &str) -> Option<&'a str> {
    guest(report, name)?
        .output
        .iter()
        .find(|l| l.contains(CONSUMER_SUMMARY))
        .map(String::as_str)
}

/// A table cell: "min / median / max", or "failed".
fn cell(s: Option<Spread>) -> String {
    s.map(|s| format!("{:.2} / {:.2} / {:.2}", s.min, s.median, s.max))
        .unwrap_or_else(|| "failed".into())
}

fn guest<'a>(report: &'a Report, name: &str) -> Option<&'a GuestResult> {
    report.guests.get(name)
}

fn first_line_s(g: &GuestResult) -> Option<f64> {
    Some(g.first_output? - g.started?)
}

/// The host's 1-minute load average (other work sharing the cores shows in every figure).
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn render(
    report: &Report,
    host: &[String],
    built: &[std::path::PathBuf],
    lab: &Lab,
    quick: bool,
    took: Duration,
    load: &str,
) -> Result<String> {
    let mut md = String::new();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let qemu = util::run_captured(
        std::process::Command::new("qemu-system-x86_64").arg("--version"),
        Duration::from_secs(10),
    )
    .map(|o| o.stdout.lines().next().unwrap_or("").to_string())
    .unwrap_or_default();
    let xen = fs::read_to_string(lab.dir.join("manifest"))
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("package xen-hypervisor"))
                .map(|l| l.trim_start_matches("package ").to_string())
        })
        .unwrap_or_else(|| "Xen 4.17 (Debian)".into());
    let _ = writeln!(md, "# xenpv benchmarks\n");
    let _ = writeln!(md, "Written by `cargo xtask bench{}` in {:.0} s. **Every guest figure comes from Xen running under QEMU with {} (software emulation): these are not hardware numbers.** Compare the ratios, each against a reference measured in the same run.\n", if quick { " --quick" } else { "" }, took.as_secs_f64(), report.accel.to_uppercase());
    let _ = writeln!(md, "| machine | |\n|---|---|\n| host CPU | {cpu}, {cores} cores |\n| host load (1 min) | {load} |\n| QEMU | {qemu} (accelerator: {}) |\n| hypervisor | {xen} |\n| dom0 | Linux from Debian 12 (`linux-image-amd64`) |\n", report.accel);

    // Boot.
    let _ = writeln!(md, "## Boot\n");
    let _ = writeln!(md, "From the guest's unpause after `xl create` to the first console line dom0 saw (dom0 polls the console log every 0.25 s, so the resolution is 0.25 s).\n");
    let _ = writeln!(md, "| guest | image (stripped) | memory | xl create to first line | outcome |\n|---|---|---|---|---|");
    let size = |name: &str| {
        built
            .iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with(name))
            })
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| format!("{:.1} KiB", m.len() as f64 / 1024.0))
            .unwrap_or_default()
    };
    for (name, img, mem) in [
        ("hello_4m", size("hello"), "4 MiB"),
        ("hello_3m", size("hello"), "3 MiB"),
        (
            "linux",
            fs::metadata(&lab.vmlinuz)
                .map(|m| format!("{:.0} KiB (bzImage)", m.len() as f64 / 1024.0))
                .unwrap_or_default(),
            "128 MiB",
        ),
    ] {
        if let Some(g) = guest(report, name) {
            let first = first_line_s(g)
                .map(|s| format!("{s:.2} s"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                md,
                "| {name} | {img} | {mem} | {first} | {} |",
                g.reason.as_deref().unwrap_or("?")
            );
        }
    }
    let _ = writeln!(
        md,
        "| ring pair (order 10, 1 MiB) | {} + {} | 4 MiB each | {} | {} |",
        size("ring_producer"),
        size("ring_consumer"),
        guest(report, "crmin")
            .and_then(first_line_s)
            .map(|s| format!("{s:.2} s"))
            .unwrap_or_else(|| "-".into()),
        ["prmin", "crmin"]
            .iter()
            .map(|n| guest(report, n)
                .and_then(|g| g.reason.clone())
                .unwrap_or_else(|| "?".into()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(md, "\nThe smallest `memory=` is 4 MiB for every PV guest built by libxl: with 3 MiB, `xl create` fails in libxc's `count_pgtables` (\"not enough memory for initial mapping\"), which rounds the boot mapping up to 4 MiB. The Linux guest is the dom0 kernel booted as a PV domU without a root file system.\n");

    // Grants.
    let _ = writeln!(md, "## Grant tables (in a domU)\n");
    let bench: BTreeMap<String, String> = guest(report, "bench_grant")
        .map(|g| {
            g.output
                .iter()
                .filter_map(|l| l.strip_prefix("BENCH "))
                .filter_map(|l| {
                    let mut it = l.splitn(2, ' ');
                    Some((it.next()?.to_string(), it.next()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    for (k, v) in &bench {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(md, "\nEach figure is min / median / max over 5 rounds in one guest; within a round the subjects and their floors run back to back, and the percentages are taken per round. `cas_loop` is the floor for the grant paths: compare-and-swaps on a u16 in a page, no grant table (ending access is one such CAS); it and the `ReservedRefs` loop make 2,000,000 operations a round, the table path 200,000. `grant_end_access` is `Grants::grant` + `Granted::end_access` (one table lock each); `grant_end_reserved` is the same pair through a `ReservedRefs` batch taken once (`Grants::reserve_refs`: no lock); `*_vs_cas_percent` is each path's speed as a share of the floor's in the same round. Neither path makes a hypercall or allocates (checked: the heap is the same after the loops). `map_unmap_*` are self-grants mapped and unmapped through `GNTTABOP_map_grant_ref`/`unmap_grant_ref`, one page or 64 per call. `share_release_N_per_page` is `Grants::share(N)` + `release` (gntalloc's alloc/dealloc), divided by N. The `split_*` rows are its parts, timed alone in the same round: a frame's allocation and free (`Page::alloc`, which zeroes it, and drop), of which the zeroing alone (`SharedMem::fill` of 4 KiB), and a grant + end through the table; `split_share_bookkeeping_1_page` is what `share_release_1_per_page` spends beyond those (the limits, the share's vector, the pending room, the lock). Shared pages are already mapped (the direct map), so there is no mapping step.\n");
    let _ = writeln!(md, "The same two grant paths and their floor natively on the host, over the fake grant table (`cargo bench --bench grant`: the library's own `ReservedRefs`/`Grants` code and entry protocol, min / median / max over 5 runs, the subjects back to back in each). Under TCG every guest instruction costs about alike, so the guest ratio counts instructions; on a real CPU the floor's locked compare-and-swap weighs more against the plain stores and checks around it.\n");
    let _ = writeln!(md, "```");
    for l in host.iter().filter(|l| l.starts_with("host grant")) {
        let _ = writeln!(md, "{l}");
    }
    let _ = writeln!(md, "```\n");

    // Rings.
    let _ = writeln!(md, "## Ring throughput, guest to guest\n");
    let _ = writeln!(md, "Producer → consumer through a vchan ring (libxenvchan's wire format), in {RING_ROUNDS} rounds per row (`xenpv_test_support::rounds`). Before each round the consumer times its reference while the producer waits: its own copy of the round without a peer, the round's volume in reads of the same size out of a buffer the size of the ring at the ring's running offset (the bytes pass through as much memory as through the ring); then it tells the producer to go and times the round from that message to the round's last byte. The timed window moves bytes only: the producer sends one prepared buffer again and again and the consumer does not look at what it receives (`check=0`); the checked runs are in the next table. Each cell is min / median / max over the rounds; ring / memcpy is taken per round, each round against its own reference.\n");
    let _ = writeln!(md, "| order | ring size | write size | ring MiB/s | memcpy MiB/s | ring / memcpy % |\n|---|---|---|---|---|---|");
    for order in ORDERS {
        for chunk in CHUNKS {
            let line = consumer_summary(report, &format!("co{order}c{chunk}"));
            let _ = writeln!(
                md,
                "| {order} | {} KiB | {chunk} B | {} | {} | {} |",
                (1u64 << order) / 1024,
                cell(line.and_then(|l| spread_after(l, ": ring"))),
                cell(line.and_then(|l| spread_after(l, "memcpy"))),
                cell(line.and_then(|l| spread_after(l, "ring/memcpy")))
            );
        }
    }
    let _ = writeln!(md, "\nChecked: the producer generates the test stream and the consumer checks every byte against it, inside the timed window ({DOM0_CHUNK}-byte writes, {RING_ROUNDS} rounds, min / median / max).\n");
    let _ = writeln!(md, "| order | ring size | checked ring MiB/s | unchecked ring MiB/s (above) | memcpy MiB/s |\n|---|---|---|---|---|");
    for order in ORDERS {
        let checked = consumer_summary(report, &format!("ck{order}"));
        let unchecked = consumer_summary(report, &format!("co{order}c{DOM0_CHUNK}"));
        let _ = writeln!(
            md,
            "| {order} | {} KiB | {} | {} | {} |",
            (1u64 << order) / 1024,
            cell(checked.and_then(|l| spread_after(l, ": ring"))),
            cell(unchecked.and_then(|l| spread_after(l, ": ring"))),
            cell(checked.and_then(|l| spread_after(l, "memcpy")))
        );
    }
    render_dom0_vchan(&mut md, report);

    // Host.
    let _ = writeln!(md, "## Ring code on the host, two threads\n");
    let _ = writeln!(md, "xenpv's vchan ring between a producer and a consumer thread (both spin and never sleep, so neither asks for notifications: `Ring::write_with`/`read_with` with `request = false`, as `Vchan`'s blocking calls do while they spin), next to the `rtrb` crate's SPSC ring driven through its bulk chunk API (both built with the same bench profile) and a memcpy reference making the ring's two copies (into a ring-sized buffer, out of it) on one thread, in the same run (`cargo bench --bench ring`). Each figure is min/median/max GiB/s over 5 runs, the three subjects taking turns in each round; the ratios compare medians. The write size is capped at the ring's size (rtrb cannot take a chunk larger than its capacity), and each capped case runs once. Two threads spinning on a 2-core machine: noisy.\n");
    let _ = writeln!(md, "```");
    for l in host.iter().filter(|l| l.starts_with("host ring")) {
        let _ = writeln!(md, "{l}");
    }
    let _ = writeln!(md, "```");
    Ok(md)
}

// ---- libxenvchan in dom0 against a xenpv guest (issue 7) ----
//
// dom0's `vchan-bench` (tests/dom0-tools) drives Xen's own libxenvchan.
// `d2g<order>`: ring_consumer serves, vchan-bench is its client and sends.
// `g2d<order>`: vchan-bench serves, ring_producer is its client and sends.
// The receiver measures and checks every byte in both directions.

/// Write size of the dom0 ↔ guest groups.
const DOM0_CHUNK: usize = 65536;

/// The dom0 ↔ guest groups, one guest each, at every order of [`ORDERS`].
fn dom0_vchan_groups(
    prod: &std::path::Path,
    cons: &std::path::Path,
    quick: bool,
) -> Result<Vec<Vec<Guest>>> {
    // Per round.
    let bytes: u64 = if quick { 1 << 20 } else { 8 << 20 };
    let mut groups = Vec::new();
    for order in ORDERS {
        let extra =
            format!("\"order={order} chunk={DOM0_CHUNK} bytes={bytes} runs={RING_ROUNDS}\"");
        let mk = |example: &str,
                  image: &std::path::Path,
                  name: String,
                  companion: String|
         -> Result<Guest> {
            let cfg = set_line(
                &set_line(&read_example_cfg(example)?, "extra", &extra),
                "memory",
                "32",
            );
            Ok(Guest {
                name,
                image: image.into(),
                cfg,
                companion: Some(companion),
                pre_create: None,
                ramdisk: None,
            })
        };
        // Static glibc's dlopen looks libc.so.6's own dependency,
        // ld-linux-x86-64.so.2, up on the search path, and dom0 has it
        // only at its interpreter path /lib64.
        let ld = "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/lib64";
        let d2g = format!("d2g{order}");
        groups.push(vec![mk("ring_consumer", cons, d2g.clone(), format!(
            "D=$DOMID_{d2g}\nxenstore-write /local/domain/$D/data/peer_domid 0\n{ld} exec vchan-bench client \"$D\" /local/domain/$D/data/vchan {bytes} {DOM0_CHUNK} {RING_ROUNDS}\n"
        ))?]);
        let g2d = format!("g2d{order}");
        groups.push(vec![mk("ring_producer", prod, g2d.clone(), format!(
            "D=$DOMID_{g2d}\nxenstore-write /local/domain/$D/data/peer_domid 0\n{ld} exec vchan-bench server \"$D\" /local/domain/0/data/vchan {bytes} {DOM0_CHUNK} {RING_ROUNDS} {}\n",
            1u64 << order
        ))?]);
    }
    Ok(groups)
}

/// The hexadecimal word after `key` in `line` (e.g. a checksum).
fn hex_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    u64::from_str_radix(rest.split_whitespace().next()?.trim_end_matches(','), 16).ok()
}

/// One direction of one order: the receiver's MiB/s over its rounds, and
/// whether the sender's and receiver's checksums agree, from the guest's
/// console line holding `guest_key` and the companion's `vchan-bench:` line.
fn dom0_vchan_figure(
    report: &Report,
    name: &str,
    guest_key: &str,
    dom0_receives: bool,
) -> (Option<Spread>, Option<bool>) {
    let ok = guest(report, name).is_some_and(|g| g.reason.as_deref() == Some("poweroff"))
        && report.companions.get(name).map(String::as_str) == Some("exit 0");
    let gline =
        guest(report, name).and_then(|g| g.output.iter().find(|l| l.contains(guest_key)).cloned());
    let dline = report
        .companion_output
        .get(name)
        .and_then(|o| o.iter().find(|l| l.contains(" MiB/s, checksum ")).cloned());
    let (Some(gline), Some(dline)) = (gline, dline) else {
        return (None, None);
    };
    let rate = if dom0_receives {
        spread_after(&dline, "min/median/max")
    } else {
        // ring_consumer prints its rates on a line of its own.
        consumer_summary(report, name).and_then(|l| spread_after(l, ": ring"))
    };
    let same = hex_after(&gline, "checksum")
        .zip(hex_after(&dline, "checksum"))
        .map(|(a, b)| a == b);
    (rate.filter(|_| ok), same)
}

fn render_dom0_vchan(md: &mut String, report: &Report) {
    let _ = writeln!(
        md,
        "\n## Ring throughput, libxenvchan in dom0 and a xenpv guest\n"
    );
    let _ = writeln!(md, "Xen's own libxenvchan (dom0's `libxenvchan.so.4.17`, driven by `vchan-bench` from `tests/dom0-tools`) as the peer of the ring examples, {DOM0_CHUNK}-byte writes, the receiver checking every byte, in {RING_ROUNDS} rounds paced by the receiver as above; each figure is the receiver's, min / median / max over the rounds. The guest → guest column repeats the checked table above. dom0 is a Linux PV domain under the same TCG: its side pays for gntalloc/gntdev mappings and a `poll` on `/dev/xen/evtchn` per wait.\n");
    let _ = writeln!(md, "| order | ring size | xenpv → xenpv MiB/s | libxenvchan (dom0) → xenpv MiB/s | xenpv → libxenvchan (dom0) MiB/s | checksums (both directions) |\n|---|---|---|---|---|---|");
    let fmt = cell;
    for order in ORDERS {
        let g2g =
            consumer_summary(report, &format!("ck{order}")).and_then(|l| spread_after(l, ": ring"));
        let (d2g, d2g_sum) = dom0_vchan_figure(report, &format!("d2g{order}"), "received ", false);
        let (g2d, g2d_sum) = dom0_vchan_figure(report, &format!("g2d{order}"), "sent ", true);
        let sums = match (d2g_sum, g2d_sum) {
            (Some(true), Some(true)) => "match".to_string(),
            (a, b) => format!("d2g {}, g2d {}", word_for(a), word_for(b)),
        };
        let _ = writeln!(
            md,
            "| {order} | {} KiB | {} | {} | {} | {sums} |",
            (1u64 << order) / 1024,
            fmt(g2g),
            fmt(d2g),
            fmt(g2d)
        );
    }
    let _ = writeln!(md);
}

fn word_for(same: Option<bool>) -> &'static str {
    match same {
        Some(true) => "match",
        Some(false) => "DIFFER",
        None => "missing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_are_replaced() {
        let cfg = "name = \"x\"\nmemory = 32\nextra = \"order=16\"\n";
        let out = set_line(&set_line(cfg, "memory", "4"), "extra", "\"order=10\"");
        assert!(out.contains("memory = 4\n") && !out.contains("memory = 32"));
        assert!(out.contains("extra = \"order=10\"") && !out.contains("order=16"));
    }

    #[test]
    fn figures_are_read_from_console_lines() {
        let l = "ring_consumer: order 16 chunk 65536 unchecked over 5 round(s), min/median/max: ring 20.00/22.00/23.50 MiB/s, memcpy 350.0/354.0/360.0 MiB/s in this guest, ring/memcpy 5.50/6.00/6.25%";
        assert!(l.contains(CONSUMER_SUMMARY));
        assert_eq!(
            spread_after(l, ": ring"),
            Some(Spread {
                min: 20.0,
                median: 22.0,
                max: 23.5
            })
        );
        assert_eq!(
            spread_after(l, "memcpy"),
            Some(Spread {
                min: 350.0,
                median: 354.0,
                max: 360.0
            })
        );
        assert_eq!(
            spread_after(l, "ring/memcpy"),
            Some(Spread {
                min: 5.5,
                median: 6.0,
                max: 6.25
            })
        );
        assert_eq!(spread_after(l, "nothing"), None);
        assert_eq!(spread_after("ring 1/2 MiB/s", "ring"), None);
        assert_eq!(spread_after("ring 1/2/3/4 MiB/s", "ring"), None);
        assert_eq!(number_after("ring 22 MiB/s", "ring"), Some(22.0));
        assert_eq!(
            cell(Some(Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            })),
            "1.00 / 2.00 / 3.00"
        );
        assert_eq!(cell(None), "failed");
    }

    #[test]
    fn dom0_vchan_lines_are_read() {
        let d = "vchan-bench: 4194304 bytes in 5 round(s), min/median/max 1.00/2.00/3.00 MiB/s, checksum 00c0ffee12345678";
        assert_eq!(
            spread_after(d, "min/median/max"),
            Some(Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            })
        );
        assert_eq!(hex_after(d, "checksum"), Some(0x00c0_ffee_1234_5678));
        let g = "ring_producer: sent 4194304 bytes, checksum 00c0ffee12345678, 3.10 MiB/s";
        assert_eq!(hex_after(g, "checksum"), hex_after(d, "checksum"));
    }

    #[test]
    fn dom0_vchan_figures_come_from_the_receiver() {
        let mut report = Report::default();
        let g = GuestResult {
            reason: Some("poweroff".into()),
            output: vec![
                "ring_consumer: received 4194304 bytes, checksum d07ad5be0f18f642".into(),
                "ring_consumer: order 16 chunk 65536 checked over 5 round(s), min/median/max: ring 70.00/71.49/72.00 MiB/s, memcpy 1.0/2.0/3.0 MiB/s in this guest, ring/memcpy 1.00/2.00/3.00%".into(),
            ],
            ..Default::default()
        };
        report.guests.insert("d2g16".into(), g);
        report.companions.insert("d2g16".into(), "exit 0".into());
        report.companion_output.insert("d2g16".into(), vec!["vchan-bench: 4194304 bytes in 5 round(s), min/median/max 60.00/65.95/66.00 MiB/s, checksum d07ad5be0f18f642".into()]);
        assert_eq!(
            dom0_vchan_figure(&report, "d2g16", "received ", false),
            (
                Some(Spread {
                    min: 70.0,
                    median: 71.49,
                    max: 72.0
                }),
                Some(true)
            )
        );
        assert_eq!(
            dom0_vchan_figure(&report, "d2g16", "received ", true),
            (
                Some(Spread {
                    min: 60.0,
                    median: 65.95,
                    max: 66.0
                }),
                Some(true)
            )
        );
    }

    #[test]
    fn io_figures_are_read() {
        let mut report = Report::default();
        let g = GuestResult {
            output: vec![
                "blk_bench: block write run 1: 33554432 bytes in 250000000 ns, 65536-byte requests (flush after it 1983 us)".into(),
                "blk_bench: block write run 2: 33554432 bytes in 500000000 ns, 65536-byte requests (flush after it 1983 us)".into(),
                "blk_bench: block read run 1: 33554432 bytes in 100000000 ns, 1048576-byte requests".into(),
            ],
            ..Default::default()
        };
        report.guests.insert("blk_bench_1".into(), g);
        let l = GuestResult {
            output: vec![
                "linux_bench: eth0: 2146664 926 0 0 0 0 0 0 2118276 308 0 0 0 0 0 0".into(),
            ],
            ..Default::default()
        };
        report.guests.insert("linux_bench_1".into(), l);
        assert!(linux_packet_sizes(&report, &["linux_bench_1".to_string()])
            .contains("2318 bytes per received and 6877 bytes per sent"));
        report.companion_output.insert(
            "net_bench_1".into(),
            vec![
                "ping: round-trip min/avg/max = 1.316/3.728/20.987 ms".into(),
                "ping times: 1.5 2.25 ".into(),
                "sink run 1: 4194304 bytes in 0.5000 s".into(),
                "source run 1: 4194304 bytes in 2.0000 s".into(),
            ],
        );
        let names = vec!["blk_bench_1".to_string()];
        assert_eq!(
            block_rates(&report, &names, "write", 65536),
            vec![128.0, 64.0]
        );
        assert_eq!(block_rates(&report, &names, "read", 1 << 20), vec![320.0]);
        assert!(block_rates(&report, &names, "read", 65536).is_empty());
        let names = vec!["net_bench_1".to_string(), "net_bench_2".to_string()];
        assert_eq!(net_rates(&report, &names, "sink"), vec![8.0]);
        assert_eq!(net_rates(&report, &names, "source"), vec![2.0]);
        assert_eq!(ping_times(&report, &names), vec![1.5, 2.25]);
        assert_eq!(
            spread(&[3.0, 1.0, 2.0, 10.0], |v| format!("{v}")),
            "1 / 2.5 / 10"
        );
        assert_eq!(spread(&[], |v| format!("{v}")), "failed");
    }
}
