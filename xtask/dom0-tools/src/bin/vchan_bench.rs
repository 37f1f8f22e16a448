//! `vchan-bench`: Xen's libxenvchan in dom0 as the peer of a xenpv guest
//! (issue 7: ring throughput against libxenvchan between dom0 and a guest),
//! streaming the ring examples' byte sequence (`xenpv_test_support::stream`, the same code the guests use).
//!
//! `client` connects to a xenpv server (e.g. `ring_consumer`, told that its
//! peer is dom0) and sends the stream, then waits for the guest's `ok`.
//! `server` offers a vchan to a xenpv client (e.g. `ring_producer`), receives
//! and checks every byte, then answers `ok`. Both print
//! `vchan-bench: <n> bytes in <ns> ns, <MiB/s> MiB/s, checksum <hex>`, the
//! checksum being the guests' (FNV-1a over the stream's words).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use xenpv_dom0_tools::stream::{self, Checksum};
use xenpv_dom0_tools::xenvchan::{Library, Vchan, VchanError};

const USAGE: &str = "\
usage: vchan-bench client DOMID PATH BYTES CHUNK
       vchan-bench server DOMID PATH BYTES CHUNK RING_MIN
  client: connects to the vchan DOMID offers at PATH (retrying for 60 s) and sends
          BYTES of the test stream in writes of CHUNK bytes, then reads the peer's `ok`.
  server: offers a vchan to DOMID at PATH whose client-to-server ring holds at least
          RING_MIN bytes, receives BYTES in reads of up to CHUNK bytes checking each
          one, then writes `ok` and waits for the client to close.";

/// How long nothing may move before the tool gives up.
const STALL: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
enum Command {
    Client {
        domid: u16,
        path: String,
        bytes: u64,
        chunk: usize,
    },
    Server {
        domid: u16,
        path: String,
        bytes: u64,
        chunk: usize,
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
        ["client", d, p, b, c] => Command::Client {
            domid: number(d, "DOMID")?,
            path: p.to_string(),
            bytes: number(b, "BYTES")?,
            chunk: number(c, "CHUNK")?,
        },
        ["server", d, p, b, c, r] => Command::Server {
            domid: number(d, "DOMID")?,
            path: p.to_string(),
            bytes: number(b, "BYTES")?,
            chunk: number(c, "CHUNK")?,
            ring_min: number(r, "RING_MIN")?,
        },
        _ => return Err(USAGE.into()),
    };
    match &cmd {
        Command::Client { chunk: 0, .. } | Command::Server { chunk: 0, .. } => {
            Err("CHUNK must be at least 1".into())
        }
        _ => Ok(cmd),
    }
}

fn report(bytes: u64, ns: u64, sum: Checksum) {
    println!(
        "vchan-bench: {bytes} bytes in {ns} ns, {:.2} MiB/s, checksum {:016x}",
        stream::mib_per_s(bytes, ns),
        sum.finish()
    );
}

fn client(
    lib: &Library,
    domid: u16,
    path: &str,
    bytes: u64,
    chunk: usize,
) -> Result<(), VchanError> {
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
    let (mut sent, mut sum) = (0u64, Checksum::new());
    let start = Instant::now();
    while sent < bytes {
        let n = chunk.min((bytes - sent) as usize);
        stream::fill(sent, &mut buf[..n]);
        sum.update(&buf[..n]);
        chan.write_all(&buf[..n], STALL)?;
        sent += n as u64;
    }
    // Written into the ring, not yet necessarily read: the receiver's
    // figure is the one to quote.
    report(sent, start.elapsed().as_nanos() as u64, sum);
    let mut ack = [0u8; 2];
    let mut got = 0;
    while got < ack.len() {
        got += chan.read_some(&mut ack[got..], STALL)?;
    }
    println!("vchan-bench: peer says {:?}", String::from_utf8_lossy(&ack));
    Ok(())
}

fn server(
    lib: &Library,
    domid: u16,
    path: &str,
    bytes: u64,
    chunk: usize,
    ring_min: usize,
) -> Result<bool, VchanError> {
    // The ack ring (server to client) is the smallest, as in ring_consumer.
    let mut chan = lib.server(domid, path, ring_min, 1024)?;
    println!("vchan-bench: libxenvchan server for dom{domid} at {path}, ring of at least {ring_min} bytes, {chunk}-byte reads");
    let mut buf = vec![0u8; chunk];
    let mut want = vec![0u8; chunk];
    let (mut got, mut sum) = (0u64, Checksum::new());
    let mut start = None;
    while got < bytes {
        let room = chunk.min((bytes - got) as usize);
        // The first read also waits for the client to connect.
        let stall = if start.is_none() {
            Duration::from_secs(60)
        } else {
            STALL
        };
        let n = chan.read_some(&mut buf[..room], stall)?;
        start.get_or_insert_with(Instant::now);
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
    report(got, start.map_or(0, |s| s.elapsed().as_nanos() as u64), sum);
    chan.write_all(b"ok", STALL)?;
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
        } => client(&lib, domid, &path, bytes, chunk).map(|()| true),
        Command::Server {
            domid,
            path,
            bytes,
            chunk,
            ring_min,
        } => server(&lib, domid, &path, bytes, chunk, ring_min),
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
            parse(&args("client 5 /local/domain/5/data/vchan 4194304 65536")),
            Ok(Command::Client {
                domid: 5,
                path: "/local/domain/5/data/vchan".into(),
                bytes: 4 << 20,
                chunk: 65536
            })
        );
        assert_eq!(
            parse(&args("server 7 /p 100 64 1024")),
            Ok(Command::Server {
                domid: 7,
                path: "/p".into(),
                bytes: 100,
                chunk: 64,
                ring_min: 1024
            })
        );
        assert!(parse(&args("client 5 /p 100 0")).is_err());
        assert!(parse(&args("client 70000 /p 100 1")).is_err());
        assert!(parse(&args("server 5 /p 100 1")).is_err());
    }
}
