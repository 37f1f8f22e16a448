//! The receiving half of the ring showcase: offers a vchan (as its
//! server, like a libxenvchan server), receives the producer's stream,
//! checks every byte against the expected sequence and prints the
//! checksum and throughput, next to a memcpy of the same volume in this
//! guest (the ceiling) measured in the same run.
//!
//! Options (xl `extra=`): `order=<10..20>` ring order of the
//! producer→consumer ring (default 16), `bytes=<n>` (default 64 MiB),
//! `chunk=<n>` read size (default 65536), `check=0` to skip generating
//! and checking the stream on both sides (the benchmark's ring-only run).
#![no_std]
#![no_main]

extern crate alloc;

use xenpv_test_support::{guest as helpers, stream};

use alloc::vec;
use core::time::Duration;
use xenpv::vchan::{ChannelError, Vchan};
use xenpv::{println, DomId};

xenpv::main!(main);

fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
    let order: u32 = helpers::arg("order", 16);
    let total: u64 = helpers::arg("bytes", 64 << 20);
    let chunk: usize = helpers::arg("chunk", 65536);
    let check = helpers::arg::<u32>("check", 1) != 0;
    let xs = xen.store()?;
    let me = xs.lock().own_domid()?;
    let peer: u16 = helpers::wait_key_for(&mut xs.lock(), "data/peer_domid", Duration::from_secs(60))?
        .parse()
        .map_err(|_| ChannelError::BadNode { path: "data/peer_domid".into() })?;
    let path = alloc::format!("/local/domain/{}/data/vchan", me.0);

    // The ceiling: copying the same volume once, in this guest.
    let memcpy_ns = memcpy_ns(total, chunk);

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
    let mut start = 0;
    while got < total {
        let n = chan.read_blocking(&mut buf, Some(Duration::from_secs(30)))?;
        if start == 0 {
            start = xenpv::time::now_ns();
        }
        if check {
            stream::fill(got, &mut want[..n]);
            if buf[..n] != want[..n] {
                let bad = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b).unwrap_or(0);
                println!("ring_consumer: FAIL: byte {} differs", got + bad as u64);
                return Err(xenpv::Error::App("the stream differs"));
            }
            sum.update(&buf[..n]);
        }
        got += n as u64;
    }
    let ns = xenpv::time::now_ns() - start;
    // Tell the producer we are done, so it can close first.
    chan.write_all(b"ok", Some(Duration::from_secs(10)))?;
    if check {
        println!("ring_consumer: received {got} bytes, checksum {:016x}", sum.finish());
    } else {
        println!("ring_consumer: received {got} bytes (unchecked)");
    }
    println!(
        "ring_consumer: order {order} chunk {chunk} {}: ring {:.2} MiB/s, memcpy {:.1} MiB/s in this guest (ring/memcpy {:.2}%)",
        if check { "checked" } else { "unchecked" },
        stream::mib_per_s(got, ns),
        stream::mib_per_s(total, memcpy_ns),
        memcpy_ns as f64 * 100.0 / ns.max(1) as f64
    );
    drop(chan); // closes, removing the nodes
    println!("ring_consumer: PASS");
    Ok(())
}

fn memcpy_ns(total: u64, chunk: usize) -> u64 {
    let src = vec![0x5au8; chunk];
    let mut dst = vec![0u8; chunk];
    let t = xenpv::time::now_ns();
    let mut done = 0;
    while done < total {
        dst.copy_from_slice(&src);
        core::hint::black_box(&mut dst);
        done += chunk as u64;
    }
    xenpv::time::now_ns() - t
}
