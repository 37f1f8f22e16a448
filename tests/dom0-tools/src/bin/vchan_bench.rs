//! `vchan-bench`: Xen's libxenvchan in dom0 as the peer of a xenpv guest
//! (issue 7: ring throughput against libxenvchan between dom0 and a guest),
//! streaming the ring examples' byte sequence (`xenpv_test_support::stream`, the same code the guests use).
//!
//! Both run the ring benchmark's rounds (`xenpv_test_support::rounds`):
//! the receiver says go, the sender sends one round's bytes, RUNS times.
//! `client` connects to a xenpv server (e.g. `ring_consumer`, told that its
//! peer is dom0) and sends a round of the stream at each go, then waits for
//! the guest's `ok`. `server` offers a vchan to a xenpv client (e.g.
//! `ring_producer`), says go, receives and checks every byte of each
//! round, timing it from its go, then answers `ok`. The server prints
//! `vchan-bench: round <r>/<n>: <MiB/s> MiB/s` per round; both end with
//! `vchan-bench: <n> bytes in <runs> round(s), min/median/max <a/b/c> MiB/s, checksum <hex>`,
//! the checksum being the guests' (FNV-1a over the stream's words).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use xenpv_dom0_tools::rounds::{self, Spread};
use xenpv_dom0_tools::stream::{self, Checksum};
use xenpv_dom0_tools::xenvchan::{Library, Vchan, VchanError};

const USAGE: &str = "\
usage: vchan-bench client DOMID PATH BYTES CHUNK RUNS
       vchan-bench server DOMID PATH BYTES CHUNK RUNS RING_MIN
  client: connects to the vchan DOMID offers at PATH (retrying for 60 s); RUNS times,
          waits for the peer's go and sends BYTES of the test stream in writes of
          CHUNK bytes; then reads the peer's `ok`.
  server: offers a vchan to DOMID at PATH whose client-to-server ring holds at least
          RING_MIN bytes; RUNS times, says go and receives BYTES in reads of up to
          CHUNK bytes checking each one; then writes `ok` and waits for the client
          to close. RUNS is 1 to 32.";

/// How long nothing may move before the tool gives up.
const STALL: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
enum Command {
    Client {
        domid: u16,
        path: String,
        bytes: u64,
        chunk: usize,
        runs: usize,
    },
    Server {
        domid: u16,
        path: String,
        bytes: u64,
        chunk: usize,
        runs: usize,
        ring_min: usize,
    },
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{what}: `{s}` is not a valid number"))
}

fn parse(args: &[String]) -> Result<Command, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = match a.as_slice() {
        ["client", d, p, b, c, n] => Command::Client {
            domid: number(d, "DOMID")?,
            path: p.to_string(),
            bytes: number(b, "BYTES")?,
            chunk: number(c, "CHUNK")?,
            runs: number(n, "RUNS")?,
        },
        ["server", d, p, b, c, n, r] => Command::Server {
            domid: number(d, "DOMID")?,
            path: p.to_string(),
            bytes: number(b, "BYTES")?,
            chunk: number(c, "CHUNK")?,
            runs: number(n, "RUNS")?,
            ring_min: number(r, "RING_MIN")?,
        },
        _ => return Err(USAGE.into()),
    };
    match &cmd {
        Command::Client { chunk: 0, .. } | Command::Server { chunk: 0, .. } => {
            Err("CHUNK must be at least 1".into())
        }
        Command::Client { runs, .. } | Command::Server { runs, .. }
            if !(1..=rounds::MAX_ROUNDS).contains(runs) =>
        {
            Err(format!("RUNS must be 1 to {}", rounds::MAX_ROUNDS))
        }
        _ => Ok(cmd),
    }
}

fn report(bytes: u64, rates: &mut [f64], sum: Checksum) {
    let runs = rates.len();
    let spread = Spread::of(rates).map_or_else(|| "none".into(), |s| s.to_string());
    println!(
        "vchan-bench: {bytes} bytes in {runs} round(s), min/median/max {spread} MiB/s, checksum {:016x}",
        sum.finish()
    );
}

fn client(
    lib: &Library,
    domid: u16,
    path: &str,
    bytes: u64,
    chunk: usize,
    runs: usize,
) -> Result<bool, VchanError> {
    // The guest may not have published its vchan yet (the companion starts
    // while it is paused): libxenvchan_client_init fails until it has.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut chan: Vchan<'_> = loop {
        match lib.client(domid, path) {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    println!("vchan-bench: libxenvchan client of dom{domid} at {path}, {chunk}-byte writes");
    let mut buf = vec![0u8; chunk];
    let (mut sent, mut sum, mut rates) = (0u64, Checksum::new(), Vec::new());
    for _ in 0..runs {
        let mut go = [0u8; 1];
        chan.read_some(&mut go, STALL)?;
        if go[0] != rounds::GO {
            println!("vchan-bench: FAIL: the peer sent {:#04x}, not go", go[0]);
            return Ok(false);
        }
        let start = Instant::now();
        let end = sent + bytes;
        while sent < end {
            let n = chunk.min((end - sent) as usize);
            stream::fill(sent, &mut buf[..n]);
            sum.update(&buf[..n]);
            chan.write_all(&buf[..n], STALL)?;
            sent += n as u64;
        }
        rates.push(stream::mib_per_s(bytes, start.elapsed().as_nanos() as u64));
    }
    // Written into the ring, not yet necessarily read: the receiver's
    // figures are the ones to quote.
    report(sent, &mut rates, sum);
    let mut ack = [0u8; 2];
    let mut got = 0;
    while got < ack.len() {
        got += chan.read_some(&mut ack[got..], STALL)?;
    }
    println!("vchan-bench: peer says {:?}", String::from_utf8_lossy(&ack));
    Ok(true)
}

fn server(
    lib: &Library,
    domid: u16,
    path: &str,
    bytes: u64,
    chunk: usize,
    runs: usize,
    ring_min: usize,
) -> Result<bool, VchanError> {
    // The ack ring (server to client) is the smallest, as in ring_consumer.
    let mut chan = lib.server(domid, path, ring_min, 1024)?;
    println!("vchan-bench: libxenvchan server for dom{domid} at {path}, ring of at least {ring_min} bytes, {chunk}-byte reads");
    let mut buf = vec![0u8; chunk];
    let mut want = vec![0u8; chunk];
    let (mut got, mut sum, mut rates) = (0u64, Checksum::new(), Vec::new());
    // Every round is timed from its go, so the client must be there first.
    let deadline = Instant::now() + Duration::from_secs(60);
    while chan.is_open() == 2 {
        if Instant::now() > deadline {
            return Err(VchanError::Stalled {
                what: "waiting for the client",
                after: Duration::from_secs(60),
            });
        }
        chan.wait(Duration::from_millis(20))?;
    }
    for run in 1..=runs {
        let start = Instant::now();
        chan.write_all(&[rounds::GO], STALL)?;
        let end = got + bytes;
        while got < end {
            let room = chunk.min((end - got) as usize);
            let n = chan.read_some(&mut buf[..room], STALL)?;
            stream::fill(got, &mut want[..n]);
            if buf[..n] != want[..n] {
                let bad = buf[..n]
                    .iter()
                    .zip(&want[..n])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                println!(
                    "vchan-bench: FAIL: byte {} is {:#04x}, expected {:#04x}",
                    got + bad as u64,
                    buf[bad],
                    want[bad]
                );
                return Ok(false);
            }
            sum.update(&buf[..n]);
            got += n as u64;
        }
        let rate = stream::mib_per_s(bytes, start.elapsed().as_nanos() as u64);
        println!("vchan-bench: round {run}/{runs}: {rate:.2} MiB/s");
        rates.push(rate);
    }
    report(got, &mut rates, sum);
    chan.write_all(rounds::DONE, STALL)?;
    // Let the client read the ack and close first, as ring_consumer does.
    let deadline = Instant::now() + STALL;
    while chan.is_open() != 0 && Instant::now() < deadline {
        chan.wait(Duration::from_millis(100))?;
    }
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vchan-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let lib = match Library::open() {
        Ok(l) => l,
        Err(e) => {
            println!("vchan-bench: FAIL: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd {
        Command::Client {
            domid,
            path,
            bytes,
            chunk,
            runs,
        } => client(&lib, domid, &path, bytes, chunk, runs),
        Command::Server {
            domid,
            path,
            bytes,
            chunk,
            runs,
            ring_min,
        } => server(&lib, domid, &path, bytes, chunk, runs, ring_min),
    };
    match result {
        Ok(true) => {
            println!("vchan-bench: PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            println!("vchan-bench: FAIL: {e}");
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
    fn command_lines() {
        assert_eq!(
            parse(&args("client 5 /local/domain/5/data/vchan 4194304 65536 5")),
            Ok(Command::Client {
                domid: 5,
                path: "/local/domain/5/data/vchan".into(),
                bytes: 4 << 20,
                chunk: 65536,
                runs: 5
            })
        );
        assert_eq!(
            parse(&args("server 7 /p 100 64 1 1024")),
            Ok(Command::Server {
                domid: 7,
                path: "/p".into(),
                bytes: 100,
                chunk: 64,
                runs: 1,
                ring_min: 1024
            })
        );
        assert!(parse(&args("client 5 /p 100 0 1")).is_err());
        assert!(parse(&args("client 5 /p 100 1 0")).is_err());
        assert!(parse(&args("client 5 /p 100 1 33")).is_err());
        assert!(parse(&args("client 70000 /p 100 1 1")).is_err());
        assert!(parse(&args("server 5 /p 100 1 1")).is_err());
    }
}
