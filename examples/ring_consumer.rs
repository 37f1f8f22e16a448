//! The receiving half of the ring showcase: offers a vchan (as its
//! server, like a libxenvchan server), receives the producer's stream,
//! checks every byte against the expected sequence and prints the
//! checksum and throughput, next to a memcpy of the same volume in this
//! guest (the ceiling) measured in the same run: its own copy out of a
//! ring-sized buffer into its read buffer, with no peer.
//!
//! The transfer runs in rounds (`xenpv_test_support::rounds`): before
//! each one this guest times its memcpy reference, then tells the
//! producer to go and times the round from there to its last byte. It
//! prints a line per round and then min/median/max over the rounds.
//!
//! Options (xl `extra=`): `order=<10..20>` ring order of the
//! producer→consumer ring (default 16), `bytes=<n>` per round (default
//! 64 MiB), `runs=<n>` rounds (default 1, at most 32), `chunk=<n>` read
//! size (default 65536), `check=0` to skip generating and checking the
//! stream on both sides (the benchmark's ring-only run).
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::rounds::{self, Spread};
use xenpv_test_support::{guest as helpers, stream};

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let order: u32 = helpers::arg("order", 16);
    let total: u64 = helpers::arg("bytes", 64 << 20);
    let runs: usize = helpers::arg("runs", 1usize).clamp(1, rounds::MAX_ROUNDS);
    let chunk: usize = helpers::arg("chunk", 65536).max(1);
    let check = helpers::arg::<u32>("check", 1) != 0;
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    let peer: u16 =
        helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?
            .parse()
            .map_err(|_| ChannelError::BadNode {
                path: "data/peer_domid".into(),
            })?;
    let path = alloc::format!("/local/domain/{}/data/vchan", me.0);

    // left = client->server: the producer's ring gets the requested order.
    let left = 1usize << order.clamp(10, 20);
    let chan = Vchan::server(xen.vchan()?, DomId(peer), &path, left, 1024)?;
    println!("ring_consumer: offering vchan at {path} to dom{peer} (left ring {left} bytes)");
    chan.wait_connected(Some(Duration::from_secs(60)))?;
    let mut chan = chan;
    println!("ring_consumer: producer connected");

    let mut buf = vec![0u8; chunk];
    let mut want = vec![0u8; chunk];
    let (mut got, mut sum) = (0u64, stream::Checksum::new());
    let (mut ring, mut copy, mut share) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        // The ceiling: this round's copy in this guest alone, with the
        // producer idle (it waits for GO).
        let memcpy_ns = memcpy_ns(total, left, &mut buf);
        let start = xenpv::time::now_ns();
        chan.write_all(&[rounds::GO], Some(Duration::from_secs(10)))?;
        let end = got + total;
        while got < end {
            let room = chunk.min((end - got) as usize);
            let n = chan.read_blocking(&mut buf[..room], Some(Duration::from_secs(30)))?;
            if check {
                stream::fill(got, &mut want[..n]);
                if buf[..n] != want[..n] {
                    let bad = buf[..n]
                        .iter()
                        .zip(&want[..n])
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    println!("ring_consumer: FAIL: byte {} differs", got + bad as u64);
                    return Err(xenpv::Error::App("the stream differs"));
                }
                sum.update(&buf[..n]);
            }
            got += n as u64;
        }
        let ns = (xenpv::time::now_ns() - start).max(1);
        ring.push(stream::mib_per_s(total, ns));
        copy.push(stream::mib_per_s(total, memcpy_ns));
        share.push(memcpy_ns as f64 * 100.0 / ns as f64);
        println!(
            "ring_consumer: round {run}/{runs}: ring {:.2} MiB/s, memcpy {:.1} MiB/s (ring/memcpy {:.2}%)",
            ring[run - 1],
            copy[run - 1],
            share[run - 1]
        );
    }
    // Tell the producer we are done, so it can close first.
    chan.write_all(rounds::DONE, Some(Duration::from_secs(10)))?;
    if check {
        println!(
            "ring_consumer: received {got} bytes, checksum {:016x}",
            sum.finish()
        );
    } else {
        println!("ring_consumer: received {got} bytes (unchecked)");
    }
    if let (Some(r), Some(c), Some(s)) = (
        Spread::of(&mut ring),
        Spread::of(&mut copy),
        Spread::of(&mut share),
    ) {
        println!(
            "ring_consumer: order {order} chunk {chunk} {} over {runs} round(s), min/median/max: ring {r} MiB/s, memcpy {c:.1} MiB/s in this guest, ring/memcpy {s}%",
            if check { "checked" } else { "unchecked" },
        );
    }
    drop(chan); // closes, removing the nodes
    println!("ring_consumer: PASS");
    Ok(())
}

/// Nanoseconds for the copy the consumer makes of a round, without a
/// peer: `total` bytes in reads of `dst.len()` (at most the ring's size,
/// as a read of the ring) out of a buffer the size of the ring, at the
/// ring's running offset (so the same buffers and sizes as the ring: the
/// bytes pass through `ring` bytes of memory, not through one hot chunk),
/// into the read buffer.
fn memcpy_ns(total: u64, ring: usize, dst: &mut [u8]) -> u64 {
    let src = vec![0x5au8; ring];
    let t = xenpv::time::now_ns();
    let mut done = 0u64;
    while done < total {
        let n = dst.len().min(ring).min((total - done) as usize);
        let at = (done % ring as u64) as usize;
        let first = n.min(ring - at);
        dst[..first].copy_from_slice(&src[at..at + first]);
        dst[first..n].copy_from_slice(&src[..n - first]);
        core::hint::black_box(&mut *dst);
        done += n as u64;
    }
    (xenpv::time::now_ns() - t).max(1)
}
