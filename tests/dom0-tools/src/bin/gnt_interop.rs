//! `gnt-interop`: the Linux side of xenpv's grant interop test (issue 4,
//! test e), run in dom0 by `examples/grant_linux.dom0.sh`.
//!
//! `map` maps a guest's grants through `/dev/xen/gntdev`, checks the
//! guest's pattern, writes a reply, optionally arms gntdev's unmap notify
//! and holds the mapping; `share` shares dom0 pages with a guest through
//! `/dev/xen/gntalloc`, fills them with a pattern, prints the grant
//! references and holds them. A hold ends on SIGTERM/SIGINT/SIGHUP or
//! after its time limit; then everything is unmapped and released in the
//! drivers' order.

use std::process::ExitCode;
use std::time::Duration;

use xenpv_dom0_tools::abi::PAGE_SIZE;
use xenpv_dom0_tools::dev::{GntAlloc, GntDev, HoldEnd, Mapping, StopSignals};
use xenpv_dom0_tools::{pattern, Error, Result};

const USAGE: &str = "\
usage: gnt-interop map [--seed N] [--reply TEXT] [--notify-clear-byte OFFSET] [--hold SECS] [--readonly] DOMID GREF...
       gnt-interop share [--seed N] [--expect-reply TEXT] [--hold SECS] [--readonly] DOMID COUNT
  map:   maps DOMID's grants through /dev/xen/gntdev; --seed checks the pattern in every page,
         --reply writes TEXT at offset 0 of every page, --notify-clear-byte arms
         UNMAP_NOTIFY_CLEAR_BYTE at OFFSET of the mapping (after setting that byte to 1).
  share: shares COUNT pages with DOMID through /dev/xen/gntalloc, filled with the pattern
         of --seed (zeroes without), and prints `grefs: R...`; --expect-reply checks that
         page 0 starts with TEXT when the hold ends.
  --hold SECS keeps the pages until SIGTERM, SIGINT or SIGHUP, SECS at most (default 0).";

/// Most pages one command maps or shares.
const MAX_PAGES: u32 = 1 << 16;

#[derive(Debug, Default, PartialEq)]
struct Options {
    seed: Option<u8>,
    reply: Option<String>,
    expect_reply: Option<String>,
    notify_clear_byte: Option<usize>,
    hold: Duration,
    readonly: bool,
    positional: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum Command {
    Map {
        domid: u32,
        refs: Vec<u32>,
        opts: Options,
    },
    Share {
        domid: u32,
        count: u32,
        opts: Options,
    },
    Help,
}

fn number<T: TryFrom<u64>>(s: &str, what: &str) -> Result<T> {
    let v = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    v.ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| Error::Usage(format!("{what}: `{s}` is not a valid number")))
}

fn parse(args: &[String]) -> Result<Command> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Error::Usage("name a subcommand: map or share".into()));
    };
    if matches!(sub.as_str(), "-h" | "--help" | "help") {
        return Ok(Command::Help);
    }
    let mut o = Options::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--seed" => o.seed = Some(number(&value("--seed")?, "--seed")?),
            "--reply" => o.reply = Some(value("--reply")?),
            "--expect-reply" => o.expect_reply = Some(value("--expect-reply")?),
            "--notify-clear-byte" => {
                o.notify_clear_byte = Some(number(
                    &value("--notify-clear-byte")?,
                    "--notify-clear-byte",
                )?)
            }
            "--hold" => o.hold = Duration::from_secs(number(&value("--hold")?, "--hold")?),
            "--readonly" => o.readonly = true,
            "-h" | "--help" => return Ok(Command::Help),
            f if f.starts_with("--") => return Err(Error::Usage(format!("unknown option `{f}`"))),
            p => o.positional.push(p.to_string()),
        }
    }
    let domid: u32 = number(
        o.positional
            .first()
            .ok_or_else(|| Error::Usage("missing DOMID".into()))?,
        "DOMID",
    )?;
    match sub.as_str() {
        "map" => {
            let refs = o.positional[1..]
                .iter()
                .map(|r| number(r, "GREF"))
                .collect::<Result<Vec<u32>>>()?;
            if refs.is_empty() || refs.len() > MAX_PAGES as usize {
                return Err(Error::Usage(format!("map takes 1 to {MAX_PAGES} GREFs")));
            }
            if o.readonly && (o.reply.is_some() || o.notify_clear_byte.is_some()) {
                return Err(Error::Usage(
                    "--reply and --notify-clear-byte write: not with --readonly".into(),
                ));
            }
            if o.expect_reply.is_some() {
                return Err(Error::Usage("--expect-reply is for share".into()));
            }
            Ok(Command::Map {
                domid,
                refs,
                opts: o,
            })
        }
        "share" => {
            let [_, count] = &o.positional[..] else {
                return Err(Error::Usage("share takes DOMID COUNT".into()));
            };
            let count: u32 = number(count, "COUNT")?;
            // The driver's own default limit is 1024 pages; this only keeps
            // the ioctl buffer sane.
            if count == 0 || count > MAX_PAGES {
                return Err(Error::Usage(format!("COUNT must be 1 to {MAX_PAGES}")));
            }
            if o.reply.is_some() || o.notify_clear_byte.is_some() {
                return Err(Error::Usage(
                    "--reply and --notify-clear-byte are for map".into(),
                ));
            }
            Ok(Command::Share {
                domid,
                count,
                opts: o,
            })
        }
        other => Err(Error::Usage(format!("unknown subcommand `{other}`"))),
    }
}

fn check_pattern(mem: &Mapping, seed: u8) -> Result<()> {
    for i in 0..mem.len() {
        let (expected, found) = (pattern::byte(seed, i), mem.load(i)?);
        if expected != found {
            return Err(Error::Mismatch {
                page: i / PAGE_SIZE,
                offset: i % PAGE_SIZE,
                expected,
                found,
            });
        }
    }
    Ok(())
}

fn map(domid: u32, refs: &[u32], o: &Options) -> Result<()> {
    let dev = GntDev::open()?;
    let m = dev.map(domid, refs, !o.readonly)?;
    let access = if o.readonly { "read-only" } else { "writable" };
    println!(
        "gnt-interop: gntdev mapped {} grefs of dom{domid} at index {:#x} ({access})",
        refs.len(),
        m.index()
    );
    if let Some(seed) = o.seed {
        check_pattern(m.mem(), seed)?;
        println!(
            "gnt-interop: pattern {seed:#04x} ok in {} pages",
            refs.len()
        );
    }
    if let Some(text) = &o.reply {
        for p in 0..refs.len() {
            m.mem().write(p * PAGE_SIZE, text.as_bytes())?;
        }
        println!(
            "gnt-interop: wrote {:?} at offset 0 of {} pages",
            text,
            refs.len()
        );
    }
    if let Some(off) = o.notify_clear_byte {
        m.mem().store(off, 1)?;
        m.notify_clear_byte(off)?;
        println!("gnt-interop: byte {off} set to 1, cleared by gntdev at unmap");
    }
    hold(o.hold, "gnt-interop: ready")?;
    m.unmap()?;
    println!("gnt-interop: unmapped");
    Ok(())
}

fn share(domid: u32, count: u32, o: &Options) -> Result<()> {
    let dev = GntAlloc::open()?;
    let pages = dev.share(domid, count, !o.readonly)?;
    if let Some(seed) = o.seed {
        for i in 0..pages.mem().len() {
            pages.mem().store(i, pattern::byte(seed, i))?;
        }
    }
    let access = if o.readonly { "read-only" } else { "writable" };
    println!(
        "gnt-interop: gntalloc shared {count} pages with dom{domid} at index {:#x} ({access})",
        pages.index()
    );
    let refs: Vec<String> = pages.grefs().iter().map(u32::to_string).collect();
    // Before `grefs:`: a script reads that line and may signal at once.
    hold(o.hold, &format!("grefs: {}", refs.join(" ")))?;
    let mut verdict = Ok(());
    if let Some(text) = &o.expect_reply {
        let mut buf = vec![0u8; text.len()];
        pages.mem().read(0, &mut buf)?;
        let found = String::from_utf8_lossy(&buf).into_owned();
        println!("gnt-interop: page 0 starts with {found:?}");
        if buf != text.as_bytes() {
            let at = buf
                .iter()
                .zip(text.as_bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            verdict = Err(Error::Mismatch {
                page: 0,
                offset: at,
                expected: text.as_bytes()[at],
                found: buf[at],
            });
        }
    }
    pages.dealloc()?;
    println!("gnt-interop: deallocated");
    verdict
}

/// Prints `line` only once the stop signals are blocked, then holds.
fn hold(limit: Duration, line: &str) -> Result<()> {
    if limit.is_zero() {
        println!("{line}");
        return Ok(());
    }
    let signals = StopSignals::block()?;
    println!("{line}");
    println!(
        "gnt-interop: holding (until SIGTERM or {} s)",
        limit.as_secs()
    );
    match signals.wait(limit) {
        HoldEnd::Signal(s) => println!("gnt-interop: hold ended by signal {s}"),
        HoldEnd::Timeout => println!("gnt-interop: hold ended after {} s", limit.as_secs()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Map { domid, refs, opts }) => map(domid, &refs, &opts),
        Ok(Command::Share { domid, count, opts }) => share(domid, count, &opts),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ Error::Usage(_)) => {
            eprintln!("gnt-interop: {e}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            println!("gnt-interop: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands() {
        match parse(&args(
            "map --seed 0x5a --reply hi --notify-clear-byte 12287 --hold 60 3 8 9 10",
        ))
        .unwrap()
        {
            Command::Map {
                domid: 3,
                refs,
                opts,
            } => {
                assert_eq!(refs, [8, 9, 10]);
                assert_eq!(opts.seed, Some(0x5a));
                assert_eq!(opts.notify_clear_byte, Some(12287));
                assert_eq!(opts.hold, Duration::from_secs(60));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&args("share --seed 165 5 3")).unwrap(),
            Command::Share {
                domid: 5,
                count: 3,
                ..
            }
        ));
        assert_eq!(parse(&args("--help")).unwrap(), Command::Help);
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            "",
            "frob 1",
            "map",
            "map 1",
            "map x 8",
            "map 1 -3",
            "map 1 99999999999",
            "map --seed 256 1 8",
            "map --hold",
            "map --readonly --reply x 1 8",
            "map --expect-reply x 1 8",
            "share 1",
            "share 1 0",
            "share 1 65537",
            "share 1 2 3",
            "share --reply x 1 2",
            "map --frob 1 8",
        ] {
            assert!(matches!(parse(&args(bad)), Err(Error::Usage(_))), "{bad}");
        }
    }
}
