//! The sending half of the ring showcase: connects to the consumer's
//! vchan (as its client) and streams the deterministic byte sequence, one
//! round each time the consumer says go (`xenpv_test_support::rounds`).
//!
//! Options (xl `extra=`): `bytes=<n>` per round (default 64 MiB),
//! `runs=<n>` rounds (default 1; the consumer's must match), `chunk=<n>`
//! write size (default 65536), `check=0` to send one prepared buffer
//! again and again instead of the stream.
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::rounds;
use xenpv_test_support::{guest as helpers, stream};

use alloc::vec;
use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let total: u64 = helpers::arg("bytes", 64 << 20);
    let runs: usize = helpers::arg("runs", 1usize).clamp(1, rounds::MAX_ROUNDS);
    let chunk: usize = helpers::arg("chunk", 65536).max(1);
    let check = helpers::arg::<u32>("check", 1) != 0;
    let xs = xen.store()?;
    let peer: u16 =
        helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?
            .parse()
            .map_err(|_| ChannelError::BadNode {
                path: "data/peer_domid".into(),
            })?;
    let path = alloc::format!("/local/domain/{peer}/data/vchan");
    helpers::wait_key_for(
        &mut xs.lock(),
        &alloc::format!("{path}/event-channel"),
        Duration::from_secs(60),
    )?;
    let mut chan = Vchan::client(xen.vchan()?, DomId(peer), &path)?;
    println!("ring_producer: connected to dom{peer} at {path}");

    let mut buf = vec![0u8; chunk];
    let (mut sent, mut sum, mut busy_ns) = (0u64, stream::Checksum::new(), 0u64);
    // Unchecked (`check=0`): the same buffer again and again, so the timed
    // window holds the ring's copies and waits only.
    stream::fill(0, &mut buf);
    for _ in 0..runs {
        let mut go = [0u8; 1];
        chan.read_exact(&mut go, Some(Duration::from_secs(60)))?;
        if go[0] != rounds::GO {
            println!(
                "ring_producer: FAIL: the consumer sent {:#04x}, not go",
                go[0]
            );
            return Err(xenpv::Error::App("unexpected byte from the consumer"));
        }
        let start = xenpv::time::now_ns();
        let end = sent + total;
        while sent < end {
            let n = chunk.min((end - sent) as usize);
            if check {
                stream::fill(sent, &mut buf[..n]);
                sum.update(&buf[..n]);
            }
            chan.write_all(&buf[..n], Some(Duration::from_secs(30)))?;
            sent += n as u64;
        }
        busy_ns += xenpv::time::now_ns() - start;
    }
    // Written into the ring, not necessarily read yet: the consumer's
    // figures are the ones to quote.
    if check {
        println!(
            "ring_producer: sent {sent} bytes, checksum {:016x}, {:.2} MiB/s",
            sum.finish(),
            stream::mib_per_s(sent, busy_ns)
        );
    } else {
        println!(
            "ring_producer: sent {sent} bytes (unchecked), {:.2} MiB/s",
            stream::mib_per_s(sent, busy_ns)
        );
    }
    let mut ack = [0u8; 2];
    chan.read_exact(&mut ack, Some(Duration::from_secs(30)))?;
    println!(
        "ring_producer: consumer says {:?}",
        core::str::from_utf8(&ack).unwrap_or("?")
    );
    drop(chan);
    println!("ring_producer: PASS");
    Ok(())
}
